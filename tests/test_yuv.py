"""RGB to and from subsampled YUV frames: unbiased, and close to the picture as 4:2:0 allows."""
import numpy as np
import pytest

from artifact_removal.metrics import psnr
from artifact_removal.yuv import as_420, from_rgb, to_rgb
from conftest import synthetic_photo

av = pytest.importorskip('av')


@pytest.mark.parametrize('pix_fmt,floor', [('yuv420p', 30), ('yuv422p', 32), ('nv12', 30), ('yuv420p10le', 30),
                                           ('yuv444p', 45), ('rgb24', 99)])
def test_round_trip(pix_fmt, floor):
    a = np.asarray(synthetic_photo(128, 96, 3))
    frame = from_rgb(a, pix_fmt)
    assert frame.format.name == pix_fmt
    b = to_rgb(frame)
    assert b.shape == a.shape and b.dtype == np.uint8 and psnr(a, b) > floor
    assert np.abs((b.astype(float) - a).mean((0, 1))).max() < 0.3  # FFmpeg's direct 4:2:0 path is a level darker


def test_better_than_the_direct_conversion():
    a = np.asarray(synthetic_photo(128, 96, 5))
    direct = av.VideoFrame.from_ndarray(a, format='rgb24').reformat(format='yuv420p').to_ndarray(format='rgb24')
    assert psnr(a, as_420([a])[0]) > psnr(a, direct) + 1
    assert from_rgb(a, 'yuv420p', dst_colorspace='ITU709').format.name == 'yuv420p'
