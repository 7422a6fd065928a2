"""Losses on images in [0, 1]: pixel, structural, perceptual, and weighted sums of them.

Perceptual networks get [0, 1] images and do their own scaling: never ImageNet-normalised tensors.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ['CharbonnierLoss', 'SSIMLoss', 'MSSSIMLoss', 'PerceptualLoss', 'rgb_to_ycbcr', 'YCbCrL1', 'LowFrequencyL1',
           'BlockEdgeLoss', 'flatness', 'FlatAreaL1', 'PSNRLoss', 'quality_reading_loss', 'CombinedLoss',
           'parse_loss_spec', 'create_loss', 'LOSSES']


class CharbonnierLoss(nn.Module):
    "A smooth L1: sqrt(d^2 + eps^2), robust like L1 but differentiable at zero."
    def __init__(self, eps=1e-3):
        super().__init__()
        self.eps = eps
    def forward(self, pred, target): return torch.sqrt((pred - target) ** 2 + self.eps ** 2).mean()


class SSIMLoss(nn.Module):
    "1 - SSIM (pytorch-msssim), per channel, gaussian window 11 / sigma 1.5 as in the metric."
    def __init__(self, multiscale=False):
        super().__init__()
        self.multiscale = multiscale
    def forward(self, pred, target):
        from pytorch_msssim import ms_ssim, ssim
        f = ms_ssim if self.multiscale else ssim
        return 1 - f(pred.float().clamp(0, 1), target.float(), data_range=1.0, size_average=True)


def MSSSIMLoss(): return SSIMLoss(multiscale=True)


class PerceptualLoss(nn.Module):
    """LPIPS distance as a loss, its network frozen.

    `variant='shift_tolerant'` is ST-LPIPS (stlpips-pytorch, AlexNet, ships its weights, works offline);
    `variant=None` is the original LPIPS (`lpips` package: its ImageNet trunk is downloaded once by torchvision;
    `pnet_rand=True` skips that with an untrained trunk, for tests only).
    """
    def __init__(self, net='alex', variant='shift_tolerant', pnet_rand=False):
        super().__init__()
        if variant:
            from stlpips_pytorch import stlpips
            self.net = stlpips.LPIPS(net=net, variant=variant, verbose=False)
        else:
            import lpips
            self.net = lpips.LPIPS(net=net, pnet_rand=pnet_rand, verbose=False)
        self.net.eval().requires_grad_(False)

    def train(self, mode=True): return super().train(False)  # dropout in the linear heads stays off
    def forward(self, pred, target): return self.net(pred.float(), target.float(), normalize=True).mean()


def rgb_to_ycbcr(x):
    "Full-range BT.601 YCbCr (as JPEG codes colour) of [0, 1] RGB BxCxHxW, chroma centred on 0."
    r, g, b = x.float().unbind(1)
    y = 0.299 * r + 0.587 * g + 0.114 * b
    return torch.stack([y, 0.564 * (b - y), 0.713 * (r - y)], 1)


class YCbCrL1(nn.Module):
    """L1 in YCbCr with the chroma channels weighted by `chroma`: JPEG keeps a quarter of the chroma samples and
    quantizes them coarsely, so colour errors are where plain RGB L1 under-weights the damage."""
    def __init__(self, chroma=2.):
        super().__init__()
        self.register_buffer('w', torch.tensor([1., chroma, chroma]).view(1, 3, 1, 1) / (1 + 2 * chroma), persistent=False)
    def error_map(self, pred, target) -> torch.Tensor:
        "The weighted YCbCr error of each pixel, Bx1xHxW."
        return ((rgb_to_ycbcr(pred) - rgb_to_ycbcr(target)).abs() * self.w).sum(1, keepdim=True)
    def forward(self, pred, target): return self.error_map(pred, target).mean()


def flatness(y, window=7, tau=2 / 255) -> torch.Tensor:
    "exp(-(local std / tau)^2) of a Bx1xHxW luma over `window` px: 1 on a flat area, near 0 on texture and edges."
    mean = lambda t: F.avg_pool2d(t, window, 1, window // 2, count_include_pad=False)
    var = (mean(y * y) - mean(y) ** 2).clamp_min(0)
    return torch.exp(-var / tau ** 2)


class FlatAreaL1(YCbCrL1):
    """`ycbcr`'s L1 over the target's flat areas only (skies, walls, gradients: `flatness`), averaged over them:
    texture a perceptual loss invents there, and a colour cast, are a small part of a photo's loss but all of
    this one, so smooth content is held without weighting every pixel of a photo. A batch without flat areas
    adds nothing."""
    def forward(self, pred, target):
        with torch.no_grad(): w = flatness(rgb_to_ycbcr(target)[:, :1])
        return (self.error_map(pred, target) * w).sum() / (w.sum() + 1.)


class LowFrequencyL1(nn.Module):
    """L1 between the 1/8 and 1/16 averages of pred and target: the mean colour of each 8x8 luma block and 16x16
    chroma block, which JPEG's DC quantization shifts. A patch of wrong colour or a colour cast over a flat
    area is a small per-pixel error but the whole of this one."""
    def __init__(self, factors=(8, 16)):
        super().__init__()
        self.factors = factors
    def forward(self, pred, target):
        return sum(F.l1_loss(F.avg_pool2d(pred.float(), f), F.avg_pool2d(target.float(), f)) for f in self.factors) / len(self.factors)


def _steps_across(x, period):
    "Horizontal and vertical differences across the lines of a `period`-px grid (columns/rows k*period-1 | k*period)."
    return (x[..., :, period::period] - x[..., :, period - 1:-1:period],
            x[..., period::period, :] - x[..., period - 1:-1:period, :])


class BlockEdgeLoss(nn.Module):
    """L1 between the steps of pred and target across the JPEG block grid: on luma across the 8-px grid, on
    chroma across the 16-px grid of 4:2:0 colour blocks. What `metrics.luma_grid`/`chroma_grid` measure, as a
    loss; patches must start on the grid (the data pipeline crops before compressing)."""
    def forward(self, pred, target):
        p, t = rgb_to_ycbcr(pred), rgb_to_ycbcr(target)
        parts = [(a - b).abs().mean() for period, ch in ((8, slice(0, 1)), (16, slice(1, 3)))
                 for a, b in zip(_steps_across(p[:, ch], period), _steps_across(t[:, ch], period))]
        return sum(parts) / len(parts)


class PSNRLoss(nn.Module):
    """Minus the PSNR of each sample (dB), averaged: every image counts by how many dB it gains or loses, so a
    nearly perfect one (a q95 gradient at 50 dB) weighs as much as a q10 photo, where pixel losses let its small
    errors drown (NAFNet trains on this loss). `eps` caps a sample at 54 dB, above 8-bit rounding's own error."""
    def __init__(self, eps=(0.5 / 255) ** 2):
        super().__init__()
        self.eps = eps
    def forward(self, pred, target):
        mse = ((pred.float() - target.float()) ** 2).mean(dim=tuple(range(1, pred.ndim)))
        return 10 * torch.log10(mse + self.eps).mean()


def quality_reading_loss(estimate, quality, quantile=0.5, ramp=(15, 45)) -> torch.Tensor:
    """A quality estimator's error on quality / 100: the L1 at `quantile` 0.5. Above 0.5 it is the pinball loss for
    labels of quality `ramp[1]` and above: a reading too low costs quantile / (1 - quantile) times one too high, so
    where the pixels cannot tell (a flat area looks alike at q40 and q95) the reading goes high and the generator
    leaves clean content alone. The lean fades to none at `ramp[0]` and below: low qualities, which blocks give away,
    keep an unbiased reading, and the restoration its full strength."""
    quality = quality.float()
    lean = ((quality - ramp[0]) / (ramp[1] - ramp[0])).clamp(0, 1)
    tau = 0.5 + (quantile - 0.5) * lean
    d = (quality - estimate.float()) / 100
    return 2 * torch.maximum(tau * d, (tau - 1) * d).mean()


LOSSES = {'l1': nn.L1Loss, 'ycbcr': YCbCrL1, 'lowfreq': LowFrequencyL1, 'blockedge': BlockEdgeLoss, 'flat': FlatAreaL1,
          'psnr': PSNRLoss, 'mse': nn.MSELoss, 'charbonnier': CharbonnierLoss, 'ssim': SSIMLoss,
          'ms_ssim': MSSSIMLoss, 'stlpips': PerceptualLoss,
          'lpips': lambda: PerceptualLoss(variant=None)}


class CombinedLoss(nn.Module):
    "sum(weight * loss) over named parts; the last parts' values are kept in `.parts` for logging."
    def __init__(self, **weighted):
        super().__init__()
        if not weighted: raise ValueError('CombinedLoss needs at least one part, e.g. CombinedLoss(l1=1.)')
        self.weights = {k: float(w) for k, w in weighted.items()}
        self.losses = nn.ModuleDict({k: _make(k) for k in weighted})
        self.parts = {}

    def forward(self, pred, target):
        self.parts = {k: self.losses[k](pred, target) for k in self.weights}
        return sum(self.weights[k] * v for k, v in self.parts.items())

    def __repr__(self): return 'CombinedLoss(' + ', '.join(f'{k}={w:g}' for k, w in self.weights.items()) + ')'


def _make(name):
    if name not in LOSSES: raise ValueError(f'unknown loss {name!r}; choose from {", ".join(LOSSES)}')
    return LOSSES[name]()


def parse_loss_spec(spec) -> dict:
    """{name: weight} from a spec like 'l1', 'l1+stlpips' or 'l1:1,stlpips:0.5', checked without building the
    losses (ST-LPIPS loads weights), so a training run can refuse a bad spec before it starts."""
    parts = {}
    for item in spec.replace('+', ',').split(','):
        name, _, w = item.strip().partition(':')
        if name not in LOSSES: raise ValueError(f'unknown loss {name!r} in {spec!r}; choose from {", ".join(LOSSES)}')
        try: parts[name] = float(w) if w else 1.0
        except ValueError: raise ValueError(f'loss weight {w!r} in {spec!r} is not a number') from None
    return parts


def create_loss(spec) -> CombinedLoss:
    "A loss from a spec like 'l1', 'l1+stlpips' or 'l1:1,stlpips:0.5' (CLI friendly); a dict works too."
    return CombinedLoss(**(spec if isinstance(spec, dict) else parse_loss_spec(spec)))
