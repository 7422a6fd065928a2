"""Frames per second of video restoration at 480p and 1080p: the model alone, the temporal filter alone, and
`restore_video` end to end (decode, restore, filter, encode) with and without the filter.

    python benchmarks/video_speed.py [--model NAME] --out docs/benchmarks/video/speed.md

On a shared machine absolute speeds drift with the load, so every figure is also given as a ratio to the model
alone at the same size, measured in the same run (interleaved: model, filter, pipeline, then again, `--repeat`
rounds, medians kept).
"""
import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from artifact_removal.clips import CameraMotion, synthetic_clip  # noqa: E402
from artifact_removal.image_io import load_image  # noqa: E402
from artifact_removal.restore import Restorer  # noqa: E402
from artifact_removal.temporal import TemporalBlend, stabilise  # noqa: E402
from artifact_removal.video import restore_video  # noqa: E402
from artifact_removal.video_degrade import CodecSettings, encode_clip  # noqa: E402

SIZES = {'480p': (854, 480), '1080p': (1920, 1080)}


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--model', default='default')
    p.add_argument('--device', default=None)
    p.add_argument('--photo', default='../shared/data/test/live1_color/parrots.png', help='what the camera looks at')
    p.add_argument('--frames', type=int, nargs=2, default=(12, 6), help='frames at 480p and at 1080p')
    p.add_argument('--repeat', type=int, default=2)
    p.add_argument('--out', default='docs/benchmarks/video/speed.md')
    a = p.parse_args()
    load_before = os.getloadavg()[0]
    restorer = Restorer(a.model, a.device, batch_size=4)
    photo = load_image(a.photo)
    rows = []
    for (label, size), n in zip(SIZES.items(), a.frames):
        frames = synthetic_clip(photo, n, size, np.random.default_rng(0), CameraMotion(scale=(0.4, 0.4)))
        with tempfile.TemporaryDirectory() as tmp:
            src = Path(tmp) / 'in.mkv'
            src.write_bytes(encode_clip(frames, CodecSettings('h264', crf=35)))
            restorer.restore_arrays(frames[:2])  # warm-up (and the ONNX export, once)
            runs = {'model': [], 'filter': [], 'restore_video, temporal': [], 'restore_video, frame by frame': []}
            for _ in range(a.repeat):
                restored = []
                runs['model'].append(timed(lambda: restored.extend(restorer.restore_arrays(frames))))
                runs['filter'].append(timed(lambda: list(stabilise(frames, restored, TemporalBlend()))))
                for name, temporal in (('restore_video, temporal', True), ('restore_video, frame by frame', False)):
                    runs[name].append(timed(lambda: restore_video(src, Path(tmp) / 'out.mkv', restorer, overwrite=True,
                                                                  progress=False, temporal=temporal)))
        fps = {k: n / float(np.median(v)) for k, v in runs.items()}
        for k, v in fps.items(): rows.append(dict(size=label, what=k, fps=v, ratio=v / fps['model'], frames=n))
        print(label, {k: round(v, 3) for k, v in fps.items()}, flush=True)
    lines = [f'Made by `python benchmarks/video_speed.py --model {a.model}` on {platform.machine()} (Restorer '
             f'backend {restorer.backend}, device {restorer.device}): frames per second, median of {a.repeat} '
             'interleaved rounds; the ratio is to the model alone at the same size in the same run. Load average '
             f'{load_before:.1f} at the start, {os.getloadavg()[0]:.1f} at the end, on {os.cpu_count()} cores.', '',
             '| size | what | fps | ratio to the model alone |', '|---|---|---:|---:|']
    lines += [f"| {r['size']} | {r['what']} | {r['fps']:.2f} | {r['ratio']:.2f} |" for r in rows]
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text('\n'.join(lines) + '\n')
    out.with_suffix('.json').write_text(json.dumps(rows, indent=1) + '\n')
    print('\n'.join(lines))


if __name__ == '__main__': main()
