"""Restoration speed of the default model on this machine, every path in one run, written to docs/benchmarks/speed.md.

Tables (ratios are what to compare: they come from the same run, repetitions interleaved so a drifting load
favours no row; CPU seconds are the process's, which a loaded machine inflates less than wall time):
- `Restorer.restore_array` on a random uint8 1080p frame, whole (`tile=0`), per CPU backend and precision
  (PyTorch fp32 and bf16 where the CPU has it natively, onnxruntime fp32), the `precision='auto'`,
  `backend='auto'` default marked;
- 512x512: the default `Restorer` against FBCNN's architecture (loaded at run time from
  ../shared/reference/fbcnn, random weights: same cost as trained ones, run as its own test script does:
  fp32, contiguous), and the network alone on a 512x512 tensor per precision and backend;
- on CUDA: batches of 1080p frames per precision; then Ray with 1 and 2 workers (`benchmarks/ray_speed.py`) and the
  peak memory of a fresh process restoring a 50-megapixel photo with automatic tiling.

    python benchmarks/restore_speed.py [--threads 2] [--repeat 3] [--skip-ray] [--skip-50mp] [--no-write]
"""
import argparse
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from importlib.util import find_spec
from pathlib import Path

import numpy as np
import torch

from artifact_removal.precision import autocast, bf16_supported
from artifact_removal.restore import Restorer

ROOT = Path(__file__).resolve().parents[1]
FBCNN_DIR = ROOT.parent / 'shared' / 'reference' / 'fbcnn'
OUT = ROOT / 'docs' / 'benchmarks' / 'speed.md'


def timed(fns: dict, repeat) -> dict:
    """{name: (median wall seconds, mean process CPU seconds)} of each call in `fns`, after a warm-up of each,
    the repetitions interleaved (A B C, A B C, ...)."""
    for fn in fns.values(): fn()
    wall, cpu = {k: [] for k in fns}, {k: [] for k in fns}
    for _ in range(repeat):
        for k, fn in fns.items():
            t, c = time.perf_counter(), time.process_time()
            fn()
            wall[k].append(time.perf_counter() - t); cpu[k].append(time.process_time() - c)
    return {k: (statistics.median(wall[k]), statistics.mean(cpu[k])) for k in fns}


def frame(h, w, seed=0): return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def cpu_restorers(threads) -> dict:
    "The CPU paths: {label: Restorer}, the default first (marked), then each backend and precision it is not."
    default = Restorer(device='cpu', tile=0, threads=threads)
    paths = ([('torch', 'fp32')] + [('torch', 'bf16')] * bf16_supported('cpu')
             + [('onnx', 'fp32')] * bool(find_spec('onnxruntime')))
    out = {f'{default.backend} {default.precision} (default)': default}
    for b, p in paths:
        if (b, p) != (default.backend, default.precision):
            out[f'{b} {p}'] = Restorer(device='cpu', tile=0, backend=b, precision=p, threads=threads)
    return out


def restorer_rows(restorers, size, repeat, quality=50) -> list:
    "(path, MP/s, CPU s per MP, ratio to the first row by wall and by CPU time) of `restore_array` on a `size` frame."
    (h, w), a = size, frame(*size)
    res = timed({k: (lambda r=r: r.restore_array(a, quality=quality)) for k, r in restorers.items()}, repeat)
    mp, (w0, c0) = h * w / 1e6, next(iter(res.values()))
    return [(k, mp / s, c / mp, w0 / s, c0 / c) for k, (s, c) in res.items()]


def load_fbcnn():
    "FBCNN's published colour architecture (71.9 M parameters), from its reference file, never copied here."
    sys.path.insert(0, str(FBCNN_DIR))
    try: from network_fbcnn import FBCNN
    finally: sys.path.remove(str(FBCNN_DIR))
    return FBCNN().eval()


@torch.inference_mode()
def square_rows(restorers, repeat, side=512, fbcnn=True) -> list:
    """(what, seconds, CPU seconds) at `side`x`side`: the default Restorer on a uint8 image, FBCNN, and the default
    network alone on a [0, 1] tensor per precision and backend (channels_last for PyTorch)."""
    net, a = next(r for r in restorers.values() if r.backend == 'torch').model, frame(side, side)  # channels_last
    kw = {'quality': torch.tensor([50.])} if getattr(net, 'quality_aware', False) else {}
    x = (torch.from_numpy(a).permute(2, 0, 1)[None].float() / 255).contiguous()
    xl = x.contiguous(memory_format=torch.channels_last)
    def run(t, precision='fp32'):
        with autocast(precision, 'cpu'): return net(t, **kw)
    fns = {f'Restorer, {k}, uint8 in and out': (lambda r=r: r.restore_array(a, quality=50)) for k, r in restorers.items()}
    if fbcnn: fns['FBCNN (fp32, contiguous, as its test script)'] = lambda m=load_fbcnn(): m(x)
    fns['network alone, torch fp32, channels_last'] = lambda: run(xl)
    if bf16_supported('cpu'): fns['network alone, torch bf16, channels_last'] = lambda: run(xl, 'bf16')
    onnx = next((r for r in restorers.values() if r.backend == 'onnx'), None)
    if onnx is not None: fns['network alone, onnxruntime fp32'] = lambda: onnx._run(x, **kw)
    return [(k, s, c) for k, (s, c) in timed(fns, repeat).items()]


def gpu_rows(repeat, batch_size=8) -> list:
    "(precision, MP/s) of batches of 1080p frames through `Restorer.restore_arrays` on CUDA, copies included."
    batch, rows = [frame(1080, 1920, i) for i in range(batch_size)], []
    for p in ['fp32', 'fp16'] + ['bf16'] * bf16_supported('cuda'):
        r = Restorer(device='cuda', tile=0, batch_size=batch_size, precision=p)
        def run(): r.restore_arrays(batch, qualities=[50] * batch_size); torch.cuda.synchronize()
        rows.append((f'CUDA {p}, batch {batch_size}', batch_size * 1080 * 1920 / 1e6 / timed({p: run}, repeat)[p][0]))
    return rows


def peak_memory_50mp() -> tuple:
    "Peak RSS (GiB), seconds and tile of a fresh process restoring a 50 MP image (the image itself included)."
    code = """
import time, numpy as np
from artifact_removal.restore import Restorer
r = Restorer(device='cpu')
a = np.random.default_rng(0).integers(0, 256, (5773, 8660, 3), dtype=np.uint8)
t = time.perf_counter(); out = r.restore_array(a); s = time.perf_counter() - t
# VmHWM, not ru_maxrss: Linux carries ru_maxrss over exec, so it would report this (large) parent's peak
hwm = next(int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmHWM'))
print(hwm / 2**20, s, r.tile_size(*a.shape[:2]))
"""
    gib, s, tile = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True).stdout.split()
    return float(gib), float(s), int(tile)


def table(header, rows, fmt) -> str:
    lines = ['| ' + ' | '.join(header) + ' |', '|---' + '|---:' * (len(header) - 1) + '|']
    return '\n'.join(lines + ['| ' + ' | '.join(f.format(v) for f, v in zip(fmt, r)) + ' |' for r in rows])


def load() -> str: return ' '.join(f'{x:.1f}' for x in os.getloadavg())


def report(a) -> str:
    "The whole report as Markdown, each part printed as it is measured."
    parts = []
    def say(text): print(text + '\n', flush=True); parts.append(text)
    say(f'`{shlex.join(["python", "benchmarks/restore_speed.py", *sys.argv[1:]])}` on {platform.machine()} '
        f'{platform.processor() or ""}, {os.cpu_count()} CPUs, {a.threads} threads, bf16 native: {bf16_supported("cpu")}, '
        f'torch {torch.__version__}, {torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU"}; '
        f'load average {load()} at the start')
    restorers = cpu_restorers(a.threads)
    h, w = a.frame
    say(f'`Restorer.restore_array` on a random uint8 {w}x{h} frame, whole, quality given (median wall time of '
        f'{a.repeat} after a warm-up; CPU s per MP: mean process CPU time):\n\n' + table(
            ['CPU path', 'MP/s', 'CPU s per MP', 'speed vs default (wall)', 'speed vs default (CPU)'],
            restorer_rows(restorers, a.frame, a.repeat), ['{}', '{:.2f}', '{:.2f}', '{:.2f}', '{:.2f}']))
    rows = square_rows(restorers, a.repeat, a.square, not a.skip_fbcnn)
    base = rows[0]
    say(f'{a.square}x{a.square}, seconds per image (FBCNN-relative speed: its time over each row\'s):\n\n' + table(
        ['what', 's', 'CPU s', 'speed vs default (wall)'] + ['FBCNN s / this s (wall, CPU)'] * (not a.skip_fbcnn),
        [(k, s, c, base[1] / s) + ((_fbcnn_ratio(rows, s, c),) if not a.skip_fbcnn else ()) for k, s, c in rows],
        ['{}', '{:.3f}', '{:.3f}', '{:.2f}', '{}']))
    if torch.cuda.is_available():
        say('CUDA, 1080p batches, uint8 in and out, host-device copies included:\n\n' +
            table(['path', 'MP/s'], gpu_rows(a.repeat), ['{}', '{:.2f}']))
    if not a.skip_ray:
        sys.path.insert(0, str(ROOT / 'benchmarks'))
        from ray_speed import markdown, ray_speed_rows
        say(f'Ray, a folder of {a.ray_limit} validation images (`benchmarks/ray_speed.py`):\n\n' +
            markdown(ray_speed_rows(limit=a.ray_limit)))
    if not a.skip_50mp:
        gib, s, tile = peak_memory_50mp()
        say(f'50 MP (8660x5773) on the CPU, automatic tiles of {tile} px: peak memory {gib:.2f} GiB (VmHWM of a '
            f'fresh process, image and result included), {s:.0f} s ({50 / s:.2f} MP/s)')
    say(f'Load average {load()} at the end (above 0.5 the machine was shared: compare ratios, not figures).')
    return '\n\n'.join(parts) + '\n'


def _fbcnn_ratio(rows, s, c) -> str:
    _, fs, fc = next(r for r in rows if r[0].startswith('FBCNN'))
    return f'{fs / s:.1f}x, {fc / c:.1f}x'


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--repeat', type=int, default=3)
    p.add_argument('--frame', type=int, nargs=2, default=(1080, 1920), metavar=('H', 'W'), help='frame of the first table')
    p.add_argument('--square', type=int, default=512, help='side of the FBCNN comparison')
    p.add_argument('--skip-fbcnn', action='store_true')
    p.add_argument('--skip-ray', action='store_true')
    p.add_argument('--ray-limit', type=int, default=20, help='images of ../shared/data/valid for the Ray rows')
    p.add_argument('--skip-50mp', action='store_true')
    p.add_argument('--no-write', action='store_true', help=f'print only; by default also write {OUT.relative_to(ROOT)}')
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    text = report(a)
    if not a.no_write: OUT.write_text('# Speed and memory\n\nWritten by `benchmarks/restore_speed.py`: ' + text)


if __name__ == '__main__': main()
