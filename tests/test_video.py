"""restore_video keeps a video's timing, size and sound, restores every frame, and never leaves a broken file."""
from fractions import Fraction

import numpy as np
import pytest
import torch
from PIL import Image

av = pytest.importorskip('av')

from artifact_removal.models import create_generator
from artifact_removal.restore import Restorer
from artifact_removal.video import restore_video, video_info
from artifact_removal.yuv import to_rgb

W, H, N, FPS = 64, 48, 12, 24


def _picture(i, w=W, h=H):
    "Smooth colour gradients (a tiny clip's codec error stays small) that brighten with `i`: frames differ."
    y, x = np.mgrid[:h, :w]
    return np.stack([x * 2 + i * 8, y * 3 + 40, 160 - x - y + i * 4], -1).astype(np.uint8)


def make_clip(path, w=W, h=H, n=N, fps=FPS, audio='aac', video=True, rotation=0):
    "An H.264 clip of `n` frames with a 440 Hz tone in `audio` (None: silent), or the tone alone."
    with av.open(str(path), 'w') as out:
        if video:
            v = out.add_stream('libx264', rate=fps)
            v.width, v.height, v.pix_fmt = w, h, 'yuv420p' if w % 2 == 0 and h % 2 == 0 else 'yuv444p'
            if rotation: v.set_display_rotation(rotation)
            for i in range(n): out.mux(v.encode(av.VideoFrame.from_ndarray(_picture(i, w, h), format='rgb24')))
        if audio: _add_tone(out, audio, seconds=n / fps)
        if video: out.mux(v.encode(None))
    return path


def _add_tone(out, codec, seconds, rate=48000):
    a = out.add_stream(codec, rate=rate)
    a.layout = 'mono'
    size, fmt = a.codec_context.frame_size or 1024, a.codec_context.format.name
    for start in range(0, int(seconds * rate), size):
        s = 0.3 * np.sin(2 * np.pi * 440 * (start + np.arange(size)) / rate)[None]
        frame = av.AudioFrame.from_ndarray(s.astype(np.float32) if fmt == 'fltp' else (s * 32767).astype(np.int16),
                                           format=fmt, layout='mono')
        frame.sample_rate, frame.pts = rate, start
        out.mux(a.encode(frame))
    out.mux(a.encode(None))


def decoded(path):
    "(times in seconds, RGB frames, rotation) of the video stream."
    with av.open(str(path)) as c:
        frames = list(c.decode(video=0))
    return [float(f.pts * f.time_base) for f in frames], [to_rgb(f) for f in frames], frames[0].rotation


def audio_packets(path):
    with av.open(str(path)) as c:
        return [(bytes(p), float(p.pts * p.time_base)) for p in c.demux(audio=0) if p.size]


def mean_diff(a, b): return float(np.mean([np.abs(x.astype(float) - y).mean() for x, y in zip(a, b)]))


def assert_same_frames(before, after, tol=2.5):
    "Same count, each frame within the codec's error of the one at its index and nearer to it than to others."
    assert len(after) == len(before) and mean_diff(before, after) < tol
    for i, a in enumerate(after): assert np.argmin([mean_diff([b], [a]) for b in before]) == i


class Invert(torch.nn.Module):
    def forward(self, x): return 1 - x


@pytest.fixture(scope='module')
def identity():
    "The untrained generator: its last layer starts at zero, so it returns its input."
    return Restorer(create_generator('mobilenetv3_small_100'), device='cpu', batch_size=4)


@pytest.mark.parametrize('ext,audio', [('mp4', 'aac'), ('mkv', 'mp2')])
def test_keeps_timing_size_and_audio(tmp_path, identity, ext, audio):
    src = make_clip(tmp_path / f'in.{ext}', audio=audio)
    dst = restore_video(src, tmp_path / f'out.{ext}', model=identity, progress=False)
    info_in, info_out = video_info(src), video_info(dst)
    assert info_out['frames'] == info_in['frames'] == N
    assert info_out['fps'] == Fraction(FPS) and (info_out['width'], info_out['height']) == (W, H)
    assert info_out['codec'] == 'h264' and info_out['pix_fmt'] == 'yuv420p'
    assert info_out['duration'] == pytest.approx(info_in['duration'], abs=1e-3)
    times_in, frames_in, _ = decoded(src)
    times_out, frames_out, _ = decoded(dst)
    assert times_out == pytest.approx(times_in, abs=1e-3)
    assert_same_frames(frames_in, frames_out)  # the identity model: only the codec's error, frames in order
    assert audio_packets(dst) == audio_packets(src) and len(audio_packets(src)) > 5  # copied, not re-encoded
    assert sorted(p.name for p in tmp_path.iterdir()) == ['in.' + ext, 'out.' + ext]  # no temporary file left


def test_frames_are_restored(tmp_path):
    src = make_clip(tmp_path / 'in.mp4', audio=None)
    restore_video(src, tmp_path / 'out.mp4', model=Invert(), device='cpu', batch_size=3)
    _, before, _ = decoded(src)
    _, after, _ = decoded(tmp_path / 'out.mp4')
    assert len(after) == N and mean_diff([255 - b for b in before], after) < 3


def test_strength_zero_changes_nothing(tmp_path):
    src = make_clip(tmp_path / 'in.mp4', audio=None)
    restore_video(src, tmp_path / 'out.mp4', model=Restorer(Invert(), 'cpu'), strength=0, progress=False)
    assert mean_diff(decoded(src)[1], decoded(tmp_path / 'out.mp4')[1]) < 2


def test_odd_size_rotation_and_other_codec(tmp_path, identity):
    src = make_clip(tmp_path / 'in.mkv', w=63, h=47, audio='pcm_s16le', rotation=90)
    with pytest.warns(UserWarning, match='odd side'):
        dst = restore_video(src, tmp_path / 'out.mkv', model=identity, progress=False)
        vp9 = restore_video(src, tmp_path / 'vp9.mkv', model=identity, codec='libvpx-vp9', crf=30, progress=False)
    info = video_info(dst)
    assert (info['width'], info['height'], info['frames'], info['pix_fmt']) == (63, 47, N, 'yuv444p')
    assert decoded(dst)[2] == 90 and audio_packets(dst) == audio_packets(src)  # rotation kept, sound copied
    assert video_info(vp9)['codec'] == 'vp9' and video_info(vp9)['frames'] == N


@pytest.mark.parametrize('error,at', [(RuntimeError('model failed'), 3), (KeyboardInterrupt(), 3),
                                      (RuntimeError('model failed'), 1)])
def test_failure_leaves_no_file(tmp_path, identity, monkeypatch, error, at):
    "A crash or Ctrl-C on batch `at` (at 3, four frames and some sound were already written) leaves nothing."
    calls = []
    def restore_arrays(arrays, strength=1.0, tile=None, qualities=None):
        calls.append(len(arrays))
        if len(calls) == at: raise error
        return arrays
    monkeypatch.setattr(identity, 'restore_arrays', restore_arrays)
    src, out = make_clip(tmp_path / 'in.mp4'), tmp_path / 'out'
    with pytest.raises(type(error)):
        restore_video(src, out / 'restored.mp4', model=identity, batch_size=2, progress=False)
    assert calls == [2] * at and list(out.iterdir()) == []


def test_refuses_to_replace_input(tmp_path, identity):
    src = make_clip(tmp_path / 'in.mp4')
    before = src.read_bytes()
    with pytest.raises(ValueError, match='refusing to overwrite the input'):
        restore_video(src, src, model=identity, progress=False)
    assert src.read_bytes() == before
    restore_video(src, src, model=identity, overwrite=True, progress=False)
    assert video_info(src)['frames'] == N and sorted(p.name for p in tmp_path.iterdir()) == ['in.mp4']


def test_unusable_inputs_name_the_file(tmp_path, identity):
    audio_only = make_clip(tmp_path / 'tone.mka', audio='mp2', video=False)
    (tmp_path / 'notes.mp4').write_text('not a video')
    (tmp_path / 'empty.mp4').write_bytes(b'')
    for path, why in [(audio_only, 'no video stream'), (tmp_path / 'missing.mp4', 'no such file'),
                      (tmp_path / 'notes.mp4', 'not a readable video'), (tmp_path / 'empty.mp4', 'empty file')]:
        with pytest.raises(ValueError, match=why) as e:
            restore_video(path, tmp_path / 'out.mp4', model=identity, progress=False)
        assert str(e.value).startswith(str(path))
    with pytest.raises(ValueError, match='unknown video file extension'):
        restore_video(make_clip(tmp_path / 'in.mp4'), tmp_path / 'out.xyz', model=identity, progress=False)
    with pytest.raises(ValueError, match="cannot hold libx264 video; pass codec='vp9'"):
        restore_video(tmp_path / 'in.mp4', tmp_path / 'out.webm', model=identity, progress=False)
    with pytest.raises(ValueError, match='cannot hold the aac audio'):
        restore_video(tmp_path / 'in.mp4', tmp_path / 'out.webm', codec='libvpx-vp9', model=identity, progress=False)
    with pytest.raises(ValueError, match="unknown video encoder 'nosuch'"):
        restore_video(tmp_path / 'in.mp4', tmp_path / 'out.mp4', codec='nosuch', model=identity, progress=False)
    assert not list(tmp_path.glob('out*')) and not list(tmp_path.glob('.*'))


def test_folder_of_frames(tmp_path, identity):
    frames = tmp_path / 'frames'
    frames.mkdir()
    for i in range(10): Image.fromarray(_picture(i)).save(frames / f'{i:03d}.png')
    dst = restore_video(frames, tmp_path / 'out.mp4', model=identity, fps=10, progress=False)
    info = video_info(dst)
    assert (info['frames'], info['fps'], info['width'], info['height'], info['audio']) == (10, 10, W, H, [])
    assert mean_diff([_picture(i) for i in range(10)], decoded(dst)[1]) < 3
    # a folder of PNG frames; frame by frame, the identity gives them back exactly (the temporal filter would blend)
    restore_video(frames, tmp_path / 'restored', model=identity, progress=False, temporal=False)
    assert sorted(p.name for p in (tmp_path / 'restored').iterdir()) == [f'{i:03d}.png' for i in range(10)]
    assert np.array_equal(np.asarray(Image.open(tmp_path / 'restored' / '004.png')), _picture(4))
    Image.fromarray(_picture(0, 32, 32)).save(frames / '100.png')
    with pytest.raises(ValueError, match='100.png: frame is 32x32, the first is 64x48'):
        restore_video(frames, tmp_path / 'out.mp4', model=identity, progress=False)
    assert video_info(dst)['frames'] == 10  # the failed run left the earlier video as it was


def test_video_to_frames(tmp_path, identity):
    src = make_clip(tmp_path / 'in.mp4')
    restore_video(src, tmp_path / 'frames', model=identity, progress=False)
    files = sorted((tmp_path / 'frames').iterdir())
    assert [f.name for f in files] == [f'frame_{i:06d}.png' for i in range(1, N + 1)]
    assert mean_diff(decoded(src)[1], [np.asarray(Image.open(f)) for f in files]) < 1


def test_fps_only_for_frames(tmp_path, identity):
    with pytest.raises(ValueError, match='fps is for a folder of frames'):
        restore_video(make_clip(tmp_path / 'in.mp4'), tmp_path / 'out.mp4', model=identity, fps=30)


def test_video_command(tmp_path, capsys):
    from artifact_removal.cli import main
    src = make_clip(tmp_path / "in.mp4")
    assert main(['video', str(src), str(tmp_path / 'out.mp4'), '--crf', '23']) == 0
    assert 'out.mp4' in capsys.readouterr().out
    assert video_info(tmp_path / 'out.mp4')['frames'] == video_info(src)['frames']
    assert main(['video', str(src), str(src)]) == 2 and 'in.mp4' in capsys.readouterr().err


def test_video_command_temporal_options(tmp_path, capsys):
    "--no-temporal is restore_video(temporal=False), --temporal-weight a TemporalBlend of that weight."
    from artifact_removal.cli import main
    from artifact_removal.temporal import TemporalBlend
    src = make_clip(tmp_path / 'in.mp4')
    runs = {'plain': (['--no-temporal'], False), 'steady': (['--temporal-weight', '0.8'], TemporalBlend(weight=0.8))}
    for name, (flags, temporal) in runs.items():
        assert main(['video', str(src), str(tmp_path / f'cli_{name}')] + flags) == 0
        restore_video(src, tmp_path / f'api_{name}', temporal=temporal, progress=False)
    frames = {d.name: [np.asarray(Image.open(f)) for f in sorted(d.glob('*.png'))] for d in tmp_path.glob('*_*')}
    for name in runs:
        assert len(frames[f'cli_{name}']) == N and all(map(np.array_equal, frames[f'cli_{name}'], frames[f'api_{name}']))
    assert max(np.abs(a.astype(int) - b).max() for a, b in zip(frames['cli_plain'], frames['cli_steady'])) > 0
    assert main(['video', str(src), str(tmp_path / 'bad'), '--temporal-weight', '1.5']) == 2
    assert 'weight' in capsys.readouterr().err
    with pytest.raises(SystemExit):  # argparse: the two flags contradict each other
        main(['video', str(src), str(tmp_path / 'bad'), '--no-temporal', '--temporal-weight', '0.3'])
    assert 'not allowed with' in capsys.readouterr().err and not (tmp_path / 'bad').exists()
