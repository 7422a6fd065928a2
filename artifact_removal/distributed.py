"""Restore folders too large for one machine on Ray, resumably.

The driver lists the images and leaves out those the manifest in the output folder records as done; Ray Data
hands the rest, a few files per block, to `Restorer` actors (one per GPU, or one per group of CPUs), which
read, restore and write their files atomically and report each file back; the driver appends every report to
the manifest as it arrives. So a rerun restores only what is missing, changed or failed, an interrupted run
resumes where it stopped, and a corrupt file is recorded with its reason instead of stopping the run.

Ray is an extra (`pip install 'artifact_removal[distributed]'`), imported only when a run starts. Every node
must see SRC and OUT at the same paths (shared storage); the workers check that they do.
"""
import json
import os
import re
import socket
import sys
import time
import warnings
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from .files import atomic_path
from .image_io import ImageReadError
from .registry import sha256sum
from .restore import Restorer, failure_message, images_to_restore, output_path
from .weights import weights_path

__all__ = ['restore_folder_on_ray', 'RaySummary', 'load_manifest', 'MANIFEST']

MANIFEST = 'restore_manifest.jsonl'
_LOCK = '.restore_manifest.lock'
_PART = re.compile(r'^\..+\.part\.[a-z0-9_]{8}(\.[^.]+)?$')  # files.atomic_path's temporary names
_FIELDS = ('file', 'status', 'error', 'size', 'mtime_ns', 'seconds', 'node')
_ray_is_loopback_only = False  # set once this process has imported Ray for a local, 127.0.0.1-only run


@dataclass
class RaySummary:
    "What a run did; `failed` lists (file, reason) of the files not restored: unreadable ones, this run's failures."
    out_dir: Path
    total: int
    restored: int = 0
    skipped: int = 0
    failed: list = field(default_factory=list)
    workers: int = 0
    seconds: float = 0.0
    start_seconds: float = 0.0  # listing, manifest and starting or joining Ray, within `seconds`
    interrupted: bool = False

    @property
    def manifest(self) -> Path: return self.out_dir / MANIFEST

    def __str__(self):
        what = 'interrupted' if self.interrupted else 'done'
        by = f'{self.workers} workers, ' if self.workers else 'nothing left to restore, '
        return (f'{self.out_dir}: {what}: {self.restored} restored, {self.skipped} already done, '
                f'{len(self.failed)} failed, of {self.total} images; {by}{self.seconds:.1f} s '
                f'(manifest: {self.manifest})')


def restore_folder_on_ray(src, out_dir, address=None, num_workers=None, model='default', strength=1.0, ext='png',
                          tile=None, jpeg_quality=95, quality=None, device=None, cpus_per_worker=None,
                          overwrite=False, include_restored=False, progress=True) -> RaySummary:
    """Restore every image under the folder `src` into `out_dir` (same layout, `ext` files) on Ray.

    `address`: None starts a local Ray reachable from this machine only; 'auto' or 'HOST:PORT' joins a cluster
    (a Ray this process already initialised is used as it is). `num_workers`: `Restorer` actors, by default one
    per GPU, else one per `cpus_per_worker` CPUs (default 4, or CPUs / `num_workers`). `model`: a registry name
    or a weights file every node can read. `strength`, `tile`, `jpeg_quality`, `quality`, `overwrite` as in
    `Restorer.restore_file`; `include_restored` as in `images_to_restore`. Rerunning the same call skips what
    `out_dir/restore_manifest.jsonl` records as done (input unchanged, output present) or unreadable (input
    unchanged), and retries other failures; other settings into the same `out_dir` are refused. Ctrl-C stops
    the run with the manifest up to date, prints where it stopped and raises KeyboardInterrupt; no half-written
    file is left.
    """
    t0 = time.perf_counter()
    root, out_dir = Path(src).absolute(), Path(out_dir).absolute()  # workers may run in another folder or node
    if not root.is_dir(): raise ValueError(f'{src}: not a folder (restore_folder_on_ray restores folders)')
    settings = _settings(model, strength, ext, jpeg_quality, quality)
    with _locked(out_dir):
        header, entries = load_manifest(out_dir)
        _check_same_run(header, settings, root, out_dir)
        files = images_to_restore(root, out_dir, include_restored)
        todo, skipped, unreadable = _plan(files, root, out_dir, ext, entries)
        _write_manifest(out_dir, _header(settings, root), entries)  # also drops a line a crash cut short
        _sweep_parts(out_dir)
        summary = RaySummary(out_dir, len(todo) + skipped + len(unreadable), skipped=skipped, failed=unreadable)
        worker = dict(root=str(root), out_dir=str(out_dir), settings=settings, tile=tile, overwrite=overwrite)
        try:
            if todo:
                with closing(_reports(todo, worker, summary, address, num_workers, device, cpus_per_worker, t0)) as r:
                    _record(r, len(todo), entries, summary, progress)
        except KeyboardInterrupt: summary.interrupted = True
        finally:
            _write_manifest(out_dir, _header(settings, root), entries)
            _sweep_parts(out_dir)
    summary.seconds = time.perf_counter() - t0
    if summary.interrupted:
        print(f'\n{summary}\nRun the same command again to resume.', file=sys.stderr)
        raise KeyboardInterrupt
    return summary


def _reports(todo, worker, summary, address, num_workers, device, cpus_per_worker, t0):
    "Start or join Ray, and yield each file's report as its worker sends it back."
    ray, started = _start_ray(address, max(os.cpu_count() or 1, num_workers or 1))
    ctx = ray.data.DataContext.get_current()
    bars, ctx.enable_progress_bars = ctx.enable_progress_bars, False  # ours counts files and failures
    try:
        workers, resources, threads, device = _worker_resources(ray, num_workers, device, cpus_per_worker)
        summary.workers = workers
        ds = _dataset(ray, todo, workers).map_batches(
            _RestoreWorker, batch_format='numpy', batch_size=None, compute=ray.data.ActorPoolStrategy(size=workers),
            fn_constructor_kwargs=dict(worker, device=device, threads=threads), **resources)
        summary.start_seconds = time.perf_counter() - t0
        for batch in ds.iter_batches(batch_size=None, batch_format='numpy'):  # blocks, in the order they finish
            yield from ({k: batch[k][i] for k in _FIELDS} for i in range(len(batch['file'])))
    except ray.exceptions.RayError as e:  # a worker that could not start: its error, not Ray's traceback, says why
        raise RuntimeError(f'the Ray run stopped: {str(e).strip().splitlines()[-1]}') from e
    finally:
        ctx.enable_progress_bars = bars
        if started: ray.shutdown()


def _record(reports, n, entries, summary, progress):
    "Append each report to the manifest as it arrives (flushed: a crash loses at most the line being written)."
    from fastprogress.fastprogress import progress_bar
    pb = progress_bar(reports, total=n) if progress else None  # (made with display=False, it still prints)
    with open(summary.manifest, 'a', encoding='utf-8') as log:
        for report in reports if pb is None else pb:
            entry = _entry(report)
            entries[entry['file']] = entry
            log.write(json.dumps(entry) + '\n'); log.flush()
            if entry['status'] == 'done': summary.restored += 1
            else: summary.failed.append((entry['file'], entry['error']))
            if pb is not None and summary.failed: pb.comment = f'{len(summary.failed)} failed'
    if pb is not None: print()


def load_manifest(out_dir) -> tuple:
    """(header, entries) of `out_dir`'s manifest: the settings of the run that wrote it (None when there is no
    manifest) and the latest report per file. A line cut short by a crash is ignored: that file is redone."""
    path, header, entries = Path(out_dir) / MANIFEST, None, {}
    if not path.exists(): return header, entries
    with open(path, encoding='utf-8') as f:
        for line in f:
            try: rec = json.loads(line)
            except json.JSONDecodeError: continue
            if 'settings' in rec: header = rec
            elif 'file' in rec: entries[rec['file']] = rec
    return header, entries


def _settings(model, strength, ext, jpeg_quality, quality) -> dict:
    "What decides the output files, recorded so that a rerun with other settings cannot mix two kinds of result."
    if not isinstance(model, (str, os.PathLike)):
        raise TypeError('model must be a registry name or a weights file (each Ray worker loads it itself), '
                        f'not {type(model).__name__}')
    return dict(model=str(model), weights_sha256=sha256sum(weights_path(model)), strength=strength, ext=ext,
                jpeg_quality=jpeg_quality, quality=quality)


def _header(settings, root) -> dict:
    now = datetime.now(timezone.utc).isoformat(timespec='seconds')
    return dict(settings=settings, source=str(root.resolve()), updated=now)


def _check_same_run(header, settings, root, out_dir):
    if header is None: return
    old, new = {**header['settings'], 'source': header['source']}, {**settings, 'source': str(root.resolve())}
    diff = ', '.join(f'{k} {old.get(k)!r} -> {v!r}' for k, v in new.items() if old.get(k) != v)
    if diff: raise ValueError(f'{out_dir / MANIFEST} records a run with other settings ({diff}): choose another '
                              'output folder, or delete the manifest to restore everything again')


@contextmanager
def _locked(out_dir):
    "Hold OUT's lock file for the run, so that two runs never write the same manifest."
    import fcntl
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / _LOCK, 'a') as f:
        try: fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RuntimeError(f'{out_dir}: another run is writing into this folder; wait for it to end') from None
        yield


def _plan(files, root, out_dir, ext, entries) -> tuple:
    """(files to restore, relative to `root`; how many are done; (file, reason) of those known to be unreadable).
    A recorded result holds while the input is unchanged and, for one done, the output is there; files that
    failed for another reason (a full disk, a lost node, memory) are tried again."""
    todo, done, unreadable = [], 0, []
    for f in files:
        rel = f.relative_to(root).as_posix()
        e = entries.get(rel)
        if e is None or not _unchanged(f, e): todo.append(rel)
        elif e['status'] == 'done' and output_path(f, out_dir, root, ext).exists(): done += 1
        elif e['status'] == 'unreadable': unreadable.append((rel, e['error']))
        else: todo.append(rel)
    return todo, done, unreadable


def _unchanged(f, entry) -> bool:
    st = f.stat()
    return st.st_size == entry['size'] and st.st_mtime_ns == entry['mtime_ns']


def _write_manifest(out_dir, header, entries):
    "Rewrite the manifest whole and atomically: the header, then one line per file in name order."
    with atomic_path(out_dir / MANIFEST) as tmp, open(tmp, 'w', encoding='utf-8') as f:
        f.write(json.dumps(header) + '\n')
        for k in sorted(entries): f.write(json.dumps(entries[k]) + '\n')


def _sweep_parts(out_dir):
    "Remove temporary files that workers killed mid-write (Ctrl-C, a lost node) left in `out_dir`."
    for folder, _, names in os.walk(out_dir):
        for n in names:
            if _PART.match(n): Path(folder, n).unlink(missing_ok=True)


def _entry(row) -> dict:
    "A worker's report as a manifest line: what a rerun needs to skip it, and the reason when it failed."
    e = dict(file=str(row['file']), status=str(row['status']), size=int(row['size']),
             mtime_ns=int(row['mtime_ns']), seconds=round(float(row['seconds']), 3))
    if e['status'] != 'done': e.update(error=str(row['error']), node=str(row['node']))
    return e


def _dataset(ray, todo, workers):
    """The files to restore in blocks of up to 64: small enough to keep every worker busy to the end and to lose
    little work on Ctrl-C (reports come back per block), large enough to keep Ray's per-block cost negligible."""
    per_block = max(1, min(64, len(todo) // (workers * 4)))
    return ray.data.from_items([{'file': f} for f in todo], override_num_blocks=-(-len(todo) // per_block))


def _worker_resources(ray, num_workers, device, cpus_per_worker) -> tuple:
    """(workers, Ray resources of each, CPU threads of each, device): one worker per GPU when the cluster has
    GPUs (unless `device` is 'cpu'), else groups of `cpus_per_worker` CPUs, each running that many threads."""
    res = ray.cluster_resources()
    gpus, cpus = int(res.get('GPU', 0)), int(res.get('CPU', 1))
    if gpus and device in (None, 'cuda'): return num_workers or gpus, dict(num_gpus=1, num_cpus=1), None, 'cuda'
    if device == 'cuda': raise ValueError("device='cuda' but the Ray cluster has no GPU")
    largest = max(int(n['Resources'].get('CPU', 0)) for n in ray.nodes() if n['Alive'])  # a worker runs on one node
    per = cpus_per_worker or min(largest, max(1, cpus // num_workers) if num_workers else 4)
    return num_workers or max(1, cpus // per), dict(num_cpus=per), per, device or 'cpu'


def _start_ray(address, num_cpus) -> tuple:
    """(ray, whether this call started or joined it): join `address`, or start a local Ray that listens on
    127.0.0.1 only; a Ray the caller already initialised is used as it is."""
    global _ray_is_loopback_only
    if address and _ray_is_loopback_only:
        raise RuntimeError('this process imported Ray for a local run, which makes Ray treat it as a single-machine '
                           'node; join a cluster from a new process')
    local_first = address is None and 'ray' not in sys.modules
    # Ray gives a local node this machine's network address unless told at import that it is not in a cluster
    with _env('RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER', '0' if local_first else None):
        try: import ray
        except ImportError:
            raise ImportError("restoring on Ray needs the extra: pip install 'artifact_removal[distributed]'") from None
        _ray_is_loopback_only |= local_first
        if ray.is_initialized(): return ray, False
        if address: ray.init(address=address, logging_level='warning')
        else:
            ray.init(address='local', num_cpus=num_cpus, include_dashboard=False, _node_ip_address='127.0.0.1',
                     logging_level='warning')
            if ray.util.get_node_ip_address() != '127.0.0.1':
                warnings.warn(f'Ray was imported before this run, so its local node listens on '
                              f'{ray.util.get_node_ip_address()}, not on 127.0.0.1 only')
    return ray, True


@contextmanager
def _env(name, value):
    "Set (or, with None, leave) the environment variable `name` for the block; the processes it starts keep it."
    old = os.environ.get(name)
    if value is not None: os.environ[name] = value
    try: yield
    finally:
        if value is not None:
            if old is None: os.environ.pop(name, None)
            else: os.environ[name] = old


class _RestoreWorker:
    """A Ray actor holding one `Restorer` (not shared between threads): restores each batch of files it is
    given and reports every file, a failure with its reason instead of an exception."""
    def __init__(self, root, out_dir, settings, device, tile, threads, overwrite):
        self.root, self.out_dir, self.settings, self.overwrite = Path(root), Path(out_dir), settings, overwrite
        self.node = socket.gethostname()
        _check_node_sees(self.root, self.out_dir, self.node)
        self.restorer = _create_restorer(settings, device, tile, threads, self.node)

    def __call__(self, batch: dict) -> dict:
        reports = [self.restore(str(f)) for f in batch['file']]
        return {k: np.array([r[k] for r in reports]) for k in _FIELDS}

    def restore(self, file) -> dict:
        s, src = self.settings, self.root / file
        report, t = dict(file=file, status='done', error='', size=-1, mtime_ns=-1, node=self.node), time.perf_counter()
        try:
            st = src.stat()
            report.update(size=st.st_size, mtime_ns=st.st_mtime_ns)
            self.restorer.restore_file(src, output_path(src, self.out_dir, self.root, s['ext']), s['strength'],
                                       overwrite=self.overwrite, jpeg_quality=s['jpeg_quality'], quality=s['quality'])
        except ImageReadError as e: report.update(status='unreadable', error=str(e))  # not retried while unchanged
        except Exception as e:  # one failure among millions must not stop the run: it is reported, and retried
            why = failure_message(src, e) if isinstance(e, (ValueError, OSError)) else f'{src}: {e!r}'
            report.update(status='failed', error=why)
        report['seconds'] = time.perf_counter() - t
        return report


def _check_node_sees(root, out_dir, node):
    "Fail early and clearly on a node that does not share SRC and OUT (the manifest proves it is the same OUT)."
    if not root.is_dir() or not (out_dir / MANIFEST).is_file():
        missing = root if not root.is_dir() else out_dir / MANIFEST
        raise FileNotFoundError(f'{node}: cannot see {missing}: every Ray node needs the input and output '
                                'folders at the same paths (shared storage)')


def _create_restorer(settings, device, tile, threads, node) -> Restorer:
    "This worker's Restorer, refused if its node resolves the model to other weights than the driver did."
    path = weights_path(settings['model'])
    if sha256sum(path) != settings['weights_sha256']:
        raise RuntimeError(f"{node}: model {settings['model']!r} is {path} here, not the weights this run started "
                           'with: install the same artifact_removal on every node, or pass a weights file')
    return Restorer(path, device, tile=tile, threads=threads)
