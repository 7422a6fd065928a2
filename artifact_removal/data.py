"""fastai DataLoaders: clean/compressed patch pairs made on the fly, and real/generated sets for the critic.

Images are decoded once into memory (`ImageCache`), so an epoch of many random patches per image costs only
crops and small JPEG encodes, which a single worker keeps up with on two cores. Crops are taken *before*
compression, so the 8x8 JPEG grid always starts at the patch's top-left corner, as it does at a whole image's.
"""
import random
import zlib
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps
from fastai.data.all import (CategoryBlock, DataBlock, L, RandomSplitter,
                             Transform, delegates, get_image_files, parent_label)
from fastai.vision.augment import RandTransform
from fastai.vision.all import DihedralItem, ImageBlock, PILImage, RandomCrop
from fastprogress.fastprogress import progress_bar

from .degrade import JPEGDegradation

__all__ = ['ImageReadError', 'PILImageInput', 'load_image', 'find_images', 'ImageCache', 'RandomGray',
           'JPEGInput', 'ToRGB', 'get_pair_dls', 'get_critic_dls']


class ImageReadError(ValueError):
    "An image file that cannot be used, with the file named in the message."


class PILImageInput(PILImage):
    "The compressed side of a pair: transforms typed on it touch the input only."


def load_image(path, mode='RGB', still=False) -> Image.Image:
    """Fully decode `path` (EXIF orientation applied) in `mode` (None: as stored), or raise `ImageReadError`
    naming the file. `still` refuses animations instead of taking their first frame."""
    path = Path(path)
    try:
        with Image.open(path) as im:
            if still and getattr(im, 'n_frames', 1) > 1:
                raise ImageReadError(f'{path}: animated image ({im.n_frames} frames); restore it as a video '
                                     'with restore_video, or save the frame you want as a still image')
            im.load()
            im = ImageOps.exif_transpose(im)
            return im.convert(mode) if mode else im.copy()
    except ImageReadError: raise
    except FileNotFoundError: raise ImageReadError(f'{path}: no such file') from None
    except IsADirectoryError: raise ImageReadError(f'{path}: is a folder, not an image file') from None
    except Image.DecompressionBombError as e:
        raise ImageReadError(f'{path}: {e} Raise PIL.Image.MAX_IMAGE_PIXELS if you trust this file.') from None
    except (OSError, SyntaxError, ValueError) as e:
        size = path.stat().st_size if path.exists() else 0
        why = 'empty file (0 bytes)' if size == 0 else f'not a readable image ({e})'
        raise ImageReadError(f'{path}: {why}') from None


def find_images(path, recurse=True) -> L:
    "The image files under `path`, sorted; a clear error when there are none."
    path = Path(path)
    if not path.exists(): raise FileNotFoundError(f'{path}: no such folder')
    files = get_image_files(path, recurse=recurse) if path.is_dir() else L([path])
    if not files: raise ImageReadError(f'{path}: no image files found')
    return files.sorted()


class ImageCache:
    "Decode each image once, keep it in memory as uint8 RGB, check it is at least `min_size` on each side."
    def __init__(self, files, min_size=0):
        self.arrays = {}
        for f in progress_bar(list(files), leave=False):
            a = np.asarray(load_image(f))
            if min(a.shape[:2]) < min_size:
                raise ImageReadError(f'{f}: image is {a.shape[1]}x{a.shape[0]}, smaller than the {min_size} px crop')
            self.arrays[Path(f)] = a

    def __call__(self, path) -> np.ndarray: return self.arrays[Path(path)]
    def __len__(self): return len(self.arrays)


class RandomGray(RandTransform):
    "Turn input and target gray together with probability `p` (gray photos and scans are common inputs)."
    order = 2
    def __init__(self, p=0.1): super().__init__(p=p)
    def encodes(self, x: PILImage): return x.convert('L')


class JPEGInput(RandTransform):
    """Compress the input side only with `degradation`.

    Training draws fresh damage each time; validation seeds it from the patch's pixels, so every epoch is
    scored on the same inputs.
    """
    order, split_idx = 3, None  # both splits (a RandTransform runs on the training set only by default)
    def __init__(self, degradation=None):
        super().__init__(p=1.)
        self.degradation = degradation or JPEGDegradation()

    def before_call(self, b, split_idx):
        super().before_call(b, split_idx)
        self.split_idx_now = split_idx

    def encodes(self, x: PILImageInput):
        seed = zlib.crc32(x.tobytes()) if self.split_idx_now == 1 else random.getrandbits(64)
        return self.degradation(x, np.random.default_rng(seed))


class ToRGB(Transform):
    "Back to three channels after the gray samples, so every batch has one shape."
    order = 4
    def encodes(self, x: PILImage): return x if x.mode == 'RGB' else x.convert('RGB')


def _folder_splitter(n_train):
    "Items [0, n_train) train, the rest validate."
    return lambda items: (L(range(n_train)), L(range(n_train, len(items))))


@delegates(DataBlock.dataloaders)
def get_pair_dls(train, valid=None, size=64, bs=32, n_patches=16, valid_size=None, valid_pct=0.1,
                 degradation=None, p_gray=0.1, seed=None, **kwargs):
    """DataLoaders of (compressed patch, clean patch) pairs made on the fly from the image folder `train`.

    `n_patches` random `size`-px crops per image and epoch (so a few hundred images give a real epoch);
    `valid` is a folder scored on one centre crop of `valid_size` px per image (default `2*size`), or, when
    None, `valid_pct` of the training images are held out. Augmentation: dihedral flips, `p_gray` gray pairs,
    then `degradation` (a `JPEGDegradation`) on the input only.
    """
    train_files = find_images(train)
    if valid is None:
        rng = random.Random(seed)
        files = list(train_files); rng.shuffle(files)
        n_valid = max(1, int(len(files) * valid_pct))
        valid_files, train_files = L(files[:n_valid]), L(files[n_valid:])
    else: valid_files = find_images(valid)
    valid_size = valid_size or 2 * size
    cache = ImageCache(train_files + valid_files, min_size=max(size, valid_size))
    items = train_files * n_patches + valid_files
    dblock = DataBlock(blocks=(ImageBlock(PILImageInput), ImageBlock),
                       get_items=lambda _: items, get_x=cache, get_y=cache,
                       splitter=_folder_splitter(len(train_files) * n_patches),
                       item_tfms=[_SizedCrop(size, valid_size), DihedralItem(), RandomGray(p_gray),
                                  JPEGInput(degradation), ToRGB()])
    kwargs.setdefault('num_workers', 1)
    return dblock.dataloaders(None, bs=bs, seed=seed, **kwargs)


class _SizedCrop(RandomCrop):
    "Random `size` crop for training, centre `valid_size` crop for validation."
    def __init__(self, size, valid_size):
        super().__init__(size)
        self.train_size, self.valid_size = self.size, RandomCrop(valid_size).size

    def before_call(self, b, split_idx):
        self.size = self.valid_size if split_idx == 1 else self.train_size
        super().before_call(b, split_idx)


@delegates(DataBlock.dataloaders)
def get_critic_dls(path, size=64, bs=32, valid_pct=0.1, seed=None, **kwargs):
    """DataLoaders for critic pretraining from `path`/{generated,clean}: the label is the folder name.

    Stage 2 of the NoGAN recipe writes these folders (`save_generated`).
    """
    # vocab order gives clean=1, generated=0: fastai's GAN losses take the critic's high output as real
    dblock = DataBlock(blocks=(ImageBlock, CategoryBlock(vocab=['generated', 'clean'], sort=False)), get_items=find_images,
                       get_y=parent_label,
                       splitter=RandomSplitter(valid_pct, seed=seed), item_tfms=[RandomCrop(size), DihedralItem()])
    kwargs.setdefault('num_workers', 1)
    return dblock.dataloaders(path, bs=bs, seed=seed, **kwargs)
