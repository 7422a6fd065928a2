"""Benchmark restorations as the JPEG-artifact papers do, so our numbers sit beside theirs.

Test images are read and compressed with OpenCV's libjpeg exactly as KAIR / FBCNN make their inputs
(`cv2.imread` -> `cv2.imencode` at each quality -> `cv2.imdecode`; gray sets read, compressed and restored
as gray), then scored with PSNR, SSIM, PSNR-B and ST-LPIPS (`metrics`) per image and on average, for the
JPEG input itself (model 'jpeg') and for each model. `blind_check` guards the one-model-for-all-qualities
promise: a model must not damage nearly clean (quality 90+) images.
"""
import csv
import os
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import matplotlib.pyplot as plt
import numpy as np
import torch
from fastprogress.fastprogress import progress_bar

from .data import ImageReadError, find_images
from .files import atomic_path
from .metrics import STLPIPS, psnr, psnr_b, ssim
from .restore import Restorer
from .visualize import _save, most_changed_crop, plot_side_by_side

__all__ = ['METRICS', 'BLIND_QUALITIES', 'Evaluation', 'BlindCheck', 'evaluate', 'blind_check', 'read_reference',
           'opencv_jpeg', 'plot_perception_distortion']

# key -> (table header, format); the keys name the columns of the rows and CSV files
METRICS = {'psnr': ('PSNR', '.2f'), 'ssim': ('SSIM', '.4f'), 'psnr_b': ('PSNR-B', '.2f'),
           'stlpips': ('ST-LPIPS', '.4f')}
BLIND_QUALITIES = tuple(range(5, 100, 5))


def read_reference(path, gray=False) -> np.ndarray:
    "The clean image at `path` as OpenCV reads it for the benchmarks: HxWx3 BGR, or HxW with `gray`."
    img = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE if gray else cv2.IMREAD_COLOR)
    if img is None: raise ImageReadError(f'{path}: not an image OpenCV can read')
    return img


def opencv_jpeg(img: np.ndarray, quality: int) -> np.ndarray:
    "`img` (BGR or gray, as `read_reference` gives) encoded as a JPEG at `quality` with OpenCV and decoded again."
    buf = cv2.imencode('.jpg', img, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])[1]
    return cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)


def _rgb(img): return cv2.cvtColor(img, cv2.COLOR_BGR2RGB) if img.ndim == 3 else img


def _scorers(metrics, device) -> dict:
    unknown = set(metrics) - set(METRICS)
    if unknown: raise ValueError(f'unknown metrics {sorted(unknown)}; choose from {", ".join(METRICS)}')
    fns = {'psnr': psnr, 'ssim': ssim, 'psnr_b': psnr_b}
    return {k: STLPIPS(device) if k == 'stlpips' else fns[k] for k in metrics}


def _restorers(models, device) -> list:
    "Each of `models` (registry names, weights files, nn.Modules or Restorers) as a Restorer, with distinct names."
    if isinstance(models, (str, os.PathLike, Restorer, torch.nn.Module)): models = [models]
    restorers = [m if isinstance(m, Restorer) else Restorer(m, device) for m in models]
    names = ['jpeg'] + [r.name for r in restorers]
    if len(set(names)) < len(names): raise ValueError(f'models need distinct names other than "jpeg", got {names[1:]}')
    return restorers


def _image_files(data) -> list:
    files = list(find_images(data)) if isinstance(data, (str, os.PathLike)) else [Path(f) for f in data]
    if not files: raise ValueError('no images to evaluate')
    return files


def _markdown(rows, columns) -> str:
    "A Markdown table of `rows` (dicts); `columns`: (key, header, format spec), the first left-aligned."
    lines = ['| ' + ' | '.join(h for _, h, _ in columns) + ' |', '|---|' + '---:|' * (len(columns) - 1)]
    lines += ['| ' + ' | '.join(format(r[k], f) for k, _, f in columns) + ' |' for r in rows]
    return '\n'.join(lines)


def _write_csv(rows, path):
    with atomic_path(path) as tmp, open(tmp, 'w', newline='') as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader(); w.writerows(rows)


def _write_text(text, path):
    with atomic_path(path) as tmp: Path(tmp).write_text(text + '\n')


def plot_perception_distortion(summary, path=None):
    "Average PSNR (x) against ST-LPIPS (y) of each model (one line, a point per quality): lower right is better."
    fig, ax = plt.subplots(figsize=(7, 4.8))
    for name in dict.fromkeys(r['model'] for r in summary):
        pts = [r for r in summary if r['model'] == name]
        ax.plot([r['psnr'] for r in pts], [r['stlpips'] for r in pts], 'o' + (':' if name == 'jpeg' else '-'),
                label='JPEG input' if name == 'jpeg' else name)
        for r in pts:
            ax.annotate(f"q{r['quality']}", (r['psnr'], r['stlpips']), xytext=(4, 4), textcoords='offset points',
                        fontsize=8)
    ax.set(xlabel='PSNR (dB), higher is better →', ylabel='ST-LPIPS, lower is better ↓',
           title='Perception-distortion: lower right is better')
    ax.grid(alpha=.3); ax.legend()
    fig.tight_layout()
    return _save(fig, path) if path else fig


@dataclass
class Evaluation:
    """Scores of the JPEG input (model 'jpeg') and each model: `rows` per image, `summary` averaged per
    (quality, model) with the JPEG input first; `crops`: rows of crops (input, each model, reference)."""
    rows: list
    summary: list
    crops: list = field(default_factory=list)
    crop_titles: list = field(default_factory=list)

    def markdown(self) -> str:
        "The summary as a Markdown table: model, quality, then each metric."
        metrics = [(k, h, f) for k, (h, f) in METRICS.items() if k in self.summary[0]]
        return _markdown(self.summary, [('model', 'model', ''), ('quality', 'quality', 'd')] + metrics)

    def plot_perception_distortion(self, path=None): return plot_perception_distortion(self.summary, path)

    def plot_crops(self, path=None):
        "Side-by-side crops (input, each model, reference) where the first model changed the input most."
        return plot_side_by_side(self.crops, self.crop_titles, path)

    def save(self, folder) -> Path:
        "Write per_image.csv, summary.csv, summary.md, perception_distortion.png and crops.png into `folder`."
        folder = Path(folder)
        _write_csv(self.rows, folder / 'per_image.csv')
        _write_csv(self.summary, folder / 'summary.csv')
        _write_text(self.markdown(), folder / 'summary.md')
        if {'psnr', 'stlpips'} <= set(self.summary[0]):
            self.plot_perception_distortion(folder / 'perception_distortion.png')
        if self.crops: self.plot_crops(folder / 'crops.png')
        return folder


def evaluate(models, data, qualities=(10, 20, 30, 40), gray=False, out=None, device=None, progress=True,
             metrics=tuple(METRICS), crops=2) -> Evaluation:
    """Score the JPEG input and each of `models` on the images `data` (a folder or a list of files) compressed
    at each of `qualities`, per image and on average; `gray` reads, compresses and restores them as gray.

    `models`: registry names, .safetensors files, nn.Modules or `Restorer`s (one or a list, may be empty);
    `device` runs models and ST-LPIPS (default: a GPU when there is one); `metrics`: keys of `METRICS`;
    `crops`: how many images the crops figure shows, at the lowest quality. With `out`, everything is written
    there (`Evaluation.save`).
    """
    qualities = [int(q) for q in qualities]
    if not qualities or not all(1 <= q <= 100 for q in qualities):
        raise ValueError(f'JPEG qualities must be in 1..100, got {qualities}')
    restorers, files, scorers = _restorers(models, device), _image_files(data), _scorers(metrics, device)
    names = ['jpeg'] + [r.name for r in restorers]
    score = lambda ref, img: {k: fn(ref, img) for k, fn in scorers.items()}
    rows, crop_rows = [], []
    tasks = [(q, f) for q in qualities for f in files]
    for q, f in progress_bar(tasks) if progress else tasks:  # fastprogress prints a character even hidden
        clean = read_reference(f, gray)
        ref, jpeg = _rgb(clean), _rgb(opencv_jpeg(clean, q))
        restored = [r.restore_array(jpeg) for r in restorers]
        for name, img in zip(names, [jpeg] + restored):
            rows.append(dict(model=name, quality=q, image=f.name, **score(ref, img)))
        if q == min(qualities) and len(crop_rows) < crops:
            images = [jpeg, *restored, ref]
            y, x, s = most_changed_crop(jpeg, images[1])
            crop_rows.append([im[y:y + s, x:x + s] for im in images])
    mean = lambda k, m, q: float(np.mean([r[k] for r in rows if r['model'] == m and r['quality'] == q]))
    summary = [dict(model=m, quality=q, images=len(files), **{k: mean(k, m, q) for k in scorers})
               for q in qualities for m in names]
    result = Evaluation(rows, summary, crop_rows, [f'JPEG q{min(qualities)}', *names[1:], 'reference'])
    if out is not None: result.save(out)
    return result


@dataclass
class BlindCheck:
    """One model over many qualities: `rows` of quality, input and model PSNR and the gain; `failed`: the
    qualities of `high` and above where the model lost more than `tolerance` dB on average."""
    model: str
    rows: list
    failed: list
    tolerance: float = 0.05
    high: int = 90

    @property
    def passed(self) -> bool: return not self.failed

    def markdown(self) -> str:
        return _markdown(self.rows, [('quality', 'quality', 'd'), ('psnr_input', 'input PSNR', '.2f'),
                                     ('psnr_model', f'{self.model} PSNR', '.2f'), ('gain', 'gain (dB)', '+.3f')])

    def verdict(self) -> str:
        if self.passed: return f'{self.model}: passed (loses no more than {self.tolerance} dB at q{self.high}+)'
        return (f'{self.model}: FAILED: makes images worse by more than {self.tolerance} dB at '
                + ', '.join(f'q{q}' for q in self.failed))


def blind_check(model, data, qualities=BLIND_QUALITIES, gray=False, tolerance=0.05, high=90, device=None,
                progress=True) -> BlindCheck:
    """Run one model (anything `evaluate` takes) over `qualities` (5 to 95) and report its average PSNR gain
    over the input at each; it fails where, at quality `high` and above, it loses more than `tolerance` dB."""
    restorer = _restorers(model, device)[0]
    ev = evaluate(restorer, data, qualities, gray, device=device, progress=progress, metrics=('psnr',), crops=0)
    jpeg = {r['quality']: r['psnr'] for r in ev.summary if r['model'] == 'jpeg'}
    rows = [dict(quality=r['quality'], psnr_input=jpeg[r['quality']], psnr_model=r['psnr'],
                 gain=r['psnr'] - jpeg[r['quality']]) for r in ev.summary if r['model'] != 'jpeg']
    failed = [r['quality'] for r in rows if r['quality'] >= high and r['gain'] < -tolerance]
    return BlindCheck(restorer.name, rows, failed, tolerance, high)
