"""evaluate / blind_check on a few 128 px crops of LIVE1: the benchmark protocol, the files, gray, the blind check."""
import csv

import cv2
import pytest
import torch.nn as nn
import torch.nn.functional as F

from artifact_removal.evaluate import blind_check, evaluate
from artifact_removal.metrics import STLPIPS, psnr, psnr_b, ssim
from artifact_removal.models import create_generator
from artifact_removal.restore import Restorer


def _crops(src, dst, n, flags):
    "`n` 128x128 crops of the images in `src`, saved losslessly as PNGs in `dst`."
    dst.mkdir()
    for f in sorted(src.glob('*.png'))[:n]: cv2.imwrite(str(dst / f.name), cv2.imread(str(f), flags)[64:192, 64:192])
    return dst


@pytest.fixture(scope='module')
def color_set(data_dir, tmp_path_factory):
    return _crops(data_dir / 'test' / 'live1_color', tmp_path_factory.mktemp('eval') / 'color', 3, cv2.IMREAD_COLOR)


@pytest.fixture(scope='module')
def gray_set(data_dir, tmp_path_factory):
    return _crops(data_dir / 'test' / 'live1_gray', tmp_path_factory.mktemp('eval') / 'gray', 2, cv2.IMREAD_GRAYSCALE)


@pytest.fixture(scope='module')
def identity():
    "A new generator: its last layer starts at zero, so it gives its input back."
    return Restorer(create_generator('mobilenetv3_small_100'), device='cpu')


class Blur(nn.Module):
    "Damages every image, clean or not: a 3x3 box blur."
    def forward(self, x): return F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)


class ChannelSpy(nn.Module):
    "The identity, remembering how many channels it was given."
    def __init__(self):
        super().__init__()
        self.channels = []
    def forward(self, x):
        self.channels.append(x.shape[1])
        return x


def _metrics(row): return {k: row[k] for k in ('psnr', 'ssim', 'psnr_b', 'stlpips')}


def test_jpeg_rows_follow_the_benchmark_protocol(color_set):
    "The 'jpeg' rows are the metrics of OpenCV's JPEG of the BGR image, compared in RGB, as in test_metrics."
    ev = evaluate([], color_set, (10, 30), device='cpu', progress=False)
    lpips = STLPIPS('cpu')
    assert len(ev.rows) == 6 and {r['model'] for r in ev.rows} == {'jpeg'}
    for r in ev.rows:
        bgr = cv2.imread(str(color_set / r['image']))
        dec = cv2.imdecode(cv2.imencode('.jpg', bgr, [cv2.IMWRITE_JPEG_QUALITY, r['quality']])[1], 1)
        ref, img = bgr[..., ::-1], dec[..., ::-1]
        assert r['psnr'] == pytest.approx(psnr(ref, img), rel=1e-12)
        assert r['ssim'] == pytest.approx(ssim(ref, img), rel=1e-12)
        assert r['psnr_b'] == pytest.approx(psnr_b(ref, img), rel=1e-12)
        assert r['stlpips'] == pytest.approx(lpips(ref, img), abs=1e-6)
    q10 = [r['psnr'] for r in ev.rows if r['quality'] == 10]
    assert [(s['model'], s['quality'], s['images']) for s in ev.summary] == [('jpeg', 10, 3), ('jpeg', 30, 3)]
    assert ev.summary[0]['psnr'] == pytest.approx(sum(q10) / 3) and ev.summary[1]['psnr'] > ev.summary[0]['psnr']


def test_identity_model_scores_as_the_input_and_files_are_written(color_set, identity, tmp_path):
    ev = evaluate([identity], color_set, (10, 40), out=tmp_path, device='cpu', progress=False)
    jpeg = [_metrics(r) for r in ev.rows if r['model'] == 'jpeg']
    assert [_metrics(r) for r in ev.rows if r['model'] == identity.name] == jpeg and len(jpeg) == 6

    with open(tmp_path / 'per_image.csv') as f: rows = list(csv.DictReader(f))
    assert len(rows) == 12 and [float(r['psnr']) for r in rows] == [r['psnr'] for r in ev.rows]
    with open(tmp_path / 'summary.csv') as f: summary = list(csv.DictReader(f))
    assert [(s['model'], s['quality']) for s in summary] == [('jpeg', '10'), (identity.name, '10'),
                                                           ('jpeg', '40'), (identity.name, '40')]
    md = (tmp_path / 'summary.md').read_text().splitlines()
    assert md[0] == '| model | quality | PSNR | SSIM | PSNR-B | ST-LPIPS | luma grid | chroma grid |' and len(md) == 2 + 4
    assert md[2].startswith('| jpeg | 10 |') and md[3].startswith(f'| {identity.name} | 10 |')
    assert md[2].split('|')[3:] == md[3].split('|')[3:]  # the identity's numbers are the input's
    for png in ('perception_distortion.png', 'crops.png'): assert (tmp_path / png).stat().st_size > 1000
    assert len(ev.crops) == 2 and len(ev.crops[0]) == len(ev.crop_titles) == 3  # input, model, reference


def test_gray_stays_gray(gray_set):
    spy = ChannelSpy()
    restorer = Restorer(spy, device='cpu', backend='torch')  # PyTorch runs the spy's Python on every call
    ev = evaluate([restorer], gray_set, (20,), gray=True, device='cpu', progress=False)
    assert set(spy.channels) == {1} and len(spy.channels) == 2
    for r in ev.rows:
        clean = cv2.imread(str(gray_set / r['image']), cv2.IMREAD_GRAYSCALE)
        dec = cv2.imdecode(cv2.imencode('.jpg', clean, [cv2.IMWRITE_JPEG_QUALITY, 20])[1], cv2.IMREAD_GRAYSCALE)
        assert r['psnr'] == pytest.approx(psnr(clean, dec), rel=1e-12)
    assert all(im.ndim == 2 for im in ev.crops[0])


def test_blind_check_flags_a_model_that_damages_clean_images(color_set, identity):
    bad = blind_check(Restorer(Blur(), device='cpu'), color_set, (50, 90), device='cpu', progress=False)
    assert not bad.passed and bad.failed == [90] and bad.rows[1]['gain'] < -0.05
    assert 'FAILED' in bad.verdict() and len(bad.markdown().splitlines()) == 2 + 2
    good = blind_check(identity, color_set, (50, 90), device='cpu', progress=False)
    assert good.passed and [r['gain'] for r in good.rows] == [0, 0]


def test_models_need_distinct_names(color_set, identity):
    with pytest.raises(ValueError, match='distinct names'): evaluate([identity, identity], color_set, (10,))
    for qualities in ((0,), ()):
        with pytest.raises(ValueError, match='qualities'): evaluate([], color_set, qualities)


def test_quality_readings_scores_the_estimate_of_each_encoding():
    "Each image reaches the estimate encoded at each quality (then as it is), and the rows score what it read."
    import numpy as np
    from artifact_removal.evaluate import opencv_jpeg_rgb, quality_readings
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (32, 48, 3), dtype=np.uint8) for _ in range(2)]
    seen = []
    def estimate(a): seen.append(a); return 50 if len(seen) % 2 else 70
    rows = quality_readings(estimate, images, qualities=(10, 90))
    assert [r['quality'] for r in rows] == [10, 90, 'clean']
    assert np.array_equal(seen[0], opencv_jpeg_rgb(images[0], 10)) and np.array_equal(seen[5], images[1])
    assert [r['mean estimate'] for r in rows] == [60, 60, 60]
    assert [r['mean abs error'] for r in rows] == [50, 30, 40] and [r['worst'] for r in rows] == [60, 40, 50]
