"""fastai DataLoaders: clean/compressed patch pairs made on the fly, and real/generated sets for the critic.

Images are decoded once into memory (`ImageCache`), so an epoch of many random patches per image costs only
crops and small JPEG encodes, which one loader worker keeps up with. Crops are taken *before*
compression, so the 8x8 JPEG grid always starts at the patch's top-left corner, as it does at a whole image's.
For super-resolution (an `SRDegradation`) the crop is the target and the input is made from it, `scale` times
smaller, so the small grid is the large one divided by the scale.
"""
import random
import zlib
from pathlib import Path

import numpy as np
from . import _fastai  # noqa: F401  (fastai without its import-time warning)
from fastai.data.all import (CategoryBlock, DataBlock, ItemTransform, L, RandomSplitter, Transform, TransformBlock,
                             delegates, noop, parent_label)
from fastai.torch_core import TensorBase, TensorImage, tensor
from fastai.vision.augment import RandTransform
from fastai.vision.all import DihedralItem, ImageBlock, PILImage, RandomCrop
from fastai.vision.data import dispatch, get_grid
from fastprogress.fastprogress import progress_bar

from .degrade import JPEGDegradation
from .image_io import ImageReadError, find_images, load_image

__all__ = ['PILImageInput', 'ImageCache', 'RandomGray', 'Quality', 'QualityBlock', 'JPEGInput', 'ToRGB',
           'patches_per_image', 'get_pair_dls', 'get_critic_dls']


class PILImageInput(PILImage):
    "The compressed side of a pair: transforms typed on it touch the input only."


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


class Quality(TensorBase):
    """The JPEG quality (1-100, 100: untouched) of a sample's input: what a quality-aware generator is told; 0 marks
    a video codec frame (`video_data`), which has none."""
    def show(self, ctx=None, **kwargs):
        if ctx is not None: ctx.set_title(f'input q{int(self)}' if int(self) else 'codec frame', fontsize=9)
        return ctx


def QualityBlock():
    "The middle block of a pair sample: a placeholder that `JPEGInput` fills with the quality it applied."
    return TransformBlock(type_tfms=lambda _: Quality(tensor(100.)))


class JPEGInput(ItemTransform):
    """Compress the input of an (input, quality, target) sample with `degradation` and record its quality label.

    Training draws fresh damage each time; validation seeds it from the patch's pixels, so every epoch is
    scored on the same inputs.
    """
    order = 3
    def __init__(self, degradation=None):
        super().__init__()
        self.degradation = degradation or JPEGDegradation()

    def __call__(self, b, split_idx=None, **kwargs):
        self.valid = split_idx == 1
        return super().__call__(b, split_idx=split_idx, **kwargs)

    def encodes(self, b):
        x, _, y = b
        seed = zlib.crc32(x.tobytes()) if self.valid else random.getrandbits(64)
        img, q = self.degradation(x, np.random.default_rng(seed))
        return PILImageInput(img), Quality(tensor(float(q))), y


@dispatch
def show_batch(x: tuple, y: TensorImage, samples, ctxs=None, max_n=6, nrows=None, ncols=None, figsize=None, **kwargs):
    "Pair samples side by side: the compressed input titled with its quality, then the clean target."
    if ctxs is None: ctxs = get_grid(min(len(samples), max_n), nrows=nrows, ncols=ncols, figsize=figsize, double=True)
    ctxs[::2] = [q.show(ctx=im.show(ctx=c, **kwargs)) for (im, q, _), c, _ in zip(samples, ctxs[::2], range(max_n))]
    ctxs[1::2] = [t.show(ctx=c, title='target', **kwargs) for (_, _, t), c, _ in zip(samples, ctxs[1::2], range(max_n))]
    return ctxs


class ToRGB(Transform):
    "Back to three channels after the gray samples, so every batch has one shape."
    order = 4
    def encodes(self, x: PILImage): return x if x.mode == 'RGB' else x.convert('RGB')


def _folder_splitter(n_train):
    "Items [0, n_train) train, the rest validate."
    return lambda items: (L(range(n_train)), L(range(n_train, len(items))))


def patches_per_image(files, n_patches, ref_pixels=481 * 321) -> list:
    """Random patches each image gives per epoch: `n_patches` for an image of `ref_pixels` (a BSDS photo),
    scaled with the square root of its area, so a 1920 px wallpaper gives 3.6 times as many as a BSDS photo:
    large images are sampled more, without their many pixels swamping the set."""
    return [max(1, round(n_patches * (a.shape[0] * a.shape[1] / ref_pixels) ** 0.5)) for a in files]


@delegates(DataBlock.dataloaders)
def get_pair_dls(train, valid=None, size=64, bs=32, n_patches=16, valid_size=None, valid_pct=0.1,
                 degradation=None, p_gray=0.1, seed=None, **kwargs):
    """DataLoaders of (compressed patch, quality, clean patch) samples made on the fly from the image folder(s)
    `train`; the first two are the model's inputs.

    Random `size`-px crops, `n_patches` per BSDS-sized image and epoch (more for larger images:
    `patches_per_image`), so a few hundred images give a real epoch; `valid` is a folder scored on one centre
    crop of `valid_size` px per image (default `2*size`), or, when None, `valid_pct` of the training images are
    held out. Augmentation: dihedral flips, `p_gray` gray pairs, then `degradation` (a `JPEGDegradation`) on
    the input only, which also sets the quality. With an `SRDegradation` the inputs are `scale` times smaller than
    the `size`-px targets (both sizes must be multiples of the scale).
    """
    scale = getattr(degradation, 'scale', 1)
    valid_size = valid_size or 2 * size
    for name, s in (('size', size), ('valid_size', valid_size)):
        if s % scale: raise ValueError(f'{name} {s} is not a multiple of the scale {scale}')
    folders = [train] if isinstance(train, (str, Path)) else list(train)
    train_files = [f for folder in folders for f in find_images(folder)]
    if valid is None:
        rng = random.Random(seed)
        files = list(train_files); rng.shuffle(files)
        n_valid = max(1, int(len(files) * valid_pct))
        valid_files, train_files = files[:n_valid], files[n_valid:]
    else: valid_files = find_images(valid)
    cache = ImageCache(train_files + valid_files, min_size=max(size, valid_size))
    counts = patches_per_image([cache(f) for f in train_files], n_patches)
    items = [f for f, n in zip(train_files, counts) for _ in range(n)] + valid_files
    dblock = DataBlock(blocks=(ImageBlock(PILImageInput), QualityBlock, ImageBlock), n_inp=2,
                       get_items=lambda _: items, getters=[cache, noop, cache],
                       splitter=_folder_splitter(len(items) - len(valid_files)),
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
