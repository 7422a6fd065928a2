"""fastai DataLoaders of codec frame pairs, made on the fly from still photos, mixed with JPEG pairs.

A video sample is one frame of a short clip (`clips.synthetic_clip`: a camera panning, zooming and turning a little
over the photo) encoded and decoded with random codec settings (`video_degrade.VideoDegradation`: H.264, H.265,
MPEG-4, MPEG-2; I, P or B frame), paired with the clean frame it was made from as 4:2:0 video shows it
(`yuv.as_420`, the pristine clip of the video field), so the pair differs by the codec's damage alone. The rest of the samples are JPEG
pairs as `data.get_pair_dls` makes them, so one model can learn both. Samples are (input, quality, target) like
JPEG pairs, so the same Learners train on them; a video frame carries no JPEG quality, so its label is 0 and only
blind (not quality-aware) models train on these pairs.
"""
import random
import zlib

import numpy as np
from . import _fastai  # noqa: F401  (fastai without its import-time warning)
from fastai.data.all import DataBlock, ItemTransform, delegates, noop
from fastai.torch_core import tensor
from fastai.vision.all import DihedralItem, ImageBlock, PILImage
from PIL import Image

from .clips import CameraMotion, synthetic_clip
from .data import (ImageCache, PILImageInput, Quality, QualityBlock, ToRGB, _folder_splitter, patches_per_image)
from .degrade import JPEGDegradation
from .image_io import find_images
from .video_degrade import VideoDegradation
from .yuv import as_420

__all__ = ['VIDEO_LABEL', 'TRAINING_MOTION', 'ClipPair', 'get_video_pair_dls']

VIDEO_LABEL = 0  # the quality label of a video frame: none (a JPEG's is 1-100)
# camera motion of training clips: wide shots of the photo (up to 2x reduced: SD video's density of detail) to
# close-ups (enlarged 1.4x: the softer detail of upscaled HD), pans up to 6 px a frame
TRAINING_MOTION = CameraMotion(speed=6.0, scale=(0.7, 2.0))


class ClipPair(ItemTransform):
    """Make an (input, quality, target) sample of `size` px from a whole photo: with probability `p_video` a frame of
    a clip of 3 to `max_frames` frames over the photo, compressed by `video`, else a random crop compressed by `jpeg`
    (a `JPEGDegradation`; the crop starts the JPEG grid at its corner, as in `get_pair_dls`). `p_gray` of the
    samples are gray (both sides, before compression). Validation samples (`valid_size` px) are seeded from the
    photo, so every epoch scores the same ones."""
    order = 0
    def __init__(self, size, valid_size=None, p_video=0.5, video=None, jpeg=None, motion=TRAINING_MOTION,
                 max_frames=16, p_gray=0.05):
        super().__init__()
        self.size, self.valid_size = size, valid_size or size
        self.p_video, self.p_gray, self.max_frames, self.motion = p_video, p_gray, max_frames, motion
        self.video, self.jpeg = video or VideoDegradation(), jpeg or JPEGDegradation()

    def __call__(self, b, split_idx=None, **kwargs):
        self.valid = split_idx == 1
        return super().__call__(b, split_idx=split_idx, **kwargs)

    def encodes(self, b):
        img = b[0]
        a = np.asarray(img)
        seed = zlib.crc32(a[::7, ::7].tobytes()) if self.valid else random.getrandbits(64)
        rng = np.random.default_rng(seed)
        size = self.valid_size if self.valid else self.size
        gray = rng.random() < self.p_gray
        if rng.random() < self.p_video:
            frames = synthetic_clip(a, int(rng.integers(3, self.max_frames + 1)), (size, size), rng, self.motion)
            if gray: frames = [np.repeat(np.asarray(Image.fromarray(f).convert('L'))[..., None], 3, 2) for f in frames]
            k = int(rng.integers(len(frames)))
            decoded, _ = self.video(frames, rng)
            x, y, q = Image.fromarray(decoded[k]), Image.fromarray(as_420(frames[k:k + 1])[0]), VIDEO_LABEL
            if gray: x, y = x.convert('L'), y.convert('L')
        else:
            h, w = a.shape[:2]
            top, left = (int(rng.integers(0, h - size + 1)), int(rng.integers(0, w - size + 1))) if not self.valid \
                else ((h - size) // 2, (w - size) // 2)
            y = Image.fromarray(a[top:top + size, left:left + size])
            if gray: y = y.convert('L')
            x, q = self.jpeg(y, rng)
        return PILImageInput(x), Quality(tensor(float(q))), PILImage(y)


@delegates(DataBlock.dataloaders)
def get_video_pair_dls(train, valid, size=128, bs=32, n_patches=16, valid_size=None, p_video=0.5, video=None,
                       jpeg=None, motion=TRAINING_MOTION, max_frames=16, p_gray=0.05, seed=None, **kwargs):
    """DataLoaders of (compressed frame or patch, quality, clean) samples from the photo folder(s) `train`, `p_video`
    of them codec frames (`ClipPair`), scored on the photos of `valid` (one seeded sample of `valid_size` px,
    default `2*size`, per photo). `n_patches` samples per BSDS-sized photo and epoch, as `get_pair_dls`;
    dihedral flips after. `show_batch` draws the input (titled with its quality: 0 for a video frame) beside the
    target."""
    folders = [train] if isinstance(train, (str, bytes)) or hasattr(train, '__fspath__') else list(train)
    train_files = [f for folder in folders for f in find_images(folder)]
    valid_files = find_images(valid)
    valid_size = valid_size or 2 * size
    cache = ImageCache(train_files + valid_files, min_size=int(max(size, valid_size) * 1.15))
    counts = patches_per_image([cache(f) for f in train_files], n_patches)
    items = [f for f, n in zip(train_files, counts) for _ in range(n)] + valid_files
    dblock = DataBlock(blocks=(ImageBlock(PILImageInput), QualityBlock, ImageBlock), n_inp=2,
                       get_items=lambda _: items, getters=[cache, noop, cache],
                       splitter=_folder_splitter(len(items) - len(valid_files)),
                       item_tfms=[ClipPair(size, valid_size, p_video, video, jpeg, motion, max_frames, p_gray),
                                  DihedralItem(), ToRGB()])
    kwargs.setdefault('num_workers', 1)
    return dblock.dataloaders(None, bs=bs, seed=seed, **kwargs)
