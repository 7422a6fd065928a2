"""Restoration speed (megapixels per second) and peak memory, printed as a Markdown table.

Rows: the default model through `Restorer` with its CPU default backend (onnxruntime) and with PyTorch (fp32,
channels_last), at 720p and 1080p, and the `mobilenetv3_large_100` config as the reference in the same run
(ratios are what to compare: these machines are noisy). On a GPU, batches of 1080p frames in fp32 and fp16,
the large config beside the default. Then the 50-megapixel case: peak resident memory of a fresh process restoring an 8660x5773 photo with automatic tiling.

    python benchmarks/restore_speed.py [--threads 2] [--repeat 3] [--skip-50mp] [--skip-cpu]
"""
import argparse
import platform
import statistics
import subprocess
import sys
import time

import numpy as np
import torch

from artifact_removal.models import create_generator
from artifact_removal.restore import Restorer


def timed(fn, repeat):
    fn()  # warm-up
    times = []
    for _ in range(repeat):
        t = time.perf_counter(); fn(); times.append(time.perf_counter() - t)
    return statistics.median(times)


def frames(h, w, n=1, seed=0):
    return [np.random.default_rng(seed + i).integers(0, 256, (h, w, 3), dtype=np.uint8) for i in range(n)]


def peak_memory_50mp(tile=None):
    "Peak RSS (GiB) and seconds of a fresh process restoring a 50 MP image (the image itself included)."
    code = f"""
import time, numpy as np
from artifact_removal.restore import Restorer
r = Restorer(device='cpu', tile={tile})
a = np.random.default_rng(0).integers(0, 256, (5773, 8660, 3), dtype=np.uint8)
t = time.perf_counter(); out = r.restore_array(a); s = time.perf_counter() - t
# VmHWM, not ru_maxrss: Linux carries ru_maxrss over exec, so it would report this (large) parent's peak
hwm = next(int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmHWM'))
print(hwm / 2**20, s, r.tile_size(*a.shape[:2]))
"""
    res = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True)
    gib, s, tile = res.stdout.split()
    return float(gib), float(s), int(tile)


def cpu_rows(repeat):
    "The default model with its CPU backend and with PyTorch, and the large config, at 720p and 1080p."
    default = Restorer(device='cpu', tile=0)  # backend 'auto': onnxruntime on the CPU when installed
    restorers = [(f'default ({default.name}), Restorer backend={default.backend}', default),
                 (f'default ({default.name}), Restorer backend=torch', Restorer(device='cpu', tile=0, backend='torch')),
                 ('mobilenetv3_large_100 (reference), backend=torch',
                  Restorer(create_generator('mobilenetv3_large_100'), device='cpu', tile=0, backend='torch'))]
    rows = []
    for size, h, w in (('720p', 720, 1280), ('1080p', 1080, 1920)):
        img, base = frames(h, w)[0], None
        for name, r in restorers:
            mps = h * w / 1e6 / timed(lambda: r.restore_array(img), repeat)
            base = base or mps
            rows.append((name, size, mps, mps / base))
    return rows


def gpu_rows(repeat, batch_size=8):
    "Batches of 1080p frames on the GPU, fp32 and fp16, the large config beside the default (ratio to it)."
    restorers = [('default', Restorer(device='cuda', tile=0, batch_size=batch_size)),
                 ('mobilenetv3_large_100 (reference)',
                  Restorer(create_generator('mobilenetv3_large_100'), device='cuda', tile=0, batch_size=batch_size))]
    batch, rows = frames(1080, 1920, batch_size), []
    for half in (False, True):
        base = None
        for name, r in restorers:
            r.half = half
            def run(): r.restore_arrays(batch); torch.cuda.synchronize()
            mps = batch_size * 1080 * 1920 / 1e6 / timed(run, repeat)
            base = base or mps
            rows.append((f'{name}, CUDA {"fp16" if half else "fp32"}, batch {batch_size}', '1080p', mps, mps / base))
    return rows


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--repeat', type=int, default=3)
    p.add_argument('--skip-50mp', action='store_true')
    p.add_argument('--skip-cpu', action='store_true', help='GPU rows only (on a lent GPU machine)')
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    dev = 'cuda' if torch.cuda.is_available() else 'cpu'
    print(f'{platform.processor() or platform.machine()}, torch {torch.__version__}, {a.threads} threads, '
          f'device {torch.cuda.get_device_name() if dev == "cuda" else "cpu"}\n')
    rows = [] if a.skip_cpu else cpu_rows(a.repeat)
    if dev == 'cuda': rows += gpu_rows(a.repeat)
    print('| model | size | MP/s | ratio to default |\n|---|---|---|---|')
    for r in rows: print(f'| {r[0]} | {r[1]} | {r[2]:.2f} | {r[3]:.2f} |')
    if not a.skip_50mp:
        gib, s, tile = peak_memory_50mp()
        print(f'\n50 MP (8660x5773) on the CPU, automatic tiles of {tile} px: peak memory {gib:.2f} GiB '
              f'(image and result included), {s:.0f} s ({50 / s:.2f} MP/s)')


if __name__ == '__main__': main()
