"""Run an image-to-image network on any size in bounded memory: pad to the stride, cut into tiles with context,
run each, paste back the tile cores. Pure functions on arrays/tensors, no model state.

The image is first padded to a multiple of `align` (32: the U-Net's stride, a multiple of the 8x8 JPEG grid)
the way the network pads a whole image, and tiles start on multiples of it, so every tile sees the grid, the
edges and the network's downsampling exactly where the whole image does; each tile is read with
`context` extra pixels on every side and only its core is kept, so tile edges never reach the output. A network
that upscales by `scale` (super-resolution) has the same tiles on its input; their outputs are `scale` times larger
and are pasted at `scale` times their place.
"""
import math

import numpy as np
import torch

__all__ = ['tile_spans', 'choose_tile_size', 'run_tiled', 'arrays_to_batch', 'batch_to_arrays', 'bicubic_upscale']


def _round_up(n, align): return -(-n // align) * align


def tile_spans(length, tile, align=32):
    """Core spans (start, stop) covering [0, length) with cores of at most `tile` px starting on multiples of `align`,
    as few as can be and of nearly equal size: every window is computed whole, so a thin last core would cost a
    full window."""
    tile = max(align, tile // align * align)
    core = _round_up(-(-length // -(-length // tile)), align) if length > tile else tile
    return [(s, min(s + core, length)) for s in range(0, length, core)]


def choose_tile_size(bytes_per_pixel, budget_bytes, context=64, align=32, largest=4096):
    """The largest core size whose tile (core plus context on both sides) fits `budget_bytes` of activations, and
    at least twice the context: a smaller core spends most of its run on context (a 32-px core in 64 px of context
    runs 25 times the pixels it returns)."""
    side = int(math.sqrt(max(budget_bytes, 1) / max(bytes_per_pixel, 1e-9))) - 2 * context
    return int(min(largest, max(_round_up(2 * context, align), side // align * align)))


def _scale(dtype): return float(np.iinfo(dtype).max) if np.dtype(dtype).kind in 'ui' else 1.0


def arrays_to_batch(arrays) -> torch.Tensor:
    """Same-shape HxWxC arrays (uint8, uint16 or float) as one BxCxHxW float tensor in [0, 1], channels_last in
    memory (the transpose is a view: one pass converts, into the layout PyTorch's convolutions want), never sharing
    the arrays' memory."""
    a = np.ascontiguousarray(arrays[0])[None] if len(arrays) == 1 else np.stack(arrays)
    if not a.flags.writeable: a = a.copy()  # torch warns on read-only memory (a decoded PIL image's), though it only reads
    t = torch.from_numpy(a).permute(0, 3, 1, 2).to(torch.float32, copy=True)
    return t.div_(_scale(a.dtype)) if a.dtype.kind in 'ui' else t


def batch_to_arrays(t: torch.Tensor, dtype) -> list:
    "A BxCxHxW [0, 1] tensor as HxWxC arrays of `dtype`, clipped and (for integers) rounded to its range."
    t = t.float().clamp(0, 1)
    if np.dtype(dtype).kind in 'ui': t = t.mul_(_scale(dtype)).round_()  # in place, on all threads
    return [x.astype(dtype) for x in t.permute(0, 2, 3, 1).cpu().numpy()]


@torch.no_grad()
def bicubic_upscale(a: np.ndarray, scale: int) -> np.ndarray:
    """An HxW(xC) array (uint8, uint16 or float in [0, 1]) `scale` times larger, by the bicubic interpolation a
    super-resolution model's output starts from (PyTorch's), clipped to the dtype's range."""
    if scale == 1: return a
    plane = a[..., None] if a.ndim == 2 else a
    t = torch.nn.functional.interpolate(arrays_to_batch([plane]), scale_factor=scale, mode='bicubic', align_corners=False)
    out = batch_to_arrays(t, a.dtype)[0]
    return out[..., 0] if a.ndim == 2 else out


@torch.no_grad()
def run_tiled(fn, image: np.ndarray, tile=0, context=64, align=32, scale=1):
    """Apply `fn` (a 1xCxHxW [0,1] tensor -> 1xCx`scale`Hx`scale`W) to the HxWxC array `image`, one tile at a time.

    tile=0 runs the whole image at once. The output array has the input's dtype and channels, `scale` times its
    height and width, and is filled tile by tile, so memory holds the two arrays and one tile's activations.
    """
    run = lambda a: batch_to_arrays(fn(arrays_to_batch([a])), image.dtype)[0]
    h, w = image.shape[:2]
    if not tile: return run(image)
    hp, wp = h + -h % align, w + -w % align  # tiles cover the image padded to the grid, as the network pads it
    context, s = _round_up(context, align), scale
    out = np.empty((h * s, w * s, *image.shape[2:]), image.dtype)
    rows, cols = tile_spans(hp, tile, align), tile_spans(wp, tile, align)
    win_h, win_w = min(hp, rows[0][1] + 2 * context), min(wp, cols[0][1] + 2 * context)
    for y0, y1 in rows:
        for x0, x1 in cols:
            if y0 >= h or x0 >= w: continue
            # every window has the same size (moved inward at the edges, on the grid since context is a
            # multiple of it), so a runtime that plans memory per shape reuses one plan for every tile
            cy0, cx0 = min(max(0, y0 - context), hp - win_h), min(max(0, x0 - context), wp - win_w)
            cy1, cx1 = cy0 + win_h, cx0 + win_w
            crop = image[cy0:min(cy1, h), cx0:min(cx1, w)]
            if cy1 > h or cx1 > w:  # a tile at the bottom/right edge: replicate the edge up to the grid
                crop = np.pad(crop, ((0, max(0, cy1 - h)), (0, max(0, cx1 - w)), (0, 0)), mode='edge')
            oy1, ox1 = min(y1, h), min(x1, w)
            core = run(crop)[s * (y0 - cy0):s * (oy1 - cy0), s * (x0 - cx0):s * (ox1 - cx0)]
            out[s * y0:s * oy1, s * x0:s * ox1] = core
    return out
