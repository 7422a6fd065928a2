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

__all__ = ['psnr', 'ssim', 'psnr_b', 'blocking_effect_factor', 'STLPIPS', 'to_uint8', 'psnr_batch']


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


def _luma(rgb: np.ndarray) -> np.ndarray:
    "BT.601 studio-range Y, rounded as MATLAB's rgb2ycbcr on uint8."
    return (np.asarray(rgb, np.float64) @ np.array([65.481, 128.553, 24.966]) / 255.0 + 16.0).round()


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
