"""JPEG degradations: the damage the model learns to undo, made by the same libjpeg that real files use.

Everything here maps a clean PIL image to a damaged PIL image of the same size and mode, and takes a
`numpy.random.Generator` so a seed reproduces a sample exactly.
"""
import io
from dataclasses import dataclass

import numpy as np
from PIL import Image

__all__ = ['SUBSAMPLING', 'check_quality', 'jpeg_compress', 'shifted_jpeg_compress', 'sample_quality', 'JPEGDegradation']

# Pillow's names for the chroma subsampling modes it writes
SUBSAMPLING = {'4:4:4': 0, '4:2:2': 1, '4:2:0': 2}


def check_quality(quality) -> int:
    "`quality` when libjpeg accepts it (1-100), else a clear error."
    if not 1 <= quality <= 100: raise ValueError(f'JPEG quality must be in 1..100, got {quality}')
    return quality


def jpeg_compress(img: Image.Image, quality: int, subsampling: str = '4:2:0') -> Image.Image:
    "Encode `img` as a JPEG at `quality` (1-100) in memory and decode it again; gray stays gray."
    check_quality(quality)
    buf = io.BytesIO()
    kw = {} if img.mode == 'L' else {'subsampling': SUBSAMPLING[subsampling]}
    img.save(buf, format='JPEG', quality=int(quality), **kw)
    buf.seek(0)
    with Image.open(buf) as out: return out.copy()  # a plain Image, decoded, not tied to the buffer


def shifted_jpeg_compress(img: Image.Image, quality: int, shift: tuple, subsampling: str = '4:2:0') -> Image.Image:
    "JPEG-compress with the 8x8 grid moved by `shift`=(dy, dx): what a crop or re-encode of an old JPEG does."
    dy, dx = shift
    a = np.asarray(img)
    pad = ((dy, 0), (dx, 0)) + ((0, 0),) * (a.ndim - 2)
    canvas = Image.fromarray(np.pad(a, pad, mode='edge'))  # edge pixels: no black seam to ring against
    w, h = img.size
    return jpeg_compress(canvas, quality, subsampling).crop((dx, dy, dx + w, dy + h))


def sample_quality(rng: np.random.Generator, low: int = 5, high: int = 95, bias: float = 2.0) -> int:
    "A quality in [low, high]; `bias`>1 draws low qualities (the heavy damage) more often, 1 is uniform."
    return int(round(low + (high - low) * rng.random() ** bias))


@dataclass
class JPEGDegradation:
    """Random JPEG damage for training inputs.

    Quality is drawn from `quality` (weighted toward low values by `bias`), chroma is subsampled 4:2:0 or
    kept 4:4:4 (`p_444`), and with probability `p_double` the image is first compressed on a shifted grid at
    a second quality (re-saved, cropped or re-shared pictures). With probability `p_clean` the image is left
    untouched, so the model learns to leave clean pictures alone. Gray samples are made by the data pipeline
    (both input and target must turn gray): here a gray image is simply compressed as a gray JPEG.
    """
    quality: tuple = (5, 95)
    bias: float = 2.0
    p_444: float = 0.25
    p_double: float = 0.2
    p_clean: float = 0.05

    def __call__(self, img: Image.Image, rng: np.random.Generator = None) -> Image.Image:
        rng = np.random.default_rng() if rng is None else rng
        if rng.random() < self.p_clean: return img
        sub = '4:4:4' if rng.random() < self.p_444 else '4:2:0'
        if rng.random() < self.p_double:
            shift = tuple(int(s) for s in rng.integers(1, 8, size=2))
            img = shifted_jpeg_compress(img, sample_quality(rng, *self.quality, self.bias), shift, sub)
        return jpeg_compress(img, sample_quality(rng, *self.quality, self.bias), sub)
