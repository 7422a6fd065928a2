"""Restoring a folder on Ray with 1 and 2 local workers, beside the single-process path in the same run.

Each Ray row is one `restore_folder_on_ray` call into an empty folder: it starts a local Ray, its workers load
the model, restore every image (read, restore, atomic write, manifest) and Ray is stopped; 'wall' counts all of
it. 'restoring' is the workers' time on the files alone (the per-file times of the manifest, summed over the
workers and divided by their number), so it leaves out Ray's start and the model loading. The reference row is
a plain `Restorer.restore_file` loop over the same files in this process (model loading in its wall time).
Ratios to the reference are what to compare on a shared machine.

    python benchmarks/ray_speed.py [--data ../shared/data/valid] [--workers 1 2] [--limit N] [--repeat 2]
"""
import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

from PIL import Image

from artifact_removal.distributed import load_manifest, restore_folder_on_ray
from artifact_removal.image_io import find_images
from artifact_removal.restore import Restorer, output_path

DATA = Path(__file__).resolve().parents[2] / 'shared' / 'data' / 'valid'


def megapixels(files) -> float:
    def pixels(f):
        with Image.open(f) as im: return im.width * im.height
    return sum(map(pixels, files)) / 1e6


def reference_row(folder, files, mp) -> dict:
    "The single-process path: one Restorer (its default threads: every core), a loop of restore_file."
    with tempfile.TemporaryDirectory() as out:
        t = time.perf_counter()
        r, busy = Restorer(device='cpu'), 0.0
        for f in files:
            s = time.perf_counter()
            r.restore_file(f, output_path(f, out, folder))
            busy += time.perf_counter() - s
        return dict(name=f'single process, Restorer backend={r.backend}', workers=1, images=len(files), mp=mp,
                    wall=time.perf_counter() - t, restoring=busy)


def ray_row(folder, files, mp, workers) -> dict:
    "One local Ray run with `workers` workers of CPUs / workers threads each."
    with tempfile.TemporaryDirectory() as out:
        s = restore_folder_on_ray(folder, out, num_workers=workers, progress=False)
        if s.restored != len(files): raise RuntimeError(f'Ray restored {s.restored} of {len(files)} images: {s.failed}')
        busy = sum(e['seconds'] for e in load_manifest(out)[1].values()) / workers
        return dict(name=f'Ray, local, {workers} worker{"s" * (workers > 1)}', workers=workers, images=len(files),
                    mp=mp, wall=s.seconds, restoring=busy, start=s.start_seconds)


def ray_speed_rows(folder=DATA, workers=(1, 2), limit=None, repeat=1) -> list:
    """The reference row, then one row per worker count, on the images of `folder`, all in this run; with `repeat`
    the runs go forth and back (ABC CBA ...) and the times are averaged, so a load that drifts favours none.
    `limit` takes the first N images, linked (not copied) into a temporary folder that is restored instead."""
    folder = Path(folder)
    files = find_images(folder)[:limit]
    with tempfile.TemporaryDirectory() as tmp:
        if limit:
            for f in files: os.symlink(f.resolve(), Path(tmp) / f.name)
            folder, files = Path(tmp), find_images(tmp)
        mp = megapixels(files)
        runs = [lambda: reference_row(folder, files, mp)] + [lambda n=n: ray_row(folder, files, mp, n) for n in workers]
        passes = [[run() for run in (runs if i % 2 == 0 else runs[::-1])] for i in range(repeat)]
    rows = [_mean([p[j] if i % 2 == 0 else p[-1 - j] for i, p in enumerate(passes)]) for j in range(len(runs))]
    ref = rows[0]
    for r in rows: r.update(ratio_wall=ref['wall'] / r['wall'], ratio_restoring=ref['restoring'] / r['restoring'])
    return rows


def _mean(rows) -> dict:
    return {k: sum(r[k] for r in rows) / len(rows) if isinstance(v, float) else v for k, v in rows[0].items()}


def markdown(rows) -> str:
    lines = ['| run | images | MP | wall s | MP/s (wall) | restoring s | MP/s (restoring) | speed vs single (wall) '
             '| speed vs single (restoring) |', '|---|---:|---:|---:|---:|---:|---:|---:|---:|']
    for r in rows:
        lines.append(f"| {r['name']} | {r['images']} | {r['mp']:.1f} | {r['wall']:.1f} | {r['mp'] / r['wall']:.2f} | "
                     f"{r['restoring']:.1f} | {r['mp'] / r['restoring']:.2f} | {r['ratio_wall']:.2f} | "
                     f"{r['ratio_restoring']:.2f} |")
    return '\n'.join(lines)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--data', default=str(DATA), help='folder of images (default: the 100 validation crops)')
    p.add_argument('--workers', type=int, nargs='+', default=[1, 2])
    p.add_argument('--limit', type=int, default=None, help='only the first N images')
    p.add_argument('--repeat', type=int, default=1, help='passes, forth and back, averaged')
    a = p.parse_args()
    os.environ.setdefault('RAY_USAGE_STATS_ENABLED', '0')
    print(f'{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, load average '
          f'{" ".join(f"{x:.1f}" for x in os.getloadavg())} at the start\n')
    rows = ray_speed_rows(a.data, a.workers, a.limit, a.repeat)
    print(markdown(rows) + '\n')
    for r in rows[1:]: print(f"{r['name']}: starting Ray and listing took {r['start']:.1f} s of the wall time")
    print(f'\nload average {" ".join(f"{x:.1f}" for x in os.getloadavg())} at the end')


if __name__ == '__main__': main()
