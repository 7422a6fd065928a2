"""Clips without a video dataset: a camera moving over a still photo (pans, zooms, small rotations and a little shake),
rendered frame by frame; and clips on disk (a folder of frames or a video file).

`synthetic_clip(image, n_frames, (w, h), rng)` draws a camera path that stays inside the photo for the whole clip
and renders it with bicubic warps (the photo is first reduced with area averaging when the camera looks at it
from further away, so frames do not alias). Frames are HxWx3 uint8 RGB arrays. `make_clips` writes one clip per
image of a folder, as PNG frames: the pristine clips `evaluate_video` encodes and scores.
"""
import math
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .image_io import IMAGE_EXTENSIONS, find_images, load_image

__all__ = ['CameraMotion', 'camera_path', 'render_clip', 'synthetic_clip', 'make_clips', 'clip_sources', 'read_clip']


@dataclass
class CameraMotion:
    """Random camera paths. Per frame: a pan of up to `speed` output pixels in one direction (easing in or out by up
    to `accel`), a zoom of up to `zoom` (relative), a rotation of up to `rotation` degrees, and a shake of `shake`
    pixels (smoothed random steps); the first frame is tilted by up to `tilt` degrees. `scale`: the range of photo
    pixels per frame pixel (log-uniform; above 1 the photo is reduced first, as a wide shot of it would be, below 1
    enlarged). With probability `p_static` the camera stands still (where codecs flicker most)."""
    speed: float = 4.0
    accel: float = 0.05
    zoom: float = 0.006
    rotation: float = 0.15
    tilt: float = 2.0
    shake: float = 0.3
    scale: tuple = (1.0, 1.0)
    p_static: float = 0.1


def _rot(theta):
    c, s = math.cos(theta), math.sin(theta)
    return np.array([[c, -s], [s, c]])


def camera_path(rng: np.random.Generator, n_frames, size, image_size, motion=CameraMotion(), scale=1.0) -> list:
    """`n_frames` 2x3 affine maps from frame pixels to photo pixels for frames of `size` (w, h) over a photo of
    `image_size` (w, h), seen at `scale` photo pixels per frame pixel: every frame lies inside the photo. Motion
    that would leave the photo is halved until it fits (a still camera always fits when the frame does)."""
    (fw, fh), (iw, ih) = size, image_size
    corners = np.array([[-1, -1], [1, -1], [-1, 1], [1, 1]]) * [(fw - 1) / 2, (fh - 1) / 2]
    static = rng.random() < motion.p_static
    direction = rng.uniform(0, 2 * math.pi)
    speed, accel = rng.uniform(0, motion.speed), rng.uniform(-motion.accel, motion.accel)
    zoom, rot = rng.uniform(-motion.zoom, motion.zoom), math.radians(rng.uniform(-motion.rotation, motion.rotation))
    tilt = math.radians(rng.uniform(-motion.tilt, motion.tilt))
    shake = np.cumsum(rng.normal(0, motion.shake, (n_frames, 2)), 0) * 0.5
    t = np.arange(n_frames, dtype=float)
    for attempt in range(8):
        k = 0.0 if static or attempt == 7 else 0.5 ** attempt
        steps = np.maximum(0, speed + accel * t) * k
        travel = np.cumsum(np.concatenate([[0], steps[1:]]))[:, None] * [math.cos(direction), math.sin(direction)]
        s = scale * (1 + zoom * k) ** t
        theta = tilt * (k > 0) + rot * k * t
        offsets = travel * scale + shake * scale * k
        linear = [s_i * _rot(th) for s_i, th in zip(s, theta)]
        reach = np.concatenate([o + corners @ a.T for o, a in zip(offsets, linear)])  # corners relative to the start
        lo, hi = -reach.min(0), np.array([iw - 1, ih - 1]) - reach.max(0)
        if (lo <= hi).all(): break
    else: raise ValueError(f'a {fw}x{fh} frame at scale {scale:g} does not fit in a {iw}x{ih} photo')
    start = lo + rng.random(2) * (hi - lo)
    centre = np.array([(fw - 1) / 2, (fh - 1) / 2])
    return [np.concatenate([a, (start + o - a @ centre)[:, None]], 1) for o, a in zip(offsets, linear)]


def render_clip(image: np.ndarray, path, size) -> list:
    "The frames of `size` (w, h) that the affine maps of `path` (frame pixels -> `image` pixels) see, bicubic."
    flags = cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP
    return [cv2.warpAffine(image, m, tuple(size), flags=flags, borderMode=cv2.BORDER_REFLECT_101) for m in path]


def synthetic_clip(image, n_frames, size, rng: np.random.Generator = None, motion=CameraMotion()) -> list:
    """A clip of `n_frames` frames of `size` (w, h) from a camera moving over `image` (a PIL image or an HxWx3 uint8
    array): `CameraMotion`'s pans, zooms and small rotations, never leaving the photo."""
    rng = np.random.default_rng() if rng is None else rng
    a = np.asarray(image.convert('RGB') if hasattr(image, 'convert') else image)
    lo, hi = motion.scale
    fit = min(a.shape[1] / size[0], a.shape[0] / size[1])  # the widest view of the photo a frame can take
    scale = min(math.exp(rng.uniform(math.log(lo), math.log(hi))), fit * 0.9)
    if scale > 1:  # a wide shot: reduce the photo first (area averaging), then move over it at about 1:1
        a = cv2.resize(a, (round(a.shape[1] / scale), round(a.shape[0] / scale)), interpolation=cv2.INTER_AREA)
        scale = min(1.0, min(a.shape[1] / size[0], a.shape[0] / size[1]) * 0.9)
    path = camera_path(rng, n_frames, size, (a.shape[1], a.shape[0]), motion, scale)
    return render_clip(a, path, size)


def _seed(name, seed) -> int: return zlib.crc32(f'{name}:{seed}'.encode())


def make_clips(images, out, size=(352, 288), n_frames=32, seed=0, motion=CameraMotion()) -> list:
    """One clip per image of the folder `images` (or a list of files) written under `out`, as `out`/STEM/
    frame_000001.png...: the camera path of each seeded from its name and `seed`, so a clip does not depend on
    which other images there are. Images too small for `size` (w, h) are skipped with a warning. Returns the clip
    folders."""
    files = find_images(images) if isinstance(images, (str, Path)) else [Path(f) for f in images]
    written = []
    for f in files:
        img = load_image(f)
        if img.width < size[0] * 1.05 or img.height < size[1] * 1.05:
            warnings.warn(f'{f}: {img.width}x{img.height} is too small for {size[0]}x{size[1]} clips; skipped')
            continue
        frames = synthetic_clip(img, n_frames, size, np.random.default_rng(_seed(f.name, seed)), motion)
        folder = Path(out) / f.stem
        folder.mkdir(parents=True, exist_ok=True)
        for i, a in enumerate(frames, 1): cv2.imwrite(str(folder / f'frame_{i:06d}.png'), a[..., ::-1])
        written.append(folder)
    return written


def clip_sources(folder) -> list:
    "The clips in `folder`: its subfolders holding image files, and its video files, in name order."
    folder = Path(folder)
    if not folder.is_dir(): raise ValueError(f'{folder}: not a folder of clips')
    items = [p for p in sorted(folder.iterdir()) if (p.is_dir() and any(q.suffix.lower() in IMAGE_EXTENSIONS
                                                                          for q in p.iterdir()))
             or (p.is_file() and p.suffix.lower() not in IMAGE_EXTENSIONS and not p.name.startswith('.'))]
    if not items: raise ValueError(f'{folder}: no clips (subfolders of frames, or video files)')
    return items


def read_clip(path, max_frames=None):
    "The frames of a clip, one at a time (HxWx3 uint8 RGB): a folder of image files in name order, or a video file."
    path = Path(path)
    if path.is_dir():
        for f in find_images(path, recurse=False)[:max_frames]: yield np.asarray(load_image(f).convert('RGB'))
        return
    import av
    with av.open(str(path)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if max_frames is not None and i >= max_frames: return
            yield frame.to_ndarray(format='rgb24')
