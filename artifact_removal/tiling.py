"""Run an image-to-image network on any size in bounded memory: pad to the stride, cut into tiles with context,
run each, paste back the tile cores. Pure functions on arrays/tensors, no model state.

Tiles start on multiples of `align` (32: the U-Net's stride, a multiple of the 8x8 JPEG grid), so every tile
sees the grid and the network's downsampling exactly where the whole image does; each tile is read with
`context` extra pixels on every side and only its core is kept, so tile edges never reach the output.
"""
import math

import numpy as np
import torch

__all__ = ['tile_spans', 'choose_tile_size', 'run_tiled']


def tile_spans(length, tile, align=32):
    "Core spans (start, stop) covering [0, length) with cores of at most `tile` px starting on multiples of `align`."
    tile = max(align, tile // align * align)
    return [(s, min(s + tile, length)) for s in range(0, length, tile)]


def choose_tile_size(bytes_per_pixel, budget_bytes, context=64, align=32, largest=4096):
    "The largest core size whose tile (core plus context on both sides) fits `budget_bytes` of activations."
    side = int(math.sqrt(max(budget_bytes, 1) / max(bytes_per_pixel, 1e-9))) - 2 * context
    return int(min(largest, max(align, side // align * align)))


@torch.no_grad()
def run_tiled(fn, image: np.ndarray, tile=0, context=64, align=32, to_tensor=None, from_tensor=None):
    """Apply `fn` (a 1xCxHxW [0,1] tensor -> same) to the HxWxC array `image`, one tile at a time.

    tile=0 runs the whole image at once. The output array has the input's shape and dtype and is filled
    tile by tile, so memory holds the two arrays and one tile's activations. `to_tensor`/`from_tensor`
    convert array crops to [0,1] tensors and back (defaults: by the dtype's range).
    """
    scale = float(np.iinfo(image.dtype).max) if image.dtype.kind in 'ui' else 1.0
    to_tensor = to_tensor or (lambda a: torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1)[None].float() / scale)
    from_tensor = from_tensor or (lambda t: _to_array(t, image.dtype, scale))
    h, w = image.shape[:2]
    if not tile: return from_tensor(fn(to_tensor(image)))
    out = np.empty_like(image)
    for y0, y1 in tile_spans(h, tile, align):
        for x0, x1 in tile_spans(w, tile, align):
            cy0, cx0 = max(0, y0 - context), max(0, x0 - context)  # context starts stay on the grid
            cy1, cx1 = min(h, y1 + context), min(w, x1 + context)
            res = fn(to_tensor(image[cy0:cy1, cx0:cx1]))
            out[y0:y1, x0:x1] = from_tensor(res[..., y0 - cy0:y1 - cy0, x0 - cx0:x1 - cx0])
    return out


def _to_array(t, dtype, scale):
    a = t[0].float().clamp(0, 1).permute(1, 2, 0).cpu().numpy()
    return (a * scale).round().astype(dtype) if dtype.kind in 'ui' else a.astype(dtype)
