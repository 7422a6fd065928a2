import numpy as np
import pytest
from PIL import Image

from artifact_removal.degrade import JPEGDegradation, jpeg_compress, sample_quality, shifted_jpeg_compress
from artifact_removal.metrics import psnr


@pytest.fixture(scope='module')
def img(data_dir):
    return Image.open(sorted((data_dir / 'valid').glob('*'))[0]).convert('RGB').crop((0, 0, 256, 256))


def test_reproducible_under_seed(img):
    deg = JPEGDegradation(p_double=0.5)
    a = [deg(img, np.random.default_rng(7)) for _ in range(2)]
    b = np.asarray(deg(img, np.random.default_rng(8))[0])
    assert np.array_equal(np.asarray(a[0][0]), np.asarray(a[1][0])) and a[0][1] == a[1][1]
    outs = {np.asarray(deg(img, np.random.default_rng(s))[0]).tobytes() for s in range(6)}
    assert len(outs) > 1 and b.shape == np.asarray(a[0][0]).shape


def test_quality_label_is_the_damage_applied(img):
    "One compression: its quality; double compression: the lower of the two; untouched: 100."
    for seed in range(12):
        out, q = JPEGDegradation(p_double=0.0, p_clean=0.0)(img, np.random.default_rng(seed))
        assert np.array_equal(np.asarray(out), np.asarray(jpeg_compress(img, q, '4:4:4'))) or \
            np.array_equal(np.asarray(out), np.asarray(jpeg_compress(img, q, '4:2:0')))
    labels = [JPEGDegradation(p_double=1.0, p_clean=0.0, quality=(60, 60))(img, np.random.default_rng(s))[1] for s in range(3)]
    assert labels == [60, 60, 60]
    assert JPEGDegradation(p_clean=1.0)(img)[1] == 100


def test_damage_grows_as_quality_falls(img):
    scores = [psnr(np.asarray(img), np.asarray(jpeg_compress(img, q))) for q in (90, 50, 20, 5)]
    assert scores == sorted(scores, reverse=True) and scores[0] - scores[-1] > 8


def test_chroma_subsampling_differs_in_chroma(img):
    ycc = lambda im: np.asarray(im.convert('YCbCr'), np.float64)
    ref, s420, s444 = ycc(img), ycc(jpeg_compress(img, 75, '4:2:0')), ycc(jpeg_compress(img, 75, '4:4:4'))
    chroma_err = lambda x: np.abs(x[..., 1:] - ref[..., 1:]).mean()
    assert chroma_err(s420) > 1.3 * chroma_err(s444)


def test_gray_stays_gray_and_sizes_kept(img):
    g = img.convert('L').crop((0, 0, 61, 45))
    assert jpeg_compress(g, 10).mode == 'L' and jpeg_compress(g, 10).size == (61, 45)
    s = shifted_jpeg_compress(img, 20, (3, 5))
    assert s.size == img.size and not np.array_equal(np.asarray(s), np.asarray(jpeg_compress(img, 20)))


def test_clean_share_and_quality_bias(img):
    assert JPEGDegradation(p_clean=1.0)(img, np.random.default_rng(0))[0] is img
    rng = np.random.default_rng(0)
    qs = [sample_quality(rng, 5, 95, 2.0) for _ in range(2000)]
    assert min(qs) >= 5 and max(qs) <= 95 and np.median(qs) < 40
    with pytest.raises(ValueError, match='quality'): jpeg_compress(img, 0)


def test_config_sets_the_clean_and_high_quality_shares(img):
    "--p-clean and --quality-bias reach the training pairs: more untouched and more high-quality inputs."
    from artifact_removal.config import NoGANConfig

    def shares(**kw):
        deg, rng = NoGANConfig(**kw).degradation(), np.random.default_rng(0)
        labels = np.array([deg(img, rng)[1] for _ in range(400)])
        return (labels == 100).mean(), ((labels >= 75) & (labels < 100)).mean()
    clean, high = shares()
    held_clean, held_high = shares(p_clean=0.3, quality_bias=1.0)
    assert clean < 0.1 < 0.2 < held_clean and high < held_high
