import numpy as np
import pytest
import torch

from artifact_removal.models import create_generator
from artifact_removal.tiling import arrays_to_batch, choose_tile_size, run_tiled, tile_spans


def test_spans_cover_on_grid():
    spans = tile_spans(1000, 300)
    assert spans[0][0] == 0 and spans[-1][1] == 1000 and all(a % 32 == 0 for a, _ in spans)
    assert all(b == c for (_, b), (c, _) in zip(spans, spans[1:]))
    assert tile_spans(20, 256) == [(0, 20)]
    # as few cores as fit, of nearly equal size: no thin last core computing a whole window for a few rows
    for length, tile in [(3000, 1280), (1000, 300), (8672, 1280), (1056, 512)]:
        sizes = [b - a for a, b in tile_spans(length, tile)]
        assert len(sizes) == -(-length // tile) and max(sizes) <= tile and max(sizes) - min(sizes) < 32 * len(sizes)


def test_choose_tile_size():
    assert choose_tile_size(1000, 1e9) % 32 == 0
    assert choose_tile_size(1000, 1e9) > choose_tile_size(1000, 1e8) >= 32
    # however little memory, a core is at least twice the context: smaller ones run mostly context
    assert choose_tile_size(1000, 1e6, context=64) == 128 and choose_tile_size(1000, 1e6, context=40) == 96


@pytest.mark.parametrize('dtype', [np.uint8, np.uint16, np.float32])
def test_tiled_matches_whole_within_one_level(dtype):
    "A network whose receptive field (17 px) fits in the context gives the whole-image result, in every dtype."
    torch.manual_seed(0)
    g = create_generator('plain_cnn').eval()
    with torch.no_grad():
        for p in g.parameters(): p.add_(torch.randn_like(p) * 0.05)
    rng = np.random.default_rng(0)
    img = rng.random((160, 224, 3))  # a multiple of the 32 px grid: a stride-1 net pads nothing either
    img = (img * np.iinfo(dtype).max).astype(dtype) if dtype != np.float32 else img.astype(dtype)
    whole = run_tiled(g, img, tile=0)
    tiled = run_tiled(g, img, tile=64, context=32)
    scale = np.iinfo(dtype).max if dtype != np.float32 else 1.0
    assert whole.dtype == tiled.dtype == dtype and whole.shape == img.shape
    assert np.abs(whole.astype(np.float64) - img).max() / scale > 10 / 255  # the network does change the image
    assert np.abs(whole.astype(np.float64) - tiled.astype(np.float64)).max() / scale <= 1 / 255


def test_read_only_arrays_convert_without_a_warning():
    "A decoded PIL image is read-only memory: converting it must not show users torch's non-writable warning."
    import warnings
    a = np.zeros((8, 8, 3), np.uint8); a.flags.writeable = False
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        assert arrays_to_batch([a]).shape == (1, 3, 8, 8)
