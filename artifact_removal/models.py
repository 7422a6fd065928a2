"""Generators and critic: a residual U-Net on a timm MobileNetV3 encoder, its plain-CNN control, a patch critic.

Named configs live in `GENERATOR_CONFIGS` (as timm keeps its `default_cfgs`); `create_generator(name)` is
the one factory. Every generator takes and returns RGB (or gray) tensors in [0, 1] of any size.
"""
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import timm
from timm.layers import BatchNormAct2d
from . import _fastai  # noqa: F401  (fastai without its import-time warning)
from fastai.layers import (ConvLayer, Flatten, MergeLayer, NormType, PixelShuffle_ICNR, ResBlock, SelfAttention,
                           ToTensorBase)
from fastai.vision.models.unet import DynamicUnet, ResizeToOrig, UnetBlock

__all__ = ['GENERATOR_CONFIGS', 'ARCH_ALIASES', 'FixedBatchNorm2d', 'FixedBatchNormAct2d', 'fix_batchnorm', 'check_arch',
           'create_encoder', 'FullResStem', 'QualityEstimator', 'QualityFiLM', 'create_upsampler', 'RestorationNet',
           'create_generator', 'generator_scale',
           'create_plain_cnn', 'DetailView', 'create_critic', 'count_params', 'gflops']

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)

# name -> architecture; `cut` drops the encoder's last blocks (the 576/960-channel 1x1 stage would make the
# U-Net's middle conv most of the parameters), `full_res` is the width of the full-resolution branch. The
# encoders' squeeze-excitation is removed: it pools over the whole image, so a tile would see different
# channel weights than the whole image and tiled results would not match (the same reason as no attention).
# `quality_aware` adds the JPEG-quality conditioning (`QualityFiLM`) and its estimator (`QualityEstimator`).
# `bytes_per_pixel`: peak fp32 inference memory per input pixel with PyTorch and with onnxruntime (its memory
# arena); `Restorer` sizes its tiles from it. The small config's was measured on whole images (PyTorch 820-1050 B,
# onnxruntime about 1450 B); the others are scaled from it by their peak-memory ratios to it at 720p (PyTorch
# 1.49 and 1.45, onnxruntime 1.61 and 1.22).
# `scale` > 1: super-resolution. The same U-Net runs on the low-resolution input and ends in `head` features, which an
# upsampling head (`create_upsampler`) turns into a correction of the bicubic upscale; `bytes_per_pixel` is then per
# input pixel (measured on a 960x540 input: PyTorch 1460 B, onnxruntime 1770 B; benchmarks/sr_speed.py). Its body
# has the artifact-removal configs' shapes (but for the U-Net's last 1x1 conv), so their weights can start it
# (`learner.load_init`).
GENERATOR_CONFIGS = {
    'mobilenetv3_small_100': dict(kind='unet', encoder='mobilenetv3_small_100', cut=-1, full_res=24, quality_aware=True,
                                  bytes_per_pixel={'torch': 1000, 'onnx': 1500}),
    'mobilenetv3_small_100_wide': dict(kind='unet', encoder='mobilenetv3_small_100', cut=-1, full_res=48,
                                       quality_aware=True, bytes_per_pixel={'torch': 1500, 'onnx': 2400}),
    'mobilenetv3_large_100': dict(kind='unet', encoder='mobilenetv3_large_100', cut=-1, full_res=32, quality_aware=True,
                                  bytes_per_pixel={'torch': 1450, 'onnx': 1850}),
    'mobilenetv3_small_100_sr2': dict(kind='unet', encoder='mobilenetv3_small_100', cut=-1, full_res=24, quality_aware=True,
                                      scale=2, head=32, bytes_per_pixel={'torch': 1500, 'onnx': 1800}),
    'plain_cnn': dict(kind='plain', nf=32, n_layers=8, bytes_per_pixel={'torch': 1000, 'onnx': 1500}),  # the control
}
# names older weights files carry: the same network (fixed BatchNorm was how it was trained, not what it is)
ARCH_ALIASES = {'mobilenetv3_small_100_fixedbn': 'mobilenetv3_small_100'}


def count_params(m: nn.Module) -> int: return sum(p.numel() for p in m.parameters())


def gflops(m: nn.Module, size=(1080, 1920)) -> float:
    """Multiply-adds x2 of one forward pass on an RGB image of `size`, in GFLOPs (torch's FLOP counter); the
    quality is given, as `Restorer` gives it (its estimate runs on a crop of at most 256 px, not the frame)."""
    from torch.utils.flop_counter import FlopCounterMode
    kw = {'quality': 50} if getattr(m, 'quality_aware', False) else {}
    with torch.no_grad(), FlopCounterMode(display=False) as fc: m.eval()(torch.zeros(1, 3, *size), **kw)
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


def _dct_basis(n=8) -> torch.Tensor:
    "The n*n orthonormal 2-D DCT-II basis as conv weights (n*n x 1 x n x n): JPEG's block transform."
    k = torch.arange(n, dtype=torch.float64)
    c = torch.cos(torch.pi * (2 * k[None] + 1) * k[:, None] / (2 * n)) * (2 / n) ** 0.5
    c[0] /= 2 ** 0.5
    return torch.einsum('ux,vy->uvxy', c, c).reshape(n * n, 1, n, n).float()


# the libjpeg qualities whose luma tables the estimator tests the coefficients against
_CANDIDATES = (5, 10, 15, 20, 25, 30, 40, 50, 60, 70, 75, 80, 85, 90, 95, 98)


class QualityEstimator(nn.Module):
    """The JPEG quality (1-100, 100: not compressed) of images, from their pixels: for inputs that carry no
    quantization tables (arrays, video frames, PNGs that were JPEGs, double compression).

    It looks where JPEG leaves its trace, the 8x8 block DCT of the luma: (1) each block's log-magnitudes, read by
    a small head of 1x1 convs (quantization drives coefficients to zero), and (2) how close the non-zero
    coefficients lie to multiples of the steps of libjpeg's luma table at each of `_CANDIDATES` (quantization
    puts them exactly there). The second tells a smooth image, whose coefficients are small because its content
    is, from a heavily compressed one. Logits are averaged over the image, so the estimate is global. FBCNN
    predicts the quality factor from the image, with a larger network."""
    def __init__(self, hidden=64):
        super().__init__()
        from .image_io import ijg_tables
        self.register_buffer('dct', _dct_basis(), persistent=False)
        steps = torch.from_numpy(np.stack([ijg_tables(q)[0] for q in _CANDIDATES])).float()
        self.register_buffer('steps', steps.view(len(_CANDIDATES), 64, 1, 1), persistent=False)  # 4-D: channels_last
        self.blocks = nn.Sequential(nn.Conv2d(64, hidden, 1), nn.ReLU(inplace=True), nn.Conv2d(hidden, hidden, 1),
                                    nn.ReLU(inplace=True), nn.Conv2d(hidden, 1, 1))
        self.periodic = nn.Sequential(nn.Linear(3 * len(_CANDIDATES), hidden), nn.ReLU(inplace=True),
                                      nn.Linear(hidden, 1))
        # corrects the two readings from the 8x8 grid (`_staircase`); starts at zero, so older estimators load as they were
        self.grid = nn.Sequential(nn.Linear(5, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, 1))
        nn.init.zeros_(self.grid[-1].weight); nn.init.zeros_(self.grid[-1].bias)

    def _periodicity(self, c) -> torch.Tensor:
        """Per candidate table: the mean distance of the non-zero coefficients `c` (Bx64xhxw) from the nearest
        multiple of its steps (0 where all lie on them, 0.5 at random; as a log), how far that dips below its
        neighbours', and the share of coefficients it keeps."""
        c, steps = c[:, None], self.steps[None]
        keep = torch.sigmoid(4 * (c.abs() / steps - 0.5))  # coefficients that quantized to non-zero values
        off = 0.5 * (1 - torch.cos(2 * torch.pi * c / steps))
        kept = keep.sum((2, 3, 4))
        off = torch.log((keep * off).sum((2, 3, 4)) / (kept + 1) + 0.01)
        dip = off[:, 1:-1] - (off[:, :-2] + off[:, 2:]) / 2  # below its neighbours at the table that was used
        return torch.cat([off, F.pad(dip, (1, 1)), kept / keep[0, 0].numel()], 1)

    @staticmethod
    def _staircase(y) -> torch.Tensor:
        """Steps across the 8x8 block boundaries against steps inside the blocks (log ratios, across and down),
        and the inside steps (logs): a smooth image compressed hard turns into a staircase, one compressed lightly
        stays smooth, while both have the small DCT coefficients the other readings take for heavy quantization."""
        feats = []
        for d in ((y[..., :, 1:] - y[..., :, :-1]).abs(), (y[..., 1:, :] - y[..., :-1, :]).abs().transpose(-1, -2)):
            edge = d[..., 7::8].mean((1, 2, 3))
            inside = (d.sum((1, 2, 3)) - d[..., 7::8].sum((1, 2, 3))) / (d[0].numel() - d[0, ..., 7::8].numel())
            feats += [torch.log((edge + 0.1) / (inside + 0.1)), torch.log(inside + 0.1)]
        return torch.stack(feats, 1)

    def forward(self, x):
        "[0, 1] Bx3xHxW -> B qualities in [1, 100]; images under 16 px are padded (edges replicated) to 16"
        ph, pw = max(0, 16 - x.shape[-2]), max(0, 16 - x.shape[-1])
        if ph or pw: x = F.pad(x, (0, pw, 0, ph), mode='replicate')
        r, g, b = (x.float() * 255).unbind(1)
        y = (0.299 * r + 0.587 * g + 0.114 * b - 128)[:, None]  # JPEG's level-shifted luma
        h, w = y.shape[-2] // 8 * 8, y.shape[-1] // 8 * 8
        c = F.conv2d(y[..., :h, :w], self.dct, stride=8)  # the orthonormal DCT is JPEG's own scaling
        logit = self.blocks(torch.log1p(c.abs())).mean((1, 2, 3)) + self.periodic(self._periodicity(c))[:, 0]
        logit = logit + self.grid(torch.cat([self._staircase(y[..., :h, :w]), logit[:, None]], 1))[:, 0]
        return 1 + 99 * torch.sigmoid(logit)


class QualityFiLM(nn.Module):
    """Per-channel scale and shift of decoder features from the JPEG quality (FiLM), so one network can work hard
    on a q10 image and leave a q95 one nearly alone. The last layer starts at zero: a new conditioning is the
    identity, and blind weights load into a quality-aware network unchanged."""
    def __init__(self, widths, hidden=64):
        super().__init__()
        self.widths = list(widths)
        self.mlp = nn.Sequential(nn.Linear(1, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(),
                                 nn.Linear(hidden, 2 * sum(self.widths)))
        nn.init.zeros_(self.mlp[-1].weight); nn.init.zeros_(self.mlp[-1].bias)

    def forward(self, quality) -> list:
        "Bx1 qualities (1-100) -> one (scale, shift) pair of Bx C x1x1 tensors per conditioned layer"
        params, out, start = self.mlp(quality / 100)[..., None, None], [], 0
        for w in self.widths:  # slices, not one split: a 10-output Split exceeds WebGPU's storage buffers per shader
            out.append((1 + params[:, start:start + w], params[:, start + w:start + 2 * w]))
            start += 2 * w
        return out


def create_upsampler(ni, nf=32, scale=2) -> nn.Sequential:
    """The super-resolution head: features of the low-resolution image (`ni` channels) to a 3-channel correction at
    `scale` times the size, by fastai's `PixelShuffle_ICNR` (a 1x1 conv to `nf*scale^2` channels, ICNR-initialised
    so it starts free of checkerboard, then a pixel shuffle) and a 3x3 conv at the output resolution."""
    return nn.Sequential(nn.ReLU(), PixelShuffle_ICNR(ni, nf, scale=scale, norm_type=None),
                         ConvLayer(nf, 3, ks=3, act_cls=None, norm_type=None))


def generator_scale(model) -> int:
    "How many times larger than its input a generator's output is (1: restoration at the same size)."
    return getattr(model, 'scale', 1)


def _skip_indices(encoder, size=64) -> list:
    "Encoder layers whose outputs feed the U-Net's skip connections, deepest first (as `DynamicUnet` hooks them)."
    h, sizes = torch.zeros(1, 3, size, size), []
    with torch.no_grad():
        for layer in encoder.eval(): h = layer(h); sizes.append(h.shape[-1])
    return [i for i in range(len(sizes) - 2, -1, -1) if sizes[i] != sizes[i + 1]]


def _unet_block(block: UnetBlock, up_in, skip):
    "`UnetBlock.forward` with its skip features passed in, instead of read from a hook stored on the module."
    up_out = block.shuf(up_in)
    if skip.shape[-2:] != up_out.shape[-2:]: up_out = F.interpolate(up_out, skip.shape[-2:], mode='nearest')
    return block.conv2(block.conv1(block.relu(torch.cat([up_out, block.bn(skip)], dim=1))))


def _quality_column(quality, n, device) -> torch.Tensor:
    "`quality` (a number, one per image, or already an n x 1 tensor) as an n x 1 float tensor."
    q = torch.as_tensor(quality, device=device).as_subclass(torch.Tensor).float()
    if q.ndim == 2 and q.shape[1] == 1: return q
    return q.reshape(-1, 1).expand(n, 1) if q.numel() == 1 else q.reshape(n, 1)


class RestorationNet(nn.Module):
    """Wraps a network `body` that predicts a correction: out = x + body(x), for inputs of any size; with an upsampling
    `head` (super-resolution by `scale`), out = bicubic_upscale(x) + head(body(x)).

    Pads to a multiple of `stride` (replicating the bottom and right edges, so the JPEG grid stays where it
    is), runs gray input as three equal channels, normalises with `mean`/`std` for a pretrained encoder, and
    crops back. The last layer (the head's, when there is one) starts at zero, so a new model is the identity (or the
    bicubic upscale) and learns corrections.

    A `DynamicUnet` body is run layer by layer with its skip features passed along, not kept in hooks on the
    modules, so one model can serve several threads at once. With `quality_aware`, `forward(x, quality)` scales
    and shifts the decoder's features by the JPEG quality (`QualityFiLM`); without a quality it is estimated
    from `x` (`QualityEstimator`, on the whole of `x`: a caller that tiles an image estimates once for all tiles).
    """
    def __init__(self, body, stride=32, mean=IMAGENET_MEAN, std=IMAGENET_STD, quality_aware=False, head=None, scale=1):
        super().__init__()
        if (head is None) != (scale == 1):
            raise ValueError(f'scale {scale} needs {"an" if scale > 1 else "no"} upsampling head')
        self.body, self.stride, self.head, self.scale = body, stride, head, scale
        self.register_buffer('mean', torch.tensor(mean).view(1, 3, 1, 1))
        self.register_buffer('std', torch.tensor(std).view(1, 3, 1, 1))
        last = [m for m in (head or body).modules() if isinstance(m, nn.Conv2d)][-1]
        nn.init.zeros_(last.weight)
        if last.bias is not None: nn.init.zeros_(last.bias)
        self.skips = None
        if isinstance(body, DynamicUnet):
            body.sfs.remove()
            self.skips = _skip_indices(body[0])
        self.quality_aware = quality_aware
        if quality_aware:
            if self.skips is None: raise ValueError('quality conditioning needs a U-Net body')
            self.film = QualityFiLM([m.conv2[0].out_channels for m in body if isinstance(m, UnetBlock)]
                                    + [m.convpath[-1][0].out_channels for m in body if isinstance(m, ResBlock)])
            self.estimator = QualityEstimator()

    def forward(self, x, quality=None):
        n_ch, (h, w) = x.shape[1], x.shape[-2:]
        if n_ch == 1: x = x.expand(-1, 3, -1, -1)
        film = None
        if self.quality_aware:
            film = self.film(self.estimator(x)[:, None] if quality is None else _quality_column(quality, len(x), x.device))
        ph, pw = -h % self.stride, -w % self.stride
        xp = F.pad(x, (0, pw, 0, ph), mode='replicate') if ph or pw else x
        xn = (xp - self.mean) / self.std
        correction = self._unet(xn, film) if self.skips is not None else self.body(xn)
        if self.head is None: out = xp + correction
        else: out = F.interpolate(xp, scale_factor=self.scale, mode='bicubic', align_corners=False) + self.head(correction)
        out = out[..., :h * self.scale, :w * self.scale]
        return out.mean(1, keepdim=True) if n_ch == 1 else out

    def estimate_quality(self, x, size=256) -> torch.Tensor:
        """The estimated JPEG quality of each image of the [0, 1] BxCxHxW `x`, from a `size`-px crop near its centre
        that starts on the 16-px grid (so the estimator sees the blocks where the encoder put them)."""
        if x.shape[1] == 1: x = x.expand(-1, 3, -1, -1)
        h, w = x.shape[-2:]
        y0, x0 = max(0, (h - size) // 2) // 16 * 16, max(0, (w - size) // 2) // 16 * 16
        return self.estimator(x[..., y0:y0 + size, x0:x0 + size])

    def _unet(self, x, film=None):
        "The DynamicUnet's layers in order, skip features kept in locals, FiLM after each decoder block."
        layers, feats, h = list(self.body), [], x
        for i, layer in enumerate(layers[0]):
            h = layer(h)
            feats.append(h)
        skips, k = [feats[i] for i in self.skips], 0
        for layer in layers[1:]:
            if isinstance(layer, UnetBlock): h = _unet_block(layer, h, skips[k])
            elif isinstance(layer, ResizeToOrig):
                if h.shape[-2:] != x.shape[-2:]: h = F.interpolate(h, x.shape[-2:], mode='nearest')
            elif isinstance(layer, MergeLayer): h = torch.cat([h, x], dim=1)
            elif isinstance(layer, ToTensorBase): continue
            else: h = layer(h)
            if film is not None and isinstance(layer, (UnetBlock, ResBlock)):
                scale, shift = film[k]
                h = h * scale + shift
            if isinstance(layer, UnetBlock): k += 1
        return h


def create_plain_cnn(nf=48, n_layers=8) -> nn.Sequential:
    "The control: `n_layers` 3x3 convs at full resolution, no normalisation (DnCNN without its BN)."
    layers = [ConvLayer(3, nf, norm_type=None)] + [ConvLayer(nf, nf, norm_type=None) for _ in range(n_layers - 2)]
    return nn.Sequential(*layers, nn.Conv2d(nf, 3, 3, padding=1))


def check_arch(name) -> str:
    "The `GENERATOR_CONFIGS` name for `name` (old names resolved), or an error listing the names there are."
    name = ARCH_ALIASES.get(name, name)
    if name not in GENERATOR_CONFIGS:
        raise ValueError(f'unknown generator {name!r}; choose from {", ".join(GENERATOR_CONFIGS)}')
    return name


def create_generator(name='mobilenetv3_small_100', pretrained=False, fixed_bn=False, **kwargs) -> RestorationNet:
    """A generator from `GENERATOR_CONFIGS[name]`; `kwargs` override the config (None values are ignored).
    `fixed_bn` makes its BatchNorms use their stored statistics in training too (`fix_batchnorm`)."""
    arch = check_arch(name)
    cfg = {**GENERATOR_CONFIGS[arch], **{k: v for k, v in kwargs.items() if v is not None}}
    kind, quality_aware, memory = cfg.pop('kind'), cfg.pop('quality_aware', False), cfg.pop('bytes_per_pixel')
    scale, head = cfg.pop('scale', 1), cfg.pop('head', None)
    if kind == 'plain': net = RestorationNet(create_plain_cnn(**cfg), stride=1, mean=(0.5,) * 3, std=(0.25,) * 3)
    else:
        enc = create_encoder(cfg['encoder'], pretrained=pretrained, cut=cfg['cut'], full_res=cfg['full_res'])
        body = DynamicUnet(enc, n_out=head if scale > 1 else 3, img_size=(64, 64), blur=False, self_attention=False,
                           last_cross=True, norm_type=None)
        net = RestorationNet(fix_batchnorm(body) if fixed_bn else body, stride=32, quality_aware=quality_aware,
                             head=create_upsampler(head, head, scale) if scale > 1 else None, scale=scale)
    net.arch, net.bytes_per_pixel = arch, memory
    return net


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
