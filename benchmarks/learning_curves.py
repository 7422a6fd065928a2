"""Validation PSNR at JPEG quality 10 against training time, for each generator config, on this machine.

Each config trains for the same wall-clock budget (L1 loss, 64 px patches, batches of 32, Adam, a one-cycle
learning rate driven by elapsed training time, so every config warms up and anneals within its budget); every
`--every` seconds of training the model is scored on fixed validation crops. Writes JSON, a plot and a
Markdown table (learning_curves.md, with the command). Run it alone: the machine is shared.

    python benchmarks/learning_curves.py --minutes 15 --out docs
"""
import argparse
import json
import platform
import time
from pathlib import Path

import matplotlib
matplotlib.use('Agg')
import matplotlib.pyplot as plt
import torch
from fastai.callback.core import Callback, CancelFitException, CancelValidException
from fastai.callback.schedule import combined_cos

from artifact_removal.data import get_pair_dls
from artifact_removal.degrade import JPEGDegradation
from artifact_removal.nogan import NoGANConfig, _valid_set, gen_learner, score_generator
from artifact_removal.models import count_params

VARIANTS = {  # name -> (arch, create_generator overrides)
    'mobilenetv3_small_100': ('mobilenetv3_small_100', {}),
    'mobilenetv3_small_100 without full-res branch': ('mobilenetv3_small_100', {'full_res': 0}),
    'mobilenetv3_large_100': ('mobilenetv3_large_100', {}),
    'plain_cnn (control)': ('plain_cnn', {}),
    'mobilenetv3_small_100 with fixed BatchNorm': ('mobilenetv3_small_100_fixedbn', {}),
}
DEFAULT_VARIANTS = list(VARIANTS)[:4]


class TimedValidation(Callback):
    """One cycle over `budget` seconds of training (lr from `lr`/25 up to `lr` in the first quarter, cosine down
    after), scored every `every` seconds (scoring time excluded), stopped at `budget`."""
    order = 90
    def __init__(self, pairs, every, budget, lr):
        self.pairs, self.every, self.budget = pairs, every, budget
        self.schedule = combined_cos(0.25, lr / 25, lr, lr / 1e5)
    def before_batch(self):
        if self.training: self.opt.set_hyper('lr', self.schedule(min(self.train_s / self.budget, 1.0)))
    def before_validate(self): raise CancelValidException()  # scored here on fixed crops instead
    def before_fit(self):
        self.train_s, self.rows = 0.0, [{'seconds': 0.0, 'psnr': score_generator(self.model, self.pairs)['psnr']}]
        self.model.train(); self.t = time.time()
    def after_batch(self):
        if not self.training: return
        self.train_s += time.time() - self.t
        if self.train_s >= self.every * len(self.rows) or self.train_s >= self.budget:
            self.rows.append({'seconds': self.train_s, 'psnr': score_generator(self.model, self.pairs)['psnr'],
                              'iters': self.train_iter})
            print(f"  {self.train_s:7.0f} s  iter {self.train_iter:5d}  PSNR q10 {self.rows[-1]['psnr']:.3f}", flush=True)
            self.model.train()
        if self.train_s >= self.budget: raise CancelFitException()
        self.t = time.time()


def run(name, arch, overrides, dls, pairs, budget, every, lr):
    learn = gen_learner(dls, arch, 'l1')
    if overrides:  # rebuild the model with the variant's settings
        from artifact_removal.models import create_generator
        learn.model = create_generator(arch, **overrides).to(memory_format=torch.channels_last)
    print(f'{name}: {count_params(learn.model) / 1e6:.2f} M params', flush=True)
    cb = TimedValidation(pairs, every, budget, lr)
    learn.fit(1000, lr, cbs=cb)  # stopped by the callback at `budget` seconds
    steps = cb.rows[-1]['iters']
    return {'name': name, 'params_m': count_params(learn.model) / 1e6, 's_per_step': cb.train_s / steps,
            'curve': cb.rows}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--data', default='../shared/data/train')
    p.add_argument('--valid', default='../shared/data/valid')
    p.add_argument('--minutes', type=float, default=15)
    p.add_argument('--every', type=float, default=90, help='seconds of training between validations')
    p.add_argument('--lr', type=float, default=2e-3)
    p.add_argument('--variants', nargs='+', default=DEFAULT_VARIANTS, choices=list(VARIANTS))
    p.add_argument('--out', default='docs')
    a = p.parse_args()
    torch.manual_seed(0)
    dls = get_pair_dls(a.data, a.valid, size=64, bs=32, n_patches=16, seed=0, num_workers=1,
                       degradation=JPEGDegradation())
    cfg = NoGANConfig(valid_images=20, valid_crop=256, valid_qualities=(10,))
    pairs = _valid_set(a.valid, cfg)
    input_psnr = score_generator(None, pairs)['psnr']
    results = [run(n, *VARIANTS[n], dls, pairs, a.minutes * 60, a.every, a.lr) for n in a.variants]
    out = Path(a.out); out.mkdir(exist_ok=True)
    variants = '' if a.variants == DEFAULT_VARIANTS else ' --variants ' + ' '.join(f'"{v}"' for v in a.variants)
    meta = {'command': 'python benchmarks/learning_curves.py ' + ' '.join(f'--{k} {v}' for k, v in
            [('minutes', a.minutes), ('every', a.every), ('lr', a.lr), ('out', a.out)]) + variants, 'machine': f'{platform.processor() or platform.machine()}, '
            f'{torch.get_num_threads()} threads', 'input_psnr': input_psnr, 'valid': '20 centre crops of 256 px, valid/, q10'}
    (out / 'learning_curves.json').write_text(json.dumps({'meta': meta, 'results': results}, indent=1))
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for r in results: ax.plot([c['seconds'] / 60 for c in r['curve']], [c['psnr'] for c in r['curve']], 'o-', label=r['name'])
    ax.axhline(input_psnr, color='gray', ls='--', label='JPEG input')
    ax.set(xlabel='training time on this CPU (min)', ylabel='validation PSNR at q10 (dB)', title='Learning speed, L1 loss')
    ax.legend(fontsize=8); ax.grid(alpha=.3); fig.tight_layout(); fig.savefig(out / 'learning_curves.png', dpi=110)
    for r in results: print(f"{r['name']:48s} {r['params_m']:.2f} M  {r['s_per_step']:.2f} s/step  final {r['curve'][-1]['psnr']:.3f} dB (input {input_psnr:.3f})")
    write_table(results, meta, out / 'learning_curves.md')


def write_table(results, meta, path):
    "PSNR gain over the input at a few points of the budget, per config, as Markdown."
    def at(curve, frac):  # the last score taken by `frac` of the budget
        t = frac * curve[-1]['seconds']
        return [c for c in curve if c['seconds'] <= t + 1e-6][-1]['psnr'] - meta['input_psnr']
    fracs = (0.25, 0.5, 1.0)
    minutes = results[0]['curve'][-1]['seconds'] / 60
    head = ' | '.join(f'after {f * minutes:.1f} min' for f in fracs)
    rows = [f"| {r['name']} | {r['params_m']:.2f} | {r['s_per_step']:.2f} | " + ' | '.join(f'{at(r["curve"], f):+.2f}' for f in fracs) + ' |'
            for r in results]
    path.write_text('\n'.join([
        '# Learning speed of the generator configs on this CPU', '', f"`{meta['command']}`", '',
        f"{meta['machine']}; validation: {meta['valid']} (JPEG input {meta['input_psnr']:.2f} dB). L1 loss, 64 px "
        'patches, batches of 32, one cycle over the budget. Gains in dB over the JPEG input:', '',
        f'| config | params (M) | s/step | {head} |', '|---|---|---|' + '---|' * len(fracs), *rows, '',
        '![learning curves](learning_curves.png)', '']))


if __name__ == '__main__': main()
