"""JPEG degradations: the damage the model learns to undo, made by the same libjpeg that real files use; and
downscaling, for super-resolution.

Everything here maps a clean PIL image to a damaged PIL image of the same mode, the same size (JPEG) or `scale`
times smaller (`downscale`, `SRDegradation`), and takes a `numpy.random.Generator` so a seed reproduces a sample
exactly.
"""
import io
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageFilter

__all__ = ['SUBSAMPLING', 'check_quality', 'jpeg_compress', 'shifted_jpeg_compress', 'sample_quality', 'JPEGDegradation',
           'DOWNSCALE_KERNELS', 'downscale', 'SRDegradation']

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
    """Random JPEG damage for training inputs, and the quality it amounts to (the label a quality-aware model
    is conditioned on and its estimator learns).

    Quality is drawn from `quality` (weighted toward low values by `bias`), chroma is subsampled 4:2:0 or
    kept 4:4:4 (`p_444`), and with probability `p_double` the image is first compressed on a shifted grid at
    a second quality (re-saved, cropped or re-shared pictures; the label is then the lower quality). With
    probability `p_clean` the image is left untouched (label 100), so the model learns to leave clean pictures
    alone. Gray samples are made by the data pipeline (both input and target must turn gray): here a gray image
    is simply compressed as a gray JPEG.
    """
    quality: tuple = (5, 95)
    bias: float = 2.0
    p_444: float = 0.25
    p_double: float = 0.2
    p_clean: float = 0.05

    def __call__(self, img: Image.Image, rng: np.random.Generator = None) -> tuple:
        "(damaged image, its quality label)"
        rng = np.random.default_rng() if rng is None else rng
        if rng.random() < self.p_clean: return img, 100
        sub = '4:4:4' if rng.random() < self.p_444 else '4:2:0'
        label = 100
        if rng.random() < self.p_double:
            shift = tuple(int(s) for s in rng.integers(1, 8, size=2))
            label = sample_quality(rng, *self.quality, self.bias)
            img = shifted_jpeg_compress(img, label, shift, sub)
        q = sample_quality(rng, *self.quality, self.bias)
        return jpeg_compress(img, q, sub), min(q, label)


DOWNSCALE_KERNELS = ('bicubic', 'area', 'gaussian')


def downscale(img: Image.Image, scale: int = 2, kernel: str = 'bicubic', sigma: float = 1.0) -> Image.Image:
    """`img` made `scale` times smaller with `kernel`: 'bicubic' (Pillow's, widened to the scale so it also filters,
    as MATLAB's imresize: how Set5/Set14 inputs are made), 'area' (the mean of each `scale` x `scale` block) or
    'gaussian' (a blur of `sigma` px of `img`, then area). Every kernel is symmetric about the centre of the block it
    reduces, so pixel i of the result sits at `scale*i + (scale-1)/2` of `img`: the small grid is the large one
    divided by `scale`, with no shift. The sides of `img` must be multiples of `scale`."""
    w, h = img.size
    if w % scale or h % scale:
        raise ValueError(f'a {w}x{h} image cannot be downscaled x{scale}: crop it to multiples of {scale}')
    if kernel not in DOWNSCALE_KERNELS:
        raise ValueError(f'unknown kernel {kernel!r}; choose from {", ".join(DOWNSCALE_KERNELS)}')
    if kernel == 'gaussian': img = img.filter(ImageFilter.GaussianBlur(sigma))
    return img.resize((w // scale, h // scale), Image.BICUBIC if kernel == 'bicubic' else Image.BOX)


@dataclass
class SRDegradation:
    """Random low-resolution inputs for super-resolution: a clean image downscaled by `scale` with a kernel drawn from
    `kernels` (name -> probability; 'gaussian' with a blur of `sigma` px drawn uniformly), then `jpeg` damage on the
    small image (a `JPEGDegradation`; its `p_clean` share stays uncompressed). Returns the small image and the JPEG
    quality label, as `JPEGDegradation` does, so the data pipeline and quality-aware models take it unchanged."""
    scale: int = 2
    kernels: dict = field(default_factory=lambda: {'bicubic': 0.6, 'area': 0.2, 'gaussian': 0.2})
    sigma: tuple = (0.4, 1.2)
    jpeg: JPEGDegradation = field(default_factory=lambda: JPEGDegradation(p_clean=1 / 3))

    def __call__(self, img: Image.Image, rng: np.random.Generator = None) -> tuple:
        "(small damaged image, its quality label)"
        rng = np.random.default_rng() if rng is None else rng
        names = list(self.kernels)
        p = np.array([self.kernels[k] for k in names], float)
        kernel = names[int(rng.choice(len(names), p=p / p.sum()))]
        small = downscale(img, self.scale, kernel, float(rng.uniform(*self.sigma)))
        return self.jpeg(small, rng)
