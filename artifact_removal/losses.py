"""Losses on images in [0, 1]: pixel, structural, perceptual, and weighted sums of them.

Perceptual networks get [0, 1] images and do their own scaling: never ImageNet-normalised tensors.
"""
import torch
import torch.nn as nn

__all__ = ['CharbonnierLoss', 'SSIMLoss', 'MSSSIMLoss', 'PerceptualLoss', 'CombinedLoss', 'parse_loss_spec', 'create_loss', 'LOSSES']


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


LOSSES = {'l1': nn.L1Loss, 'mse': nn.MSELoss, 'charbonnier': CharbonnierLoss, 'ssim': SSIMLoss,
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
