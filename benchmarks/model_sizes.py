"""Parameters and GFLOPs of one 1080p frame for every generator config; writes docs/benchmarks/models.md.

    python benchmarks/model_sizes.py
"""
import sys
from pathlib import Path

from artifact_removal.models import GENERATOR_CONFIGS, count_params, create_critic, create_generator, gflops


def main(out='docs/benchmarks/models.md'):
    rows = []
    for name, cfg in GENERATOR_CONFIGS.items():
        g = create_generator(name)
        rows.append((name, count_params(g) / 1e6, gflops(g, (1080, 1920)), ', '.join(f'{k}={v}' for k, v in cfg.items())))
        print(f'{name:24s} {rows[-1][1]:6.2f} M  {rows[-1][2]:7.1f} GFLOPs')
    crit = count_params(create_critic()) / 1e6
    lines = ['# Generator configs', '', 'Made by `python benchmarks/model_sizes.py` (torch.utils.flop_counter, one forward pass,',
             'FLOPs = 2 x multiply-adds, RGB 1080x1920 input).', '',
             '| config | parameters | GFLOPs at 1080p | settings |', '|---|---|---|---|']
    lines += [f'| `{n}` | {p:.2f} M | {f:.0f} | {c} |' for n, p, f, c in rows]
    lines += ['', 'The MobileNetV3 encoders are cut before their 576/960-channel stage and have no squeeze-excitation '
              '(it pools over the whole image, so tiles would not match the whole image); the full-resolution '
              'branch (`full_res` channels) carries most of the FLOPs at 1080p.',
              '', f'Patch critic (`create_critic()`, DeOldify style, spectral norm, on a `DetailView` of its input: the image and its 3x3 high-pass x100): {crit:.2f} M parameters.', '']
    Path(out).write_text('\n'.join(lines))


if __name__ == '__main__': main(*sys.argv[1:])
