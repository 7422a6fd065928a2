"""16-bit colour files (48-bit RGB, 64-bit RGBA PNGs and TIFFs), which Pillow decodes to 8 bits: read and written
at 16 bits with OpenCV, their metadata kept, restored into 16-bit files."""
import cv2
import numpy as np
import pytest
import torch
from PIL import ExifTags, Image, ImageCms, ImageOps

from artifact_removal import Restorer
from artifact_removal.image_io import ImageMeta, read_image, write_image


def _deep(c, h=37, w=53, seed=0):
    "A smooth 16-bit image with C channels (every low byte used, so 8 bits cannot pass for 16)."
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:h, :w]
    a = (xx[..., None] * rng.uniform(300, 900, c) + yy[..., None] * rng.uniform(300, 900, c)) % 60000
    return (a + rng.integers(0, 2000, (h, w, c))).astype(np.uint16)


def _write_cv2(path, a):
    assert cv2.imwrite(str(path), a[..., [2, 1, 0, 3][:a.shape[2]]])
    return path


@pytest.fixture(scope='module')
def identity():
    "A restorer that gives its input back: what comes out shows what the file path does around the model."
    return Restorer(torch.nn.Identity(), device='cpu', backend='torch')


@pytest.mark.parametrize('ext', ['png', 'tif'])
@pytest.mark.parametrize('c', [3, 4])
def test_read_write_round_trip_is_bit_exact(tmp_path, c, ext):
    a = _deep(c)
    got, meta = read_image(_write_cv2(tmp_path / f'in.{ext}', a))
    assert got.dtype == np.uint16 and np.array_equal(got, a) and meta.mode == ('RGB;16', 'RGBA;16')[c - 3]
    write_image(got, meta, tmp_path / f'out.{ext}')
    back = cv2.imread(str(tmp_path / f'out.{ext}'), cv2.IMREAD_UNCHANGED)
    assert back.dtype == np.uint16 and np.array_equal(back[..., [2, 1, 0, 3][:c]], a)
    assert not list(tmp_path.glob('.*'))  # written through a temporary file, renamed


def test_png_keeps_icc_and_exif_and_applies_orientation(tmp_path):
    a = _deep(3, 20, 30)
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile('sRGB')).tobytes()
    exif = Image.Exif()
    exif[ExifTags.Base.Make], exif[ExifTags.Base.Orientation] = 'ExampleCam', 6
    src = tmp_path / 'tagged.png'
    write_image(a, ImageMeta('RGB;16', exif.tobytes(), icc), src)
    with Image.open(src) as im:  # Pillow reads the chunks (at 8 bits), and turns it upright as it says
        assert im.info['icc_profile'] == icc and im.getexif()[ExifTags.Base.Orientation] == 6
        upright8 = np.asarray(ImageOps.exif_transpose(im))
    got, meta = read_image(src)
    assert got.shape == (30, 20, 3) and np.array_equal(got >> 8, upright8)  # the same turn, all 16 bits kept
    assert meta.icc == icc
    tags = Image.Exif(); tags.load(meta.exif)
    assert tags[ExifTags.Base.Make] == 'ExampleCam' and ExifTags.Base.Orientation not in tags


@pytest.mark.parametrize('c', [3, 4])
def test_restored_16bit_png_comes_back_16bit(tmp_path, identity, c):
    a = _deep(c)
    src = _write_cv2(tmp_path / 'in.png', a)
    got = identity.restore_file(src, tmp_path / 'out.png')
    assert isinstance(got, np.ndarray) and got.dtype == np.uint16 and got.shape == a.shape
    saved = cv2.imread(str(tmp_path / 'out.png'), cv2.IMREAD_UNCHANGED)[..., [2, 1, 0, 3][:c]]
    assert saved.dtype == np.uint16 and saved.shape == a.shape and np.array_equal(saved, got)
    assert np.abs(saved.astype(int) - a).max() <= 2  # 16-bit values, not 8-bit ones scaled (those are 257 apart)
    if c == 4: assert np.array_equal(saved[..., 3], a[..., 3])  # alpha untouched, bit for bit
    assert np.array_equal(identity(str(src)), got)  # restore_image's path: the array, as PIL holds no 16-bit colour


def test_8bit_format_rounds_with_a_warning(tmp_path, identity):
    a = _deep(3)
    src = _write_cv2(tmp_path / 'in.png', a)
    with pytest.warns(UserWarning, match='JPEG holds 8 bits per channel'):
        identity(str(src), out_dir=tmp_path / 'out', ext='jpg')
    with Image.open(tmp_path / 'out' / 'in.jpg') as im:
        assert im.mode == 'RGB' and np.abs(np.asarray(im, int) - a / 257).mean() < 2
