"""Quality metrics as the JPEG-artifact literature computes them (KAIR / FBCNN `utils_image`), plus ST-LPIPS.

PSNR, SSIM and PSNR-B take uint8-range HxW or HxWxC arrays (RGB order for colour); SSIM is the mean of
per-channel SSIMs with an 11x11 gaussian window (sigma 1.5) over the valid region; PSNR-B follows the
quantization-guided-ac reference (blocking effect factor of the image under test on the 8x8 grid).
`psnr_batch`/`stlpips_batch` give fastai metrics on [0, 1] tensors for training.
"""
import math

import cv2
import numpy as np
import torch

__all__ = ['psnr', 'ssim', 'psnr_b', 'luma', 'psnr_y', 'ssim_y', 'blocking_effect_factor', 'grid_ratio', 'luma_grid', 'chroma_grid', 'colour_shift',
           'STLPIPS', 'to_uint8', 'psnr_batch']


def to_uint8(img) -> np.ndarray:
    "An HxW(xC) uint8 array from a [0,1] CxHxW tensor, a float array in [0,1], or a uint8 array/PIL image."
    if isinstance(img, torch.Tensor):
        img = img.detach().float().cpu().clamp(0, 1)
        img = img.permute(1, 2, 0).numpy() if img.ndim == 3 else img.numpy()
        if img.ndim == 3 and img.shape[2] == 1: img = img[..., 0]
        return (img * 255.0).round().astype(np.uint8)
    img = np.asarray(img)
    if img.dtype == np.uint8: return img
    return (np.clip(img, 0, 1) * 255.0).round().astype(np.uint8)


def psnr(ref, img) -> float:
    "PSNR in dB on the 0-255 scale over all pixels and channels."
    mse = np.mean((np.asarray(ref, np.float64) - np.asarray(img, np.float64)) ** 2)
    return float('inf') if mse == 0 else 20 * math.log10(255.0 / math.sqrt(mse))


def _ssim_channel(a, b):
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    k = cv2.getGaussianKernel(11, 1.5)
    win = np.outer(k, k.T)
    filt = lambda x: cv2.filter2D(x, -1, win)[5:-5, 5:-5]
    mu_a, mu_b = filt(a), filt(b)
    var_a, var_b, cov = filt(a * a) - mu_a ** 2, filt(b * b) - mu_b ** 2, filt(a * b) - mu_a * mu_b
    num = (2 * mu_a * mu_b + c1) * (2 * cov + c2)
    return (num / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))).mean()


def ssim(ref, img) -> float:
    "SSIM, averaged over channels."
    a, b = np.asarray(ref, np.float64), np.asarray(img, np.float64)
    if a.ndim == 2: return float(_ssim_channel(a, b))
    return float(np.mean([_ssim_channel(a[..., c], b[..., c]) for c in range(a.shape[2])]))


def blocking_effect_factor(img: np.ndarray, block=8) -> float:
    "How much stronger the squared steps across 8x8 block borders are than those inside blocks (0 if not)."
    img = np.asarray(img, np.float64)
    h, w = img.shape
    dh, dv = (img[:, :-1] - img[:, 1:]) ** 2, (img[:-1, :] - img[1:, :]) ** 2  # horizontal, vertical steps
    on_h, on_v = np.zeros(w - 1, bool), np.zeros(h - 1, bool)
    on_h[block - 1::block], on_v[block - 1::block] = True, True
    n_bh, n_bv = h * (w / block - 1), w * (h / block - 1)  # as the reference counts them (not floored)
    boundary = (dh[:, on_h].sum() + dv[on_v, :].sum()) / (n_bh + n_bv)
    inside = (dh[:, ~on_h].sum() + dv[~on_v, :].sum()) / (h * (w - 1) - n_bh + w * (h - 1) - n_bv)
    if boundary <= inside: return 0.0
    return float(np.log2(block) / np.log2(min(h, w)) * (boundary - inside))


def grid_ratio(plane: np.ndarray, period=8) -> float:
    """How much stronger steps are across the lines of a `period`-px grid than elsewhere: mean |horizontal
    difference| across columns x = k*period-1 | k*period plus mean |vertical difference| across the rows, over
    the same means on every other column and row. About 1 on a clean image; a JPEG's block grid raises it.
    Unlike ST-LPIPS (shift-tolerant by design) it sees a grid left in flat areas."""
    a = np.asarray(plane, np.float64)
    dh, dv = np.abs(np.diff(a, axis=1)), np.abs(np.diff(a, axis=0))
    on_h, on_v = np.arange(dh.shape[1]) % period == period - 1, np.arange(dv.shape[0]) % period == period - 1
    across = dh[:, on_h].mean() + dv[on_v].mean()
    other = dh[:, ~on_h].mean() + dv[~on_v].mean()
    return float(across / other) if other > 0 else 1.0


def _ycbcr(rgb: np.ndarray) -> np.ndarray:
    "Full-range BT.601 Y, Cb, Cr of an RGB array (as JPEG stores colour), float, last axis the channels."
    m = np.array([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]])
    return np.asarray(rgb, np.float64) @ m.T + np.array([0, 128, 128])


def luma_grid(img, scale=1) -> float:
    """`grid_ratio` of the luma (BT.601) on the 8-px JPEG block grid; gray images are their own luma. `scale`: the
    image is an upscale by that factor of the JPEG, whose grid is then `8*scale` px."""
    img = np.asarray(img)
    return grid_ratio(img if img.ndim == 2 else _ycbcr(img)[..., 0], 8 * scale)


def chroma_grid(img, scale=1) -> float:
    """`grid_ratio` of Cb and Cr (averaged) on a 16-px grid: the colour blocks of 4:2:0 JPEGs, whose chroma
    blocks cover 16x16 pixels (`16*scale` on an upscale by `scale`). None for gray images."""
    img = np.asarray(img)
    if img.ndim == 2: return None
    ycc = _ycbcr(img)
    return float(np.mean([grid_ratio(ycc[..., c], 16 * scale) for c in (1, 2)]))


def colour_shift(ref, img) -> np.ndarray:
    "Mean signed difference per channel (img - ref) in levels of 255: a colour cast shows here, not in PSNR."
    d = np.asarray(img, np.float64) - np.asarray(ref, np.float64)
    return d.reshape(-1, d.shape[-1] if d.ndim == 3 else 1).mean(0)


def _luma(rgb: np.ndarray) -> np.ndarray:
    "BT.601 studio-range Y, rounded as MATLAB's rgb2ycbcr on uint8."
    return luma(rgb).round()


def luma(img) -> np.ndarray:
    """BT.601 studio-range Y (16-235) of an RGB uint8-range array, in float, not rounded (KAIR's `bgr2ycbcr` of
    float images, as its super-resolution tests score); a gray image is its own luma."""
    img = np.asarray(img, np.float64)
    return img if img.ndim == 2 else img @ np.array([65.481, 128.553, 24.966]) / 255.0 + 16.0


def _crop_border(a, border): return a[border:-border, border:-border] if border else a


def psnr_y(ref, img, border=0) -> float:
    """PSNR of the luma (`luma`) with `border` px cropped from every side: how super-resolution papers score
    (border = the scale factor; Set5 x2 bicubic scores 33.67 dB this way)."""
    return psnr(_crop_border(luma(ref), border), _crop_border(luma(img), border))


def ssim_y(ref, img, border=0) -> float:
    "SSIM of the luma (`luma`) with `border` px cropped from every side, as `psnr_y`."
    return ssim(_crop_border(luma(ref), border), _crop_border(luma(img), border))


def psnr_b(ref, img) -> float:
    """PSNR-B (Yim & Bovik) as FBCNN reports it: the MSE over all channels plus the blocking effect factor
    of the tested image (its luma for colour), on the 0-255 scale."""
    img = np.asarray(img)
    bef = blocking_effect_factor(_luma(img) if img.ndim == 3 else img)
    mse = np.mean((np.asarray(ref, np.float64) - img.astype(np.float64)) ** 2)
    return float('inf') if mse + bef == 0 else 20 * math.log10(255.0 / math.sqrt(mse + bef))


class STLPIPS:
    "ST-LPIPS (shift-tolerant LPIPS, AlexNet) between [0,1] tensors or uint8 arrays; lower is better."
    def __init__(self, device=None):
        from .losses import PerceptualLoss
        self.device = device or ('cuda' if torch.cuda.is_available() else 'cpu')
        self.loss = PerceptualLoss().to(self.device)

    @torch.no_grad()
    def __call__(self, ref, img) -> float:
        t = lambda x: (x if isinstance(x, torch.Tensor) else _tensor(x)).to(self.device)
        a, b = t(ref), t(img)
        if a.ndim == 3: a, b = a[None], b[None]
        if a.shape[1] == 1: a, b = a.expand(-1, 3, -1, -1), b.expand(-1, 3, -1, -1)
        return float(self.loss(b, a))


def _tensor(a) -> torch.Tensor:
    a = np.asarray(a)
    t = torch.from_numpy(a.astype(np.float32) / 255.0)
    return t[None] if t.ndim == 2 else t.permute(2, 0, 1)


def psnr_batch(pred, target):
    "Mean PSNR (dB) of a batch of [0,1] images, prediction clamped and quantised to 8 bits as saved images are."
    p = (pred.float().clamp(0, 1) * 255).round()
    mse = ((p - target.float() * 255) ** 2).flatten(1).mean(1).clamp_min(1e-10)
    return (10 * torch.log10(255.0 ** 2 / mse)).mean()


# --- clips: temporal consistency (Lai et al., "Learning Blind Video Temporal Consistency", ECCV 2018)

__all__ += ['optical_flow', 'warp', 'consistent_flow_mask', 'ClipFlow', 'clip_flows', 'warping_error',
            'temporal_difference_error']


def _gray8(img) -> np.ndarray:
    img = np.asarray(img)
    return img if img.ndim == 2 else cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)


def optical_flow(a, b, preset='medium') -> np.ndarray:
    """Dense optical flow from frame `a` to frame `b` (HxW(x3) uint8): for each pixel of `a`, how far (dx, dy) it
    moved in `b`, HxWx2 float32. OpenCV's DIS (Kroeger et al. 2016) on the gray frames; `preset`: 'ultrafast',
    'fast' or 'medium'."""
    presets = {'ultrafast': cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST, 'fast': cv2.DISOPTICAL_FLOW_PRESET_FAST,
               'medium': cv2.DISOPTICAL_FLOW_PRESET_MEDIUM}
    return cv2.DISOpticalFlow_create(presets[preset]).calc(_gray8(a), _gray8(b), None)


def warp(img, flow, interpolation=cv2.INTER_LINEAR) -> np.ndarray:
    """`img` (frame t-1) brought to the pixel grid of frame t by `flow` from frame t to t-1 (backward warping):
    out(p) = img(p + flow(p)), bilinear, edges replicated. Same dtype as `img`."""
    h, w = flow.shape[:2]
    grid = np.mgrid[:h, :w][::-1].transpose(1, 2, 0).astype(np.float32)
    return cv2.remap(np.asarray(img), grid + flow, None, interpolation, borderMode=cv2.BORDER_REPLICATE)


def consistent_flow_mask(flow_back, flow_fwd) -> np.ndarray:
    """Pixels of frame t that are visible in frame t-1 (HxW bool), from the flow t->t-1 (`flow_back`) and t-1->t
    (`flow_fwd`): the forward-backward check of Ruder et al. (2016) that Lai et al. use, |w + w'|^2 <=
    0.01 (|w|^2 + |w'|^2) + 0.5 with w' the t-1->t flow where w lands, and the landing point inside the frame."""
    h, w = flow_back.shape[:2]
    back = warp(flow_fwd, flow_back)
    total = ((flow_back + back) ** 2).sum(-1)
    ok = total <= 0.01 * ((flow_back ** 2).sum(-1) + (back ** 2).sum(-1)) + 0.5
    x, y = np.mgrid[:h, :w][::-1] + flow_back.transpose(2, 0, 1)
    return ok & (x >= 0) & (x <= w - 1) & (y >= 0) & (y <= h - 1)


class ClipFlow:
    "The flow from each frame t of a clip to frame t-1 (`flows[t-1]`) and the pixels it is valid on (`masks[t-1]`)."
    def __init__(self, flows, masks): self.flows, self.masks = list(flows), list(masks)
    def __len__(self): return len(self.flows) + 1


def clip_flows(frames, preset='medium') -> ClipFlow:
    """The flows and non-occluded pixels of a clip (t->t-1 for t >= 1), computed on `frames`: the *reference* clip
    when scoring restorations, so every method is measured along the same motion."""
    grays = [_gray8(f) for f in frames]
    flows, masks = [], []
    for prev, cur in zip(grays, grays[1:]):
        back, fwd = optical_flow(cur, prev, preset), optical_flow(prev, cur, preset)
        flows.append(back)
        masks.append(consistent_flow_mask(back, fwd))
    return ClipFlow(flows, masks)


def warping_error(frames, flow: ClipFlow) -> float:
    """Lai et al.'s warping error of a clip: the mean over t >= 1 of the squared RGB distance (on [0, 1], summed over
    channels) between frame t and frame t-1 warped to it by `flow` (`clip_flows` of the reference), averaged over the
    non-occluded pixels. 0 for a still clip; lower is steadier."""
    frames = [np.asarray(f, np.float32) / 255 for f in frames]
    if len(frames) != len(flow): raise ValueError(f'{len(frames)} frames for the flow of a {len(flow)}-frame clip')
    errors = []
    for prev, cur, fl, m in zip(frames, frames[1:], flow.flows, flow.masks):
        d = (cur - warp(prev, fl)) ** 2
        d = d.sum(-1) if d.ndim == 3 else d
        errors.append(float(d[m].sum() / max(1, m.sum())))
    return float(np.mean(errors)) if errors else 0.0


def temporal_difference_error(frames, reference) -> float:
    """Mean |(o_t - o_t-1) - (r_t - r_t-1)| over t >= 1, pixels and channels, in levels of 255: how much more (or
    less) the clip changes from frame to frame than the reference does. 0 for the reference itself."""
    o = [np.asarray(f, np.float32) for f in frames]
    r = [np.asarray(f, np.float32) for f in reference]
    if len(o) != len(r): raise ValueError(f'{len(o)} frames against a {len(r)}-frame reference')
    diffs = [np.abs((o1 - o0) - (r1 - r0)).mean() for o0, o1, r0, r1 in zip(o, o[1:], r, r[1:])]
    return float(np.mean(diffs)) if diffs else 0.0
