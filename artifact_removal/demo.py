"""See what the library does in one command: save a photo as a low-quality JPEG, restore it, and draw the two side
by side with a zoom on where they differ most (`artifact-removal demo`)."""
from pathlib import Path

import numpy as np
from PIL import Image

from .files import atomic_path
from .image_io import load_image
from .restore import Restorer
from .visualize import plot_before_after

__all__ = ['sample_photo', 'run_demo']


def sample_photo() -> Image.Image:
    "scikit-image's 'coffee' photo (Rachel Michetti, CC0), bundled with scikit-image: no download."
    try: from skimage import data
    except ImportError:
        raise ImportError("the demo's sample photo comes with scikit-image: pip install scikit-image, or pass a "
                          "photo of your own") from None
    return Image.fromarray(data.coffee())


def run_demo(image=None, out='artifact_removal_demo', quality=15, model='default') -> dict:
    """Save `image` (a path; default `sample_photo()`) as a JPEG at `quality` (4:2:0, as cameras and the web save
    them) in the folder `out`, restore that file with `model`, and write the restoration and a before/after figure
    there. Returns their paths and the mean change in levels per pixel."""
    out = Path(out)
    clean = load_image(image) if image else sample_photo()
    jpeg_path, restored_path, figure_path = out / f'input_q{quality}.jpg', out / 'restored.png', out / 'before_after.png'
    with atomic_path(jpeg_path) as tmp: clean.save(tmp, format='JPEG', quality=quality)
    restorer = Restorer(model)
    restored = restorer.restore_file(jpeg_path, restored_path)  # the model reads the file's quality from its tables
    before, after = np.asarray(load_image(jpeg_path)), np.asarray(restored)
    plot_before_after(before, after, path=figure_path, title=f'JPEG at quality {quality} | restored by {restorer.name}')
    return {'input': jpeg_path, 'restored': restored_path, 'figure': figure_path,
            'mean_change': float(np.abs(before.astype(np.float32) - after).mean())}
