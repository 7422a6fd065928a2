"""Benchmark restorations as the JPEG-artifact papers do, so our numbers sit beside theirs.

Test images are read and compressed with OpenCV's libjpeg exactly as KAIR / FBCNN make their inputs
(`cv2.imread` -> `cv2.imencode` at each quality -> `cv2.imdecode`; gray sets read, compressed and restored
as gray), then scored with PSNR, SSIM, PSNR-B and ST-LPIPS (`metrics`) per image and on average, for the
JPEG input itself (model 'jpeg') and for each model. `blind_check` guards the one-model-for-all-qualities
promise: a model must not damage nearly clean (quality 90+) images.

With `scale` (super-resolution), the papers' SR protocol: the reference cropped to a multiple of the scale, the input
made from it by Pillow's bicubic downscale (then JPEG-compressed at each quality, or left 'clean'), PSNR and SSIM on
the BT.601 luma with `scale` px of border cropped (Set5 x2 bicubic: 33.67 dB), beside rows for the bicubic upscale
and for "restore, then bicubic" with artifact-removal models.
"""
from functools import partial
import csv
import os
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch
from fastprogress.fastprogress import progress_bar

from PIL import Image

from .degrade import downscale, jpeg_compress
from .files import atomic_path
from .image_io import ImageReadError, find_images, load_image
from .metrics import STLPIPS, chroma_grid, colour_shift, luma_grid, psnr, psnr_b, psnr_y, ssim, ssim_y, to_uint8
from .restore import Restorer
from .visualize import most_changed_crop, plot_perception_distortion, plot_side_by_side

__all__ = ['METRICS', 'SR_METRICS', 'SR_QUALITIES', 'BLIND_QUALITIES', 'Evaluation', 'BlindCheck', 'evaluate', 'blind_check',
           'read_reference', 'opencv_jpeg', 'opencv_jpeg_rgb', 'quality_readings', 'upscale', 'sr_input', 'centre_crops', 'ValidationScorer']

# key -> (table header, format); the keys name the columns of the rows and CSV files
METRICS = {'psnr': ('PSNR', '.2f'), 'ssim': ('SSIM', '.4f'), 'psnr_b': ('PSNR-B', '.2f'),
           'stlpips': ('ST-LPIPS', '.4f'), 'luma_grid': ('luma grid', '.3f'), 'chroma_grid': ('chroma grid', '.3f')}
BLIND_QUALITIES = tuple(range(5, 100, 5))
SR_METRICS = ('psnr', 'ssim', 'stlpips', 'luma_grid', 'chroma_grid')  # PSNR-B is a JPEG measure of same-size images
SR_QUALITIES = ('clean', 30, 10)  # 'clean': the low-resolution input is not compressed


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


def opencv_jpeg_rgb(img: np.ndarray, quality: int) -> np.ndarray:
    "`opencv_jpeg` for an RGB (or gray) uint8 array (any strides, e.g. a flipped view), as arrays reach a `Restorer`."
    img = np.ascontiguousarray(img)
    return _rgb(opencv_jpeg(cv2.cvtColor(img, cv2.COLOR_RGB2BGR) if img.ndim == 3 else img, quality))


def quality_readings(estimate, images, qualities=(10, 20, 30, 50, 75, 90, 95), clean=True) -> list:
    """How well `estimate` (a uint8 RGB array -> its JPEG quality; `Restorer.estimate_quality`) reads `images` (uint8
    RGB arrays or PIL images) encoded with OpenCV at each of `qualities`: a row per quality with the mean reading and
    the mean and worst absolute error; `clean` adds the images as they are, whose right reading is 100."""
    arrays = [np.asarray(img) for img in images]
    rows = []
    for q in list(qualities) + (['clean'] if clean else []):
        truth = 100 if q == 'clean' else q
        est = np.array([float(estimate(a if q == 'clean' else opencv_jpeg_rgb(a, q))) for a in arrays])
        rows.append({'quality': q, 'mean estimate': est.mean(), 'mean abs error': np.abs(est - truth).mean(),
                     'worst': np.abs(est - truth).max()})
    return rows


def upscale(a: np.ndarray, scale: int) -> np.ndarray:
    "Pillow's bicubic upscale by `scale` of a uint8 HxW or HxWx3 array: the 'bicubic' rows of the SR benchmarks."
    return np.asarray(Image.fromarray(a).resize((a.shape[1] * scale, a.shape[0] * scale), Image.BICUBIC))


def sr_input(path, scale, quality='clean', gray=False) -> tuple:
    """(reference, low-resolution input) of the SR protocol as uint8 RGB (or gray) arrays: the image cropped to a
    multiple of `scale`, downscaled by Pillow's bicubic, and JPEG-compressed with OpenCV at `quality` unless 'clean'."""
    img = load_image(path, 'L' if gray else 'RGB')
    w, h = img.size
    ref = img.crop((0, 0, w - w % scale, h - h % scale))
    lr = np.asarray(downscale(ref, scale, 'bicubic'))
    if quality != 'clean': lr = opencv_jpeg_rgb(lr, quality)
    return np.asarray(ref), lr


def _check_qualities(qualities) -> list:
    "JPEG qualities (1-100) as ints, and 'clean' (no compression) as it is."
    qualities = [q if q == 'clean' else int(q) for q in qualities]
    if not qualities or not all(q == 'clean' or 1 <= q <= 100 for q in qualities):
        raise ValueError(f"JPEG qualities must be in 1..100 (or 'clean'), got {qualities}")
    return qualities


def _label(q) -> str: return q if q == 'clean' else f'JPEG q{q}'


def _scorers(metrics, device, gray=False, scale=1) -> dict:
    """metric -> fn(reference, image); the grid measures score the image alone, and gray images have no chroma grid.
    With `scale` > 1 (SR), PSNR and SSIM are on the luma without a `scale`-px border (ST-LPIPS without it too), and
    the grids are the input's JPEG grid, `scale` times larger."""
    unknown = set(metrics) - set(METRICS)
    if unknown: raise ValueError(f'unknown metrics {sorted(unknown)}; choose from {", ".join(METRICS)}')
    fns = {'psnr': psnr, 'ssim': ssim, 'psnr_b': psnr_b, 'luma_grid': lambda ref, img: luma_grid(img, scale),
           'chroma_grid': lambda ref, img: chroma_grid(img, scale)}
    if scale > 1:
        b = scale
        fns.update(psnr=partial(psnr_y, border=b), ssim=partial(ssim_y, border=b))
    fns['stlpips'] = STLPIPS(device) if 'stlpips' in metrics else None
    if scale > 1 and 'stlpips' in metrics:
        lp = fns['stlpips']
        fns['stlpips'] = lambda ref, img: lp(ref[b:-b, b:-b], img[b:-b, b:-b])
    return {k: fns[k] for k in metrics if not (gray and k == 'chroma_grid')}


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


@dataclass
class Evaluation:
    """Scores of the JPEG input (model 'jpeg') and each model: `rows` per image, `summary` averaged per
    (quality, model) with the JPEG input first; `crops`: rows of crops (input, each model, reference)."""
    rows: list
    summary: list
    crops: list = field(default_factory=list)
    crop_titles: list = field(default_factory=list)
    scale: int = 1

    def markdown(self) -> str:
        "The summary as a Markdown table: model, quality (the input's), then each metric."
        luma = {'psnr': 'PSNR-Y', 'ssim': 'SSIM-Y'} if self.scale > 1 else {}
        metrics = [(k, luma.get(k, h), f) for k, (h, f) in METRICS.items() if k in self.summary[0]]
        return _markdown(self.summary, [('model', 'model', ''), ('quality', 'input' if self.scale > 1 else 'quality', '')]
                         + metrics)

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


def evaluate(models, data, qualities=None, gray=False, out=None, device=None, progress=True, metrics=None, crops=2,
             scale=1, restore_first=('fidelity',)) -> Evaluation:
    """Score the JPEG input and each of `models` on the images `data` (a folder or a list of files) compressed
    at each of `qualities` (default 10 20 30 40), per image and on average; `gray` reads, compresses and restores
    them as gray.

    `models`: registry names, .safetensors files, nn.Modules or `Restorer`s (one or a list, may be empty);
    `device` runs models and ST-LPIPS (default: a GPU when there is one); `metrics`: keys of `METRICS` (default all);
    `crops`: how many images the crops figure shows, at the lowest quality. With `out`, everything is written
    there (`Evaluation.save`).

    `scale` > 1 scores super-resolution models of that scale by the SR protocol (`sr_input`; qualities default
    `SR_QUALITIES`, metrics `SR_METRICS`), beside the bicubic upscale ('bicubic') and, for each artifact-removal model
    of `restore_first`, its restoration of the input upscaled ('NAME + bicubic').
    """
    if scale > 1: return _evaluate_sr(models, data, SR_QUALITIES if qualities is None else qualities, gray, out, device,
                                      progress, metrics or SR_METRICS, crops, scale, restore_first)
    qualities = _check_qualities((10, 20, 30, 40) if qualities is None else qualities)
    metrics = metrics or tuple(METRICS)
    if 'clean' in qualities: raise ValueError("'clean' is an SR input (evaluate(..., scale=2)); without a scale the "
                                              'input is the reference itself')
    restorers, files, scorers = _restorers(models, device), _image_files(data), _scorers(metrics, device, gray)
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


def _lowest(qualities): return min((q for q in qualities if q != 'clean'), default='clean')


def _evaluate_sr(models, data, qualities, gray, out, device, progress, metrics, crops, scale, restore_first):
    "`evaluate` with a scale: see there."
    qualities = _check_qualities(qualities)
    as_list = lambda m: [m] if isinstance(m, (str, os.PathLike, Restorer, torch.nn.Module)) else list(m or [])
    sr = [m if isinstance(m, Restorer) else Restorer(m, device) for m in as_list(models)]
    first = [m if isinstance(m, Restorer) else Restorer(m, device) for m in as_list(restore_first)]
    for r in sr:
        if r.scale != scale: raise ValueError(f'{r.name} makes x{r.scale} outputs; this evaluation is x{scale}')
    for r in first:
        if r.scale != 1: raise ValueError(f'{r.name} is a x{r.scale} model; restore_first takes artifact-removal models')
    names = ['bicubic'] + [f'{r.name} + bicubic' for r in first] + [r.name for r in sr]
    if len(set(names)) < len(names): raise ValueError(f'models need distinct names, got {names[1:]}')
    files, scorers = _image_files(data), _scorers(metrics, device, gray, scale)
    score = lambda ref, img: {k: fn(ref, img) for k, fn in scorers.items()}
    rows, crop_rows, low = [], [], _lowest(qualities)
    tasks = [(q, f) for q in qualities for f in files]
    for q, f in progress_bar(tasks) if progress else tasks:
        ref, lr = sr_input(f, scale, q, gray)
        outs = ([upscale(lr, scale)] + [upscale(r.restore_array(lr), scale) for r in first]
                + [r.restore_array(lr) for r in sr])
        for name, img in zip(names, outs):
            rows.append(dict(model=name, quality=q, image=f.name, **score(ref, img)))
        if q == low and len(crop_rows) < crops:
            nearest = np.repeat(np.repeat(lr, scale, 0), scale, 1)  # the input's own pixels, at the output's size
            images = [nearest, *outs, ref]
            y, x, s = most_changed_crop(outs[0], outs[-1])
            crop_rows.append([im[y:y + s, x:x + s] for im in images])
    mean = lambda k, m, q: float(np.mean([r[k] for r in rows if r['model'] == m and r['quality'] == q]))
    summary = [dict(model=m, quality=q, images=len(files), **{k: mean(k, m, q) for k in scorers})
               for q in qualities for m in names]
    result = Evaluation(rows, summary, crop_rows, [f'input ({_label(low)})', *names, 'reference'], scale)
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


def centre_crops(folder, n_images, size) -> list:
    "Centre crops of at most `size` px (a multiple of 16, so they start on the JPEG grid) of the first images in `folder`."
    crops = []
    for f in find_images(folder)[:n_images]:
        img = load_image(f)
        w, h = img.size
        c = min(size, w, h) // 16 * 16
        crops.append(img.crop(((w - c) // 2, (h - c) // 2, (w - c) // 2 + c, (h - c) // 2 + c)))
    return crops


def _compressed(crops, quality, scale=1) -> list:
    """(quality, clean, input) of each crop: the input JPEG-compressed at `quality`; with `scale`, the crop downscaled
    by `scale` (bicubic) first, and compressed unless `quality` is 'clean' (then labelled 100, as training does)."""
    small = [downscale(img, scale) if scale > 1 else img for img in crops]
    if quality == 'clean': return [(100, np.array(img), np.array(lr)) for img, lr in zip(crops, small)]
    return [(quality, np.array(img), np.array(jpeg_compress(lr, quality))) for img, lr in zip(crops, small)]


class ValidationScorer:
    """Scores a generator (an nn.Module on [0, 1] tensors) on fixed validation crops, for the stage-1 logs, the
    switch point and the release gate, with the measures people see:

    - at quality `low` on `n_images` centre crops of `folder`: PSNR, ST-LPIPS and the luma and chroma grid;
    - at quality `high` on the same crops: the PSNR gain over the input (`q95_gain`), which must not go below 0;
    - on `smooth` (a folder of gradients and flat art, where restorers do harm) at `smooth_qualities`: the PSNR
      gain and the largest mean colour shift of a channel, in levels (`smooth_q95_gain`, `smooth_shift`...);
    - for a quality-aware model, its estimator's mean error in quality units (`quality_error`), and its PSNR when told
      each crop's quality instead of estimating it (`psnr_told_quality`).

    A quality-aware model estimates each crop's quality itself, as it does on arrays in use.

    With `scale` > 1 (a super-resolution generator) each input is its crop downscaled by `scale` (bicubic), then
    compressed; the input's scores are those of its bicubic upscale (what the gains compare against), PSNR is on the luma
    without a `scale`-px border as the SR benchmarks score, the grids are `scale` times larger, and the clean
    (uncompressed) input is scored too: `psnr_clean` and its gain `clean_gain`."""
    def __init__(self, folder, n_images=100, crop=256, low=10, high=95, smooth=None, smooth_crop=512,
                 smooth_qualities=(95, 75), stlpips=True, device='cpu', scale=1):
        crops = centre_crops(folder, n_images, crop)
        self.scale = scale
        self.low, self.high = _compressed(crops, low, scale), _compressed(crops, high, scale) if high else []
        self.clean = _compressed(crops, 'clean', scale) if scale > 1 else []
        self.low_q, self.high_q, self.device = low, high, device
        smooth_crops = centre_crops(smooth, 1000, smooth_crop) if smooth else []
        self.smooth = {q: _compressed(smooth_crops, q, scale) for q in smooth_qualities} if smooth else {}
        self.stlpips = STLPIPS(device) if stlpips else None
        self.psnr = psnr if scale == 1 else partial(psnr_y, border=scale)
        self.inputs = self._psnrs(None)

    @torch.no_grad()
    def _outputs(self, gen, pairs, told=False) -> list:
        """`gen`'s outputs on the pairs' inputs (gen=None: the inputs themselves, or their bicubic upscale); `told`: given
        each pair's quality, not estimating it."""
        if gen is None: return [comp if self.scale == 1 else upscale(comp, self.scale) for _, _, comp in pairs]
        gen = gen.eval()
        dev = next(gen.parameters()).device
        x = lambda comp: torch.from_numpy(comp).permute(2, 0, 1)[None].float().to(dev) / 255
        run = lambda q, comp: to_uint8((gen(x(comp), quality=q) if told else gen(x(comp)))[0])
        return [run(q, comp) for q, _, comp in pairs]

    def _psnrs(self, gen) -> dict:
        "Mean PSNR on the high-quality and smooth pairs (what the gains compare), and the outputs of the smooth pairs."
        sets = {f'q{self.high_q}': self.high, 'clean': self.clean, **{f'smooth_q{q}': p for q, p in self.smooth.items()}}
        return {k: float(np.mean([self.psnr(c, o) for (_, c, _), o in zip(p, self._outputs(gen, p))]))
                for k, p in sets.items() if p}

    @torch.no_grad()
    def __call__(self, gen) -> dict:
        "`gen`'s scores (gen=None: the compressed input's)."
        outs = self._outputs(gen, self.low)
        row = {'psnr': float(np.mean([self.psnr(c, o) for (_, c, _), o in zip(self.low, outs)]))}
        if self.stlpips: row['stlpips'] = float(np.mean([self.stlpips(c, o) for (_, c, _), o in zip(self.low, outs)]))
        row['luma_grid'] = float(np.mean([luma_grid(o, self.scale) for o in outs]))
        row['chroma_grid'] = float(np.mean([chroma_grid(o, self.scale) for o in outs]))
        if gen is None: return {**row, **self.inputs, **({'psnr_clean': self.inputs['clean']} if self.clean else {})}
        for k, v in self._psnrs(gen).items():
            row[f'{k}_gain'] = v - self.inputs[k]
            if k == 'clean': row['psnr_clean'] = v
        if self.smooth:
            shifts = [colour_shift(c, o) for p in self.smooth.values() for (_, c, _), o in zip(p, self._outputs(gen, p))]
            row['smooth_shift'] = float(np.abs(np.mean(shifts, 0)).max())
        if getattr(gen, 'quality_aware', False):
            told = self._outputs(gen, self.low, told=True)
            row['psnr_told_quality'] = float(np.mean([self.psnr(c, o) for (_, c, _), o in zip(self.low, told)]))
            dev = next(gen.parameters()).device
            est = lambda comp: float(gen.estimate_quality(torch.from_numpy(comp).permute(2, 0, 1)[None].float().to(dev) / 255)[0])
            row['quality_error'] = float(np.mean([abs(est(comp) - q) for q, _, comp in self.low + self.high]))
        return row
