"""Pictures of results: side-by-side crops and training curves, saved as PNG (matplotlib, no display needed)."""
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from .files import atomic_path

__all__ = ['save_figure', 'plot_side_by_side', 'plot_validation_curve', 'plot_perception_distortion', 'plot_before_after',
           'most_changed_crop', 'to_display']


def save_figure(fig, path, close=True):
    "Write `fig` as a PNG to `path` atomically, then close it (unless `close=False`) so scripts do not pile up figures."
    try:
        with atomic_path(path) as tmp: fig.savefig(tmp, dpi=100, bbox_inches='tight')
    finally:
        if close: plt.close(fig)
    return Path(path)


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
    return save_figure(fig, path) if path else fig


def plot_validation_curve(log, path=None, input_scores=None, title='generator pretraining', x='minutes', quality=10):
    """Validation scores at q10 against training time (`x`='minutes') or epochs (`x`='epoch'), one panel per
    metric in the `QualityTracker` log (PSNR and ST-LPIPS at q10, the PSNR gain at q95 when logged), with the
    JPEG input's scores (`input_scores`; zero gain) as dashed lines; `quality`: the validation inputs' JPEG quality. A
    super-resolution run's log also has `psnr_clean` (clean inputs), drawn beside, its input being the bicubic upscale. `log` is one run's log, or {label: log} to compare runs on the same axes."""
    runs = log if isinstance(log, dict) else {'generator': log}
    first = next(iter(runs.values()))[0]
    metrics = [k for k in ('psnr', 'psnr_clean', 'stlpips', 'q95_gain') if k in first]
    labels = {'psnr': 'PSNR (dB, higher is better)', 'stlpips': 'ST-LPIPS (lower is better)',
              'q95_gain': 'PSNR gain over the input (dB)', 'psnr_clean': 'PSNR-Y (dB), clean input'}
    at = {'q95_gain': 'q95', 'psnr_clean': 'clean'}
    sr = 'psnr_clean' in first  # a super-resolution run: its input is the bicubic upscale, PSNR on the luma
    input_scores = {**(input_scores or {}), 'q95_gain': 0.}  # a gain is measured against the input
    xs = {'minutes': ('training time (min)', lambda r: r['seconds'] / 60), 'epoch': ('epoch', lambda r: r['epoch'])}
    xlabel, xval = xs[x]
    fig, axs = plt.subplots(1, len(metrics), figsize=(5.5 * len(metrics), 3.8), squeeze=False)
    for ax, k in zip(axs[0], metrics):
        for name, rows in runs.items():
            rows = [r for r in rows if k in r]
            ax.plot([xval(r) for r in rows], [r[k] for r in rows], 'o-', ms=3, label=name)
        if k in input_scores:
            ax.axhline(input_scores[k], color='gray', ls='--', label='bicubic upscale' if sr else 'JPEG input')
        ax.set(xlabel=xlabel, ylabel=labels[k], title=f'{title}: validation at {at.get(k, f"q{quality}")}')
        ax.grid(alpha=.3); ax.legend()
    fig.tight_layout()
    return save_figure(fig, path) if path else fig


def plot_perception_distortion(summary, path=None):
    "Average PSNR (x) against ST-LPIPS (y) of each model (one line, a point per quality): lower right is better."
    fig, ax = plt.subplots(figsize=(7, 4.8))
    for name in dict.fromkeys(r['model'] for r in summary):
        pts = [r for r in summary if r['model'] == name]
        ax.plot([r['psnr'] for r in pts], [r['stlpips'] for r in pts], 'o' + (':' if name == 'jpeg' else '-'),
                label='JPEG input' if name == 'jpeg' else name)
        for r in pts:
            label = 'clean' if r['quality'] == 'clean' else f"q{r['quality']}"  # an SR input left uncompressed
            ax.annotate(label, (r['psnr'], r['stlpips']), xytext=(4, 4), textcoords='offset points',
                        fontsize=8)
    ax.set(xlabel='PSNR (dB), higher is better →', ylabel='ST-LPIPS, lower is better ↓',
           title='Perception-distortion: lower right is better')
    ax.grid(alpha=.3); ax.legend()
    fig.tight_layout()
    return save_figure(fig, path) if path else fig


def to_display(a: np.ndarray) -> np.ndarray:
    "Any restorable array (gray/RGB(A), uint8/uint16/float) as uint8 gray or RGB for imshow; alpha dropped."
    a = a if a.ndim == 2 else (a[..., 0] if a.shape[2] in (1, 2) else a[..., :3])
    if a.dtype == np.uint8: return a
    scale = 255.0 / np.iinfo(a.dtype).max if a.dtype.kind in 'ui' else 255.0
    return np.clip(a.astype(np.float32) * scale, 0, 255).round().astype(np.uint8)


def most_changed_crop(before, after, frac=0.25):
    "(y, x, size) of the square, `frac` of the short side, where `after` differs most from `before`."
    d = np.abs(to_display(before).astype(np.float32) - to_display(after).astype(np.float32))
    d = d.sum(-1) if d.ndim == 3 else d
    size = max(8, int(min(d.shape) * frac))
    ii = np.pad(d.cumsum(0).cumsum(1), ((1, 0), (1, 0)))  # integral image: every window sum in O(1)
    sums = ii[size:, size:] - ii[:-size, size:] - ii[size:, :-size] + ii[:-size, :-size]
    y, x = np.unravel_index(np.argmax(sums), sums.shape)
    return int(y), int(x), size


def plot_before_after(before, after, crop=None, compare=True, figsize=(14, 7), path=None, title=None):
    """DeOldify-style comparison: before | after on top, the same zoomed crop of each below (the area the
    restoration changed most unless `crop`=(y, x, size) is given); `compare=False` shows `after` alone.
    Returns the figure, open (`plt.show()` shows it; in a notebook, `fig = ...` shows it once); `path` also
    saves it there."""
    before, after = to_display(before), to_display(after)
    crop = crop or most_changed_crop(before, after)
    images = [('before', before), ('after', after)] if compare else [('after', after)]
    fig, axs = plt.subplots(2, len(images), figsize=figsize, squeeze=False, height_ratios=[1, 1])
    y, x, s = crop
    for c, (name, img) in enumerate(images):
        kw = dict(cmap='gray' if img.ndim == 2 else None, vmin=0, vmax=255)
        axs[0, c].imshow(img, **kw)
        axs[0, c].add_patch(plt.Rectangle((x, y), s, s, fill=False, edgecolor='yellow', linewidth=1.5))
        axs[0, c].set_title(name)
        axs[1, c].imshow(img[y:y + s, x:x + s], interpolation='nearest', **kw)
        axs[1, c].set_title(f'{name}, zoom')
        for ax in axs[:, c]: ax.set_axis_off()
    if title: fig.suptitle(title)
    fig.tight_layout()
    if path: save_figure(fig, path, close=False)
    return fig
