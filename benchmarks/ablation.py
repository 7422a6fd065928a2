"""Compare training runs made at equal CPU time (the ablations of the quality conditioning, the loss and the
capacity): their validation at the end, and, for a capacity comparison, PSNR on a test set against GFLOPs at
1080p beside the published points of ARCNN, DnCNN-3 and FBCNN. Prints Markdown and writes it with a figure.

    python benchmarks/ablation.py --runs blind=runs/ab_blind quality-aware=runs/ab_qa --out docs/benchmarks/ablation_quality
    python benchmarks/ablation.py --runs small=runs/cap_small wide=runs/cap_wide large=runs/cap_large \\
        --test ../shared/data/test/live1_gray --gray --out docs/benchmarks/ablation_capacity

Validation is the runs' own (`gen_pretrain_valid.json`, `ValidationScorer` on valid/ and the smooth set); the test
set is only scored here, never used to choose.
"""
import argparse
import json
import shlex
import sys
from pathlib import Path

import matplotlib
matplotlib.use('Agg')
import matplotlib.pyplot as plt
import torch

from artifact_removal.evaluate import evaluate
from artifact_removal.learner import load_init
from artifact_removal.models import count_params, create_generator, gflops
from artifact_removal.visualize import save_figure

FBCNN_DIR = Path(__file__).resolve().parents[2] / 'shared' / 'reference' / 'fbcnn'
# LIVE1 gray, JPEG quality 10: PSNR (dB) as the FBCNN paper (Jiang et al., ICCV 2021, Table 2) reports them
PUBLISHED_GRAY_Q10 = {'ARCNN': 28.96, 'DnCNN-3': 29.19, 'FBCNN': 29.75}
COLUMNS = ['psnr', 'stlpips', 'luma_grid', 'chroma_grid', 'q95_gain', 'smooth_q95_gain', 'smooth_q75_gain',
           'smooth_shift', 'quality_error']


def _arcnn():
    "ARCNN (Dong et al., ICCV 2015) on gray images: 9x9x64, 7x7x32, 1x1x16, 5x5x1."
    return torch.nn.Sequential(torch.nn.Conv2d(1, 64, 9, padding=4), torch.nn.Conv2d(64, 32, 7, padding=3),
                               torch.nn.Conv2d(32, 16, 1), torch.nn.Conv2d(16, 1, 5, padding=2))


def _dncnn3():
    "DnCNN-3 (Zhang et al., TIP 2017): 20 3x3 convs of 64 channels on gray images (BatchNorm costs no FLOPs)."
    layers = [torch.nn.Conv2d(1, 64, 3, padding=1)] + [torch.nn.Conv2d(64, 64, 3, padding=1) for _ in range(18)]
    return torch.nn.Sequential(*layers, torch.nn.Conv2d(64, 1, 3, padding=1))


def _fbcnn():
    "FBCNN's color network from ../shared/reference/fbcnn (loaded at run time, not copied)."
    sys.path.insert(0, str(FBCNN_DIR))
    from network_fbcnn import FBCNN
    return FBCNN()


def reference_gflops(size=(256, 256)) -> dict:
    """GFLOPs at 1080p of the published networks, counted on a `size` input and scaled to 1920x1080 pixels (their
    convolutions cost the same per pixel at any size)."""
    from torch.utils.flop_counter import FlopCounterMode
    scale = 1920 * 1080 / (size[0] * size[1])
    out = {}
    for name, make, ch in (('ARCNN', _arcnn, 1), ('DnCNN-3', _dncnn3, 1), ('FBCNN', _fbcnn, 3)):
        with torch.no_grad(), FlopCounterMode(display=False) as fc: make().eval()(torch.zeros(1, ch, *size))
        out[name] = fc.get_total_flops() / 1e9 * scale
    return out


def run_summary(name, run: Path) -> dict:
    "A run's last validation row, with its training minutes and its network's size and cost."
    log = json.loads((run / 'gen_pretrain_valid.json').read_text())
    cfg = json.loads((run / 'config.json').read_text())['config']
    model = create_generator(cfg['arch'], quality_aware=cfg.get('quality_aware', False))
    return {'run': name, 'arch': cfg['arch'], 'loss': cfg['gen_loss'], 'quality_aware': cfg.get('quality_aware', False),
            'train_minutes': log[-1]['seconds'] / 60, 'patches': cfg['n_patches'], 'params_m': count_params(model) / 1e6,
            'gflops_1080p': gflops(model), **log[-1]}


def markdown(rows, columns) -> str:
    head = ['run', 'arch', 'loss', 'quality-aware', 'GFLOPs 1080p', 'patches/image/epoch', 'train min'] + columns
    lines = ['| ' + ' | '.join(head) + ' |', '|---|---|---|---|' + '---:|' * (len(head) - 4)]
    for r in rows:
        cells = [r['run'], r['arch'], r['loss'], 'yes' if r['quality_aware'] else 'no', f"{r['gflops_1080p']:.0f}",
                 str(r['patches']), f"{r['train_minutes']:.0f}"] + [f'{r[c]:.4g}' if c in r else '-' for c in columns]
        lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def test_psnr(rows, runs, test, gray) -> None:
    "Each run's kept generator scored at q10 on `test` (PSNR, the grid measures), added to its row."
    for r, (name, run) in zip(rows, runs):
        model = load_init(create_generator(r['arch'], quality_aware=r['quality_aware']), run / 'gen_pretrain.pth').eval()
        ev = evaluate([model], test, (10,), gray=gray, metrics=('psnr', 'luma_grid'), crops=0, progress=False)
        r['test_psnr'], r['test_luma_grid'] = ev.summary[1]['psnr'], ev.summary[1]['luma_grid']
        r['test_input_psnr'] = ev.summary[0]['psnr']


def plot_capacity(rows, published, test_name, path):
    "PSNR at q10 on the test set against GFLOPs at 1080p: the runs, and the published networks."
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.scatter([published[k] for k in PUBLISHED_GRAY_Q10], list(PUBLISHED_GRAY_Q10.values()), marker='s', color='gray',
               label='published (fully trained on GPUs)')
    for k, v in PUBLISHED_GRAY_Q10.items(): ax.annotate(k, (published[k], v), xytext=(5, -3), textcoords='offset points')
    ax.scatter([r['gflops_1080p'] for r in rows], [r['test_psnr'] for r in rows], color='C0',
               label='this project, equal CPU time')
    for r in rows: ax.annotate(r['run'], (r['gflops_1080p'], r['test_psnr']), xytext=(5, 3), textcoords='offset points')
    ax.axhline(rows[0]['test_input_psnr'], color='gray', ls='--', label='JPEG input')
    ax.set(xscale='log', xlabel='GFLOPs at 1080p (log scale)', ylabel=f'PSNR at q10 on {test_name} (dB)',
           title='Capacity: quality against cost')
    ax.grid(alpha=.3, which='both'); ax.legend(fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--runs', nargs='+', required=True, help='NAME=RUN_FOLDER for each run, the reference first')
    p.add_argument('--test', help='a test folder to score each run on at q10 (capacity figure)')
    p.add_argument('--gray', action='store_true', help='score the test set as gray (published points are gray LIVE1)')
    p.add_argument('--out', required=True, help='folder for ablation.md (and capacity.png)')
    a = p.parse_args()
    runs = [(n, Path(f)) for n, f in (r.split('=', 1) for r in a.runs)]
    rows = [run_summary(n, f) for n, f in runs]
    columns = [c for c in COLUMNS if any(c in r for r in rows)]
    out = Path(a.out); out.mkdir(parents=True, exist_ok=True)
    text = [f'`python {shlex.join(sys.argv)}`', '', 'Validation at the end of each run (valid/ crops at q10 and q95, the '
            'smooth set at q95 and q75):', '', markdown(rows, columns)]
    if a.test:
        test_psnr(rows, runs, a.test, a.gray)
        published = reference_gflops()
        text += ['', f'On {a.test} at q10 ({"gray" if a.gray else "colour"}):', '',
                 '| run | GFLOPs 1080p | PSNR | luma grid |', '|---|---:|---:|---:|']
        text += [f"| {r['run']} | {r['gflops_1080p']:.0f} | {r['test_psnr']:.2f} | {r['test_luma_grid']:.3f} |" for r in rows]
        text += [f'| {k} (published) | {published[k]:.0f} | {v:.2f} | - |' for k, v in PUBLISHED_GRAY_Q10.items()]
        plot_capacity(rows, published, Path(a.test).name, out / 'capacity.png')
        text += ['', '![capacity](capacity.png)']
    (out / 'ablation.md').write_text('\n'.join(text) + '\n')
    print('\n'.join(text))


if __name__ == '__main__': main()
