"""Fit a quality-aware generator's quality estimator alone, before a run continues the whole network, or after.

The estimator is tiny and its inputs are only JPEG-damaged crops, so it learns in minutes of CPU what it would
learn in hours beside the generator; a run that starts from its output (`--init`) tells the generator readings
that are right from the first batch. Qualities are drawn uniformly (the runs draw low ones more often): the
estimator has to be right at q95 too, where a wrong low reading makes the generator smooth a clean picture.
Listing a folder of `--data` several times weighs its images more (smooth content, where reading is hardest).

    python tools/fit_estimator.py --init runs/ab_qa2/gen_pretrain.pth --out runs/estimator/init.pth --minutes 8
    python tools/fit_estimator.py --init runs/mine/gen_pretrain.pth --estimator-init runs/estimator/init.pth \
        --out runs/mine_final/gen.pth --minutes 0

Prints the mean error (in quality points) on `--valid` and `--smooth` centre crops before and after. With
`--minutes 0` it only puts `--estimator-init`'s estimator into `--init`'s generator.
"""
import argparse, json, time
from pathlib import Path

import numpy as np
import torch

from artifact_removal.data import get_pair_dls
from artifact_removal.degrade import JPEGDegradation
from artifact_removal.evaluate import centre_crops, quality_readings
from artifact_removal.learner import load_init
from artifact_removal.losses import quality_reading_loss
from artifact_removal.models import create_generator


def estimate_errors(model, crops) -> dict:
    "Mean |estimate - quality| of the crops compressed at each quality, and as they are (right reading: 100)."
    to_tensor = lambda a: torch.from_numpy(a.copy()).permute(2, 0, 1)[None].float() / 255
    with torch.no_grad():
        rows = quality_readings(lambda a: model.estimate_quality(to_tensor(a))[0], crops, (10, 30, 50, 75, 95))
    return {row['quality']: row['mean abs error'] for row in rows}


def fit(estimator, dls, minutes, lr=1e-3, quantile=0.5, log_every=50):
    "Adam on the estimator's error (`quality_reading_loss` at `quantile`) over `dls.train`'s inputs for `minutes`."
    opt = torch.optim.Adam(estimator.parameters(), lr=lr)
    start, step, running = time.time(), 0, []
    estimator.train()
    while time.time() - start < minutes * 60:
        for x, quality, _ in dls.train:
            loss = quality_reading_loss(estimator(x.as_subclass(torch.Tensor)), quality.as_subclass(torch.Tensor), quantile)
            opt.zero_grad(); loss.backward(); opt.step()
            step, running = step + 1, running[-log_every + 1:] + [100 * loss.item()]
            if step % log_every == 0:
                print(f'step {step}, {time.time() - start:.0f} s: loss {np.mean(running):.2f} quality points', flush=True)
            if time.time() - start >= minutes * 60: break
    return estimator.eval()


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--init', required=True, help='generator weights (.safetensors or a run\'s .pth)')
    p.add_argument('--out', required=True, help='where to save the whole generator (.pth), for a run\'s --init; '
                   'its folder gets the record of a run (config.json, times.json): give each its own folder')
    p.add_argument('--estimator-init', help='weights whose estimator to start from (another run\'s), instead of --init\'s')
    p.add_argument('--arch', default='mobilenetv3_small_100')
    p.add_argument('--data', nargs='+', default=['../shared/data/train', '../shared/data/smooth/train'])
    p.add_argument('--valid', default='../shared/data/valid')
    p.add_argument('--smooth', default='../shared/data/smooth/valid')
    p.add_argument('--minutes', type=float, default=10)
    p.add_argument('--size', type=int, default=128)
    p.add_argument('--bs', type=int, default=32)
    p.add_argument('--quantile', type=float, default=0.5, help='0.5: the L1; higher: readings too low cost more, '
                   'so ambiguous content (flat areas) reads as high quality')
    a = p.parse_args()
    if not 0 < a.quantile < 1: p.error(f'--quantile is a quantile, between 0 and 1, got {a.quantile}')
    model = load_init(create_generator(a.arch, fixed_bn=True), a.init)
    if a.estimator_init:
        donor = load_init(create_generator(a.arch, fixed_bn=True), a.estimator_init)
        model.estimator.load_state_dict(donor.estimator.state_dict())
    seconds = 0.0
    if a.minutes > 0:  # 0: only put --estimator-init's estimator into --init's generator
        crops = {'valid': centre_crops(a.valid, 100, 256), 'smooth': centre_crops(a.smooth, 100, 512)}
        before = {k: estimate_errors(model.eval(), c) for k, c in crops.items()}
        dls = get_pair_dls(a.data, a.valid, size=a.size, bs=a.bs, n_patches=4, degradation=JPEGDegradation(bias=1.0))
        start = time.time()
        fit(model.estimator, dls, a.minutes, quantile=a.quantile)
        seconds = time.time() - start
        after = {k: estimate_errors(model.eval(), c) for k, c in crops.items()}
        for k in crops:
            for q in before[k]: print(f'{k} q{q}: mean error {before[k][q]:.1f} -> {after[k][q]:.1f}')
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    torch.save({'model': model.state_dict()}, a.out)
    # a run folder's record, so that tools/publish_model.py counts this step in the trained model's history
    record = {'config': {'init': a.init, 'estimator_init': a.estimator_init, 'arch': a.arch, 'minutes': a.minutes,
                         'quantile': a.quantile}}
    (Path(a.out).parent / 'config.json').write_text(json.dumps(record, indent=1))
    (Path(a.out).parent / 'times.json').write_text(json.dumps({'estimator': seconds}))
    print(f'saved {a.out}')


if __name__ == '__main__':
    main()
