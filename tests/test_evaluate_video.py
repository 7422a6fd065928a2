"""The video benchmark: clips encoded, restored frame by frame and steadied, scored; its CLI and training scorer."""
import numpy as np
import pytest

from artifact_removal.clips import make_clips
from artifact_removal.evaluate_video import VideoValidationScorer, evaluate_video, parse_setting
from artifact_removal.models import create_generator
from artifact_removal.video_degrade import CodecSettings
from conftest import synthetic_photo


@pytest.fixture(scope='module')
def clips(tmp_path_factory):
    images = tmp_path_factory.mktemp('photos')
    for i in range(2): synthetic_photo(220, 160, 10 + i).save(images / f'p{i}.png')
    out = tmp_path_factory.mktemp('clips')
    make_clips(images, out, size=(128, 96), n_frames=6)
    return out


def test_parse_setting():
    assert parse_setting('h264:crf=35') == ('H.264 CRF 35', CodecSettings('h264', crf=35))
    assert parse_setting('h265:qp=37') == ('H.265 QP 37', CodecSettings('h265', qp=37))
    for bad in ['h264', 'h264:crf', 'h264:q=3', 'vp9:crf=30', 'mpeg2:crf=30']:
        with pytest.raises(ValueError, match='codec setting'): parse_setting(bad)


def test_evaluate_video_scores_input_model_and_filter(clips, tmp_path):
    identity = create_generator('mobilenetv3_small_100')  # its last layer starts at zero: returns its input
    settings = dict(map(parse_setting, ['h264:crf=40', 'mpeg2:qp=12']))
    ev = evaluate_video(identity, clips, settings, out=tmp_path / 'out', progress=False)
    methods = {(r['setting'], r['method']) for r in ev.summary}
    assert methods == {(s, m) for s in settings for m in ('input', 'RestorationNet', 'RestorationNet + temporal')} | {
        ('(all)', 'reference')}
    row = {(r['setting'], r['method']): r for r in ev.summary}
    for s in settings:
        assert row[s, 'RestorationNet']['d_psnr'] == pytest.approx(0, abs=0.01)  # the identity changes nothing
        assert row[s, 'RestorationNet + temporal']['warp_error'] < row[s, 'input']['warp_error']
        assert row[s, 'input']['clips'] == 2 and row[s, 'RestorationNet']['fps'] > 0
    assert row['(all)', 'reference']['warp_error'] < row['H.264 CRF 40', 'input']['warp_error']
    assert all(len(r['per_frame_psnr']) == 6 for r in ev.rows)
    assert sorted(p.name for p in (tmp_path / 'out').iterdir()) == ['frames.png', 'per_clip.csv', 'per_frame_psnr.png',
                                                                    'summary.csv', 'summary.md']
    assert 'ΔPSNR' in (tmp_path / 'out' / 'summary.md').read_text()


def test_eval_video_command(clips, tmp_path, capsys):
    from artifact_removal.cli import main
    from artifact_removal.weights import save_generator
    blind = create_generator('mobilenetv3_small_100', quality_aware=False)
    weights = save_generator(blind, tmp_path / 'id.safetensors', 'mobilenetv3_small_100')
    assert main(['eval-video', '--data', str(clips), '--model', str(weights), '--setting', 'h264:crf=35',
                 '--max-frames', '4', '--no-temporal', '--out', str(tmp_path / 'ev')]) == 0
    out = capsys.readouterr().out
    assert 'H.264 CRF 35' in out and 'temporal' not in out.split('|---|')[1]
    assert (tmp_path / 'ev' / 'summary.md').exists()
    assert main(['eval-video', '--data', str(clips), '--setting', 'h264:crf']) == 2  # a clear error, no traceback
    assert 'codec setting' in capsys.readouterr().err


def test_video_validation_scorer(data_dir):
    scorer = VideoValidationScorer(data_dir / 'valid', n_clips=2, n_frames=3, size=(96, 64))
    row = scorer(None)
    assert set(row) == {'video_psnr'} and 20 < row['video_psnr'] < 50
    gains = scorer(create_generator('mobilenetv3_small_100', quality_aware=False))
    assert gains['video_gain'] == pytest.approx(0, abs=0.01) and 'video_gain_crf38' in gains
