"""Crops at 2x of what people look at: the JPEG input, each model and the reference, at low qualities, with the
grid measures of each crop in its title. By default LIVE1 `buildings` (colour patches on walls and roof) and two
images with flat areas, at q10 and q20.

    python benchmarks/artifact_crops.py --data ../shared/data/test/live1_color --models perceptual fidelity \\
        --out docs/images/artifact_crops.png
"""
import argparse
from pathlib import Path

import matplotlib
matplotlib.use('Agg')
import matplotlib.pyplot as plt
import numpy as np

from artifact_removal.evaluate import opencv_jpeg, read_reference
from artifact_removal.metrics import chroma_grid, luma_grid
from artifact_removal.restore import Restorer
from artifact_removal.visualize import save_figure

# image -> (y, x) of a crop, on the 16-px grid so the crop's block grid is the image's: a roof and a wall with colour
# patches, a sky, a knitted hat
CROPS = {'buildings.png': (144, 352), 'lighthouse2.png': (32, 288), 'womanhat.png': (64, 208)}


def crop_rows(data, restorers, qualities, size=112):
    "For each image and quality: (title, [input, each model, reference]) crops of `size` px."
    rows = []
    for name, (y, x) in CROPS.items():
        bgr = read_reference(Path(data) / name)
        ref = bgr[..., ::-1]
        for q in qualities:
            jpeg = opencv_jpeg(bgr, q)[..., ::-1]
            images = [jpeg] + [r.restore_array(np.ascontiguousarray(jpeg)) for r in restorers] + [ref]
            rows.append((f'{name[:-4]} q{q}', [im[y:y + size, x:x + size] for im in images]))
    return rows


def plot(rows, titles, path, cell=2.4):
    fig, axs = plt.subplots(len(rows), len(titles), figsize=(cell * len(titles), cell * 1.08 * len(rows)), squeeze=False)
    for r, (label, images) in enumerate(rows):
        for c, im in enumerate(images):
            ax = axs[r, c]
            ax.imshow(im, interpolation='nearest')
            ax.set_title(f'{titles[c] if r == 0 else ""}\nluma {luma_grid(im):.2f} chroma {chroma_grid(im):.2f}'.strip(),
                         fontsize=8)
            ax.set_xticks([]); ax.set_yticks([])
        axs[r, 0].set_ylabel(label, fontsize=9)
    fig.tight_layout()
    return save_figure(fig, path)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--data', required=True, help='LIVE1 colour (the folder with buildings.png)')
    p.add_argument('--models', nargs='+', default=['perceptual', 'fidelity'])
    p.add_argument('--qualities', type=int, nargs='+', default=[10, 20])
    p.add_argument('--out', required=True)
    a = p.parse_args()
    restorers = [Restorer(m, device='cpu') for m in a.models]
    rows = crop_rows(a.data, restorers, a.qualities)
    print(plot(rows, ['JPEG input', *a.models, 'reference'], a.out))


if __name__ == '__main__': main()
