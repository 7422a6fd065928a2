"""Ablation of the temporal filter on validation clips: which blend, how strong, how tolerant, which flow.

    python benchmarks/video_temporal_ablation.py --model models/video.safetensors --out docs/benchmarks/video/ablation

Clips come from `valid/` photos (never the test images): `--clips` clips of `--frames` frames at 320x240, each
encoded at H.264 CRF 18, 30, 35, 40 and H.265 QP 37. The model restores every frame once; each variant of
`TemporalBlend` then runs on the same single-frame results, so the rows differ only by the filter. Per setting and
variant: PSNR gain over the input, warping error (along the reference's flow, x1e-3), temporal-difference error and
the filter's own time per frame. Writes ablation.md and ablation.json in `--out`.
"""
import argparse
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from artifact_removal.clips import synthetic_clip  # noqa: E402
from artifact_removal.evaluate_video import VIDEO_SETTINGS  # noqa: E402
from artifact_removal.image_io import find_images, load_image  # noqa: E402
from artifact_removal.metrics import clip_flows, psnr, temporal_difference_error, warping_error  # noqa: E402
from artifact_removal.restore import Restorer  # noqa: E402
from artifact_removal.temporal import TemporalBlend, stabilise  # noqa: E402
from artifact_removal.video_degrade import codec_compress  # noqa: E402
from artifact_removal.yuv import as_420  # noqa: E402

VARIANTS = {
    'frame by frame': None,
    'output, a=0.5, s=8 (default)': TemporalBlend(),
    'output, a=0.3': TemporalBlend(weight=0.3),
    'output, a=0.7': TemporalBlend(weight=0.7),
    'output, s=4': TemporalBlend(sigma=4.0),
    'output, s=16': TemporalBlend(sigma=16.0),
    'output, no lowpass': TemporalBlend(lowpass=0.0),
    'output, 2 frames (not recursive)': TemporalBlend(recursive=False),
    'output, ultrafast flow': TemporalBlend(flow_preset='ultrafast'),
    'output, medium flow': TemporalBlend(flow_preset='medium'),
    'correction, a=0.5': TemporalBlend(mode='correction'),
    'correction, a=0.7': TemporalBlend(mode='correction', weight=0.7),
}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--model', default='default')
    p.add_argument('--valid', default='../shared/data/valid')
    p.add_argument('--clips', type=int, default=12)
    p.add_argument('--frames', type=int, default=24)
    p.add_argument('--out', default='docs/benchmarks/video/ablation')
    p.add_argument('--variants', nargs='*', help='names of VARIANTS to run (default: all)')
    a = p.parse_args()
    variants = {k: v for k, v in VARIANTS.items() if not a.variants or k in a.variants}
    restorer = Restorer(a.model, 'cpu')
    files = find_images(a.valid)[::max(1, len(find_images(a.valid)) // a.clips)][:a.clips]
    acc = {}  # (setting, variant) -> lists of per-clip scores
    t0 = time.time()
    for i, f in enumerate(files):
        ref = as_420(synthetic_clip(load_image(f), a.frames, (320, 240), np.random.default_rng(1000 + i)))
        flow = clip_flows(ref)
        for name, settings in VIDEO_SETTINGS.items():
            x = codec_compress(ref, settings)
            y = restorer.restore_arrays(x)
            base = np.mean([psnr(r, o) for r, o in zip(ref, x)])
            rows = {'input': (x, 0.0)}
            for v, blend in variants.items():
                t = time.perf_counter()
                o = y if blend is None else list(stabilise(x, y, blend))
                rows[v] = (o, (time.perf_counter() - t) / len(x))
            for v, (o, sec) in rows.items():
                d = acc.setdefault((name, v), {'d_psnr': [], 'warp_error': [], 'tde': [], 'ms': []})
                d['d_psnr'].append(np.mean([psnr(r, q) for r, q in zip(ref, o)]) - base)
                d['warp_error'].append(1e3 * warping_error(o, flow))
                d['tde'].append(temporal_difference_error(o, ref))
                d['ms'].append(1e3 * sec)
        print(f'{i + 1}/{len(files)} clips, {time.time() - t0:.0f} s', flush=True)
    rows = [dict(setting=s, variant=v, **{k: float(np.mean(x)) for k, x in d.items()}) for (s, v), d in acc.items()]
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    record = {'model': str(a.model), 'clips': len(files), 'frames': a.frames, 'rows': rows,
              'variants': {k: asdict(v) if v else None for k, v in variants.items()}}
    (out / 'ablation.json').write_text(json.dumps(record, indent=1) + '\n')
    lines = [f'Temporal filter ablation: model `{a.model}`, {len(files)} clips of {a.frames} frames (320x240) from '
             f'{a.valid}, made by `python benchmarks/video_temporal_ablation.py --model {a.model}`.', '',
             '| setting | variant | ΔPSNR (dB) | warping error (x1e-3) | TDE (levels) | filter ms/frame |',
             '|---|---|---:|---:|---:|---:|']
    lines += [f"| {r['setting']} | {r['variant']} | {r['d_psnr']:+.3f} | {r['warp_error']:.3f} | {r['tde']:.3f} | "
              f"{r['ms']:.1f} |" for r in rows]
    (out / 'ablation.md').write_text('\n'.join(lines) + '\n')
    print('\n'.join(lines))


if __name__ == '__main__': main()
