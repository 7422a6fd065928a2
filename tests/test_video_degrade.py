"""Codec degradations, synthetic clips over still photos, and the frame-pair DataLoaders made from them."""
import numpy as np
import pytest
from PIL import Image

from artifact_removal.clips import CameraMotion, camera_path, clip_sources, make_clips, read_clip, synthetic_clip
from artifact_removal.metrics import psnr
from artifact_removal.video_degrade import CODECS, CodecSettings, VideoDegradation, codec_compress
from conftest import synthetic_photo


@pytest.fixture(scope='module')
def clip():
    "16 frames of 96x64 panning over a synthetic photo."
    return synthetic_clip(synthetic_photo(320, 240, 7), 16, (96, 64), np.random.default_rng(0))


def mean_psnr(ref, frames): return float(np.mean([psnr(r, f) for r, f in zip(ref, frames)]))


def test_settings_are_checked():
    for bad in [dict(codec='vp9', crf=30), dict(codec='h264'), dict(codec='h264', crf=30, qp=30),
                dict(codec='mpeg2', crf=20), dict(codec='mpeg4', qp=40), dict(codec='h265', qp=60),
                dict(codec='h264', crf=30, preset='turbo')]:
        with pytest.raises(ValueError): CodecSettings(**bad)
    assert str(CodecSettings('h265', qp=37)) == 'h265 qp37' and str(CodecSettings('h264', crf=35)) == 'h264 crf35'


@pytest.mark.parametrize('settings', [CodecSettings('h264', crf=35), CodecSettings('h265', qp=37, bframes=2),
                                      CodecSettings('mpeg4', qp=12), CodecSettings('mpeg2', qp=12, gop=6),
                                      CodecSettings('h264', qp=30, preset='ultrafast', bframes=0)])
def test_codecs_give_every_frame_back_reproducibly(clip, settings):
    out = codec_compress(clip, settings)
    assert len(out) == len(clip) and all(o.shape == c.shape and o.dtype == np.uint8 for o, c in zip(out, clip))
    assert all(np.array_equal(a, b) for a, b in zip(out, codec_compress(clip, settings)))  # bit for bit
    assert 22 < mean_psnr(clip, out) < 45  # damaged, and in display order (a reordered frame would score ~15 dB)
    assert all(psnr(c, o) > 20 for c, o in zip(clip, out))


def test_lossless_coding_gives_the_pristine_420_clip(clip):
    "x264 at QP 0 is lossless in YUV: the frames come back as the clip's 4:2:0 version, bit for bit, unbiased."
    from artifact_removal.yuv import as_420
    pristine, out = as_420(clip), codec_compress(clip, CodecSettings('h264', qp=0))
    assert all(np.array_equal(a, b) for a, b in zip(pristine, out))
    assert mean_psnr(clip, pristine) > 28 and abs(np.mean([p.astype(float) - c for p, c in zip(pristine, clip)])) < 0.3


@pytest.mark.parametrize('codec,rates', [('h264', (18, 30, 42)), ('h265', (18, 30, 42))])
def test_worse_as_crf_rises(clip, codec, rates):
    scores = [mean_psnr(clip, codec_compress(clip, CodecSettings(codec, crf=r))) for r in rates]
    assert scores[0] > scores[1] + 1 > scores[2] + 2, scores


@pytest.mark.parametrize('codec', ['mpeg4', 'mpeg2'])
def test_worse_as_quantiser_rises(clip, codec):
    scores = [mean_psnr(clip, codec_compress(clip, CodecSettings(codec, qp=q))) for q in (2, 10, 28)]
    assert scores[0] > scores[1] + 1 > scores[2] + 2, scores


def test_odd_size_refused(clip):
    with pytest.raises(ValueError, match='even sides'): codec_compress([f[:63] for f in clip], CodecSettings(crf=30))


def test_video_degradation_is_seeded(clip):
    deg = VideoDegradation()
    (a, sa), (b, sb) = deg(clip[:6], np.random.default_rng(3)), deg(clip[:6], np.random.default_rng(3))
    assert sa == sb and all(np.array_equal(x, y) for x, y in zip(a, b))
    drawn = [deg.sample(np.random.default_rng(s)) for s in range(200)]
    assert {s.codec for s in drawn} == set(CODECS) and len({str(s) for s in drawn}) > 40
    heavy = [s.crf for s in drawn if s.crf is not None]
    assert min(heavy) >= 18 and max(heavy) <= 45 and np.median(heavy) > 31.5  # drawn toward heavy damage


def test_synthetic_clip_moves_inside_the_photo():
    photo = synthetic_photo(300, 200, 1)
    a = synthetic_clip(photo, 12, (128, 96), np.random.default_rng(5), CameraMotion(speed=5, p_static=0))
    b = synthetic_clip(photo, 12, (128, 96), np.random.default_rng(5), CameraMotion(speed=5, p_static=0))
    assert len(a) == 12 and a[0].shape == (96, 128, 3) and all(np.array_equal(x, y) for x, y in zip(a, b))
    assert np.abs(a[0].astype(int) - a[-1]).mean() > 2  # the camera moved
    for seed in range(20):  # every corner of every frame lies inside the photo
        path = camera_path(np.random.default_rng(seed), 30, (128, 96), (300, 200), CameraMotion(speed=8, zoom=0.02))
        corners = np.array([[0, 0, 1], [127, 0, 1], [0, 95, 1], [127, 95, 1]])
        pts = np.concatenate([corners @ m.T for m in path])
        assert pts.min() >= -1e-6 and (pts.max(0) <= [299 + 1e-6, 199 + 1e-6]).all()
    still = synthetic_clip(photo, 5, (128, 96), np.random.default_rng(0), CameraMotion(p_static=1, shake=0))
    assert all(np.array_equal(still[0], f) for f in still)


def test_make_clips_and_read_them_back(tmp_path):
    images = tmp_path / 'images'
    images.mkdir()
    synthetic_photo(200, 150, 1).save(images / 'a.png')
    synthetic_photo(90, 60, 2).save(images / 'small.png')
    with pytest.warns(UserWarning, match='too small'):
        folders = make_clips(images, tmp_path / 'clips', size=(96, 64), n_frames=5)
    assert [f.name for f in folders] == ['a'] and clip_sources(tmp_path / 'clips') == folders
    frames = list(read_clip(folders[0]))
    again = make_clips([images / 'a.png'], tmp_path / 'again', size=(96, 64), n_frames=5)
    assert len(frames) == 5 and all(np.array_equal(x, y) for x, y in zip(frames, read_clip(again[0])))
    assert len(list(read_clip(folders[0], max_frames=2))) == 2


def test_frame_pair_dataloaders(mini_train, mini_valid, tmp_path):
    import matplotlib
    matplotlib.use('Agg')
    from artifact_removal.video_data import VIDEO_LABEL, get_video_pair_dls
    dls = get_video_pair_dls(mini_train, mini_valid, size=64, bs=6, n_patches=2, p_video=1.0, num_workers=0, seed=0)
    x, q, y = dls.one_batch()
    assert x.shape == y.shape == (6, 3, 64, 64) and (q == VIDEO_LABEL).all()
    assert 0 < (x - y).abs().mean() < 0.1  # damaged, still the same picture
    v1, v2 = dls.valid.one_batch(), dls.valid.one_batch()
    assert v1[0].shape[-1] == 128 and (v1[0] == v2[0]).all()  # validation pairs are the same every time
    mixed = get_video_pair_dls(mini_train, mini_valid, size=64, bs=16, n_patches=4, p_video=0.5, num_workers=0, seed=1)
    labels = mixed.one_batch()[1]
    assert (labels == VIDEO_LABEL).any() and (labels > VIDEO_LABEL).any()  # codec frames and JPEG patches
    dls.show_batch(max_n=2)
    matplotlib.pyplot.savefig(tmp_path / 'batch.png')
    assert (tmp_path / 'batch.png').stat().st_size > 1000


def test_training_config_for_video():
    from artifact_removal.config import NoGANConfig
    with pytest.raises(ValueError, match='no-quality-aware'): NoGANConfig(video=0.5)
    with pytest.raises(ValueError, match='share'): NoGANConfig(video=1.5, quality_aware=False)
    assert NoGANConfig(video=0.75, quality_aware=False).video == 0.75
