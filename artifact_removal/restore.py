"""Restore images with a trained generator: load once (`Restorer`), run on anything users hold.

`restore_image` takes a path, a folder, a list of paths, a PIL image, a numpy array or a torch tensor and
gives back the same kind (a PIL image for a path). Gray stays gray, alpha is carried through untouched,
16-bit stays 16-bit, EXIF orientation is applied and EXIF/ICC are kept when saving. Large images run in
overlapping tiles sized from the memory available (`tiling.run_tiled`), so any size fits in bounded memory.
"""
import os
import warnings
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from fastprogress.fastprogress import progress_bar
from PIL import Image

from .data import find_images
from .image_io import array_to_pil, pil_to_array, read_image, save_image
from .registry import default_model, model_path, sha256sum
from .tiling import arrays_to_batch, batch_to_arrays, choose_tile_size, run_tiled
from .weights import load_generator

__all__ = ['Restorer', 'restore_image', 'get_restorer', 'default_device', 'get_transformed_image',
           'plot_transformed_image']

# peak fp32 inference memory of mobilenetv3_small_100 per input pixel (measured: PyTorch 820-1050 B,
# onnxruntime with its memory arena about 1450 B)
BYTES_PER_PIXEL = {'torch': 1000, 'onnx': 1500}


def default_device() -> torch.device:
    if torch.cuda.is_available(): return torch.device('cuda')
    if getattr(torch.backends, 'mps', None) and torch.backends.mps.is_available(): return torch.device('mps')
    return torch.device('cpu')


def _memory_budgets(device) -> tuple:
    """Bytes of activations (whole image, one tile). GPU: half / a quarter of free memory. CPU: an image runs
    whole up to a quarter of free RAM (4 GiB at most: 1080p frames run whole), larger ones in tiles of at most
    600 MiB, which keeps a 50-megapixel photo under 2 GiB in all (docs/speed.md)."""
    if device.type == 'cuda':
        free = torch.cuda.mem_get_info(device)[0]
        return int(free * 0.5), int(free * 0.25)
    try: free = os.sysconf('SC_AVPHYS_PAGES') * os.sysconf('SC_PAGE_SIZE')
    except (ValueError, OSError, AttributeError): free = 4 << 30
    return int(min(4 << 30, free * 0.25)), int(min(600 << 20, free * 0.125))


class Restorer:
    """A generator loaded once and run on images of any kind, size and bit depth.

    `model`: a registry name ('default': `registry.default_model()`), a .safetensors weights file or an nn.Module.
    `tile`: None sizes tiles from the memory available, 0 runs whole images, N uses N-pixel tiles;
    `context`: pixels each tile sees beyond its core on every side (192 keeps tiled within 1/255 of whole).
    `half`: fp16 autocast (default: on CUDA), checked for NaNs and redone in fp32 if any appear.
    `batch_size`: same-size images (video frames) run together when untiled.
    `backend`: 'auto' runs on the CPU with onnxruntime when it is installed (1.8x faster there), else PyTorch;
    'torch' or 'onnx' force one.
    """
    def __init__(self, model='default', device=None, tile=None, context=192, batch_size=4, half=None,
                 compile=False, backend='auto'):
        self.device = torch.device(device) if device else default_device()
        key = None
        if isinstance(model, torch.nn.Module): self.model, self.name = model.eval(), type(model).__name__
        else:
            name = default_model() if model == 'default' else str(model)
            path = Path(name) if name.endswith('.safetensors') or Path(name).is_file() else model_path(name)
            self.model, self.name, key = load_generator(path), name, sha256sum(path)
        self.model = self.model.to(self.device, memory_format=torch.channels_last)
        if compile: self.model = torch.compile(self.model, dynamic=True)
        self.tile, self.context, self.batch_size = tile, context, batch_size
        self.half = self.device.type == 'cuda' if half is None else half
        self.backend = _choose_backend(backend, self.device)
        self._run = self.model
        if self.backend == 'onnx':
            from .export import OnnxGenerator
            self._run = OnnxGenerator(self.model.float().to(memory_format=torch.contiguous_format), key)

    def __repr__(self):
        return (f'Restorer({self.name!r}, device={self.device}, backend={self.backend}, tile={self.tile}, '
                f'half={self.half})')

    @torch.inference_mode()
    def _forward(self, x, strength=1.0):
        "[0,1] BxCxHxW in, restored BxCxHxW on the CPU out; `strength` blends from the input (0) to the output (1)."
        # channels_last helps PyTorch's convolutions; onnxruntime takes contiguous NCHW, so no copy for it
        x = x.to(self.device, memory_format=torch.channels_last if self.backend == 'torch' else torch.contiguous_format)
        if self.half:
            with torch.autocast(self.device.type, dtype=torch.float16): y = self.model(x).float()
            if not torch.isfinite(y).all():
                warnings.warn('fp16 gave non-finite values; running in fp32 from now on')
                self.half = False
        if not self.half: y = self._run(x)
        return (x + strength * (y - x) if strength != 1 else y).float().cpu()

    def tile_size(self, h, w, tile=None):
        "The tile for an h x w image: `tile` or the restorer's setting, or 0 when it fits the memory budget."
        tile = self.tile if tile is None else tile
        if tile is not None: return tile
        whole, per_tile = (b * (2 if self.half else 1) for b in _memory_budgets(self.device))
        bpp = BYTES_PER_PIXEL[self.backend]
        if (h + 32) * (w + 32) * bpp <= whole: return 0
        return choose_tile_size(bpp, per_tile, self.context)

    def restore_array(self, a: np.ndarray, strength=1.0, tile=None) -> np.ndarray:
        """Restore an HxW or HxWxC array (C: 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA; uint8, uint16 or float in
        [0, 1]); alpha is passed through untouched. Returns the same shape and dtype."""
        return self.restore_arrays([a], strength, tile)[0]

    def restore_arrays(self, arrays, strength=1.0, tile=None) -> list:
        "Restore several arrays, running same-size untiled ones `batch_size` at a time (e.g. video frames)."
        out, i = [], 0
        while i < len(arrays):
            a = arrays[i]
            _check_array(a)
            t = self.tile_size(*a.shape[:2], tile)
            n = 1
            if t == 0:
                while (n < self.batch_size and i + n < len(arrays) and arrays[i + n].shape == a.shape
                       and arrays[i + n].dtype == a.dtype): n += 1
            out += self._restore_group(arrays[i:i + n], strength, t)
            i += n
        return out

    def _restore_group(self, arrays, strength, tile):
        squeeze = arrays[0].ndim == 2
        arrays = [a[..., None] if squeeze else a for a in arrays]
        c = arrays[0].shape[2]
        color = [a[..., :c - 1] if c in (2, 4) else a for a in arrays]
        fn = lambda x: self._forward(x, strength)
        if len(arrays) == 1: restored = [run_tiled(fn, color[0], tile=tile, context=self.context)]
        else: restored = batch_to_arrays(fn(arrays_to_batch(color)), color[0].dtype)
        res = [np.concatenate([r, a[..., c - 1:]], 2) if c in (2, 4) else r for r, a in zip(restored, arrays)]
        return [r[..., 0] if squeeze else r for r in res]

    def restore_pil(self, im: Image.Image, strength=1.0, tile=None) -> Image.Image:
        "Restore a PIL image: same mode back (palette and CMYK come back as RGB/RGBA), EXIF and ICC kept in `info`."
        a, meta = pil_to_array(im)
        return array_to_pil(self.restore_array(a, strength, tile), meta)

    def restore_tensor(self, t: torch.Tensor, strength=1.0, tile=None) -> torch.Tensor:
        "Restore a CxHxW or BxCxHxW tensor (float in [0, 1] or uint8), returned with the same dtype and device."
        batch = t if t.ndim == 4 else t[None]
        if batch.ndim != 4: raise ValueError(f'expected a CxHxW or BxCxHxW tensor, got shape {tuple(t.shape)}')
        arrays = [x.permute(1, 2, 0).detach().cpu().numpy() for x in batch]
        res = torch.stack([torch.from_numpy(r).permute(2, 0, 1) for r in self.restore_arrays(arrays, strength, tile)])
        return (res if t.ndim == 4 else res[0]).to(t.device)

    def restore_file(self, path, out=None, strength=1.0, tile=None, overwrite=False, quality=95):
        "Restore the image file `path`; write it to `out` when given (atomically, never over `path` unless `overwrite`)."
        if out is not None: _check_not_input(path, out, overwrite)
        a, meta = read_image(path)
        im = array_to_pil(self.restore_array(a, strength, tile), meta)
        if out is not None: save_image(im, out, quality)
        return im

    def __call__(self, src, strength=1.0, out=None, out_dir=None, ext='png', tile=None, overwrite=False,
                 on_error='raise', progress=True):
        """Restore `src` (see `restore_image`)."""
        if isinstance(src, Image.Image): return self.restore_pil(src, strength, tile)
        if isinstance(src, np.ndarray): return self.restore_array(src, strength, tile)
        if isinstance(src, torch.Tensor): return self.restore_tensor(src, strength, tile)
        if isinstance(src, (str, os.PathLike)) and not Path(src).is_dir():
            return self.restore_file(src, out or _out_path(Path(src), None, out_dir, ext), strength, tile, overwrite)
        root = Path(src) if isinstance(src, (str, os.PathLike)) else None
        files = list(find_images(root)) if root else [Path(f) for f in src]
        results, errors = [], []
        for f in progress_bar(files, display=progress and len(files) > 1):
            dst = _out_path(f, root, out_dir, ext) if out_dir else None
            try: im = self.restore_file(f, dst, strength, tile, overwrite)
            except ValueError as e:
                if on_error == 'raise': raise
                errors.append(str(e)); warnings.warn(str(e)); continue
            results.append(dst if dst else im)
        self.errors = errors
        return results

    def get_transformed_image(self, path, strength=1.0, tile=None) -> Image.Image:
        "The restored image of `path` (DeOldify's name), nothing written."
        return self.restore_file(path, None, strength, tile)

    def plot_transformed_image(self, path, strength=1.0, compare=True, crop=None, figsize=(14, 7), save=None):
        """Before/after of `path` with a zoomed crop of the area the restoration changed most (or `crop`,
        (y, x, size)); `compare=False` draws the result alone. Returns the figure."""
        from .visualize import plot_before_after
        before = read_image(path)[0]
        after = self.restore_array(before, strength)
        return plot_before_after(before, after, crop=crop, compare=compare, figsize=figsize, path=save,
                                 title=f'{Path(path).name}: {self.name}, strength {strength:g}')


def _choose_backend(backend, device):
    if backend not in ('auto', 'torch', 'onnx'): raise ValueError(f"backend must be 'auto', 'torch' or 'onnx', not {backend!r}")
    if device.type != 'cpu':
        if backend == 'onnx': raise ValueError('the onnx backend runs on the CPU only')
        return 'torch'
    if backend == 'auto':
        try: import onnxruntime  # noqa: F401
        except ImportError: return 'torch'
        return 'onnx'
    return backend


def _check_array(a):
    if not isinstance(a, np.ndarray) or a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (1, 2, 3, 4)):
        raise ValueError(f'expected an HxW or HxWxC array with C in 1..4, got {getattr(a, "shape", type(a))}')
    if a.dtype not in (np.uint8, np.uint16) and a.dtype.kind != 'f':
        raise ValueError(f'expected a uint8, uint16 or float array, got {a.dtype}')
    if min(a.shape[:2]) < 1: raise ValueError(f'empty image of shape {a.shape}')


def _out_path(f: Path, root, out_dir, ext):
    "Where the restoration of `f` goes: under `out_dir` (keeping the layout below `root`), with extension `ext`."
    if out_dir is None: return None
    rel = f.relative_to(root) if root else Path(f.name)
    return Path(out_dir) / rel.with_suffix(f.suffix if ext in ('auto', None) else '.' + ext.lstrip('.'))


def _check_not_input(src, dst, overwrite):
    if not overwrite and Path(dst).exists() and Path(dst).resolve() == Path(src).resolve():
        raise ValueError(f'{dst}: refusing to overwrite the input image (pass overwrite=True to replace it)')


@lru_cache(maxsize=4)
def get_restorer(model='default', device=None) -> Restorer:
    "A `Restorer` cached per (model, device), so repeated `restore_image` calls load the weights once."
    return Restorer(model, device)


def restore_image(src, model='default', strength=1.0, out=None, out_dir=None, ext='png', tile=None, device=None,
                  overwrite=False, on_error='raise', progress=True):
    """Remove compression artifacts from `src` with `model` (the bundled default needs nothing set up).

    src: an image path (returns a PIL image; written to `out` if given), a folder or list of paths (written
    under `out_dir` as `ext` files, 'auto' keeping each extension, returning their paths; without `out_dir`
    the PIL images), a PIL image, an HxW(xC) numpy array (uint8, uint16 or float in [0, 1]) or a CxHxW/BxCxHxW
    tensor, each returned as the same kind. `strength` blends from the input (0) to the full restoration (1).
    Inputs are never overwritten unless `overwrite`; `on_error='skip'` goes on past unreadable files.
    """
    return get_restorer(model, device)(src, strength, out, out_dir, ext, tile, overwrite, on_error, progress)


def get_transformed_image(path, model='default', strength=1.0) -> Image.Image:
    return get_restorer(model).get_transformed_image(path, strength)


def plot_transformed_image(path, model='default', strength=1.0, compare=True, **kwargs):
    return get_restorer(model).plot_transformed_image(path, strength, compare, **kwargs)
