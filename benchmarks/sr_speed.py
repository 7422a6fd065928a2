"""Super-resolution x2 speed in output megapixels per second, and its peak memory per input pixel.

Rows: the x2 model (`sr2` when registered, else the untrained `mobilenetv3_small_100_sr2`: same cost) through
`Restorer` with onnxruntime and with PyTorch, making 720p and 1080p outputs (640x360 and 960x540 inputs), and the
default artifact-removal model on a 1080p frame in the same run as the reference (ratios are what to compare: this
machine is shared). Then, with --memory, the peak resident memory of fresh processes restoring a 1080p-output frame
whole (the figure `GENERATOR_CONFIGS[...]['bytes_per_pixel']` holds, per input pixel).

    python benchmarks/sr_speed.py [--threads 2] [--repeat 3] [--memory]
"""
import argparse
import os
import platform
import statistics
import subprocess
import sys
import time

import numpy as np
import torch

from artifact_removal.models import create_generator
from artifact_removal.registry import list_models
from artifact_removal.restore import Restorer

ARCH = 'mobilenetv3_small_100_sr2'


def timed(fn, repeat):
    fn()  # warm-up (and the ONNX export of a new graph)
    times = []
    for _ in range(repeat):
        t = time.perf_counter(); fn(); times.append(time.perf_counter() - t)
    return statistics.median(times)


def frame(h, w, seed=0): return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def sr_model(): return 'sr2' if 'sr2' in list_models() else create_generator(ARCH)


def rows(repeat, threads):
    ar = Restorer(device='cpu', tile=0, threads=threads)
    out, img = [], frame(1080, 1920)
    base = 1080 * 1920 / 1e6 / timed(lambda: ar.restore_array(img, quality=50), repeat)
    out.append((f'default ({ar.name}), x1, backend={ar.backend}', '1080p', base, 1.0))
    for backend in ('onnx', 'torch'):
        r = Restorer(sr_model(), device='cpu', tile=0, backend=backend, threads=threads)
        for size, h, w in (('720p', 720, 1280), ('1080p', 1080, 1920)):
            lr = frame(h // 2, w // 2)
            mps = h * w / 1e6 / timed(lambda: r.restore_array(lr, quality=50), repeat)
            out.append((f'{r.name if r.name != "RestorationNet" else ARCH}, x2, backend={backend}', size, mps, mps / base))
    return out


def peak_memory(backend, h=540, w=960):
    "Peak RSS above the loaded model (MiB) of a fresh process restoring an h x w input whole, and per input pixel (B)."
    code = f"""
import numpy as np
from artifact_removal.models import create_generator
from artifact_removal.restore import Restorer
from artifact_removal.registry import list_models
r = Restorer('sr2' if 'sr2' in list_models() else create_generator('{ARCH}'), device='cpu', tile=0, backend='{backend}')
small = np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)
r.restore_array(small, quality=50)  # loaded, graph built
a = np.random.default_rng(0).integers(0, 256, ({h}, {w}, 3), dtype=np.uint8)
rss = lambda key: next(int(l.split()[1]) for l in open('/proc/self/status') if l.startswith(key))
before = rss('VmRSS')
out = r.restore_array(a, quality=50)
print((rss('VmHWM') - before) / 1024)
"""
    res = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True)
    mib = float(res.stdout.split()[-1])
    return mib, mib * 2 ** 20 / (h * w)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--repeat', type=int, default=3)
    p.add_argument('--memory', action='store_true', help='also measure peak memory per input pixel')
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    print(f'{platform.machine()} {platform.processor() or ""}, {os.cpu_count()} cores, torch {torch.__version__}, '
          f'{a.threads} threads, load average {os.getloadavg()[0]:.1f} at the start\n')
    print('| model | output size | output MP/s | ratio to the x1 default at 1080p |\n|---|---|---:|---:|')
    for name, size, mps, ratio in rows(a.repeat, a.threads): print(f'| {name} | {size} | {mps:.2f} | {ratio:.2f} |')
    print(f'\nload average {os.getloadavg()[0]:.1f} at the end')
    if a.memory:
        for backend in ('torch', 'onnx'):
            mib, bpp = peak_memory(backend)
            print(f'peak memory, {backend}, 960x540 input whole: {mib:.0f} MiB above the loaded model, '
                  f'{bpp:.0f} B per input pixel')


if __name__ == '__main__': main()
