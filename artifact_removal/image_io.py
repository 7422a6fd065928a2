"""Image files and arrays in and out of restoration, losing nothing users care about.

Reading gives an array the network can take (gray, gray+alpha, RGB or RGBA; 8 or 16 bit) plus what must
survive the round trip (EXIF, ICC profile, the mode to give back); writing is atomic (a temporary file in the
target folder, renamed when complete), so a failure never leaves a partial or clobbered file.
"""
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from .data import ImageReadError, load_image
from .files import atomic_path

__all__ = ['ImageMeta', 'read_image', 'pil_to_array', 'array_to_pil', 'save_image', 'IMAGE_EXTENSIONS']

IMAGE_EXTENSIONS = {ext for ext, fmt in Image.registered_extensions().items() if fmt in Image.SAVE}
_AS_RGB = {'CMYK', 'YCbCr', 'LAB', 'HSV', 'RGBX'}  # colour models the network does not take: converted to RGB


@dataclass
class ImageMeta:
    "What a restored image must carry back: the PIL mode to return, EXIF (orientation already applied), ICC."
    mode: str
    exif: bytes = b''
    icc: bytes = None


def pil_to_array(im: Image.Image):
    "`im` as an HxWxC uint8/uint16 array (C: 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA) and its `ImageMeta`."
    exif = im.getexif()
    meta = ImageMeta(im.mode, exif.tobytes() if len(exif) else b'', im.info.get('icc_profile'))
    if im.mode in ('P', 'PA'): im = im.convert('RGBA' if im.mode == 'PA' or 'transparency' in im.info else 'RGB')
    elif im.mode == '1': im = im.convert('L')
    elif im.mode in ('La', 'RGBa'): im = im.convert(im.mode.upper())
    elif im.mode in _AS_RGB:
        im, meta.icc = im.convert('RGB'), None  # a CMYK/Lab profile would mislabel RGB pixels
    elif im.mode in ('I', 'I;16', 'I;16L', 'I;16B', 'I;16N'):
        a = np.asarray(im)
        if a.min() < 0 or a.max() > 65535: raise ValueError(f'{im.mode} image with values outside 0..65535')
        meta.mode = 'I;16'
        return a.astype(np.uint16)[..., None], meta
    elif im.mode == 'F': return np.clip(np.asarray(im, np.float32), 0, 1)[..., None], meta
    meta.mode = im.mode
    a = np.asarray(im)
    return (a[..., None] if a.ndim == 2 else a), meta


def array_to_pil(a: np.ndarray, meta: ImageMeta) -> Image.Image:
    "The inverse of `pil_to_array`, with EXIF and ICC profile put back in `info` for `save_image`."
    im = Image.fromarray(a[..., 0] if a.shape[-1] == 1 else a)
    if meta.exif: im.info['exif'] = meta.exif
    if meta.icc: im.info['icc_profile'] = meta.icc
    return im


def read_image(path):
    "Decode the still image file `path` into `pil_to_array`'s (array, meta); `ImageReadError` names the file."
    im = load_image(path, mode=None, still=True)
    try: return pil_to_array(im)
    except ValueError as e: raise ImageReadError(f'{path}: {e}') from None


def save_image(im: Image.Image, path, quality=95):
    """Write `im` to `path` atomically in the format its extension names, keeping EXIF and ICC profile.

    JPEG is written at `quality` with 4:4:4 chroma (a restored image should not be damaged again); a JPEG
    cannot hold alpha or 16 bits, so those raise instead of silently losing data.
    """
    path = Path(path)
    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt not in Image.SAVE: raise ValueError(f'{path}: unknown image file extension {path.suffix!r}')
    kwargs = {k: im.info[i] for k, i in (('exif', 'exif'), ('icc_profile', 'icc_profile')) if im.info.get(i)}
    if fmt == 'JPEG':
        if im.mode not in ('L', 'RGB'):
            raise ValueError(f'{path}: JPEG cannot store a {im.mode} image (alpha or 16 bit); save as .png or .tif')
        kwargs.update(quality=quality, subsampling=0)
    with atomic_path(path) as tmp: im.save(tmp, format=fmt, **kwargs)
    return path
