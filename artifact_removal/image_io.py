"""Image files and arrays in and out of restoration, losing nothing users care about.

Reading gives an array the network can take (gray, gray+alpha, RGB or RGBA; 8 or 16 bit) plus what must
survive the round trip (EXIF, ICC profile, the mode to give back); Pillow decodes 16-bit colour to 8 bits, so
OpenCV reads and writes it. Writing is atomic (a temporary file in the target folder, renamed when complete), so a
failure never leaves a partial or clobbered file. A file whose header claims far more pixels than its bytes can
hold (a truncated or crafted file: libjpeg pads a 690-byte JPEG that says 9000x9000 into 81 flat megapixels
without an error) is refused before it is decoded (`MAX_PIXELS_PER_BYTE`).
"""
import os
import stat
import struct
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from .files import atomic_path

__all__ = ['ImageReadError', 'load_image', 'find_images', 'ImageMeta', 'read_image', 'pil_to_array', 'array_to_pil',
           'save_image', 'save_format', 'IMAGE_EXTENSIONS', 'MAX_PIXELS_PER_BYTE', 'ijg_tables', 'quality_from_tables',
           'jpeg_quality', 'write_image', 'array_to_image', 'to_8bit']

IMAGE_EXTENSIONS = {ext for ext, fmt in Image.registered_extensions().items() if fmt in Image.SAVE}
_READABLE = {ext for ext, fmt in Image.registered_extensions().items() if fmt in Image.OPEN}


# A complete Huffman-coded JPEG spends at least one bit per 8x8 block (at most 512 pixels per byte); the densest
# real images measured (flat 12-megapixel PNGs, 1-bit scans) stay under 2500; a flat WebP or JPEG 2000 can go far
# beyond, and is refused with the rest above this many pixels per byte of file. None turns the check off.
MAX_PIXELS_PER_BYTE = 4096
_CHECKED_FROM_PIXELS = 1 << 22  # smaller images are cheap whatever their file size: not checked


class ImageReadError(ValueError):
    "An image file that cannot be used, with the file named in the message."


def _check_plausible_size(path, im):
    "Refuse a header that claims far more pixels than the file's bytes can hold, before decoding it."
    w, h = im.size
    if MAX_PIXELS_PER_BYTE is None or w * h < _CHECKED_FROM_PIXELS: return
    size = path.stat().st_size
    if w * h > MAX_PIXELS_PER_BYTE * size:
        raise ImageReadError(f'{path}: its header says {w}x{h} ({w * h / 1e6:.1f} megapixels) but the file has only '
                             f'{size} bytes, more than {MAX_PIXELS_PER_BYTE} pixels per byte: a truncated or crafted '
                             'file (or a nearly flat image, which gains nothing from restoration). If you trust it, set '
                             'artifact_removal.image_io.MAX_PIXELS_PER_BYTE = None')


def _check_regular_file(path):
    "A FIFO or device named like an image would block or never end: only regular files are read."
    try: mode = path.stat().st_mode
    except FileNotFoundError:
        why = 'a broken link' if path.is_symlink() else 'no such file'
        raise ImageReadError(f'{path}: {why}') from None
    except OSError as e: raise ImageReadError(f'{path}: cannot be read ({e.strerror})') from None
    except ValueError as e: raise ImageReadError(f'{path}: not a usable file name ({e})') from None  # a NUL byte
    if stat.S_ISDIR(mode): raise ImageReadError(f'{path}: is a folder, not an image file')
    if not stat.S_ISREG(mode): raise ImageReadError(f'{path}: not a regular file (a pipe, socket or device)')


def load_image(path, mode='RGB', still=False) -> Image.Image:
    """Fully decode `path` (EXIF orientation applied) in `mode` (None: as stored), or raise `ImageReadError`
    naming the file. `still` refuses animations instead of taking their first frame. A JPEG's quality
    (`jpeg_quality`) is kept in `info['jpeg_quality']`, as decoding and transposing drop its tables."""
    return _decode(path, lambda im: _pil_decode(im, mode), still)


def _pil_decode(im, mode) -> Image.Image:
    quality = jpeg_quality(im)
    im.load()
    im = ImageOps.exif_transpose(im)
    im = im.convert(mode) if mode else im.copy()
    if quality: im.info['jpeg_quality'] = quality
    return im


def _decode(path, decode, still):
    "`decode(im)` of the opened file `path`, checked first, with every way a file can fail as an `ImageReadError`."
    path = Path(path)
    _check_regular_file(path)
    try:
        with Image.open(path) as im:
            _check_plausible_size(path, im)
            if still and getattr(im, 'n_frames', 1) > 1:
                raise ImageReadError(f'{path}: animated image ({im.n_frames} frames); restore it as a video '
                                     'with restore_video, or save the frame you want as a still image')
            return decode(im)
    except ImageReadError: raise
    except FileNotFoundError: raise ImageReadError(f'{path}: no such file') from None
    except IsADirectoryError: raise ImageReadError(f'{path}: is a folder, not an image file') from None
    except Image.DecompressionBombError as e:
        raise ImageReadError(f'{path}: {e} Raise PIL.Image.MAX_IMAGE_PIXELS if you trust this file.') from None
    except OSError as e:
        if e.errno is not None: raise ImageReadError(f'{path}: cannot be read ({e.strerror})') from None  # the disk's
        raise _unreadable(path, e) from None
    except MemoryError:
        raise ImageReadError(f'{path}: too large to decode in the memory available') from None
    except (SyntaxError, ValueError, EOFError, struct.error, IndexError, KeyError, TypeError, ZeroDivisionError,
            OverflowError) as e:  # what Pillow's plugins raise on malformed data
        raise _unreadable(path, e) from None


def _unreadable(path, e) -> ImageReadError:
    try: size = path.stat().st_size
    except OSError: size = None
    detail = str(e) if isinstance(e, OSError) else f'{type(e).__name__}: {e}'
    why = 'empty file (0 bytes)' if size == 0 else f'not a readable image ({detail})'
    return ImageReadError(f'{path}: {why}')


def find_images(path, recurse=True) -> list:
    """The image files under `path` (by extension), sorted; `path` itself when it is a file; a clear error when
    there are none. Each real folder is visited once, so a symlink loop cannot make the walk endless."""
    path = Path(path)
    if not path.exists(): raise FileNotFoundError(f'{path}: no such folder')
    if not path.is_dir(): return [path]
    files, seen = [], set()
    unlisted = lambda e: warnings.warn(f'{e.filename}: cannot list this folder ({e.strerror}); its images are skipped')
    for root, dirs, names in os.walk(path, followlinks=True, onerror=unlisted):
        real = os.path.realpath(root)
        if real in seen:
            dirs.clear()
            continue
        seen.add(real)
        dirs[:] = sorted(d for d in dirs if not d.startswith('.'))
        files += [Path(root) / n for n in names if Path(n).suffix.lower() in _READABLE and not n.startswith('.')]
        if not recurse: break
    if not files: raise ImageReadError(f'{path}: no image files found')
    return sorted(files)

_AS_RGB = {'CMYK', 'YCbCr', 'LAB', 'HSV', 'RGBX'}  # colour models the network does not take: converted to RGB


# the example tables of the JPEG standard (Annex K) that libjpeg scales by its quality setting, natural order
_IJG_BASE = np.array([
    [16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29,
     51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92, 49, 64, 78, 87, 103, 121,
     120, 101, 72, 92, 95, 98, 112, 100, 103, 99],
    [17, 18, 24, 47, 99, 99, 99, 99, 18, 21, 26, 66, 99, 99, 99, 99, 24, 26, 56, 99, 99, 99, 99, 99, 47, 66, 99, 99,
     99, 99, 99, 99] + [99] * 32])


def ijg_tables(quality: int) -> np.ndarray:
    "The luma and chroma quantization tables (2x64, natural order) libjpeg writes at `quality` (baseline)."
    scale = 5000 // quality if quality < 50 else 200 - 2 * quality
    return np.clip((_IJG_BASE * scale + 50) // 100, 1, 255)


_IJG_ALL = np.log(np.stack([ijg_tables(q) for q in range(1, 101)]))


def quality_from_tables(tables: dict) -> int:
    """The libjpeg quality (1-100) whose tables are nearest to a JPEG's `tables` ({0: luma, 1: chroma, ...} as
    Pillow's `quantization` gives them; mean absolute log-ratio). Exact for files libjpeg wrote at a quality
    setting; for other encoders (cameras, Photoshop) the libjpeg quality that quantizes about as coarsely."""
    own = [np.log(np.maximum(np.asarray(tables[k], np.float64), 1)) for k in (0, 1) if k in tables]
    dist = sum(np.abs(_IJG_ALL[:, k] - t).mean(1) for k, t in enumerate(own))
    return int(np.argmin(dist)) + 1


def jpeg_quality(im: Image.Image):
    """The quality a JPEG `im` was saved at (`quality_from_tables`), or None when it is not a JPEG (or no longer
    one: a converted image keeps `info['jpeg_quality']` only when `load_image` put it there)."""
    tables = getattr(im, 'quantization', None)
    if im.format == 'JPEG' and tables: return quality_from_tables(tables)
    return im.info.get('jpeg_quality')


@dataclass
class ImageMeta:
    """What a restored image must carry back: the PIL mode to return, EXIF (orientation already applied), ICC;
    and the JPEG quality the file was saved at (None for other formats), which tells the model how hard to work."""
    mode: str
    exif: bytes = b''
    icc: bytes = None
    quality: int = None


def pil_to_array(im: Image.Image):
    "`im` as an HxWxC uint8/uint16 array (C: 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA) and its `ImageMeta`."
    exif = im.getexif()
    meta = ImageMeta(im.mode, exif.tobytes() if len(exif) else b'', im.info.get('icc_profile'), jpeg_quality(im))
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
    elif im.mode == 'F': return np.asarray(im, np.float32)[..., None], meta  # in [0, 1]: the restorer checks
    meta.mode = im.mode
    a = np.asarray(im)
    return (a[..., None] if a.ndim == 2 else a), meta


def array_to_pil(a: np.ndarray, meta: ImageMeta) -> Image.Image:
    """The inverse of `pil_to_array`, with EXIF and ICC profile put back in `info` for `save_image`. PIL holds 16
    bits for gray only: 16-bit colour is rounded to 8 bits, with a warning (`write_image` keeps all 16)."""
    if _is_deep_colour(a):
        warnings.warn('PIL holds 16-bit colour at 8 bits only: rounded (write_image writes all 16 bits)')
        a = to_8bit(a)
    im = Image.fromarray(a[..., 0] if a.shape[-1] == 1 else a)
    if meta.exif: im.info['exif'] = meta.exif
    if meta.icc: im.info['icc_profile'] = meta.icc
    return im


def array_to_image(a: np.ndarray, meta: ImageMeta):
    "What a restored file comes back as: a PIL image (`array_to_pil`), or `a` itself for 16-bit colour."
    return a if _is_deep_colour(a) else array_to_pil(a, meta)


def to_8bit(a: np.ndarray) -> np.ndarray:
    "A uint16 array rounded to uint8 (x / 257: 65535 is 255)."
    return ((a.astype(np.uint32) + 128) // 257).astype(np.uint8)


def _is_deep_colour(a): return a.dtype == np.uint16 and a.ndim == 3 and a.shape[2] > 1


def read_image(path):
    """Decode the still image file `path` into `pil_to_array`'s (array, meta); `ImageReadError` names the file.
    16-bit colour PNGs and TIFFs, which Pillow decodes to 8 bits, are read with OpenCV (meta.mode 'RGB;16' or
    'RGBA;16'); without OpenCV they are read at 8 bits, with a warning."""
    return _decode(path, lambda im: _read_array(Path(path), im), still=True)


def _read_array(path, im):
    if _deep_mode(im):
        try: return _read_deep(path, im)
        except ImportError: warnings.warn(f'{path}: 16-bit colour read at 8 bits; install opencv-python-headless '
                                          'to keep 16 bits')
    try: return pil_to_array(_pil_decode(im, None))
    except ValueError as e: raise ImageReadError(f'{path}: {e}') from None


_DEEP_MODES = {'RGB': 'RGB;16', 'RGBA': 'RGBA;16'}  # Pillow's 8-bit mode for a 16-bit colour file -> ImageMeta.mode
_BGR = [2, 1, 0, 3]  # OpenCV's channel order <-> RGB(A), either way


def _deep_mode(im):
    "ImageMeta's mode for a 16-bit colour file that Pillow would decode to 8 bits (its decoder's raw mode says 16)."
    raw = im.tile[0][3] if im.mode in _DEEP_MODES and im.tile else ''
    return _DEEP_MODES[im.mode] if ';16' in (raw if isinstance(raw, str) else raw[0]) else None


def _read_deep(path, im):
    "The 16-bit colour file `path` (opened as `im`, for its metadata) decoded by OpenCV, EXIF orientation applied."
    import cv2
    mode = _deep_mode(im)  # before getexif, which may decode the file (at 8 bits) and so drop the decoder's tile
    a = cv2.imdecode(np.fromfile(path, np.uint8), cv2.IMREAD_UNCHANGED)  # UNCHANGED: no orientation applied
    if a is None or a.dtype != np.uint16 or a.shape[2:] != (len(im.mode),):
        raise ImageReadError(f'{path}: OpenCV cannot decode its 16-bit {im.mode}')
    exif = im.getexif()
    a = _ORIENT.get(exif.pop(ORIENTATION, 1), np.asarray)(a[..., _BGR[:a.shape[2]]])
    meta = ImageMeta(mode, exif.tobytes() if len(exif) else b'', im.info.get('icc_profile'))
    return np.ascontiguousarray(a), meta


ORIENTATION = 0x0112  # the EXIF tag; what each of its values takes to turn an HxWxC array upright (exif_transpose's)
_ORIENT = {2: lambda a: a[:, ::-1], 3: lambda a: a[::-1, ::-1], 4: lambda a: a[::-1], 5: lambda a: a.swapaxes(0, 1),
           6: lambda a: np.rot90(a, -1), 7: lambda a: a[::-1, ::-1].swapaxes(0, 1), 8: lambda a: np.rot90(a)}


def save_image(im: Image.Image, path, quality=95):
    """Write `im` to `path` atomically in the format its extension names, keeping EXIF and ICC profile.

    JPEG is written at `quality` with 4:4:4 chroma (a restored image should not be damaged again); a JPEG
    cannot hold alpha or 16 bits, so those raise instead of silently losing data.
    """
    path, fmt = Path(path), save_format(path)
    kwargs = {k: im.info[i] for k, i in (('exif', 'exif'), ('icc_profile', 'icc_profile')) if im.info.get(i)}
    if fmt == 'JPEG':
        if im.mode not in ('L', 'RGB'):
            raise ValueError(f'{path}: JPEG cannot store a {im.mode} image (alpha or 16 bit); save as .png or .tif')
        kwargs.update(quality=quality, subsampling=0)
    return _write_atomic(path, lambda tmp: im.save(tmp, format=fmt, **kwargs))


def _write_atomic(path, write):
    "`write(tmp)` into a temporary file renamed to `path` when complete; errors name `path`, not the temporary file."
    try:
        with atomic_path(path) as tmp: write(tmp)
    except OSError as e:
        if e.errno is None: raise ValueError(f'{path}: {e}') from None  # Pillow: "cannot write mode F as PNG"
        raise OSError(e.errno, f'cannot write {path} ({e.strerror})') from None
    return path


def save_format(path) -> str:
    "The Pillow format that writes `path` (by its extension), or a ValueError naming it; nothing is written."
    path = Path(path)
    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt not in Image.SAVE: raise ValueError(f'{path}: unknown image file extension {path.suffix!r}')
    return fmt


def write_image(a: np.ndarray, meta: ImageMeta, path, quality=95):
    """Write `read_image`'s (array, meta) to `path`: `save_image` for what PIL holds, OpenCV for 16-bit colour
    (PNG with its EXIF and ICC profile; TIFF without them, warning when a profile is dropped). A format of 8 bits per
    channel (JPEG, WebP, ...) gets a 16-bit image rounded to 8 bits, with a warning, not an error after the work."""
    fmt = save_format(path)
    if a.dtype == np.uint16 and fmt not in ('PNG', 'TIFF'):
        warnings.warn(f'{path}: {fmt} holds 8 bits per channel; the 16-bit image is rounded to 8 bits (write .png or '
                      '.tif to keep 16)')
        a = to_8bit(a)
    if not _is_deep_colour(a): return save_image(array_to_pil(a, meta), path, quality)
    import cv2
    params = [cv2.IMWRITE_PNG_COMPRESSION, 6] if fmt == 'PNG' else []  # Pillow's level (OpenCV's default is 1)
    data = cv2.imencode('.' + fmt.lower(), np.ascontiguousarray(a[..., _BGR[:a.shape[2]]]), params)[1].tobytes()
    if fmt == 'PNG': data = _with_png_metadata(data, meta)
    elif meta.icc: warnings.warn(f'{path}: a 16-bit colour TIFF is written without its ICC profile (.png keeps it)')
    return _write_atomic(Path(path), lambda tmp: Path(tmp).write_bytes(data))


def _with_png_metadata(png: bytes, meta: ImageMeta) -> bytes:
    "`png` with `meta`'s ICC profile and EXIF as chunks right after its header (OpenCV writes neither)."
    chunk = lambda kind, data: struct.pack('>I', len(data)) + kind + data + struct.pack('>I', zlib.crc32(kind + data))
    extra = chunk(b'iCCP', b'icc\0\0' + zlib.compress(meta.icc)) if meta.icc else b''
    if meta.exif: extra += chunk(b'eXIf', meta.exif.removeprefix(b'Exif\0\0'))
    return png[:33] + extra + png[33:]  # 33: the signature and the IHDR chunk
