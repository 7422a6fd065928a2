"""Temporal consistency for frame-by-frame restoration: a flow-guided recursive blend, one frame of state.

A single-frame model restores each frame on its own, so what it adds or removes can change from one frame to the
next (flicker), and the codec's own frame-to-frame noise (a sharper I-frame, then blurrier P and B frames) stays.
`TemporalFilter` follows the motion: the previous result is warped onto the current frame by optical flow (OpenCV's
DIS, computed on the restored frames) and blended in where the warp is trusted. Trust falls off with how different
the warped previous frame is from the current one (a gaussian of their locally averaged luma difference, `sigma`
levels), so occlusions, pixels that come into view, scene cuts and flow failures keep the single-frame result.

`mode='output'` blends the restored frames themselves (a recursive filter along the motion: o_t = y_t + a m
D(warp(o_t-1) - y_t), with `weight` a, trust m and D the detail of a difference, its local mean removed so that
fades and brightness changes pass at once), which steadies the codec's flicker too; `mode='correction'` blends
only the model's correction (o_t = x_t + c'_t, c'_t = c_t + a m D(warp(c'_t-1) - c_t)), which steadies what the
model adds but leaves the input's own flicker. docs/video.md has the ablation that chose the defaults.

It keeps the previous restored frame's luma and its result (or correction), so a video streams through it in
constant memory. Frames are HxWxC (or HxW) uint8, uint16 or float arrays; the result has the dtype of the restored
frame.
"""
from dataclasses import dataclass

import cv2
import numpy as np

from .metrics import optical_flow, warp

__all__ = ['TemporalBlend', 'TemporalFilter', 'stabilise']


@dataclass(frozen=True)
class TemporalBlend:
    """Settings of `TemporalFilter`. `mode`: 'output' or 'correction'; `weight`: how much of the warped previous
    result a fully trusted pixel takes (0: frame by frame); `sigma`: the luma difference (levels of 255, averaged over
    `window` px) at which trust has fallen to 1/e; `lowpass`: the blend carries over only detail, the difference
    less its gaussian blur of this many px (over trusted pixels), so fades and brightness changes pass at once (0:
    everything); `recursive`: blend with the previous *result* (a recursive filter over many frames) or, False, with
    the previous single-frame restoration only; `flow_preset`: DIS preset ('ultrafast', 'fast', 'medium'), run on
    frames reduced to at most `flow_size` px on their longer side; below `min_trust` mean trust the frame is taken
    as a scene cut and kept as it is."""
    mode: str = 'output'
    weight: float = 0.5
    sigma: float = 8.0
    window: int = 7
    lowpass: float = 8.0
    recursive: bool = True
    flow_preset: str = 'fast'
    flow_size: int = 960
    min_trust: float = 0.2

    def __post_init__(self):
        if self.mode not in ('output', 'correction'):
            raise ValueError(f"mode is 'output' or 'correction', not {self.mode!r}")
        if not 0 <= self.weight < 1: raise ValueError(f'weight is in [0, 1), got {self.weight}')
        if self.sigma <= 0 or self.window < 1: raise ValueError('sigma and window must be positive')


def _as_float(a) -> np.ndarray:
    "A frame on the 0-255 scale, float32, HxWxC."
    a = np.asarray(a)
    scale = 255.0 if a.dtype.kind == 'f' else 255.0 / np.iinfo(a.dtype).max
    out = a.astype(np.float32) * scale
    return out[..., None] if out.ndim == 2 else out


def _like(f, like) -> np.ndarray:
    "The 0-255 float frame `f` back in the dtype and shape of `like`."
    like = np.asarray(like)
    f = f[..., 0] if like.ndim == 2 else f
    if like.dtype.kind == 'f': return np.clip(f / 255.0, 0, 1).astype(like.dtype)
    top = np.iinfo(like.dtype).max
    return np.clip(np.rint(f * (top / 255.0)), 0, top).astype(like.dtype)


def _gray8(f) -> np.ndarray:
    "The luma of a 0-255 float frame as uint8, for the flow."
    g = f[..., 0] if f.shape[2] < 3 else f[..., :3] @ np.array([0.299, 0.587, 0.114], np.float32)
    return np.clip(np.rint(g), 0, 255).astype(np.uint8)


def _flow(cur, prev, preset, size) -> np.ndarray:
    "The flow from `cur` to `prev` (uint8 gray), computed at most `size` px on the longer side."
    h, w = cur.shape
    k = min(1.0, size / max(h, w))
    if k == 1.0: return optical_flow(cur, prev, preset)
    small = (max(8, round(w * k)), max(8, round(h * k)))
    f = optical_flow(cv2.resize(cur, small, interpolation=cv2.INTER_AREA),
                     cv2.resize(prev, small, interpolation=cv2.INTER_AREA), preset)
    return cv2.resize(f, (w, h), interpolation=cv2.INTER_LINEAR) * np.array([w / small[0], h / small[1]], np.float32)


def _inside(flow, margin=1.0) -> np.ndarray:
    "1 where the flow lands inside the previous frame (at least `margin` px from its edges), else 0."
    h, w = flow.shape[:2]
    x = np.arange(w, dtype=np.float32)[None] + flow[..., 0]
    y = np.arange(h, dtype=np.float32)[:, None] + flow[..., 1]
    return ((x >= margin) & (x <= w - 1 - margin) & (y >= margin) & (y <= h - 1 - margin)).astype(np.float32)


def _trusted_blur(d, trust, sigma) -> np.ndarray:
    "The gaussian blur of `d` (HxWxC) over trusted pixels only (normalised convolution): misaligned ones do not leak."
    num = cv2.GaussianBlur(d * trust[..., None], (0, 0), sigma).reshape(d.shape)
    den = cv2.GaussianBlur(trust, (0, 0), sigma)[..., None]
    return num / np.maximum(den, 1e-3)


class TemporalFilter:
    """Streaming `TemporalBlend`: call it with each input frame and its single-frame restoration, in display order;
    it returns the steadied frame. `reset()` forgets the past (a new clip)."""
    def __init__(self, blend: TemporalBlend = TemporalBlend()):
        self.blend = blend
        self.reset()

    def reset(self):
        self._gray, self._state = None, None  # the previous restored frame's luma, and what the blend carries on

    def __call__(self, x, y) -> np.ndarray:
        "The steadied restoration of input frame `x` whose single-frame restoration is `y`."
        b, yf = self.blend, _as_float(y)
        xf = _as_float(x)[..., :yf.shape[2]] if b.mode == 'correction' else None
        gray = _gray8(yf)
        current = yf if b.mode == 'output' else yf - xf
        if self._gray is not None and self._gray.shape == gray.shape and b.weight > 0:
            flow = _flow(gray, self._gray, b.flow_preset, b.flow_size)
            prev_gray = warp(self._gray, flow).astype(np.float32)
            diff = cv2.blur(np.abs(prev_gray - gray.astype(np.float32)), (b.window, b.window))
            trust = np.exp(-(diff / b.sigma) ** 2) * _inside(flow)
            if trust.mean() >= b.min_trust:
                d = warp(self._state, flow, cv2.INTER_CUBIC).reshape(current.shape) - current  # bilinear blurs
                if b.lowpass: d = d - _trusted_blur(d, trust, b.lowpass)
                current = current + (b.weight * trust)[..., None] * d
        self._gray, self._state = gray, current if b.recursive else (yf if b.mode == 'output' else yf - xf)
        return _like(current if b.mode == 'output' else xf + current, y)


def stabilise(inputs, restored, blend: TemporalBlend = TemporalBlend()):
    "`TemporalFilter` over a clip: the steadied frames of `restored` (single-frame results of `inputs`), one at a time."
    f = TemporalFilter(blend)
    for x, y in zip(inputs, restored): yield f(x, y)
