"""Restore images with a trained generator: load once (`Restorer`), run on anything users hold.

`restore_image` takes a path, a folder, a list of paths, a PIL image, a numpy array or a torch tensor and
gives back the same kind (a PIL image for a path). Gray stays gray, alpha is carried through untouched,
16-bit stays 16-bit, EXIF orientation is applied and EXIF/ICC are kept when saving. Large images run in
overlapping tiles sized from the memory available (`tiling.run_tiled`), so any size fits in bounded memory.

One `Restorer` serves many threads at once (nothing about a call is kept on it, and the generator's forward keeps
no state on its modules). What cannot be restored raises, naming the input (a file's path, an array's or tensor's
dtype and shape): `ImageReadError` for files that cannot be read, `ValueError` for images or settings that cannot
be restored (wrong shape or dtype, NaN or inf, floats outside [0, 1]), `TypeError` for what is not an image at all,
`OSError` when writing fails.
"""
import numbers
import os
import threading
import warnings
from functools import lru_cache
from importlib.util import find_spec
from pathlib import Path

import numpy as np
import psutil
import torch
import torch.nn.functional as F
from fastprogress.fastprogress import progress_bar
from PIL import Image

from .image_io import (ImageMeta, array_to_image, array_to_pil, find_images, pil_to_array, read_image, save_format,
                       save_image, write_image)
from .precision import autocast, choose_precision
from .registry import sha256sum
from .tiling import arrays_to_batch, batch_to_arrays, bicubic_upscale, choose_tile_size, run_tiled
from .weights import default_model_for, load_model, weights_path

__all__ = ['Restorer', 'restore_image', 'get_restorer', 'default_device', 'get_transformed_image',
           'plot_transformed_image', 'output_path', 'images_to_restore', 'failure_message', 'RESTORED_SUFFIX']

# activation memory per pixel for models that do not say (`GENERATOR_CONFIGS` gives each config's own)
BYTES_PER_PIXEL = {'torch': 1000, 'onnx': 1500}
# float images are in [0, 1]; values up to this far outside (resampling overshoot) are clipped, further ones are
# another scale (0-255, or [-1, 1]) that would come back silently wrong, and are refused
FLOAT_SLACK = 0.1


def default_device() -> torch.device:
    if torch.cuda.is_available(): return torch.device('cuda')
    if getattr(torch.backends, 'mps', None) and torch.backends.mps.is_available(): return torch.device('mps')
    return torch.device('cpu')


def _memory_budgets(device) -> tuple:
    """Bytes of activations (whole image, one tile). GPU: half / a quarter of free memory. CPU: a quarter of the
    available RAM, 4 GiB at most, for both: one tile runs at a time, and each tile also computes `context` px on
    every side, so smaller tiles cost more (a 50 MP photo: 399 s in 256-px tiles within 1.7 GiB, 180 s in 1216-px
    tiles within 4.0 GiB; docs/benchmarks/speed.md). Available, not free: on a machine up for a while the page
    cache holds most of the RAM, and sizing from the free pages gave 32-px tiles that ran a LIVE1 image about 30
    times slower."""
    if device.type == 'cuda':
        free = torch.cuda.mem_get_info(device)[0]
        return int(free * 0.5), int(free * 0.25)
    budget = int(min(4 << 30, psutil.virtual_memory().available * 0.25))
    return budget, budget


class Restorer:
    """A generator loaded once and run on images of any kind, size and bit depth.

    `model`: a registry name ('default': `registry.default_model()`), a .safetensors weights file or an nn.Module.
    `tile`: None sizes tiles from the memory available, 0 runs whole images, N uses N-pixel tiles;
    `context`: pixels each tile sees beyond its core on every side (192 keeps tiled within 1/255 of whole).
    `precision`: 'fp32', or 'bf16'/'fp16' autocast, checked for non-finite values and redone in fp32 if any appear;
    'auto' (`precision.choose_precision`): fp16 on CUDA, bf16 on a CPU with native bf16 (AVX512-BF16, AMX), fp32
    elsewhere. `batch_size`: same-size images (video frames) run together when untiled (fewer when the memory
    budget holds fewer).
    `backend`: 'auto' runs fp32 on the CPU with onnxruntime when it is installed (faster there than PyTorch, even
    in bf16), else PyTorch (bf16 needs it); 'torch' or 'onnx' (fp32 only) force one. `threads`: CPU threads of
    onnxruntime's session, and of PyTorch (process-wide), for a restorer that shares its machine (one per worker
    process); default: every core.

    A quality-aware model is told each image's JPEG quality: the `quality` a call passes (1-100), else the one a
    JPEG file's quantization tables give, else its estimate from the pixels (`estimate_quality`).

    A super-resolution model (`scale` > 1, e.g. 'sr2') returns images `scale` times larger; its `strength` blends from
    the bicubic upscale (0) to its output (1), and alpha is upscaled bicubically. `scale` picks the registry's model
    of that scale when `model` is 'default' (`weights.default_model_for`), and is checked against the model's otherwise.
    """
    def __init__(self, model='default', device=None, tile=None, context=192, batch_size=4, precision='auto',
                 compile=False, backend='auto', threads=None, scale=None):
        if threads: torch.set_num_threads(threads)
        self.device = torch.device(device) if device else default_device()
        if isinstance(model, str) and model == 'default' and scale not in (None, 1): model = default_model_for(scale)
        path = weights_path(model)
        self.name = type(model).__name__ if path is None else (str(model) if model != 'default' else path.stem)
        key = sha256sum(path) if path is not None else None
        self.model = load_model(model if path is None else path, self.device).to(memory_format=torch.channels_last)
        self.quality_aware = getattr(self.model, 'quality_aware', False)
        self.scale = getattr(self.model, 'scale', 1)
        if scale is not None and scale != self.scale:
            raise ValueError(f'{self.name} makes x{self.scale} images, not x{scale}; for x{scale} pass an x{scale} model')
        if compile: self.model = torch.compile(self.model, dynamic=True)
        self.tile, self.context, self.batch_size = tile, context, batch_size
        self.backend, self.precision = _choose_backend(backend, self.device, precision)
        self._run = self.model
        if self.backend == 'onnx':
            from .export import OnnxGenerator
            self._run = OnnxGenerator(self.model.float().to(memory_format=torch.contiguous_format), key, threads)

    def __repr__(self):
        return (f'Restorer({self.name!r}, device={self.device}, backend={self.backend}, tile={self.tile}, '
                f'precision={self.precision})')

    @torch.inference_mode()
    def _forward(self, x, strength=1.0, quality=None):
        """[0,1] BxCxHxW in, restored BxCxHxW on the CPU out; `strength` blends from the input (0) to the output (1);
        `quality`: one per image, for a quality-aware model. bf16/fp16 output with non-finite values is redone in
        fp32."""
        # batches come channels_last (`arrays_to_batch`), as PyTorch's convolutions want; onnxruntime takes NCHW
        x = x.to(self.device, memory_format=torch.channels_last if self.backend == 'torch' else torch.contiguous_format)
        kw = {'quality': torch.as_tensor(quality, dtype=torch.float32)} if self.quality_aware else {}
        with autocast(self.precision, self.device): y = self._run(x, **kw)
        if self.precision != 'fp32' and not torch.isfinite(y).all():
            warnings.warn(f'{self.precision} gave non-finite values for this image; it was restored in fp32')
            y = self._run(x, **kw)
        if strength != 1:
            base = _bicubic(x, self.scale)
            y = base + strength * (y - base)
        return y.float().cpu()

    @torch.inference_mode()
    def estimate_quality(self, a: np.ndarray) -> float:
        """The JPEG quality (1-100, 100: not compressed) the model's estimator reads from the pixels of the HxW(xC)
        array `a` (uint8, uint16 or float; alpha ignored), from a crop of at most 256 px near its centre."""
        if not self.quality_aware: raise ValueError(f'{self.name} is not quality-aware: it has no quality estimator')
        a = a[..., None] if a.ndim == 2 else a
        color = a[..., :a.shape[2] - 1] if a.shape[2] in (2, 4) else a
        return float(self.model.estimate_quality(arrays_to_batch([color]).to(self.device))[0])

    def _budgets(self) -> tuple:
        "(bytes for whole images, bytes for one tile, activation bytes per input pixel) on this restorer."
        whole, per_tile = (b * (2 if self.precision == 'fp16' else 1) for b in _memory_budgets(self.device))
        return whole, per_tile, getattr(self.model, 'bytes_per_pixel', BYTES_PER_PIXEL)[self.backend]

    def tile_size(self, h, w, tile=None):
        "The tile for an h x w image: `tile` or the restorer's setting, or 0 when it fits the memory budget."
        tile = self.tile if tile is None else tile
        if tile is not None: return tile
        whole, per_tile, bpp = self._budgets()
        if (h + 32) * (w + 32) * bpp <= whole: return 0
        return choose_tile_size(bpp, per_tile, self.context)

    def batch_limit(self, h, w, tile=None) -> int:
        """How many untiled h x w images run together: `batch_size`, or fewer when sized automatically and the
        whole-image budget holds fewer (four 1080p frames at once took 8 GiB and ran 5 times slower per pixel)."""
        if (self.tile if tile is None else tile) is not None: return self.batch_size
        whole, _, bpp = self._budgets()
        return max(1, min(self.batch_size, int(whole // ((h + 32) * (w + 32) * bpp))))

    def restore_array(self, a: np.ndarray, strength=1.0, tile=None, quality=None) -> np.ndarray:
        """Restore an HxW or HxWxC array (C: 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA; uint8, uint16 or float in
        [0, 1], any byte order); alpha is passed through untouched. Returns the same shape and dtype. `quality`: the
        JPEG quality it was compressed at, for a quality-aware model (default: estimated from the pixels)."""
        return self.restore_arrays([a], strength, tile, None if quality is None else [quality])[0]

    def restore_arrays(self, arrays, strength=1.0, tile=None, qualities=None) -> list:
        """Restore several arrays, running same-size untiled ones `batch_size` at a time (e.g. video frames);
        `qualities`: one per array (None: each estimated)."""
        return self._restore_arrays([_prepare_array(a) for a in arrays], strength, tile, qualities)

    def _restore_arrays(self, prepared, strength, tile, qualities) -> list:
        "`restore_arrays` on `_prepare_array`'s (array, input) pairs: each result in its input's dtype."
        _check_options(strength, tile)
        if qualities is not None:
            if len(qualities) != len(prepared):
                raise ValueError(f'{len(qualities)} qualities for {len(prepared)} images: give one per image')
            for q in qualities:
                if q is not None: _check_quality(q)
        arrays = [a for a, _ in prepared]
        restored = self._restore_checked(arrays, strength, tile, qualities)
        return [_as_input(r, a) for r, (_, a) in zip(restored, prepared)]

    def _restore_checked(self, arrays, strength, tile, qualities) -> list:
        if self.quality_aware:
            qualities = [q if q is not None else self.estimate_quality(a)
                         for a, q in zip(arrays, qualities or [None] * len(arrays))]
        else: qualities = [None] * len(arrays)
        out, i = [], 0
        while i < len(arrays):
            a = arrays[i]
            t = self.tile_size(*a.shape[:2], tile)
            n = 1
            if t == 0:
                limit = self.batch_limit(*a.shape[:2], tile)
                while (n < limit and i + n < len(arrays) and arrays[i + n].shape == a.shape
                       and arrays[i + n].dtype == a.dtype): n += 1
            out += self._restore_group(arrays[i:i + n], strength, t, qualities[i:i + n])
            i += n
        return out

    def _restore_group(self, arrays, strength, tile, qualities):
        squeeze = arrays[0].ndim == 2
        arrays = [a[..., None] if squeeze else a for a in arrays]
        c = arrays[0].shape[2]
        color = [a[..., :c - 1] if c in (2, 4) else a for a in arrays]
        fn = lambda x: self._forward(x, strength, qualities[:len(x)] if self.quality_aware else None)
        if len(arrays) == 1: restored = [run_tiled(fn, color[0], tile=tile, context=self.context, scale=self.scale)]
        else: restored = batch_to_arrays(fn(arrays_to_batch(color)), color[0].dtype)
        res = [np.concatenate([r, bicubic_upscale(a[..., c - 1:], self.scale)], 2) if c in (2, 4) else r
               for r, a in zip(restored, arrays)]
        return [r[..., 0] if squeeze else r for r in res]

    def restore_pil(self, im: Image.Image, strength=1.0, tile=None, quality=None) -> Image.Image:
        """Restore a PIL image: same mode back (palette and CMYK come back as RGB/RGBA), EXIF and ICC kept in `info`.
        An image opened from a JPEG file tells its own quality."""
        what = _describe(im)
        if not isinstance(im, Image.Image): raise TypeError(f'expected a PIL image, got {what}')
        try: a, meta = pil_to_array(im)
        except ValueError as e: raise ValueError(f'{what}: {e}') from None
        return array_to_pil(self._restore_arrays([_prepare_array(a, what)], strength, tile,
                                                 [quality or meta.quality])[0], meta)

    def restore_tensor(self, t: torch.Tensor, strength=1.0, tile=None, quality=None) -> torch.Tensor:
        """Restore a CxHxW or BxCxHxW tensor (float in [0, 1]: float16, bfloat16, float32 or float64; uint8 or
        uint16), returned with the same dtype and device. An empty batch comes back empty."""
        what = _describe(t)
        if not isinstance(t, torch.Tensor): raise TypeError(f'expected a torch tensor, got {what}')
        if t.ndim not in (3, 4) or not 1 <= t.shape[-3] <= 4:
            raise ValueError(f'{what}: expected CxHxW or BxCxHxW with C in 1..4 (gray, gray+alpha, RGB, RGBA)')
        if t.dtype not in _TENSOR_DTYPES:
            raise ValueError(f'{what}: expected float values in [0, 1], uint8 or uint16; convert it first, e.g. '
                             't.float() / 255 for 0-255 integers')
        batch = (t if t.ndim == 4 else t[None]).detach()
        if min(batch.shape[-2:]) < 1: raise ValueError(f'{what}: the image is empty')
        if len(batch) == 0: return t.detach().clone()
        if batch.dtype in (torch.float16, torch.bfloat16): batch = batch.float()  # numpy has no bfloat16
        arrays = [x.permute(1, 2, 0).cpu().numpy() for x in batch]
        names = [what] if len(arrays) == 1 else [f'image {i} of {what}' for i in range(len(arrays))]
        qualities = None if quality is None else [quality] * len(arrays)
        res = self._restore_arrays([_prepare_array(a, n) for a, n in zip(arrays, names)], strength, tile, qualities)
        res = torch.stack([torch.from_numpy(r).permute(2, 0, 1) for r in res]).to(t.dtype)
        return (res if t.ndim == 4 else res[0]).to(t.device)

    def restore_file(self, path, out=None, strength=1.0, tile=None, overwrite=False, jpeg_quality=95, quality=None):
        """Restore the image file `path`; write it to `out` when given (atomically, never over `path` unless
        `overwrite`; a .jpg at `jpeg_quality`). `quality` overrides the quality a JPEG's tables give (a
        double-compressed image is often worse than its last save says). Returns a PIL image, or a uint16 array for
        16-bit colour, which PIL cannot hold (`image_io.write_image`)."""
        _check_options(strength, tile, quality)
        if out is not None:
            save_format(out)
            _check_not_input(path, out, overwrite)
        a, meta = read_image(path)
        r = self._restore_arrays([_prepare_array(a, str(path))], strength, tile, [quality or meta.quality])[0]
        if out is not None: write_image(r, meta, out, jpeg_quality)
        return array_to_image(r, meta)

    def quality_of(self, src) -> float:
        """The JPEG quality this restorer would tell its model for `src` (a file, PIL image or array): a JPEG's
        own, else the estimate from its pixels."""
        if isinstance(src, np.ndarray): return self.estimate_quality(src)
        a, meta = read_image(src) if isinstance(src, (str, os.PathLike)) else pil_to_array(src)
        return meta.quality or self.estimate_quality(a)

    def __call__(self, src, strength=1.0, out=None, out_dir=None, ext='png', tile=None, overwrite=False,
                 on_error='raise', progress=True, quality=None, include_restored=False):
        """Restore `src` (see `restore_image`)."""
        _check_options(strength, tile, quality)
        if isinstance(src, (Image.Image, np.ndarray, torch.Tensor)):
            if out_dir is not None: raise ValueError('out_dir is for files and folders; pass out= to save one image')
            if out is not None:
                save_format(out)
                _check_saveable(src)
            restore = {Image.Image: self.restore_pil, np.ndarray: self.restore_array, torch.Tensor: self.restore_tensor}
            result = next(fn for t, fn in restore.items() if isinstance(src, t))(src, strength, tile, quality)
            if out is not None: save_image(_to_pil(result), out)
            return result
        if isinstance(src, (str, os.PathLike)):
            if not os.fspath(src): raise ValueError("src is an empty path ('.' is the current folder)")
            if not Path(src).is_dir():
                dst = out or (output_path(src, out_dir, None, ext) if out_dir else None)
                return self.restore_file(src, dst, strength, tile, overwrite, quality=quality)
        elif not (isinstance(src, (list, tuple)) and all(isinstance(f, (str, os.PathLike)) for f in src)):
            raise TypeError('expected an image file, a folder, a list of files, a PIL image, a numpy array or a torch '
                            f'tensor, got {_describe(src)}')
        if out is not None:
            raise ValueError(f'out={out} saves one image; the restorations of a folder or list of files go under out_dir=')
        root = Path(src) if isinstance(src, (str, os.PathLike)) else None
        files = images_to_restore(root, out_dir, include_restored) if root else [Path(f) for f in src]
        results, errors = self.restore_files(files, out_dir, root, ext, strength, tile, overwrite, on_error, progress,
                                             quality)
        for _, e in errors: warnings.warn(e)
        return results

    def restore_files(self, files, out_dir=None, root=None, ext='png', strength=1.0, tile=None, overwrite=False,
                      on_error='raise', progress=True, quality=None) -> tuple:
        """Restore each of `files`, written under `out_dir` (`output_path`) or returned as PIL images when it is None.
        Returns (results, errors): `errors` lists (file, message) of the files that failed when `on_error='skip'`
        (unreadable images, a full or read-only disk), which the run goes on past."""
        _check_options(strength, tile, quality)  # not once per file
        if on_error not in ('raise', 'skip'): raise ValueError(f"on_error is 'raise' or 'skip', not {on_error!r}")
        if out_dir is not None and ext not in ('auto', None): save_format(output_path('x', out_dir, None, ext))
        results, errors = [], []
        for f in progress_bar(files) if progress and len(files) > 1 else files:
            dst = output_path(f, out_dir, root, ext) if out_dir is not None else None
            try: im = self.restore_file(f, dst, strength, tile, overwrite, quality=quality)
            except (ValueError, OSError) as e:
                if on_error == 'raise': raise
                errors.append((Path(f), failure_message(f, e)))
                continue
            except KeyboardInterrupt as e:
                where = f' into {out_dir}' if out_dir is not None else ''
                raise type(e)(f'stopped at {f}: {len(results)} of {len(files)} images restored{where}, '
                              f'{len(errors)} failed') from None
            results.append(dst if dst is not None else im)
        return results, errors

    def get_transformed_image(self, path, strength=1.0, tile=None) -> Image.Image:
        "The restored image of `path` (DeOldify's name), nothing written."
        return self.restore_file(path, None, strength, tile)

    def plot_transformed_image(self, path, strength=1.0, compare=True, crop=None, figsize=(14, 7), save=None):
        """Before/after of `path` with a zoomed crop of the area the restoration changed most (or `crop`,
        (y, x, size)); `compare=False` draws the result alone; `save` also writes it as a PNG. Returns the figure,
        open (`visualize.plot_before_after`)."""
        from .visualize import plot_before_after
        before = read_image(path)[0]
        after = self.restore_array(before, strength)
        before = bicubic_upscale(before, self.scale)  # shown at the size of the result
        return plot_before_after(before, after, crop=crop, compare=compare, figsize=figsize, path=save,
                                 title=f'{Path(path).name}: {self.name}, strength {strength:g}')


def _bicubic(x: torch.Tensor, scale) -> torch.Tensor:
    "The BxCxHxW tensor `x` upscaled by `scale` as a super-resolution model's residual starts from (bicubic)."
    return x if scale == 1 else F.interpolate(x, scale_factor=scale, mode='bicubic', align_corners=False)


def _choose_backend(backend, device, precision) -> tuple:
    """(backend, precision) for `device`: 'auto' runs onnxruntime in fp32 on the CPU when it is installed (faster than
    PyTorch even in bf16), else PyTorch in `choose_precision`'s precision."""
    if backend not in ('auto', 'torch', 'onnx'): raise ValueError(f"backend must be 'auto', 'torch' or 'onnx', not {backend!r}")
    if backend == 'onnx':
        if device.type != 'cpu': raise ValueError('the onnx backend runs on the CPU only')
        if precision not in ('auto', 'fp32'):
            raise ValueError(f"the onnx backend runs in fp32 only, not {precision!r}; use backend='torch' for it")
        return backend, 'fp32'
    if backend == 'auto' and device.type == 'cpu' and precision in ('auto', 'fp32') and find_spec('onnxruntime'):
        return 'onnx', 'fp32'  # network alone, 1 thread, 256 px: 0.081 CPU s, PyTorch bf16 0.123, fp32 0.148
    return 'torch', choose_precision(precision, device)


def _is_number(x): return isinstance(x, numbers.Real) and not isinstance(x, bool)


def _check_quality(q):
    if not (_is_number(q) and 1 <= q <= 100):
        raise ValueError(f'quality is the JPEG quality the image was saved at, 1..100; got {q!r}')
    return q


def _check_options(strength, tile, quality=None):
    "Settings a call takes, refused before any work (a NaN strength would return NaN images without a word)."
    if not (_is_number(strength) and 0 <= strength <= 1):
        raise ValueError(f'strength is in [0, 1] (0 keeps the input, 1 is the full restoration); got {strength!r}')
    if not (tile is None or (isinstance(tile, numbers.Integral) and not isinstance(tile, bool) and tile >= 0)):
        raise ValueError(f'tile is None (sized from available memory), 0 (whole images) or a tile size in pixels; got {tile!r}')
    if quality is not None: _check_quality(quality)


_TENSOR_DTYPES = (torch.uint8, torch.uint16, torch.float16, torch.bfloat16, torch.float32, torch.float64)


def _describe(x) -> str:
    "How an error names an in-memory input: its kind, dtype and shape."
    if x is None: return 'None'
    if isinstance(x, torch.Tensor): what = f'{str(x.dtype).removeprefix("torch.")} tensor of shape {tuple(x.shape)}'
    elif isinstance(x, np.ndarray): what = f'{x.dtype} array of shape {x.shape}'
    elif isinstance(x, Image.Image): what = f'{x.mode} PIL image of {x.width}x{x.height}'
    elif isinstance(x, (list, tuple)) and x: what = f'{type(x).__name__} of {type(x[0]).__name__}'
    else: what = type(x).__name__
    return f"{'an' if what[0] in 'aeioAEIO' else 'a'} {what}"


def _prepare_array(a, what=None) -> tuple:
    """(`a` as the pipeline takes it: uint8, uint16 or float32 in [0, 1], native byte order; `a` itself), or an
    error naming it (`what`, default its dtype and shape): wrong shape, dtype, NaN or inf, floats on another scale."""
    what = what or _describe(a)
    if not isinstance(a, np.ndarray): raise TypeError(f'expected a numpy array, got {what}')
    a = np.asarray(a)  # subclasses (np.matrix, masked arrays) as plain arrays
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (1, 2, 3, 4)):
        raise ValueError(f'{what}: expected HxW or HxWxC with C in 1..4 (gray, gray+alpha, RGB, RGBA)')
    if min(a.shape[:2]) < 1: raise ValueError(f'{what}: the image is empty')
    kind, size = a.dtype.kind, a.dtype.itemsize
    if kind == 'u' and size in (1, 2): return a.astype(a.dtype.newbyteorder('='), copy=False), a
    if kind != 'f':
        raise ValueError(f'{what}: expected uint8, uint16 or float values in [0, 1]; convert it first, e.g. '
                         'a.astype(np.uint8) for 0-255 integers')
    finite = np.isfinite(a)
    if not finite.all():
        raise ValueError(f'{what}: {a.size - np.count_nonzero(finite)} values are NaN or infinite; replace them '
                         'first (np.nan_to_num)')
    lo, hi = float(a.min()), float(a.max())
    if lo < -FLOAT_SLACK or hi > 1 + FLOAT_SLACK:
        raise ValueError(f'{what}: values run from {lo:g} to {hi:g}, but float images are in [0, 1]; divide '
                         '0-255 values by 255, map [-1, 1] values with (a + 1) / 2')
    return np.clip(a, 0, 1, dtype=np.float32), a


def _as_input(r, a):
    "A restored array `r` in the dtype of the input `a`, with `a`'s own alpha, bit for bit (floats clipped to [0, 1])."
    if r.dtype == a.dtype: return r
    r = r.astype(a.dtype)
    if r.ndim == 3 and r.shape[2] in (2, 4) and r.shape[:2] == a.shape[:2]:  # not upscaled
        r[..., -1] = np.clip(a[..., -1], 0, 1) if a.dtype.kind == 'f' else a[..., -1]
    return r


RESTORED_SUFFIX = '_restored'  # what `output_path` adds to a restoration written beside its input


def output_path(src, out_dir=None, root=None, ext='png') -> Path:
    """Where the restoration of the file `src` goes: under `out_dir`, keeping the layout below `root`, else beside
    `src` as NAME_restored; with extension `ext` ('auto': the input's)."""
    src = Path(src)
    suffix = src.suffix if ext in ('auto', None) else '.' + ext.lstrip('.')
    if out_dir is None: return src.with_name(f'{src.stem}{RESTORED_SUFFIX}{suffix}')
    return Path(out_dir) / (src.relative_to(root) if root else Path(src.name)).with_suffix(suffix)


def images_to_restore(folder, out_dir=None, include_restored=False) -> list:
    """The image files of `folder`, less what this tool wrote there (NAME_restored files, and an `out_dir` inside
    the folder), so a second run does not restore restorations; `include_restored` keeps them."""
    files = find_images(folder)
    if include_restored: return files
    skip = Path(out_dir).resolve() if out_dir is not None else None
    if skip == Path(folder).resolve(): skip = None  # restoring in place: the outputs replace the inputs
    return [f for f in files if not f.stem.endswith(RESTORED_SUFFIX)
            and not (skip is not None and skip in f.resolve().parents)]


def failure_message(path, e) -> str:
    "What went wrong with the file `path`, naming it once (image errors already name their file)."
    text = (f'{e.filename}: {e.strerror}' if e.filename else e.strerror) if isinstance(e, OSError) and e.strerror \
        else str(e)
    return text if str(path) in text else f'{path}: {text}'


def _check_saveable(src):
    "Refuse, before the work, an in-memory image that out= could not write whole."
    if isinstance(src, torch.Tensor):
        if src.ndim != 3: raise ValueError(f'out= saves one image; {_describe(src)} is not one CxHxW image')
        sixteen, channels = src.dtype == torch.uint16, src.shape[0]
    elif isinstance(src, np.ndarray):
        sixteen, channels = src.dtype.kind == 'u' and src.dtype.itemsize == 2, src.shape[-1] if src.ndim == 3 else 1
    else: return
    if sixteen and channels > 1:
        raise ValueError(f'out= cannot write {_describe(src)} without losing bits (Pillow writes 16 bits for gray '
                         'only); save the returned array yourself, e.g. with cv2.imwrite to a .png')


def _to_pil(result) -> Image.Image:
    "A restored PIL image, array (HxW(xC)) or tensor (CxHxW) as a PIL image for saving: floats as 8 bits."
    if isinstance(result, Image.Image): return result
    if isinstance(result, torch.Tensor): result = result.detach().cpu().permute(1, 2, 0).float().numpy() \
        if result.dtype.is_floating_point else result.detach().cpu().permute(1, 2, 0).numpy()
    a = result[..., None] if result.ndim == 2 else result
    if a.dtype.kind == 'f': a = (np.clip(a, 0, 1) * 255).round().astype(np.uint8)
    return array_to_pil(a.astype(a.dtype.newbyteorder('='), copy=False), ImageMeta('RGB'))


def _check_not_input(src, dst, overwrite):
    if not overwrite and Path(dst).exists() and Path(dst).resolve() == Path(src).resolve():
        raise ValueError(f'{dst}: refusing to overwrite the input image (overwrite=True, or --overwrite on the '
                         'command line, replaces it)')


_restorers_lock = threading.Lock()


def get_restorer(model='default', device=None, scale=None) -> Restorer:
    """A `Restorer` cached per (model, device, scale), so repeated `restore_image` calls load the weights once; threads
    asking at the same time share one (one restorer serves many threads)."""
    with _restorers_lock: return _cached_restorer(model, device, scale)


@lru_cache(maxsize=4)
def _cached_restorer(model, device, scale=None): return Restorer(model, device, scale=scale)


def restore_image(src, model='default', strength=1.0, out=None, out_dir=None, ext='png', tile=None, device=None,
                  overwrite=False, on_error='raise', progress=True, quality=None, include_restored=False, scale=None):
    """Remove compression artifacts from `src` with `model` (the bundled default needs nothing set up).

    src: an image path (returns a PIL image; written to `out` if given), a folder or list of paths (written
    under `out_dir` as `ext` files, 'auto' keeping each extension, returning their paths; without `out_dir`
    the PIL images), a PIL image, an HxW(xC) numpy array (uint8, uint16 or float in [0, 1]) or a CxHxW/BxCxHxW
    tensor, each returned as the same kind. `strength` blends from the input (0) to the full restoration (1).
    Inputs are never overwritten unless `overwrite`; `on_error='skip'` goes on past files that fail (each is
    named in a warning). A folder's NAME_restored files and an `out_dir` inside it are skipped unless
    `include_restored`. An in-memory image is saved to `out` when it is given.
    `quality` (1-100) tells a quality-aware model how hard to work; by default a JPEG file's own quality is
    used and anything else is estimated from its pixels (set it for a double-compressed image).
    `scale=2` also makes the image twice as large (super-resolution): the 'default' model is then the registry's x2
    model ('sr2'), and a named model must be an x2 one; `strength` 0 is then the bicubic upscale.
    """
    return get_restorer(model, device, scale)(src, strength, out, out_dir, ext, tile, overwrite, on_error, progress,
                                              quality, include_restored)


def get_transformed_image(path, model='default', strength=1.0) -> Image.Image:
    "The restored image of the file `path` (DeOldify's name), nothing written."
    return get_restorer(model).get_transformed_image(path, strength)


def plot_transformed_image(path, model='default', strength=1.0, compare=True, **kwargs):
    "`Restorer.plot_transformed_image` with a cached restorer of `model`: the before/after figure of `path`."
    return get_restorer(model).plot_transformed_image(path, strength, compare, **kwargs)
