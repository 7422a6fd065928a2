"""The checks a release model must pass beyond the benchmark tables, printed as Markdown and written to a file:

- no harm on smooth content (vector art and rendered wallpapers, 512 px centre crops): PSNR gain over the JPEG
  input at q95, q90, q75, q30 and q10, and the largest mean colour shift of a channel (levels), with the quality
  estimated and, for a quality-aware model, told;
- double JPEG (q30 then q10 on a grid shifted by 4 px, and q10 then q30): gain over the input;
- the quality estimator: its mean error and bias per quality on the test images (OpenCV JPEGs, as arrays, so
  the model cannot read tables), for quality-aware models.

    python benchmarks/release_checks.py --models perceptual fidelity --smooth ../shared/data/smooth/valid \\
        --data ../shared/data/test/live1_color --out docs/benchmarks/release_checks.md
"""
import argparse
import sys
from pathlib import Path

import numpy as np

from artifact_removal.evaluate import centre_crops, opencv_jpeg_rgb, quality_readings, read_reference
from artifact_removal.image_io import find_images
from artifact_removal.metrics import colour_shift, psnr
from artifact_removal.restore import Restorer

SMOOTH_QUALITIES = (95, 90, 75, 30, 10)
ESTIMATOR_QUALITIES = (10, 20, 30, 50, 75, 90, 95)


def _shifted_jpeg(rgb, q, shift=4):
    "JPEG at `q` on a grid moved by `shift` px (pad with the edge, compress, crop back): a re-encoded crop."
    pad = np.pad(rgb, ((shift, 0), (shift, 0), (0, 0)), mode='edge')
    return opencv_jpeg_rgb(pad, q)[shift:, shift:]


def smooth_rows(restorers, folder, size=512) -> list:
    refs = [np.asarray(c) for c in centre_crops(folder, 1000, size)]
    rows = []
    for q in SMOOTH_QUALITIES:
        inputs = [opencv_jpeg_rgb(r, q) for r in refs]
        row = {'quality': q, 'input': np.mean([psnr(r, i) for r, i in zip(refs, inputs)])}
        for name, res in restorers.items():
            told = {'': None, ' told': q} if res.quality_aware else {'': None}  # told: as from a JPEG file's tables
            for suffix, quality in told.items():
                outs = [res.restore_array(i, quality=quality) for i in inputs]
                row[name + suffix] = np.mean([psnr(r, o) for r, o in zip(refs, outs)]) - row['input']
                row[f'{name}{suffix} shift'] = float(np.abs(np.mean([colour_shift(r, o) for r, o in zip(refs, outs)],
                                                                    0)).max())
        rows.append(row)
    return rows


def double_jpeg_rows(restorers, files) -> list:
    refs = [read_reference(f)[..., ::-1] for f in files]
    cases = {'q30 then q10, grid +4 px': lambda r: opencv_jpeg_rgb(_shifted_jpeg(r, 30), 10),
             'q10 then q30, grid +4 px': lambda r: opencv_jpeg_rgb(_shifted_jpeg(r, 10), 30)}
    rows = []
    for case, make in cases.items():
        inputs = [make(r) for r in refs]
        row = {'case': case, 'input': np.mean([psnr(r, i) for r, i in zip(refs, inputs)])}
        for name, res in restorers.items():
            row[name] = np.mean([psnr(r, res.restore_array(i)) for r, i in zip(refs, inputs)]) - row['input']
        rows.append(row)
    return rows


def estimator_rows(restorer, files) -> list:
    return quality_readings(restorer.estimate_quality, [read_reference(f)[..., ::-1] for f in files], ESTIMATOR_QUALITIES)


def table(rows, fmt='.3f') -> str:
    keys = list(rows[0])
    cell = lambda v: format(v, fmt) if isinstance(v, (float, np.floating)) else str(v)
    return '\n'.join(['| ' + ' | '.join(keys) + ' |', '|---|' + '---:|' * (len(keys) - 1)]
                     + ['| ' + ' | '.join(cell(r[k]) for k in keys) + ' |' for r in rows])


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--models', nargs='+', default=['default'])
    p.add_argument('--smooth', required=True, help='folder of smooth images (never trained on)')
    p.add_argument('--data', required=True, help='folder of clean test images for double JPEG and the estimator')
    p.add_argument('--out', help='Markdown file to write')
    a = p.parse_args()
    restorers = {m: Restorer(m, device='cpu') for m in a.models}
    files = find_images(a.data)
    text = [f'`python {" ".join(sys.argv)}`', '',
            f'No harm on smooth content ({a.smooth}, 512 px centre crops): PSNR gain over the JPEG input (dB) and the '
            'largest mean colour shift of a channel (levels), with the quality estimated from the pixels (as for an '
            'array or a PNG) and, for a quality-aware model, told (`told`: as for a JPEG file, whose tables give it).', '', table(smooth_rows(restorers, a.smooth)), '',
            f'Double JPEG on {a.data}: PSNR gain over the input (dB).', '', table(double_jpeg_rows(restorers, files))]
    for name, r in restorers.items():
        if r.quality_aware:
            text += ['', f'Quality estimator of {name} on {a.data} (OpenCV JPEGs given as arrays):', '',
                     table(estimator_rows(r, files), '.1f')]
    print('\n'.join(text))
    if a.out: Path(a.out).write_text('\n'.join(text) + '\n')


if __name__ == '__main__': main()
