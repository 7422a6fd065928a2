import os
os.environ.setdefault('HF_HUB_OFFLINE', '1')  # timm must fail fast, not hang, without the network
os.environ.setdefault('MPLBACKEND', 'Agg')
import tempfile
os.environ.setdefault('ARTIFACT_REMOVAL_HOME', tempfile.mkdtemp(prefix='artifact_removal_home_'))  # no writes to ~/.cache

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

SHARED = Path(__file__).resolve().parents[1].parent / 'shared' / 'data'


def synthetic_photo(w, h, seed, flat=False) -> Image.Image:
    """A deterministic stand-in for a photo: smooth colour gradients, hard-edged shapes and (unless `flat`, as in
    vector art) a band-limited texture, so JPEG damage, edges and flat areas all occur."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:h, :w] / max(h, w)
    a = 0.5 + 0.25 * np.sin(rng.uniform(1, 5, 3) * xx[..., None] + rng.uniform(1, 5, 3) * yy[..., None] + rng.uniform(0, 6, 3))
    if not flat:
        noise = rng.normal(0, 1, (h // 4 + 1, w // 4 + 1, 3))
        a += 0.08 * np.asarray(Image.fromarray(((noise + 4) * 32).clip(0, 255).astype(np.uint8)).resize((w, h), Image.BICUBIC), float) / 128 - 0.08
    im = Image.fromarray((a.clip(0, 1) * 255).astype(np.uint8))
    draw = ImageDraw.Draw(im)
    for _ in range(6):
        x0, y0 = int(rng.integers(0, w - 20)), int(rng.integers(0, h - 20))
        box = (x0, y0, x0 + int(rng.integers(10, w // 3)), y0 + int(rng.integers(10, h // 3)))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(box, fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
    return im


def _synthetic_tree(root: Path) -> Path:
    "The layout of ../shared/data, filled with `synthetic_photo`s, for a checkout that has no shared data beside it."
    specs = {'train': [(f'bsds_{i}.jpg', 481, 321, False) for i in range(5)] + [('sunhays_img_001.png', 800, 600, False)],
             'valid': [(f'bsds_{i}.jpg', 481, 321, False) for i in range(100, 104)],
             'smooth/valid': [(f'{i}.png', 600, 520, True) for i in range(2)],
             'test/live1_color': [(f'{i}.png', 480, 360, False) for i in range(4)],
             'test/live1_gray': [(f'{i}.png', 480, 360, False) for i in range(2)]}
    for k, (folder, files) in enumerate(specs.items()):
        (root / folder).mkdir(parents=True)
        for j, (name, w, h, flat) in enumerate(files):
            im = synthetic_photo(w, h, 100 * k + j, flat)
            im = im.convert('L') if folder.endswith('gray') else im
            im.save(root / folder / name, **({'quality': 95} if name.endswith('.jpg') else {}))
    return root


@pytest.fixture(scope='session')
def data_dir(tmp_path_factory):
    "../shared/data when it is beside the checkout, else a synthetic tree with the same layout."
    return SHARED if SHARED.exists() else _synthetic_tree(tmp_path_factory.mktemp('synthetic_data'))


@pytest.fixture(scope='session')
def shared_data():
    "../shared/data itself, for tests of published figures; skipped where it is absent."
    if not SHARED.exists(): pytest.skip(f'{SHARED} not found: the shared data folder sits beside the checkout')
    return SHARED


@pytest.fixture(scope='session')
def mini_train(tmp_path_factory, data_dir):
    "Six training images (five BSDS-sized, one larger Sun-Hays-sized) in a temporary folder."
    d = tmp_path_factory.mktemp('mini_train')
    files = sorted((data_dir / 'train').glob('bsds_*'))[:5] + sorted((data_dir / 'train').glob('sunhays_*'))[:1]
    for f in files: shutil.copy(f, d / f.name)
    return d


@pytest.fixture(scope='session')
def mini_valid(tmp_path_factory, data_dir):
    d = tmp_path_factory.mktemp('mini_valid')
    for f in sorted((data_dir / 'valid').glob('*'))[:3]: shutil.copy(f, d / f.name)
    return d
