"""Pictures of results: side-by-side crops and training curves, saved as PNG (matplotlib, no display needed)."""
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

__all__ = ['plot_side_by_side', 'plot_validation_curve']


def _save(fig, path):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f'.{path.stem}.tmp{path.suffix}')
    fig.savefig(tmp, dpi=100, bbox_inches='tight')
    plt.close(fig)
    tmp.replace(path)
    return path


def plot_side_by_side(rows, titles, path=None, crop=None, cell=2.6):
    """One row per example, one column per image (e.g. input | output | reference), uint8 HxW(xC) arrays.

    `crop` (y, x, size) zooms every image of a row to the same square, so artifacts are visible.
    """
    fig, axs = plt.subplots(len(rows), len(titles), figsize=(cell * len(titles), cell * len(rows)), squeeze=False)
    for r, images in enumerate(rows):
        for c, img in enumerate(images):
            if crop is not None:
                y, x, s = crop
                img = img[y:y + s, x:x + s]
            axs[r, c].imshow(img, cmap='gray' if np.ndim(img) == 2 else None, vmin=0, vmax=255, interpolation='nearest')
            axs[r, c].set_axis_off()
            if r == 0: axs[r, c].set_title(titles[c])
    fig.tight_layout()
    return _save(fig, path) if path else fig


def plot_validation_curve(log, path=None, input_scores=None, title='generator pretraining'):
    """Validation scores at q10 against training time, one panel per metric in the `QualityTracker` log
    (PSNR, ST-LPIPS), with the JPEG input's scores (`input_scores`) as dashed lines."""
    metrics = [k for k in ('psnr', 'stlpips') if k in log[0]]
    labels = {'psnr': 'PSNR (dB, higher is better)', 'stlpips': 'ST-LPIPS (lower is better)'}
    fig, axs = plt.subplots(1, len(metrics), figsize=(5.5 * len(metrics), 3.8), squeeze=False)
    for ax, k in zip(axs[0], metrics):
        ax.plot([r['seconds'] / 60 for r in log], [r[k] for r in log], 'o-', label='generator')
        if input_scores and k in input_scores: ax.axhline(input_scores[k], color='gray', ls='--', label='JPEG input')
        ax.set(xlabel='training time (min)', ylabel=labels[k], title=f'{title}: validation at q10')
        ax.grid(alpha=.3); ax.legend()
    fig.tight_layout()
    return _save(fig, path) if path else fig
