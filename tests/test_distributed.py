"""Restoring folders on Ray (artifact_removal.distributed): the manifest, the worker, the CLI branch without Ray,
and (slow) real local Ray runs: two workers against the single-process path, a rerun, an interrupted run."""
import importlib.util
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from artifact_removal import distributed as dist
from artifact_removal.cli import main
from artifact_removal.restore import Restorer

needs_ray = pytest.mark.skipif(importlib.util.find_spec('ray') is None,  # find_spec: importing ray here would bind
                               reason="Ray is not installed: pip install -e '.[distributed]'")  # it to the LAN


def _jpegs(data_dir, folder, n, size=(160, 128), sub_every=2):
    "n JPEG crops (quality 20) of the validation images in `folder`, every `sub_every`-th one in sub/."
    files = sorted((data_dir / 'valid').glob('*.jpg'))[:n]
    (folder / 'sub').mkdir(parents=True, exist_ok=True)
    out = []
    for i, f in enumerate(files):
        dst = folder / ('sub' if i % sub_every else '') / f'img{i:02d}.jpg'
        Image.open(f).convert('RGB').crop((0, 0, *size)).save(dst, quality=20)
        out.append(dst)
    return out


def _bad(folder):
    (folder / 'bad.jpg').write_bytes(b'\xff\xd8\xff\xe0 not a JPEG after all')
    return folder / 'bad.jpg'


def _settings(**kw):
    return dist._settings(kw.get('model', 'default'), kw.get('strength', 1.0), 'png', 95, None)


def _worker(src, out, threads=1, settings=None):
    "A worker as a Ray actor would build it, with the manifest its node must see."
    settings = settings or _settings()
    out.mkdir(parents=True, exist_ok=True)
    dist._write_manifest(out, dist._header(settings, src), {})
    return dist._RestoreWorker(str(src), str(out), settings, 'cpu', None, threads, False)


def test_import_does_not_import_ray():
    code = ('import sys, artifact_removal, artifact_removal.distributed, artifact_removal.cli; '
            'print("ray" in sys.modules)')
    res = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True)
    assert res.stdout.strip() == 'False'


def test_without_ray_installed_the_error_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, 'ray', None)
    with pytest.raises(ImportError, match=r"pip install 'artifact_removal\[distributed\]'"): dist._start_ray(None, 1)


def test_worker_restores_like_the_restorer_and_reports_unreadable_files(data_dir, tmp_path):
    src, out = tmp_path / 'src', tmp_path / 'out'
    good = _jpegs(data_dir, src, 2)
    _bad(src); (src / 'empty.png').write_bytes(b'')
    w = _worker(src, out)
    files = [f.relative_to(src).as_posix() for f in good] + ['bad.jpg', 'empty.png']
    reports = w({'file': np.array(files)})
    assert list(reports['status']) == ['done', 'done', 'unreadable', 'unreadable']
    assert str(src / 'bad.jpg') in reports['error'][2] and 'empty file' in reports['error'][3]
    assert reports['size'][0] == good[0].stat().st_size and reports['mtime_ns'][0] == good[0].stat().st_mtime_ns
    ref = Restorer(device='cpu')
    for f in good:
        got = np.asarray(Image.open(out / f.relative_to(src).with_suffix('.png')), dtype=int)
        assert np.abs(got - np.asarray(ref.restore_file(f), dtype=int)).max() <= 1
    assert sorted(p.name for p in out.rglob('*')) == sorted(['sub', 'img00.png', 'img01.png', dist.MANIFEST])


def test_worker_runs_onnxruntime_on_its_own_cpus_only(data_dir, tmp_path):
    "Several workers on one node must not each start a thread per core (the Restorer has no thread setting yet)."
    (tmp_path / 'src').mkdir()
    r = _worker(tmp_path / 'src', tmp_path / 'out', threads=1).restorer
    if r.backend != 'onnx': pytest.skip('onnxruntime is not installed')
    assert r._run.session.get_session_options().intra_op_num_threads == 1


def test_worker_refuses_a_node_without_the_shared_folders(tmp_path):
    (tmp_path / 'src').mkdir()
    with pytest.raises(FileNotFoundError, match='same paths'):  # OUT exists but is not the run's (no manifest)
        dist._RestoreWorker(str(tmp_path / 'src'), str(tmp_path), _settings(), 'cpu', None, 1, False)
    with pytest.raises(FileNotFoundError, match='same paths'):
        _worker(tmp_path / 'elsewhere', tmp_path / 'out')


def test_worker_refuses_other_weights_than_the_driver_chose(tmp_path):
    (tmp_path / 'src').mkdir()
    with pytest.raises(RuntimeError, match='same artifact_removal on every node'):
        _worker(tmp_path / 'src', tmp_path / 'out', settings={**_settings(), 'weights_sha256': '0' * 64})


def test_manifest_keeps_the_latest_report_and_ignores_a_cut_line(tmp_path):
    header = dist._header(_settings(), tmp_path)
    dist._write_manifest(tmp_path, header, {'a.jpg': {'file': 'a.jpg', 'status': 'failed', 'error': 'disk full'}})
    with open(tmp_path / dist.MANIFEST, 'a') as f:
        f.write(json.dumps({'file': 'a.jpg', 'status': 'done'}) + '\n' + '{"file": "b.jpg", "sta')  # killed mid-line
    h, entries = dist.load_manifest(tmp_path)
    assert h['settings'] == header['settings'] and entries == {'a.jpg': {'file': 'a.jpg', 'status': 'done'}}
    assert dist.load_manifest(tmp_path / 'none') == (None, {})


def test_plan_skips_done_and_unreadable_files_while_unchanged(tmp_path):
    src, out = tmp_path / 'src', tmp_path / 'out'
    src.mkdir(); out.mkdir()
    for n in 'abcdef': (src / f'{n}.jpg').write_bytes(n.encode())
    stat = lambda n: dict(size=(src / n).stat().st_size, mtime_ns=(src / n).stat().st_mtime_ns)
    entries = {'a.jpg': dict(file='a.jpg', status='done', **stat('a.jpg')),       # done: skipped
               'b.jpg': dict(file='b.jpg', status='done', **stat('b.jpg')),       # its output was deleted
               'c.jpg': dict(file='c.jpg', status='done', **stat('c.jpg')),       # its input changed since
               'd.jpg': dict(file='d.jpg', status='unreadable', error='d: bad', **stat('d.jpg')),
               'e.jpg': dict(file='e.jpg', status='failed', error='e: disk full', **stat('e.jpg'))}
    (out / 'a.png').write_bytes(b'x'); (out / 'c.png').write_bytes(b'x')
    os.utime(src / 'c.jpg', ns=(0, 10**9))
    todo, done, unreadable = dist._plan(sorted(src.glob('*.jpg')), src, out, 'png', entries)
    assert (todo, done, unreadable) == (['b.jpg', 'c.jpg', 'e.jpg', 'f.jpg'], 1, [('d.jpg', 'd: bad')])


def test_a_rerun_with_nothing_left_starts_no_ray(data_dir, tmp_path, monkeypatch):
    src, out = tmp_path / 'src', tmp_path / 'out'
    files = _jpegs(data_dir, src, 2) + [_bad(src)]
    reports = _worker(src, out)({'file': np.array([f.relative_to(src).as_posix() for f in files])})
    entries = {e['file']: e for e in map(dist._entry, ({k: reports[k][i] for k in dist._FIELDS} for i in range(3)))}
    dist._write_manifest(out, dist._header(_settings(), src), entries)
    monkeypatch.setattr(dist, '_start_ray', lambda *a: pytest.fail('Ray started with nothing to restore'))
    s = dist.restore_folder_on_ray(src, out, progress=False)
    assert (s.restored, s.skipped, s.total) == (0, 2, 3)
    assert [f for f, _ in s.failed] == ['bad.jpg'] and str(src / 'bad.jpg') in s.failed[0][1]


def test_a_rerun_with_other_settings_is_refused_before_ray_starts(tmp_path, monkeypatch):
    src, out = tmp_path / 'src', tmp_path / 'out'
    src.mkdir(); out.mkdir()
    dist._write_manifest(out, dist._header(_settings(strength=0.5), src), {})
    monkeypatch.setattr(dist, '_start_ray', lambda *a: pytest.fail('Ray started'))
    with pytest.raises(ValueError, match=r"strength 0\.5 -> 1\.0.*another output folder"):
        dist.restore_folder_on_ray(src, out, progress=False)


def test_only_one_run_writes_into_a_folder(tmp_path):
    with dist._locked(tmp_path):
        with pytest.raises(RuntimeError, match='another run is writing'):
            with dist._locked(tmp_path): pass


def test_sweep_removes_only_the_temporary_files_of_atomic_writes(tmp_path):
    (tmp_path / 'sub').mkdir()
    keep = [tmp_path / 'a.png', tmp_path / '.hidden.png', tmp_path / 'sub' / 'x.part.png', tmp_path / dist.MANIFEST]
    for f in keep: f.write_bytes(b'x')
    for folder, suffix in ((tmp_path, '.png'), (tmp_path / 'sub', '.jpg'), (tmp_path, '')):  # as atomic_path names them
        os.close(tempfile.mkstemp(dir=folder, prefix='.img.part.', suffix=suffix)[0])
    dist._sweep_parts(tmp_path)
    assert sorted(p for p in tmp_path.rglob('*') if p.is_file()) == sorted(keep)


def test_cli_ray_options_call_the_library(tmp_path, monkeypatch):
    calls = []
    def fake(src, out_dir, address, workers, *args, **kw):
        calls.append((Path(src).name, Path(out_dir), address, workers, kw['device']))
        return dist.RaySummary(Path(out_dir), 3, restored=2, failed=[('x.jpg', f'{src}/x.jpg: not an image')])
    monkeypatch.setattr(dist, 'restore_folder_on_ray', fake)
    for d in ('a', 'b'): (tmp_path / d).mkdir()
    assert main(['restore', str(tmp_path / 'a'), str(tmp_path / 'b'), '-o', str(tmp_path / 'o'), '--ray',
                 '--workers', '2', '--device', 'cpu']) == 1  # a file failed
    assert main(['restore', str(tmp_path / 'a'), '--ray=auto']) == 1
    assert calls == [('a', tmp_path / 'o' / 'a', None, 2, 'cpu'), ('b', tmp_path / 'o' / 'b', None, 2, 'cpu'),
                     ('a', tmp_path / 'a_restored', 'auto', None, None)]


def _loopback(ip): return ip in ('127.0.0.1', '::1', '::ffff:127.0.0.1')


def _listening(pid) -> set:
    "The addresses the process `pid` and its descendants listen on (TCP)."
    import psutil
    found = set()
    try: procs = [psutil.Process(pid)] + psutil.Process(pid).children(recursive=True)
    except psutil.Error: return found
    for p in procs:
        try: found |= {c.laddr.ip for c in p.net_connections('inet') if c.status == psutil.CONN_LISTEN}
        except psutil.Error: pass
    return found


@pytest.mark.slow
@needs_ray
def test_two_local_workers_match_the_single_process_path_and_a_rerun_restores_nothing(data_dir, tmp_path, monkeypatch):
    monkeypatch.setenv('RAY_USAGE_STATS_ENABLED', '0')
    src, out = tmp_path / 'src', tmp_path / 'out'
    good, bad = _jpegs(data_dir, src, 6), _bad(src)
    s = dist.restore_folder_on_ray(src, out, num_workers=2, progress=False)
    assert (s.workers, s.restored, s.skipped, s.total) == (2, 6, 0, 7) and not s.interrupted
    assert [f for f, _ in s.failed] == ['bad.jpg'] and str(bad) in s.failed[0][1]
    ref = Restorer(device='cpu')
    for f in good:
        got = np.asarray(Image.open(out / f.relative_to(src).with_suffix('.png')), dtype=int)
        assert np.abs(got - np.asarray(ref.restore_file(f), dtype=int)).max() <= 1, f
    _, entries = dist.load_manifest(out)
    assert entries['bad.jpg']['status'] == 'unreadable' and sum(e['status'] == 'done' for e in entries.values()) == 6
    assert not [p for p in out.rglob('.*') if p.name != dist._LOCK]
    mtimes = {p: p.stat().st_mtime_ns for p in out.rglob('*.png')}
    monkeypatch.setattr(dist, '_start_ray', lambda *a: pytest.fail('Ray started with nothing to restore'))
    again = dist.restore_folder_on_ray(src, out, num_workers=2, progress=False)
    assert (again.restored, again.skipped, [f for f, _ in again.failed]) == (0, 6, ['bad.jpg'])
    assert {p: p.stat().st_mtime_ns for p in out.rglob('*.png')} == mtimes


@pytest.mark.slow
@needs_ray
def test_an_interrupted_cli_run_resumes_and_listens_on_loopback_only(data_dir, tmp_path):
    src, out = tmp_path / 'src', tmp_path / 'out'
    n = len(_jpegs(data_dir, src, 32, size=(320, 256)))
    cmd = [sys.executable, '-m', 'artifact_removal.cli', 'restore', str(src), '-o', str(out), '--ray', '--workers', '1']
    env = {**os.environ, 'RAY_USAGE_STATS_ENABLED': '0'}
    # its own session, so that the SIGINT reaches Ray's processes too, as Ctrl-C in a terminal does
    p = subprocess.Popen(cmd, env=env, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    listening, done = set(), lambda: sum(e['status'] == 'done' for e in dist.load_manifest(out)[1].values())
    try:
        while done() == 0 and p.poll() is None:
            listening |= _listening(p.pid)
            time.sleep(0.2)
        os.killpg(p.pid, signal.SIGINT)
        _, err = p.communicate(timeout=120)
    finally:
        if p.poll() is None: os.killpg(p.pid, signal.SIGKILL)
    assert p.returncode == 130, err
    assert 'Run the same command again to resume' in err and 'interrupted' in err
    assert listening and all(map(_loopback, listening)), listening
    first = done()
    assert 0 < first < n, 'the run ended before it could be interrupted'
    assert not [q for q in out.rglob('.*') if q.name != dist._LOCK]  # no temporary file left
    kept = {f: (out / f).with_suffix('.png').stat().st_mtime_ns for f, e in dist.load_manifest(out)[1].items()}
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    assert f'{n - first} restored, {first} already done, 0 failed, of {n} images' in res.stdout
    assert {f: (out / f).with_suffix('.png').stat().st_mtime_ns for f in kept} == kept
    assert done() == n


@pytest.mark.slow
@needs_ray
def test_a_worker_that_cannot_start_stops_the_run_with_its_reason(tmp_path, monkeypatch):
    "As on a node without the shared folders: here OUT holds no manifest, which every worker checks for."
    monkeypatch.setenv('RAY_USAGE_STATS_ENABLED', '0')
    (tmp_path / 'src').mkdir()
    worker = dict(root=str(tmp_path / 'src'), out_dir=str(tmp_path), settings=_settings(), tile=None, overwrite=False)
    with pytest.raises(RuntimeError, match=r'the Ray run stopped: FileNotFoundError: .*same paths \(shared storage\)'):
        list(dist._reports(['a.jpg'], worker, dist.RaySummary(tmp_path, 1), None, 1, None, None, time.perf_counter()))
