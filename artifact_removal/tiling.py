"""Run an image-to-image network on any size in bounded memory: pad to the stride, cut into tiles with context,
run each, paste back the tile cores. Pure functions on arrays/tensors, no model state.

The image is first padded to a multiple of `align` (32: the U-Net's stride, a multiple of the 8x8 JPEG grid)
the way the network pads a whole image, and tiles start on multiples of it, so every tile sees the grid, the
edges and the network's downsampling exactly where the whole image does; each tile is read with
`context` extra pixels on every side and only its core is kept, so tile edges never reach the output.
"""
import math

import numpy as np
import torch

__all__ = ['tile_spans', 'choose_tile_size', 'run_tiled', 'arrays_to_batch', 'batch_to_arrays']


def tile_spans(length, tile, align=32):
    "Core spans (start, stop) covering [0, length) with cores of at most `tile` px starting on multiples of `align`."
    tile = max(align, tile // align * align)
    return [(s, min(s + tile, length)) for s in range(0, length, tile)]


def choose_tile_size(bytes_per_pixel, budget_bytes, context=64, align=32, largest=4096):
    "The largest core size whose tile (core plus context on both sides) fits `budget_bytes` of activations."
    side = int(math.sqrt(max(budget_bytes, 1) / max(bytes_per_pixel, 1e-9))) - 2 * context
    return int(min(largest, max(align, side // align * align)))


def _scale(dtype): return float(np.iinfo(dtype).max) if np.dtype(dtype).kind in 'ui' else 1.0


def arrays_to_batch(arrays) -> torch.Tensor:
    "Same-shape HxWxC arrays (uint8, uint16 or float) as one BxCxHxW float tensor in [0, 1]."
    a = np.stack([np.ascontiguousarray(x) for x in arrays])
    return torch.from_numpy(a).permute(0, 3, 1, 2).float() / _scale(a.dtype)


def batch_to_arrays(t: torch.Tensor, dtype) -> list:
    "A BxCxHxW [0, 1] tensor as HxWxC arrays of `dtype`, clipped and (for integers) rounded to its range."
    a, scale = t.float().clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy(), _scale(dtype)
    return [(x * scale).round().astype(dtype) if np.dtype(dtype).kind in 'ui' else x.astype(dtype) for x in a]


@torch.no_grad()
def run_tiled(fn, image: np.ndarray, tile=0, context=64, align=32):
    """Apply `fn` (a 1xCxHxW [0,1] tensor -> same) to the HxWxC array `image`, one tile at a time.

    tile=0 runs the whole image at once. The output array has the input's shape and dtype and is filled
    tile by tile, so memory holds the two arrays and one tile's activations.
    """
    run = lambda a: batch_to_arrays(fn(arrays_to_batch([a])), image.dtype)[0]
    h, w = image.shape[:2]
    if not tile: return run(image)
    hp, wp = h + -h % align, w + -w % align  # tiles cover the image padded to the grid, as the network pads it
    context = -(-context // align) * align
    out = np.empty_like(image)
    win_h, win_w = min(hp, tile + 2 * context), min(wp, tile + 2 * context)
    for y0, y1 in tile_spans(hp, tile, align):
        for x0, x1 in tile_spans(wp, tile, align):
            if y0 >= h or x0 >= w: continue
            # every window has the same size (moved inward at the edges, on the grid since context is a
            # multiple of it), so a runtime that plans memory per shape reuses one plan for every tile
            cy0, cx0 = min(max(0, y0 - context), hp - win_h), min(max(0, x0 - context), wp - win_w)
            cy1, cx1 = cy0 + win_h, cx0 + win_w
            crop = image[cy0:min(cy1, h), cx0:min(cx1, w)]
            if cy1 > h or cx1 > w:  # a tile at the bottom/right edge: replicate the edge up to the grid
                crop = np.pad(crop, ((0, max(0, cy1 - h)), (0, max(0, cx1 - w)), (0, 0)), mode='edge')
            oy1, ox1 = min(y1, h), min(x1, w)
            out[y0:oy1, x0:ox1] = run(crop)[y0 - cy0:oy1 - cy0, x0 - cx0:ox1 - cx0]
    return out
