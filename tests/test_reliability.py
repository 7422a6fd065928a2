"""Issue 19: a shared restorer under threads, odd folders, odd arrays and tensors, files that claim more than they
hold, full and read-only disks, cut videos, SIGTERM and Ctrl-C. Each test fails on the code before its fix; the
stateless forward, the folder walk and the weights errors were fixed before these tests were written (the thread
test fails at db001ec, before the stateless forward, by 88/255)."""
import errno
import io
import os
import signal
import struct
import sys
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from artifact_removal import files as files_module
from artifact_removal import image_io
from artifact_removal.cli import main
from artifact_removal.image_io import ImageReadError, find_images
from artifact_removal.models import create_generator
from artifact_removal.restore import Restorer, get_restorer, restore_image


def _jpeg_arrays(n=16, seed=0):
    "JPEG-damaged pictures of four sizes (two above one tile of 64 px), as uint8 arrays."
    rng, out = np.random.default_rng(seed), []
    for i in range(n):
        h, w = [(96, 128), (64, 64), (80, 112), (130, 97)][i % 4]
        im = Image.fromarray((rng.random((h // 8, w // 8, 3)) * 255).astype(np.uint8)).resize((w, h), Image.BICUBIC)
        buf = io.BytesIO(); im.save(buf, 'JPEG', quality=15)
        out.append(np.asarray(Image.open(buf)))
    return out


def _concurrent_equals_sequential(restorer, arrays, **kw):
    "The largest difference between 8 threads on one restorer and the same calls one after another."
    call = lambda a: restorer.restore_array(a, **kw)
    sequential = [call(a) for a in arrays]
    with ThreadPoolExecutor(8) as pool:
        for _ in range(2): concurrent = list(pool.map(call, arrays))
    return max(int(np.abs(s.astype(int) - c).max()) for s, c in zip(sequential, concurrent))


@pytest.mark.parametrize('backend', ['torch', 'onnx'])
def test_one_restorer_serves_eight_threads(backend):
    "Before the stateless forward, four threads on the PyTorch backend differed from sequential runs by 88/255."
    if backend == 'onnx': pytest.importorskip('onnxruntime')
    r = Restorer(device='cpu', backend=backend)
    arrays = _jpeg_arrays()
    assert _concurrent_equals_sequential(r, arrays) == 0
    assert _concurrent_equals_sequential(r, arrays[:8], tile=64) == 0  # tiled: many forwards per call


def test_quality_aware_model_serves_eight_threads():
    torch.manual_seed(0)
    m = create_generator('mobilenetv3_small_100').eval()
    with torch.no_grad():
        for p in m.parameters(): p.add_(0.02 * torch.randn_like(p))  # not the identity it starts as
    r = Restorer(m, device='cpu', backend='torch')
    arrays = _jpeg_arrays(8, seed=1)
    assert _concurrent_equals_sequential(r, arrays) == 0
    assert _concurrent_equals_sequential(r, arrays, quality=30) == 0


def test_threads_asking_for_a_restorer_share_one(monkeypatch):
    import artifact_removal.restore as restore
    built = []
    monkeypatch.setattr(restore, 'Restorer', lambda *a, **kw: built.append(a) or time.sleep(0.2) or object())
    restore._cached_restorer.cache_clear()
    try:
        with ThreadPoolExecutor(8) as pool: got = set(map(id, pool.map(lambda _: get_restorer('x', 'cpu'), range(8))))
    finally: restore._cached_restorer.cache_clear()
    assert len(built) == 1 and len(got) == 1


@pytest.fixture(scope='module')
def fast():
    """A small untrained plain CNN (not the identity): what the folder and option tests need, quickly. In fp32: the
    dtype tests compare outputs to 1e-6 (bf16 has its own tests)."""
    torch.manual_seed(0)
    m = create_generator('plain_cnn').eval()
    with torch.no_grad(): m.body[-1].weight.normal_(0, 0.01)
    return Restorer(m, device='cpu', backend='torch', precision='fp32')


def _always(restorer):
    "A stand-in for the `Restorer` class that the command line builds: gives `restorer` whatever it is asked."
    class Always(Restorer):
        def __new__(cls, *a, **kw): return restorer
    return Always


def _picture(path, size=(40, 32), seed=0):
    a = (np.random.default_rng(seed).random((size[1], size[0], 3)) * 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(a).save(path)
    return path


# --- 2. folders

def _tree(root):
    "Five images in three folders, and sub/loop -> .. (before the fix: 205 outputs, 82 levels deep)."
    for name in ('a.png', 'b.png', 'sub/c.png', 'sub/d.png', 'sub/deeper/e.png'): _picture(root / name)
    (root / 'sub' / 'loop').symlink_to('..', target_is_directory=True)
    return root


def test_symlink_loop_visits_each_folder_once(tmp_path, fast):
    src = _tree(tmp_path / 'in')
    assert len(find_images(src)) == 5
    outs = fast(src, out_dir=tmp_path / 'out', progress=False)
    assert sorted(p.relative_to(tmp_path / 'out').as_posix() for p in outs) == [
        'a.png', 'b.png', 'sub/c.png', 'sub/d.png', 'sub/deeper/e.png']


def test_second_run_does_not_restore_its_own_outputs(tmp_path, fast):
    src = _tree(tmp_path / 'in')
    fast(src, out_dir=src / 'clean', progress=False)  # an output folder inside the input folder
    fast(src / 'a.png', out=src / 'a_restored.png')    # and a restoration beside its input, as the CLI writes it
    before = {p: p.stat().st_mtime_ns for p in (src / 'clean').rglob('*.png')}
    again = fast(src, out_dir=src / 'clean', progress=False)
    assert len(again) == 5 and not list((src / 'clean').rglob('*_restored*')) and len(before) == 5
    assert not (src / 'clean' / 'clean').exists()
    assert len(fast(src, out_dir=src / 'clean', progress=False, include_restored=True)) == 11  # when asked


def test_unlistable_folder_is_named_not_silently_skipped(tmp_path, monkeypatch):
    _tree(tmp_path / 'in')
    real_walk = os.walk
    def walk(top, onerror=None, **kw):  # a folder this user may not read (root reads everything, so simulated)
        err = PermissionError(errno.EACCES, 'Permission denied'); err.filename = str(tmp_path / 'in' / 'locked')
        onerror(err)
        yield from real_walk(top, onerror=onerror, **kw)
    monkeypatch.setattr(image_io.os, 'walk', walk)
    with pytest.warns(UserWarning, match='locked: cannot list this folder'): assert len(find_images(tmp_path / 'in')) == 5


def test_pipes_and_broken_links_are_refused_not_waited_on(tmp_path, fast):
    os.mkfifo(tmp_path / 'pipe.png')  # opening it would block until someone writes
    (tmp_path / 'gone.png').symlink_to(tmp_path / 'nothing.png')
    with pytest.raises(ImageReadError, match='pipe.png: not a regular file'): fast(tmp_path / 'pipe.png')
    with pytest.raises(ImageReadError, match='gone.png: a broken link'): fast(tmp_path / 'gone.png')
    with pytest.raises(ValueError, match='empty path'): fast('')


# --- 4. in-memory inputs: written when asked, refused clearly when they cannot be restored

def test_in_memory_images_are_written_to_out(tmp_path, fast):
    a = _jpeg_arrays(1)[0]
    cases = {'pil.png': Image.fromarray(a), 'u8.png': a, 'gray16.png': a[..., 0].astype(np.uint16) * 257,
             'float.tif': a / 255, 'tensor.png': torch.from_numpy(a.copy()).permute(2, 0, 1),
             'rgba.png': np.dstack([a, a[..., :1]])}
    for name, src in cases.items():
        got = fast(src, out=tmp_path / name)
        saved = np.asarray(Image.open(tmp_path / name))
        want = np.asarray(got) if isinstance(got, Image.Image) else got.permute(1, 2, 0).numpy() \
            if isinstance(got, torch.Tensor) else got
        if want.dtype.kind == 'f': want = (want * 255).round().astype(np.uint8)
        assert saved.dtype == want.dtype and np.array_equal(saved, want), name
    for src, why in [(a.astype(np.uint16) * 257, '16 bits for gray only'),
                     (torch.from_numpy(a.copy()).permute(2, 0, 1)[None], 'not one CxHxW image')]:
        with pytest.raises(ValueError, match=why): fast(src, out=tmp_path / 'refused.png')
    with pytest.raises(ValueError, match="unknown image file extension '.xyz'"): fast(a, out=tmp_path / 'refused.xyz')
    assert not list(tmp_path.glob('refused*')) and not list(tmp_path.glob('.*'))


@pytest.mark.parametrize('src,why', [
    (np.full((40, 40, 3), 0.5), None),
    (np.where(np.eye(40)[..., None] > 0, np.nan, 0.5) * np.ones(3), '120 values are NaN or infinite'),
    (np.full((40, 40), np.inf, np.float32), '1600 values are NaN or infinite'),
    (np.full((40, 40, 3), 200.0), 'values run from 200 to 200, but float images are in \\[0, 1\\]'),
    (np.array(3.0), 'expected HxW or HxWxC'),
    (np.zeros((0, 5, 3), np.uint8), 'the image is empty'),
    (np.zeros((8, 8, 3), np.int64), 'expected uint8, uint16 or float'),
    (torch.zeros(3, 8, 8, dtype=torch.int32), 'expected float values in \\[0, 1\\], uint8 or uint16'),
    (torch.zeros(5, 8, 8), 'C in 1..4'),
    (torch.zeros(3, 8), 'expected CxHxW or BxCxHxW'),
])
def test_arrays_and_tensors_refused_by_name(fast, src, why):
    "Every refusal names what it refused (dtype and shape); before the fix NaN came back as NaN without a word."
    if why is None:
        assert np.isfinite(fast(src)).all()
        return
    with pytest.raises(ValueError, match=why) as e: fast(src)
    dtype = str(src.dtype).removeprefix('torch.')
    assert f'{dtype} ' in str(e.value) and str(tuple(src.shape)) in str(e.value)


def test_odd_dtypes_and_layouts_are_taken(fast):
    a = _jpeg_arrays(1)[0]
    ref, ref16 = fast(a / 255), fast(a.astype(np.uint16) * 257)
    for odd, want, tol in [((a.astype(np.uint16) * 257).astype('>u2'), ref16, 0), ((a / 255).astype('>f4'), ref, 1e-6),
                           ((a / 255).astype(np.float16), ref, 4e-3), ((a / 255).astype(np.longdouble), ref, 1e-6),
                           (np.asfortranarray(a / 255), ref, 0)]:
        out = fast(odd)
        assert out.dtype == odd.dtype and out.shape == odd.shape
        assert np.abs(out.astype(np.float64) - want).max() <= tol, odd.dtype
    t = torch.from_numpy(a.copy()).permute(2, 0, 1).float() / 255
    for dtype in (torch.bfloat16, torch.float16):
        out = fast(t[None].to(dtype))
        assert out.dtype == dtype and out.shape == (1, *t.shape)
        assert (out.float()[0] - fast(t)).abs().max() < 0.02
    empty = fast(torch.zeros(0, 3, 8, 8))
    assert empty.shape == (0, 3, 8, 8)
    ga = np.dstack([a[..., 0] / 255, np.linspace(-0.05, 1.05, a.shape[1])[None].repeat(a.shape[0], 0)])
    for dtype in (np.float16, np.float32, np.float64):  # alpha a little outside [0, 1]: clipped as colour is
        out = fast(ga.astype(dtype))
        assert out.dtype == dtype and out.min() >= 0 and out.max() <= 1, dtype
        assert np.array_equal(out[..., 1], np.clip(ga[..., 1].astype(dtype), 0, 1))


def test_other_objects_and_settings_are_refused(fast, tmp_path):
    a = _jpeg_arrays(1)[0]
    for src, what in [([[0.1, 0.2], [0.3, 0.4]], 'a list of list'), (5, 'an int'), (None, 'None'), (b'\x89PNG', 'a bytes')]:
        with pytest.raises(TypeError, match=f'got {what}$'): fast(src)
    for kw, why in [({'strength': float('nan')}, 'strength is in \\[0, 1\\]'), ({'strength': 2}, 'got 2'),
                    ({'tile': 33.5}, 'tile is None'), ({'tile': -1}, 'tile is None'), ({'quality': 0}, 'quality is'),
                    ({'quality': float('nan')}, 'got nan')]:
        with pytest.raises(ValueError, match=why): fast(a, **kw)
        with pytest.raises(ValueError, match=why): fast([_picture(tmp_path / 'x.png')], on_error='skip', **kw)


# --- 5. files that claim more pixels than they hold

def _claims(path, width, height, progressive=False):
    "A valid small JPEG whose header is then made to claim width x height."
    buf = io.BytesIO(); Image.new('RGB', (64, 64), (120, 130, 140)).save(buf, 'JPEG', progressive=progressive)
    b = bytearray(buf.getvalue())
    sof = max(b.find(b'\xff\xc0'), b.find(b'\xff\xc2'))
    struct.pack_into('>HH', b, sof + 5, height, width)
    path.write_bytes(bytes(b))
    return path


@pytest.mark.parametrize('progressive', [False, True])
def test_tiny_file_claiming_a_huge_image_is_refused_before_decoding(tmp_path, fast, progressive):
    "Before: 690 bytes that say 9000x9000 decoded into 81 flat megapixels and restored for minutes."
    src = _claims(tmp_path / 'bomb.jpg', 9000, 9000, progressive)
    start = time.perf_counter()
    with pytest.raises(ImageReadError, match='bomb.jpg: its header says 9000x9000 .* pixels per byte'): fast(src)
    assert time.perf_counter() - start < 5


def test_large_real_photos_are_not_refused(tmp_path):
    "A 6-megapixel photo-like JPEG at quality 10, and a flat one as dense as complete JPEGs get, are read."
    y, x = np.mgrid[:2000, :3000]
    smooth = np.stack([x * 255 // 3000, y * 255 // 2000, (x + y) * 255 // 5000], -1).astype(np.uint8)
    Image.fromarray(smooth).save(tmp_path / 'sky.jpg', quality=10, optimize=True, progressive=True)
    Image.new('L', (3000, 2000), 128).save(tmp_path / 'flat.jpg', quality=10, optimize=True)
    for name in ('sky.jpg', 'flat.jpg'): assert image_io.load_image(tmp_path / name).size == (3000, 2000)
    src = _claims(tmp_path / 'trusted.jpg', 3000, 2000)
    with pytest.raises(ImageReadError, match='MAX_PIXELS_PER_BYTE = None'): image_io.load_image(src)
    old, image_io.MAX_PIXELS_PER_BYTE = image_io.MAX_PIXELS_PER_BYTE, None
    try: assert image_io.load_image(src).size == (3000, 2000)  # trusted: decoded as libjpeg pads it
    finally: image_io.MAX_PIXELS_PER_BYTE = old


# --- 6. full and read-only disks, on the command line

def _no_space_for(monkeypatch, name):
    "Writing a file called `name` fails as on a full disk, after its temporary file was created."
    real_save = Image.Image.save
    def save(im, fp, *a, **kw):
        if Path(str(fp)).name.startswith(f'.{Path(name).stem}.part.'): raise OSError(errno.ENOSPC, 'No space left on device')
        return real_save(im, fp, *a, **kw)
    monkeypatch.setattr(Image.Image, 'save', save)


def _read_only(monkeypatch, folder):
    "Creating files in `folder` fails as on a read-only mount (root ignores permission bits, so simulated)."
    real = files_module.tempfile.mkstemp
    def mkstemp(*a, dir=None, **kw):
        if dir is not None and Path(dir).resolve() == Path(folder).resolve(): raise OSError(errno.EROFS, 'Read-only file system', str(dir))
        return real(*a, dir=dir, **kw)
    monkeypatch.setattr(files_module.tempfile, 'mkstemp', mkstemp)


def test_folder_run_reports_write_errors_per_file_and_goes_on(tmp_path, fast, monkeypatch, capsys):
    import artifact_removal.restore as restore
    monkeypatch.setattr(restore, 'Restorer', _always(fast))
    for name in ('a', 'b', 'c'): _picture(tmp_path / 'in' / f'{name}.png')
    _no_space_for(monkeypatch, 'b.png')
    assert main(['restore', str(tmp_path / 'in'), '-o', str(tmp_path / 'out')]) == 1
    err = capsys.readouterr().err
    assert f"skipped {tmp_path / 'in' / 'b.png'}: cannot write {tmp_path / 'out' / 'b.png'} (No space left on device)" in err
    assert sorted(p.name for p in (tmp_path / 'out').iterdir()) == ['a.png', 'c.png']  # no partial b, no .part file
    assert 'Traceback' not in err and '[Errno' not in err


def test_ctrl_c_in_a_folder_run_says_where_it_stopped(tmp_path, fast, monkeypatch, capsys):
    import artifact_removal.restore as restore
    monkeypatch.setattr(restore, 'Restorer', _always(fast))
    for name in ('a', 'b', 'c'): _picture(tmp_path / 'in' / f'{name}.png')
    real = fast.restore_file
    def restore_file(path, *a, **kw):
        if Path(path).name == 'b.png': raise KeyboardInterrupt
        return real(path, *a, **kw)
    monkeypatch.setattr(fast, 'restore_file', restore_file)
    assert main(['restore', str(tmp_path / 'in'), '-o', str(tmp_path / 'out')]) == 130
    err = capsys.readouterr().err
    assert f"interrupted: stopped at {tmp_path / 'in' / 'b.png'}: 1 of 3 images restored into {tmp_path / 'out'}" in err
    assert 'Traceback' not in err and sorted(p.name for p in (tmp_path / 'out').iterdir()) == ['a.png']


def test_read_only_output_is_a_message_not_a_traceback(tmp_path, fast, monkeypatch, capsys):
    import artifact_removal.restore as restore
    monkeypatch.setattr(restore, 'Restorer', _always(fast))
    src = _picture(tmp_path / 'a.png')
    (tmp_path / 'ro').mkdir(); _read_only(monkeypatch, tmp_path / 'ro')
    assert main(['restore', str(src), '-o', str(tmp_path / 'ro' / 'a.png')]) == 1
    assert f"cannot write {tmp_path / 'ro' / 'a.png'} (Read-only file system)" in capsys.readouterr().err


def test_read_only_video_output_is_a_message_not_a_traceback(tmp_path, fast, monkeypatch, capsys):
    pytest.importorskip('av')
    from test_video import make_clip
    clip = make_clip(tmp_path / 'in.mp4', audio=None)
    (tmp_path / 'ro').mkdir(); _read_only(monkeypatch, tmp_path / 'ro')
    import artifact_removal.video as video
    monkeypatch.setattr(video, 'Restorer', _always(fast))
    assert main(['video', str(clip), str(tmp_path / 'ro' / 'out.mp4')]) == 2
    err = capsys.readouterr().err
    assert f"artifact-removal: error: cannot write {tmp_path / 'ro' / 'out.mp4'} (Read-only file system)" in err
    assert not list((tmp_path / 'ro').iterdir())


# --- 6. videos: cut files, SIGTERM and Ctrl-C (PyAV: the 'video' extra)


def _cut_mp4(path, n=125, keep=61):
    "An MP4 with its index first (faststart), cut right after packet `keep`, as an interrupted download is."
    av = pytest.importorskip('av')
    from test_video import _picture as frame
    whole = path.with_name('whole.mp4')
    with av.open(str(whole), 'w', options={'movflags': 'faststart'}) as out:
        v = out.add_stream('libx264', rate=25); v.width, v.height, v.pix_fmt = 64, 48, 'yuv420p'
        for i in range(n): out.mux(v.encode(av.VideoFrame.from_ndarray(frame(i % 30), format='rgb24')))
        out.mux(v.encode(None))
    with av.open(str(whole)) as c: ends = [p.pos + p.size for p in c.demux(video=0) if p.size]
    path.write_bytes(whole.read_bytes()[:ends[keep - 1]])
    whole.unlink()
    return path


def test_cut_video_is_refused_unless_allowed(tmp_path, fast, capsys, monkeypatch):
    "Before: 61 of 125 frames restored, exit 0, not a word."
    from artifact_removal.video import restore_video, video_info
    src = _cut_mp4(tmp_path / 'cut.mp4')
    with pytest.raises(ValueError, match='cut.mp4: the video ends after 61 of the 125 frames its index announces'):
        restore_video(src, tmp_path / 'out.mp4', model=fast, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ['cut.mp4']
    with pytest.warns(UserWarning, match='ends after 61 of the 125 frames'):
        restore_video(src, tmp_path / 'out.mp4', model=fast, progress=False, allow_truncated=True)
    assert video_info(tmp_path / 'out.mp4')['frames'] == 61
    import artifact_removal.video as video
    monkeypatch.setattr(video, 'Restorer', _always(fast))
    assert main(['video', str(src), str(tmp_path / 'cli.mp4')]) == 2
    assert '--allow-truncated' in capsys.readouterr().err and not (tmp_path / 'cli.mp4').exists()
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        assert main(['video', str(src), str(tmp_path / 'cli.mp4'), '--allow-truncated']) == 0


@pytest.mark.parametrize('sig,code,word', [(signal.SIGTERM, 143, 'terminated'), (signal.SIGINT, 130, 'interrupted')])
def test_signal_mid_video_cleans_up_and_says_where(tmp_path, fast, monkeypatch, capsys, sig, code, word):
    "Before: SIGTERM left a hidden .out.part.*.mp4 behind."
    pytest.importorskip('av')
    from test_video import make_clip
    import artifact_removal.video as video
    src = make_clip(tmp_path / 'in.mp4', n=24)
    calls = []
    def restore_arrays(arrays, *a, **kw):
        calls.append(len(arrays))
        if len(calls) == 3: os.kill(os.getpid(), sig)  # delivered to this (the main) thread at the next bytecode
        return arrays
    monkeypatch.setattr(fast, 'restore_arrays', restore_arrays)
    monkeypatch.setattr(video, 'Restorer', _always(fast))
    before = signal.getsignal(signal.SIGTERM)
    assert main(['video', str(src), str(tmp_path / 'out.mp4'), '--batch-size', '2']) == code
    err = capsys.readouterr().err
    assert f'{word}: stopped at frame ' in err and f'of 24 of {src}; {tmp_path / "out.mp4"} was not written' in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ['in.mp4']
    assert signal.getsignal(signal.SIGTERM) is before  # the command line put the previous handler back


@pytest.mark.slow
def test_sigterm_from_outside_leaves_no_partial_video(tmp_path):
    "The real thing: another process sends SIGTERM to `artifact-removal video` while it encodes."
    pytest.importorskip('av')
    import subprocess
    from test_video import make_clip
    src = make_clip(tmp_path / 'in.mp4', w=320, h=240, n=250, audio=None)
    proc = subprocess.Popen([sys.executable, '-m', 'artifact_removal.cli', 'video', str(src), str(tmp_path / 'out.mp4')],
                            stderr=subprocess.PIPE, text=True, cwd=Path(__file__).parents[1])
    deadline = time.time() + 300
    while not list(tmp_path.glob('.out.part.*')) and proc.poll() is None and time.time() < deadline: time.sleep(0.02)
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    assert 'terminated: stopped at frame' in err and 'Traceback' not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ['in.mp4']


def test_weights_with_wrong_tensor_names_name_the_file(tmp_path):
    "Wrong names raised RuntimeError, other load failures ValueError: now one ValueError naming the file."
    from safetensors.torch import save_file
    from artifact_removal.weights import load_generator, save_generator
    good = save_generator(create_generator('plain_cnn'), tmp_path / 'good.safetensors', 'plain_cnn')
    from safetensors.torch import load_file
    sd = load_file(str(good))
    save_file({('renamed.' + k if i == 0 else k): v for i, (k, v) in enumerate(sd.items())},
              str(tmp_path / 'renamed.safetensors'), metadata={'arch': 'plain_cnn'})
    (tmp_path / 'cut.safetensors').write_bytes(good.read_bytes()[:200])
    for name, why in [('renamed', 'do not fit the plain_cnn generator'), ('cut', 'not a weights file')]:
        with pytest.raises(ValueError, match=why) as e: load_generator(tmp_path / f'{name}.safetensors')
        assert str(tmp_path / f'{name}.safetensors') in str(e.value)
