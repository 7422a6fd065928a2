"""Generators and critic: a residual U-Net on a timm MobileNetV3 encoder, its plain-CNN control, a patch critic.

Named configs live in `GENERATOR_CONFIGS` (as timm keeps its `default_cfgs`); `create_generator(name)` is
the one factory. Every generator takes and returns RGB (or gray) tensors in [0, 1] of any size.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F
import timm
from timm.layers import BatchNormAct2d
from fastai.layers import ConvLayer, Flatten, NormType, SelfAttention
from fastai.vision.models.unet import DynamicUnet

__all__ = ['GENERATOR_CONFIGS', 'FixedBatchNorm2d', 'FixedBatchNormAct2d', 'fix_batchnorm', 'check_arch', 'create_encoder',
           'FullResStem', 'RestorationNet', 'create_generator', 'create_plain_cnn', 'DetailView', 'create_critic', 'count_params', 'gflops']

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)

# name -> architecture; `cut` drops the encoder's last blocks (the 576/960-channel 1x1 stage would make the
# U-Net's middle conv most of the parameters), `full_res` is the width of the full-resolution branch. The
# encoders' squeeze-excitation is removed: it pools over the whole image, so a tile would see different
# channel weights than the whole image and tiled results would not match (the same reason as no attention).
# `fixed_bn` makes every BatchNorm use its stored statistics in training too (`FixedBatchNorm2d`).
GENERATOR_CONFIGS = {
    'mobilenetv3_small_100': dict(kind='unet', encoder='mobilenetv3_small_100', cut=-1, full_res=24),
    'mobilenetv3_small_100_fixedbn': dict(kind='unet', encoder='mobilenetv3_small_100', cut=-1, full_res=24,
                                          fixed_bn=True),
    'mobilenetv3_large_100': dict(kind='unet', encoder='mobilenetv3_large_100', cut=-1, full_res=32),
    'plain_cnn': dict(kind='plain', nf=32, n_layers=8),  # the control: about the small U-Net's FLOPs
}


def count_params(m: nn.Module) -> int: return sum(p.numel() for p in m.parameters())


def gflops(m: nn.Module, size=(1080, 1920)) -> float:
    "Multiply-adds x2 of one forward pass on an RGB image of `size`, in GFLOPs (torch's FLOP counter)."
    from torch.utils.flop_counter import FlopCounterMode
    with torch.no_grad(), FlopCounterMode(display=False) as fc: m.eval()(torch.zeros(1, 3, *size))
    return fc.get_total_flops() / 1e9


class _StoredStatistics:
    """Mixin for BatchNorms that normalise with their stored statistics in training as at test time, which
    makes them learnable per-channel affine maps. Batch statistics of 64 px patches differ from those of
    whole images; in a 12-minute test the small U-Net learned faster this way (+0.77 dB against +0.45,
    docs/training.md). Parameters and state_dict keys stay those of the BatchNorm."""
    def train(self, mode=True): return super().train(False)


class FixedBatchNorm2d(_StoredStatistics, nn.BatchNorm2d): pass
class FixedBatchNormAct2d(_StoredStatistics, BatchNormAct2d): pass
_FIXED = {nn.BatchNorm2d: FixedBatchNorm2d, BatchNormAct2d: FixedBatchNormAct2d}


def fix_batchnorm(model: nn.Module) -> nn.Module:
    "Make every BatchNorm of `model` use its stored statistics from now on (in place; parameters kept)."
    for m in model.modules():
        if type(m) in _FIXED: m.__class__ = _FIXED[type(m)]
    return model.train(model.training)


class _FirstChannels(nn.Module):
    "Run `module` on the first `n` channels: the pretrained stem sees RGB while the full-res features skip past."
    def __init__(self, module, n=3):
        super().__init__()
        self.module, self.n = module, n
    def forward(self, x): return self.module(x[:, :self.n])


class FullResStem(nn.Module):
    "Two 3x3 convs at full resolution whose features, with the input, feed the U-Net's last skip connection."
    def __init__(self, ni=3, nf=24):
        super().__init__()
        self.convs = nn.Sequential(ConvLayer(ni, nf, norm_type=None), ConvLayer(nf, nf, norm_type=None))
    def forward(self, x): return torch.cat([x, self.convs(x)], dim=1)


def create_encoder(name='mobilenetv3_small_100', pretrained=False, cut=-1, full_res=24) -> nn.Sequential:
    "The timm model `name` as an iterable encoder for `DynamicUnet`, its blocks cut at `cut`, without squeeze-excitation."
    m = timm.create_model(name, pretrained=pretrained)
    for block in m.blocks.modules():
        if hasattr(block, 'se'): block.se = nn.Identity()
    stem = [_FirstChannels(nn.Sequential(m.conv_stem, m.bn1))]
    return nn.Sequential(*([FullResStem(3, full_res)] if full_res else []), *stem, *m.blocks[:cut])


class RestorationNet(nn.Module):
    """Wraps a network `body` that predicts a correction: out = x + body(x), for inputs of any size.

    Pads to a multiple of `stride` (replicating the bottom and right edges, so the JPEG grid stays where it
    is), runs gray input as three equal channels, normalises with `mean`/`std` for a pretrained encoder, and
    crops back. The body's last layer starts at zero, so a new model is the identity and learns corrections.
    """
    def __init__(self, body, stride=32, mean=IMAGENET_MEAN, std=IMAGENET_STD):
        super().__init__()
        self.body, self.stride = body, stride
        self.register_buffer('mean', torch.tensor(mean).view(1, 3, 1, 1))
        self.register_buffer('std', torch.tensor(std).view(1, 3, 1, 1))
        last = [m for m in body.modules() if isinstance(m, nn.Conv2d)][-1]
        nn.init.zeros_(last.weight)
        if last.bias is not None: nn.init.zeros_(last.bias)

    def forward(self, x):
        n_ch, (h, w) = x.shape[1], x.shape[-2:]
        if n_ch == 1: x = x.expand(-1, 3, -1, -1)
        ph, pw = -h % self.stride, -w % self.stride
        xp = F.pad(x, (0, pw, 0, ph), mode='replicate') if ph or pw else x
        out = xp + self.body((xp - self.mean) / self.std)
        out = out[..., :h, :w]
        return out.mean(1, keepdim=True) if n_ch == 1 else out


def create_plain_cnn(nf=48, n_layers=8) -> nn.Sequential:
    "The control: `n_layers` 3x3 convs at full resolution, no normalisation (DnCNN without its BN)."
    layers = [ConvLayer(3, nf, norm_type=None)] + [ConvLayer(nf, nf, norm_type=None) for _ in range(n_layers - 2)]
    return nn.Sequential(*layers, nn.Conv2d(nf, 3, 3, padding=1))


def check_arch(name):
    "Refuse a generator name that is not in `GENERATOR_CONFIGS`, listing the ones that are."
    if name not in GENERATOR_CONFIGS:
        raise ValueError(f'unknown generator {name!r}; choose from {", ".join(GENERATOR_CONFIGS)}')


def create_generator(name='mobilenetv3_small_100', pretrained=False, **kwargs) -> RestorationNet:
    "A generator from `GENERATOR_CONFIGS[name]`; `kwargs` override the config (None values are ignored)."
    check_arch(name)
    cfg = {**GENERATOR_CONFIGS[name], **{k: v for k, v in kwargs.items() if v is not None}}
    kind, fixed_bn = cfg.pop('kind'), cfg.pop('fixed_bn', False)
    if kind == 'plain': return RestorationNet(create_plain_cnn(**cfg), stride=1, mean=(0.5,) * 3, std=(0.25,) * 3)
    enc = create_encoder(cfg['encoder'], pretrained=pretrained, cut=cfg['cut'], full_res=cfg['full_res'])
    body = DynamicUnet(enc, n_out=3, img_size=(64, 64), blur=False, self_attention=False, last_cross=True,
                       norm_type=None)
    return RestorationNet(fix_batchnorm(body) if fixed_bn else body, stride=32)


def _critic_conv(ni, nf, ks=3, stride=1, self_attention=False, **kwargs):
    "DeOldify's critic conv: spectral norm, LeakyReLU, optional self-attention."
    return ConvLayer(ni, nf, ks=ks, stride=stride, act_cls=lambda: nn.LeakyReLU(0.2, inplace=True),
                     norm_type=NormType.Spectral, xtra=SelfAttention(nf) if self_attention else None, **kwargs)


class DetailView(nn.Module):
    """The image (centred) beside its detail, the image minus its 3x3 blur, amplified by `gain`.

    What tells a restored patch from a clean one is small high-frequency detail (residual blocking, missing
    texture), a few hundredths in [0, 1]. Spectral norm makes every layer 1-Lipschitz, so on raw pixels the
    critic's logits barely move and its loss stays at ln 2; amplified detail gives it a signal to learn from.
    """
    def __init__(self, gain=100.):
        super().__init__()
        self.gain = gain

    def forward(self, x):
        blur = F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)
        return torch.cat([(x - 0.5) * 2, (x - blur) * self.gain], 1)


def create_critic(n_channels=3, nf=32, n_blocks=3, p=0.15, self_attention=True, detail_gain=100.) -> nn.Sequential:
    """A patch critic in the style of DeOldify's `custom_gan_critic`, sized for 64 px patches, on a `DetailView`
    of its [0, 1] input (`detail_gain=0` for raw pixels, as DeOldify).

    Each block halves the resolution and doubles the width; the output is one logit per receptive field
    (a 4x4 map on 64 px input), flattened, for fastai's `AdaptiveLoss(BCEWithLogitsLoss())`.
    """
    view = [DetailView(detail_gain)] if detail_gain else []
    layers = view + [_critic_conv(n_channels * (2 if view else 1), nf, ks=4, stride=2), nn.Dropout2d(p / 2),
                     _critic_conv(nf, nf)]
    for i in range(n_blocks):
        layers += [_critic_conv(nf, nf), nn.Dropout2d(p),
                   _critic_conv(nf, nf * 2, ks=4, stride=2, self_attention=self_attention and i == 0)]
        nf *= 2
    layers += [_critic_conv(nf, nf), ConvLayer(nf, 1, ks=3, bias=False, act_cls=None, norm_type=NormType.Spectral),
               Flatten()]
    return nn.Sequential(*layers)
