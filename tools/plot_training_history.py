"""Draw a model's validation at q10 against its cumulative training hours, over all its sessions (training-log
entries), to see whether its curve has flattened over all of its training, not only within one run:

    python tools/plot_training_history.py fidelity docs/images/history_fidelity.png
"""
import argparse
import json
from pathlib import Path

import matplotlib.pyplot as plt

from artifact_removal.registry import bundled_dir
from artifact_removal.visualize import save_figure


def plot_training_history(sessions, path=None, title='cumulative training'):
    """Validation at q10 against cumulative training hours over a model's sessions (training-log entries, oldest
    first): whether its curve has flattened over all of its training, not only within one run. Each validation set
    (`config['valid_images']` crops of `valid/`) gets its own line, as scores on different sets do not compare;
    validations of sessions on a GPU are drawn as squares (their minutes count as minutes)."""
    if isinstance(sessions, (str, Path, dict)) or not all(isinstance(s, dict) and 'stage_seconds' in s for s in sessions):
        raise TypeError("plot_training_history: expected training-log entries, a list of dicts with 'stage_seconds', "
                        "e.g. json.load(open('models/training_log.json'))['fidelity']")
    lines, gpu, start = {}, [], 0.
    for s in sessions:
        on_gpu = 'GPU' in s.get('hardware', '').replace('no GPU', '')
        crops = (s.get('config') or {}).get('valid_images', 40)
        for r in (r for r in s.get('validation') or [] if 'psnr' in r):
            point = ((start + r['seconds']) / 3600, r['psnr'], r['stlpips'])
            lines.setdefault(f'valid/, {crops} crops', []).append(point)
            if on_gpu: gpu.append(point)
        start += sum(s['stage_seconds'].values())
    if not lines: raise ValueError('plot_training_history: no validation scores (psnr, stlpips) in these sessions')
    fig, axs = plt.subplots(1, 2, figsize=(11, 3.8))
    for i, (ax, label) in enumerate(zip(axs, ('PSNR (dB, higher is better)', 'ST-LPIPS (lower is better)')), 1):
        for name, points in lines.items(): ax.plot([p[0] for p in points], [p[i] for p in points], 'o-', ms=3, label=name)
        if gpu: ax.plot([p[0] for p in gpu], [p[i] for p in gpu], 's', mfc='none', color='k', label='on a GPU')
        ax.set(xlabel='cumulative training (hours)', ylabel=label, title=f'{title}: validation at q10')
        ax.grid(alpha=.3); ax.legend()
    fig.tight_layout()
    return save_figure(fig, path) if path else fig


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('model', help='a model name in models/training_log.json')
    p.add_argument('out', help='the PNG to write')
    p.add_argument('--log', default=str(bundled_dir() / 'training_log.json'))
    a = p.parse_args()
    print(plot_training_history(json.loads(Path(a.log).read_text())[a.model], a.out, title=a.model))


if __name__ == '__main__': main()
