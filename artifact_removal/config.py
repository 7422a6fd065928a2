"""The settings of the training recipe, one dataclass (a CLI option each), light to import."""
from dataclasses import dataclass, field

__all__ = ['NoGANConfig', 'QUICK']


def setting(default, help): return field(default=default, metadata={'help': help})


@dataclass
class NoGANConfig:
    "Every setting of the recipe; the defaults are the full CPU recipe, `QUICK` runs end to end in minutes."
    arch: str = setting('mobilenetv3_small_100', 'generator architecture, a GENERATOR_CONFIGS name')
    scale: int = setting(1, 'super-resolution factor: 2 trains on downscaled, then JPEG-damaged inputs (with an x2 '
                         'arch such as mobilenetv3_small_100_sr2; --size is then the output patch)')
    pretrained: bool = setting(False, 'start the encoder from ImageNet weights (timm; needs the network once)')
    quality_aware: bool = setting(True, 'condition the generator on the JPEG quality and train its quality estimator')
    fixed_bn: bool = setting(True, 'BatchNorms normalise with their stored statistics in training too')
    init: str = setting('', 'start stage 1 from these generator weights (.safetensors or .pth)')
    size: int = setting(64, 'training patch size in px')
    bs: int = setting(32, 'batch size')
    n_patches: int = setting(16, 'random patches per BSDS-sized training image and epoch (more for larger images)')
    quality: tuple = setting((5, 95), 'JPEG quality range LOW HIGH of the training inputs')
    quality_bias: float = setting(2.0, 'how strongly the drawn qualities lean to LOW: 1 uniform, 2 squares a uniform '
                                  'draw (about 41%% at q20 or below, 12%% at q75 or above)')
    p_clean: float = setting(0.05, 'share of x1 training inputs left uncompressed (quality label 100), so the model '
                             'learns to leave clean pictures alone; x2 runs keep a third of their small inputs clean')
    video: float = setting(0.0, 'share of the training pairs that are frames of H.264/H.265/MPEG-4/MPEG-2 clips '
                           'made from the photos (pans, zooms), the rest JPEG; a blind model only (--no-quality-aware)')
    gen_loss: str = setting('ycbcr+lowfreq+blockedge', "stage-1 content loss, e.g. 'l1' or "
                            "'ycbcr+lowfreq+blockedge+stlpips:0.5' (names: l1 ycbcr lowfreq blockedge mse "
                            "charbonnier ssim ms_ssim stlpips lpips)")
    estimator_weight: float = setting(0.1, "weight of the quality estimator's error (on quality/100) in the loss")
    estimator_quantile: float = setting(0.5, "0.5: the estimator's error is the L1; higher (0.9 for the release "
                                             "models): a reading too low costs more, so content that reads alike at "
                                             "most qualities (flat areas) reads high and is left alone")
    p_estimated: float = setting(0.5, "share of batches in which the generator is told its estimator's reading of "
                                      "the quality instead of the label, as it is in use")
    p_underread: float = setting(0.0, 'share of samples the generator is told a quality below their own (half to '
                                 'all of it), as the estimator reads flat content it cannot judge: it learns to '
                                 'check the pixels before it smooths')
    gen_epochs: int = setting(30, 'stage-1 epochs; 0 starts the GAN cycle from --init as it is')
    gen_minutes: float = setting(0.0, 'stage-1 time budget in minutes: sizes the epochs so --gen-epochs fill it')
    gen_frozen_epochs: int = setting(2, 'epochs with the encoder frozen first (only with --pretrained)')
    gen_lr: float = setting(2e-3, 'stage-1 maximum learning rate (one cycle)')
    gen_ema: float = setting(0.999, 'decay of the weight average stage 1 validates and keeps (0: none)')
    critic_patches: int = setting(8, 'generated and clean patches saved per training image for the critic')
    critic_epochs: int = setting(8, 'critic pretraining epochs (it needs several hundred steps to learn)')
    critic_lr: float = setting(1e-3, 'critic learning rate')
    gan_iters: int = setting(1500, 'GAN-phase iterations (generator and critic steps)')
    gan_lr: float = setting(1e-4, 'GAN-phase learning rate')
    gan_weights: tuple = setting((0.02, 1.0), 'generator loss weights ADVERSARIAL CONTENT in the GAN phase')
    gan_loss: str = setting('', 'content loss of the GAN phase (default: --gen-loss)')
    critic_thresh: float = setting(0.65, 'adaptive switcher: train the critic while its loss is above this')
    save_every: int = setting(250, 'GAN iterations between generator checkpoints')
    valid_images: int = setting(100, 'validation crops scored per epoch and per checkpoint')
    valid_crop: int = setting(256, 'validation crop size in px')
    valid_quality: int = setting(10, 'JPEG quality of the validation inputs')
    smooth_valid: str = setting('', 'folder of smooth images (gradients, flat art) for the no-harm check')
    max_psnr_drop: float = setting(0.1, 'switch point: PSNR may fall at most this much (dB) below stage 1')
    num_workers: int = setting(1, 'DataLoader worker processes')
    seed: int = setting(42, 'random seed')

    def __post_init__(self):
        "Refuse a bad setting when the config is made, before a run writes anything."
        from .callbacks import check_decay
        from .degrade import check_quality
        from .losses import parse_loss_spec
        from .models import GENERATOR_CONFIGS, check_arch
        arch_scale = GENERATOR_CONFIGS[check_arch(self.arch)].get('scale', 1)
        if arch_scale != self.scale:
            sr = [k for k, v in GENERATOR_CONFIGS.items() if v.get('scale', 1) == self.scale]
            raise ValueError(f'{self.arch} makes x{arch_scale} outputs, not x{self.scale}; '
                             + (f'with scale {self.scale} choose from {", ".join(sr)}' if sr else
                                f'no architecture here makes x{self.scale}'))
        for spec in (self.gen_loss, self.gan_loss):
            if spec: parse_loss_spec(spec)
        if self.gen_ema: check_decay(self.gen_ema)
        for q in (*self.quality, self.valid_quality): check_quality(q)
        if len(self.quality) != 2 or self.quality[0] > self.quality[1]:
            raise ValueError(f'quality is a range LOW HIGH with LOW <= HIGH, got {self.quality}')
        if self.gen_minutes < 0: raise ValueError(f'gen_minutes is a time budget, not {self.gen_minutes}')
        if not 0 < self.estimator_quantile < 1:
            raise ValueError(f'estimator_quantile is a quantile, between 0 and 1, got {self.estimator_quantile}')
        if self.quality_bias <= 0: raise ValueError(f'quality_bias must be above 0, got {self.quality_bias}')
        if not 0 <= self.p_underread <= 1:
            raise ValueError(f'p_underread is a share of the samples, 0..1, got {self.p_underread}')
        if not 0 <= self.p_clean < 1:
            raise ValueError(f'p_clean is a share of the training pairs, 0 to below 1, got {self.p_clean}')
        if not 0 <= self.video <= 1: raise ValueError(f'video is a share of the training pairs, 0..1, got {self.video}')
        if self.video and self.quality_aware:
            raise ValueError('video frames have no JPEG quality to condition on: train them with --no-quality-aware')
        for name in ('size', 'bs', 'n_patches', 'critic_patches', 'save_every', 'valid_images', 'valid_crop'):
            if getattr(self, name) < 1: raise ValueError(f'{name} must be at least 1, got {getattr(self, name)}')
        if self.size % self.scale: raise ValueError(f'size {self.size} is not a multiple of the scale {self.scale}')

    def degradation(self):
        """The training inputs' damage (a `JPEGDegradation`; with a scale, an `SRDegradation` ending in one): one place
        for the pairs and the critic's patches."""
        from .degrade import JPEGDegradation, SRDegradation
        jpeg = dict(quality=self.quality, bias=self.quality_bias)
        if self.scale == 1: return JPEGDegradation(**jpeg, p_clean=self.p_clean)
        return SRDegradation(self.scale, jpeg=JPEGDegradation(**jpeg, p_clean=1 / 3))


def __getattr__(name):
    "`QUICK` is made when first used: checking a config loads the model and loss code, which `--help` should not."
    if name != 'QUICK': raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
    return NoGANConfig(size=32, bs=8, n_patches=2, gen_epochs=2, critic_patches=1, critic_epochs=1, gan_iters=6,
                       save_every=3, valid_images=3, valid_crop=64, num_workers=0)
