"""Learners of the recipe: the generator (content loss, quality conditioning, mixed precision), the patch
critic, and the GAN that joins them; fitting that resumes from a checkpoint."""
from contextlib import nullcontext
from functools import partial
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
from . import _fastai  # noqa: F401  (fastai without its import-time warning)
from fastai.learner import Learner
from fastai.optimizer import Adam
from fastai.torch_core import num_distrib, rank_distrib
from fastai.vision.gan import (AdaptiveGANSwitcher, AdaptiveLoss, GANDiscriminativeLR, GANLearner, GANLoss,
                               accuracy_thresh_expand)
from fastcore.foundation import L

from .callbacks import CPUAutocast, QualityConditioning, ResumableCheckpoint, ema_callback, load_state
from .losses import create_loss
from .metrics import psnr_batch
from .models import create_critic, create_generator
from .precision import bf16_supported  # where inference asks too; exported here as before
from .weights import read_generator_state

__all__ = ['bf16_supported', 'gen_learner', 'QUALITY_LR_MULT', 'generator_groups', 'group_lrs', 'critic_learner', 'ConditionedGANLoss', 'gan_learner', 'load_init',
           'fit_resumable', 'distributed_context']


def gen_learner(dls, arch='mobilenetv3_small_100', loss='l1', pretrained=False, mixed_precision=None,
                quality_aware=None, fixed_bn=False, estimator_weight=0.1, p_estimated=0.5, estimator_quantile=0.5,
                p_underread=0.0, **kwargs) -> Learner:
    """A fastai Learner for the generator `arch` with content `loss` (a spec for `create_loss`) and a PSNR metric.

    channels_last memory format; bf16 mixed precision when `mixed_precision` (default: where it is native).
    `quality_aware` (default: the config's) conditions it on the quality in each batch (in a share `p_estimated`
    of batches its estimator's reading, in a share `p_underread` of samples a lower quality) and trains its
    estimator (`QualityConditioning`, its error at `estimator_quantile`); `fixed_bn` freezes the BatchNorm
    statistics.
    """
    model = create_generator(arch, pretrained=pretrained, quality_aware=quality_aware,
                             fixed_bn=fixed_bn).to(memory_format=torch.channels_last)
    loss_func = create_loss(loss) if isinstance(loss, (str, dict)) else loss
    learn = Learner(dls, model, loss_func=loss_func, metrics=[psnr_batch], opt_func=Adam, **kwargs)
    if model.quality_aware: learn.add_cb(QualityConditioning(estimator_weight, p_estimated, estimator_quantile, p_underread))
    if bf16_supported() if mixed_precision is None else mixed_precision:
        if torch.cuda.is_available(): learn.to_bf16()
        else: learn.add_cb(CPUAutocast())  # fastai's MixedPrecision autocasts CUDA only
    learn.splitter = partial(generator_groups, pretrained=pretrained)
    if pretrained: learn.freeze_to(1)  # the pretrained encoder first
    return learn


QUALITY_LR_MULT = 10  # the quality conditioning and estimator start from nothing: they learn at 10x the body's rate


def generator_groups(model, pretrained=False) -> list:
    """fastai parameter groups of a generator: the encoder when it is pretrained (trained at a tenth of the rate),
    the rest of the network, and the quality layers when it has them (at `QUALITY_LR_MULT` times)."""
    quality = [p for n, p in model.named_parameters() if n.split('.')[0] in ('film', 'estimator')]
    encoder = list(model.body[0].parameters()) if pretrained else []
    taken = {id(p) for p in quality + encoder}
    return [g for g in (encoder, [p for p in model.parameters() if id(p) not in taken], quality) if g]


def group_lrs(learn, lr, pretrained=False):
    "The learning rate of each of `learn`'s parameter groups for body rate `lr` (see `generator_groups`)."
    mults = ([0.1] if pretrained else []) + [1] + ([QUALITY_LR_MULT] if getattr(learn.model, 'quality_aware', False) else [])
    return np.array(mults) * lr if len(mults) > 1 else lr


def critic_learner(dls, critic=None, **kwargs) -> Learner:
    """A Learner for a patch critic (default: `create_critic()`): one logit per patch region, binary
    cross-entropy (real=1, generated=0)."""
    return Learner(dls, critic or create_critic(), loss_func=AdaptiveLoss(nn.BCEWithLogitsLoss()),
                   metrics=partial(accuracy_thresh_expand, thresh=0.0, sigmoid=False), **kwargs)


class ConditionedGANLoss(GANLoss):
    "fastai's `GANLoss` for a generator that takes several inputs (the image and its quality)."
    def critic(self, real_pred, *inputs):
        fake = self.gan_model.generator(*inputs).requires_grad_(False)
        self.crit_loss = self.crit_loss_func(real_pred, self.gan_model.critic(fake))
        return self.crit_loss


def gan_learner(learn_gen, learn_crit, critic_thresh=0.65, weights_gen=(0.02, 1.0), cbs=None) -> GANLearner:
    """DeOldify's GAN phase from a generator and a critic Learner: `AdaptiveGANSwitcher` trains the critic while
    its loss is above `critic_thresh`, `GANDiscriminativeLR` gives it 5x the learning rate, and the generator's
    loss is `weights_gen` (adversarial, content)."""
    learn = GANLearner.from_learners(learn_gen, learn_crit, switcher=AdaptiveGANSwitcher(critic_thresh=critic_thresh),
                                     weights_gen=weights_gen, opt_func=partial(Adam, mom=0., sqr_mom=0.99),
                                     show_img=False)
    gl = learn.loss_func
    learn.loss_func = ConditionedGANLoss(gl.gen_loss_func, gl.crit_loss_func, gl.gan_model)
    learn.add_cbs([GANDiscriminativeLR(mult_lr=5.)] + L(cbs))
    return learn


def load_init(model, path):
    """Load the generator weights `path` into `model`. Weights of a blind generator go into a quality-aware one:
    its quality layers start as they are built (the conditioning as the identity), so it begins as the blind one.
    Artifact-removal weights go into a super-resolution generator: everything but the U-Net's last 1x1 conv (which
    feeds the head, not an image) and the upsampling head, which start as built (the head at zero: the bicubic upscale)."""
    sd = read_generator_state(path)
    own, dropped = model.state_dict(), []
    if getattr(model, 'head', None) is not None and not any(k.startswith('head.') for k in sd):
        dropped = [k for k, v in sd.items() if k in own and own[k].shape != v.shape]
        sd = {k: v for k, v in sd.items() if k not in dropped}
    missing, unexpected = model.load_state_dict(sd, strict=False)
    new = [k for k in missing if k.split('.')[0] in ('film', 'estimator', 'head') or k in dropped]
    if unexpected or len(new) < len(missing):
        raise ValueError(f'{path}: the weights do not fit the {type(model).__name__} being trained (missing '
                         f'{[k for k in missing if k not in new][:3]}, unexpected {unexpected[:3]})')
    if dropped: print(f'{path}: artifact-removal weights; the upsampling head and the U-Net\'s last conv start untrained')
    if any(k.split('.')[0] == 'film' for k in new):
        print(f'{path}: blind weights; the quality conditioning and estimator start untrained')
    elif any(k.split('.')[0] == 'estimator' for k in new):
        print(f"{path}: the estimator's {sorted({k.split('.')[1] for k in new if k.startswith('estimator.')})} start untrained")
    return model


def fit_resumable(learn, n_epoch, lr, ckpt, tracker=None):
    "`fit_one_cycle` that saves each epoch to `ckpt` and, when `ckpt` exists, continues after its last epoch."
    start = _resume(learn, ckpt)
    if tracker: tracker.resume_at(start)
    if start < n_epoch:
        with distributed_context(learn):
            learn.fit_one_cycle(n_epoch, lr, start_epoch=start, cbs=[ResumableCheckpoint(ckpt)] + L(tracker))


def distributed_context(learn):
    "fastai's `distrib_ctx` when launched as several processes (`accelerate launch`), else nothing to do."
    if num_distrib() <= 1: return nullcontext()
    import fastai.distributed  # noqa: F401  (adds Learner.distrib_ctx)
    print(f'distributed: process {rank_distrib()} of {num_distrib()}', flush=True)
    return learn.distrib_ctx(sync_bn=torch.cuda.is_available())  # SyncBatchNorm is GPU-only


def _resume(learn, path):
    "Load a `ResumableCheckpoint`; return the epoch to start from (0 if there is none)."
    if not Path(path).exists(): return 0
    st = load_state(path)
    learn.model.load_state_dict(st['model'])
    learn.create_opt()
    learn.opt.load_state_dict(st['opt'])
    ema = ema_callback(learn)
    if ema is not None and 'ema' in st: ema.load_state_dict(st['ema'])
    print(f'resuming {path.name} after epoch {st["epoch"] + 1}/{st["n_epoch"]}')
    return st['epoch'] + 1
