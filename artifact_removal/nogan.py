"""The NoGAN recipe (DeOldify) as resumable stages, each a function that reads and writes state_dicts in `out`.

1. `pretrain_generator`: the generator alone on a content loss (`fit_one_cycle`; frozen then unfrozen when the
   encoder is pretrained), keeping the EMA of its weights (`ModelEMA`).
2. `save_generated` + `pretrain_critic`: the critic learns to tell the generator's outputs from clean patches.
3. `train_gan`: a short GAN phase (`GANLearner.from_learners`, adaptive switcher, `GANDiscriminativeLR`), the
   generator saved every `save_every` iterations.
4. `choose_switch_point`: every GAN checkpoint scored on validation images (ST-LPIPS, PSNR); the rule below
   picks one where DeOldify picked by eye.

`run_nogan(out, data, cfg)` runs them in order and skips what is already done, so an interrupted run resumes.
"""
import json
import math
import os
import shutil
import time
import warnings
from contextlib import nullcontext
from dataclasses import asdict, dataclass, replace
from functools import partial
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
from fastai.callback.core import Callback, CancelFitException, CancelValidException
from fastcore.foundation import L
from fastai.learner import Learner
from fastai.torch_core import num_distrib, rank_distrib
from fastai.optimizer import Adam
from fastai.vision.gan import (AdaptiveGANSwitcher, AdaptiveLoss, GANDiscriminativeLR, GANLearner,
                               accuracy_thresh_expand)
from fastprogress.fastprogress import progress_bar
from PIL import Image

from .files import atomic_path
from .ema import ModelEMA, check_decay, ema_callback, kept_model
from .data import find_images, get_critic_dls, get_pair_dls, load_image
from .degrade import JPEGDegradation, check_quality, jpeg_compress
from .losses import create_loss, parse_loss_spec
from .metrics import STLPIPS, psnr, psnr_batch, to_uint8
from .models import check_arch, create_critic, create_generator
from .visualize import plot_side_by_side, plot_validation_curve
from .weights import read_generator_state

__all__ = ['NoGANConfig', 'QUICK', 'gen_learner', 'critic_learner', 'pretrain_generator', 'save_generated',
           'pretrain_critic', 'train_gan', 'score_generator', 'choose_switch_point', 'run_nogan',
           'save_state', 'load_state', 'ResumableCheckpoint', 'GANCheckpoints']


@dataclass
class NoGANConfig:
    "Every setting of the recipe; the defaults are the full CPU recipe, `QUICK` runs end to end in minutes."
    arch: str = 'mobilenetv3_small_100'
    pretrained: bool = False            # ImageNet encoder weights from timm (needs the network once)
    init: str = ''                      # start stage 1 from these generator weights (.safetensors or .pth)
    size: int = 64                      # training patch size (the paper's)
    bs: int = 32
    n_patches: int = 16                 # random patches per training image and epoch
    quality: tuple = (5, 95)            # JPEG quality range of the training inputs
    gen_loss: str = 'l1'                # content loss, e.g. 'l1', 'l1+stlpips:0.5', 'charbonnier+ssim'
    gen_epochs: int = 30
    gen_minutes: float = 0.0            # stage-1 time budget: >0 sizes the epochs (n_patches) so gen_epochs fill it
    gen_frozen_epochs: int = 2          # encoder frozen first (only when pretrained)
    gen_lr: float = 2e-3
    gen_ema: float = 0.999              # decay of the weight average that stage 1 validates and keeps (0: none)
    critic_patches: int = 8             # generated/clean patches saved per training image
    critic_epochs: int = 8              # ~900 steps at the defaults: the critic needs several hundred to learn
    critic_lr: float = 1e-3
    gan_iters: int = 1500
    gan_lr: float = 1e-4
    gan_weights: tuple = (0.02, 1.0)    # (adversarial, content) weights of the generator loss
    gan_loss: str = ''                  # content loss of the GAN phase (default: gen_loss), e.g. 'l1+stlpips:0.5'
    critic_thresh: float = 0.65         # AdaptiveGANSwitcher: train the critic while its loss is above this
    save_every: int = 250
    valid_images: int = 100             # validation crops (stage-1 curves, switch point): less sampling noise than 40
    valid_crop: int = 256
    valid_qualities: tuple = (10, 30)
    max_psnr_drop: float = 0.1          # switch-point rule: PSNR may fall at most this much below stage 1's
    num_workers: int = 1
    seed: int = 42

    def __post_init__(self):
        "Refuse a bad setting when the config is made, before a run writes anything."
        check_arch(self.arch)
        for spec in (self.gen_loss, self.gan_loss):
            if spec: parse_loss_spec(spec)
        if self.gen_ema: check_decay(self.gen_ema)
        for q in (*self.quality, *self.valid_qualities): check_quality(q)
        if len(self.quality) != 2 or self.quality[0] > self.quality[1]:
            raise ValueError(f'quality is a range LOW HIGH with LOW <= HIGH, got {self.quality}')
        if self.gen_minutes < 0: raise ValueError(f'gen_minutes is a time budget, not {self.gen_minutes}')
        for name in ('size', 'bs', 'n_patches', 'critic_patches', 'save_every', 'valid_images', 'valid_crop'):
            if getattr(self, name) < 1: raise ValueError(f'{name} must be at least 1, got {getattr(self, name)}')


QUICK = NoGANConfig(size=32, bs=8, n_patches=2, gen_epochs=2, critic_patches=1, critic_epochs=1, gan_iters=6,
                    save_every=3, valid_images=3, valid_crop=64, valid_qualities=(10,), num_workers=0)


# ---------- files: state_dicts written atomically, never pickled Learners ----------

def save_state(obj, path):
    """torch.save `obj` (tensors and plain data) to `path` through a temporary file, so no half file is left.
    In a distributed run only the first process writes."""
    if rank_distrib(): return
    with atomic_path(path) as tmp: torch.save(obj, tmp)


def load_state(path, map_location='cpu'): return torch.load(path, map_location=map_location, weights_only=True)


def _write_json(obj, path):
    if rank_distrib(): return
    with atomic_path(path) as tmp: Path(tmp).write_text(json.dumps(obj, indent=2, default=str))


class _CompletedEpochCallback(Callback):
    "Calls `after_completed_epoch` after epochs that ran: not after those a resumed fit skips (`start_epoch`)."
    def before_epoch(self): self.skipped = False
    def after_cancel_epoch(self): self.skipped = True
    def after_epoch(self):
        if not self.skipped: self.after_completed_epoch()


class ResumableCheckpoint(_CompletedEpochCallback):
    "Save model, optimizer and the finished epoch after every epoch to `path`, so `fit` can resume there."
    order = 65
    def __init__(self, path): self.path = Path(path)
    def after_completed_epoch(self):
        ema = ema_callback(self.learn)
        save_state({'model': self.learn.model.state_dict(), 'opt': _plain(self.learn.opt.state_dict()),
                    'epoch': self.epoch, 'n_epoch': self.n_epoch, 'recorder': _history(self.learn),
                    **({'ema': ema.state_dict()} if ema is not None else {})}, self.path)


class QualityTracker(_CompletedEpochCallback):
    """After each epoch, score the model (its weight average when it has one) on fixed validation `pairs`
    (PSNR, ST-LPIPS) and log it with wall time; with `high_pairs` (the same crops at a high quality) also
    its PSNR gain there, which must not go below zero: a model that learns q10 can learn to blur q95."""
    order = 60
    def __init__(self, pairs, log_path, stlpips=True, high_pairs=None):
        self.pairs, self.log_path, self.metric = pairs, Path(log_path), STLPIPS() if stlpips else None
        self.high_pairs = high_pairs
        if high_pairs: self.high_input = score_generator(None, high_pairs)['psnr']
        self.log = json.loads(self.log_path.read_text()) if self.log_path.exists() else []

    def resume_at(self, epoch):
        "Forget logged epochs from `epoch` on: a fit resumed there redoes them."
        self.log = [r for r in self.log if r['epoch'] <= epoch]

    def before_fit(self): self.t0 = time.time() - (self.log[-1]['seconds'] if self.log else 0)

    def scores(self, model) -> dict:
        "`model`'s scores on the pairs, and its PSNR gain on the high-quality pairs when there are any."
        row = score_generator(model, self.pairs, self.metric)
        if self.high_pairs:
            row[f'q{self.high_pairs[0][0]}_gain'] = score_generator(model, self.high_pairs)['psnr'] - self.high_input
        return row

    def record(self, epoch, seconds, model):
        "Log `model`'s scores as those of `epoch` (0: the weights a run starts from, before any training)."
        self.log.append({'epoch': epoch, 'seconds': seconds, **self.scores(model)})
        _write_json(self.log, self.log_path)
        print(f"validation: {', '.join(f'{k} {v:.4g}' for k, v in self.log[-1].items())}")

    def after_completed_epoch(self):
        self.record(self.epoch + 1, time.time() - self.t0, kept_model(self.learn))
        self.model.train()


def _plain(o):
    """fastcore `L`s and numpy scalars (in fastai's optimizer state) as plain lists and numbers, so the file
    loads with `weights_only=True`."""
    if isinstance(o, dict): return {k: _plain(v) for k, v in o.items()}
    if isinstance(o, (list, tuple, L)): return [_plain(v) for v in o]
    return o.item() if isinstance(o, np.generic) else o


def _history(learn):
    "The recorder's per-epoch values as plain floats (for the validation-curve plots and logs)."
    return {'names': [str(n) for n in learn.recorder.metric_names[1:-1]],
            'values': [[float(v) if v is not None else None for v in row] for row in learn.recorder.values]}


def _fit_resumable(learn, n_epoch, lr, ckpt, tracker=None):
    "`fit_one_cycle` that saves each epoch to `ckpt` and, when `ckpt` exists, continues after its last epoch."
    start = _resume(learn, ckpt)
    if tracker: tracker.resume_at(start)
    if start < n_epoch:
        with _distributed(learn):
            learn.fit_one_cycle(n_epoch, lr, start_epoch=start, cbs=[ResumableCheckpoint(ckpt)] + L(tracker))


def _distributed(learn):
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


# ---------- learners ----------

def bf16_supported() -> bool:
    "Whether bf16 autocast runs natively here: a CUDA GPU with bf16, or a CPU with AVX512-BF16/AMX."
    if torch.cuda.is_available(): return torch.cuda.is_bf16_supported()
    return torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()


class CPUAutocast(Callback):
    "bf16 autocast of the forward pass and loss on the CPU, where it is native (AVX512-BF16 or AMX)."
    order = 10
    ctx = None
    def before_batch(self):
        self.ctx = torch.autocast('cpu', dtype=torch.bfloat16)
        self.ctx.__enter__()
    def after_loss(self): self._exit()
    def after_cancel_batch(self): self._exit()
    def _exit(self):
        if self.ctx is not None: self.ctx.__exit__(None, None, None)
        self.ctx = None


def gen_learner(dls, arch='mobilenetv3_small_100', loss='l1', pretrained=False, mixed_precision=None,
                **kwargs) -> Learner:
    """A fastai Learner for the generator `arch` with content `loss` (a spec for `create_loss`) and a PSNR metric.

    channels_last memory format; bf16 mixed precision when `mixed_precision` (default: where it is native).
    """
    model = create_generator(arch, pretrained=pretrained).to(memory_format=torch.channels_last)
    loss_func = create_loss(loss) if isinstance(loss, (str, dict)) else loss
    learn = Learner(dls, model, loss_func=loss_func, metrics=[psnr_batch], opt_func=Adam, **kwargs)
    if bf16_supported() if mixed_precision is None else mixed_precision:
        if torch.cuda.is_available(): learn.to_bf16()
        else: learn.add_cb(CPUAutocast())  # fastai's MixedPrecision autocasts CUDA only
    if pretrained:  # fastai's parameter groups: encoder, the rest; freeze the pretrained encoder first
        learn.splitter = lambda m: [list(m.body[0].parameters()), [p for n, p in m.named_parameters()
                                                                  if not n.startswith('body.0.')]]
        learn.freeze()
    return learn


def critic_learner(dls, critic=None, **kwargs) -> Learner:
    """A Learner for a patch critic (default: `create_critic()`): one logit per patch region, binary
    cross-entropy (real=1, generated=0)."""
    return Learner(dls, critic or create_critic(), loss_func=AdaptiveLoss(nn.BCEWithLogitsLoss()),
                   metrics=partial(accuracy_thresh_expand, thresh=0.0, sigmoid=False), **kwargs)


def _pair_dls(data, valid, cfg):
    return get_pair_dls(data, valid, size=cfg.size, bs=cfg.bs, n_patches=cfg.n_patches, seed=cfg.seed,
                        degradation=JPEGDegradation(quality=cfg.quality), num_workers=cfg.num_workers)


# ---------- stages ----------

def _stage1_learner(dls, cfg):
    return gen_learner(dls, cfg.arch, cfg.gen_loss, cfg.pretrained, cbs=ModelEMA(cfg.gen_ema) if cfg.gen_ema else None)


class _StepTimer(Callback):
    """Time training steps `skip`+1 .. `skip`+`n`, then stop the fit. The first steps are skipped: they wait for the
    loader's workers to start, then draw on the batches those prefetched, which is faster than the steady state
    when loading is the bottleneck."""
    order = 100
    def __init__(self, skip, n): self.skip, self.n, self.i, self.seconds = skip, n, 0, None
    def after_batch(self):
        self.i += 1
        if self.i not in (self.skip, self.skip + self.n): return
        if torch.cuda.is_available(): torch.cuda.synchronize()
        if self.i == self.skip: self.t0 = time.perf_counter(); return
        self.seconds = (time.perf_counter() - self.t0) / self.n
        raise CancelFitException()


def _patches_for_budget(data, valid, cfg, tracker, seconds) -> dict:
    """The `n_patches` for which `cfg.gen_epochs` epochs (their steps and validations, and the init's score) take
    about `seconds` on this machine, from one validation (fastai's and `tracker`'s) and timed steps of a throwaway
    learner built as the stage builds its own. With `cfg.init` that validation is the stage's epoch 0."""
    timer = _StepTimer(skip=5 + 4 * cfg.num_workers, n=40)  # well past the batches the workers prefetched (2 each)
    probe = 2 * math.ceil((timer.skip + timer.n + 1) * cfg.bs / len(find_images(data)))  # x2: a held-out tenth
    dls = _pair_dls(data, valid, replace(cfg, n_patches=probe))
    learn = _stage1_learner(dls, cfg)
    if cfg.init: learn.model.load_state_dict(read_generator_state(cfg.init))
    t = time.perf_counter()
    learn.validate()
    if cfg.init and not tracker.log: tracker.record(0, 0., learn.model)  # the stage's epoch 0, scored once
    else: tracker.scores(learn.model)
    valid_seconds = time.perf_counter() - t
    learn.fit(1, cfg.gen_lr, cbs=timer)
    per_patch = timer.seconds * len(dls.train_ds) / probe / cfg.bs  # one more patch per image: this many seconds
    if cfg.init: seconds -= valid_seconds  # that validation was the stage's epoch 0: the budget covers it too
    epochs = cfg.gen_epochs + (cfg.gen_frozen_epochs if cfg.pretrained else 0)
    n_patches = max(1, int((seconds / epochs - valid_seconds) / per_patch))
    if valid_seconds > seconds / epochs / 2:
        warnings.warn(f'validation takes {valid_seconds:.0f} s of the {seconds / epochs:.0f} s each epoch may take: '
                      'fewer --gen-epochs or --valid-images, or more --gen-minutes, leave more time to train')
    return {'minutes': cfg.gen_minutes, 'step_seconds': timer.seconds, 'valid_seconds': valid_seconds,
            'n_patches': n_patches, 'epochs': epochs}


def pretrain_generator(out, data, valid=None, cfg=NoGANConfig(), dls=None) -> Path:
    """Stage 1: fit the generator on the content loss; writes `gen_pretrain.pth`; resumes from its checkpoint.
    With `cfg.gen_minutes` it first times a few steps and sizes the epochs to fill that budget (`gen_budget.json`;
    a resumed run keeps the size it chose)."""
    t0, out = time.time(), Path(out)
    final, ckpt, budget_file = out / 'gen_pretrain.pth', out / 'gen_pretrain_ckpt.pth', out / 'gen_budget.json'
    if not cfg.gen_epochs:  # start the NoGAN cycle from `init` as it is: no data to load
        gen = _load_generator(cfg.arch, cfg.init) if cfg.init else create_generator(cfg.arch, pretrained=cfg.pretrained)
        save_state(gen.state_dict(), final)
        return final
    both = _valid_set(valid or data, replace(cfg, valid_qualities=(10, 95)))  # each crop decoded once
    pairs, high = [p for p in both if p[0] == 10], [p for p in both if p[0] == 95]
    tracker = QualityTracker(pairs, out / 'gen_pretrain_valid.json', high_pairs=high)
    budget = None
    if cfg.gen_minutes:
        if dls is not None: raise ValueError('gen_minutes sizes the epochs, so the stage builds its own DataLoaders')
        if ckpt.exists() and budget_file.exists(): budget = json.loads(budget_file.read_text())
        else:
            budget = _patches_for_budget(data, valid, cfg, tracker, cfg.gen_minutes * 60 - (time.time() - t0) - 10)
            _write_json(budget, budget_file)
        print(f"time budget {cfg.gen_minutes:g} min: {budget['step_seconds']:.3f} s/step, "
              f"{budget['valid_seconds']:.1f} s/validation -> {budget['n_patches']} patches per image and epoch")
        cfg = replace(cfg, n_patches=budget['n_patches'])
    dls = dls or _pair_dls(data, valid, cfg)
    learn = _stage1_learner(dls, cfg)
    if cfg.init:
        learn.model.load_state_dict(read_generator_state(cfg.init))
        if not tracker.log: tracker.record(0, 0., learn.model)  # the score a continued run must beat
    if cfg.pretrained and cfg.gen_frozen_epochs:
        _fit_resumable(learn, cfg.gen_frozen_epochs, cfg.gen_lr, out / 'gen_frozen_ckpt.pth',
                       QualityTracker(pairs, out / 'gen_frozen_valid.json', high_pairs=high))
        learn.unfreeze()
    lr = slice(cfg.gen_lr / 10, cfg.gen_lr) if cfg.pretrained else cfg.gen_lr
    _fit_resumable(learn, cfg.gen_epochs, lr, ckpt, tracker)
    input_scores = score_generator(None, pairs, tracker.metric)
    _write_json({'stage': 'gen_pretrain', 'arch': cfg.arch, 'seconds_this_run': time.time() - t0,
                 'history': load_state(ckpt)['recorder'], 'valid_q10': tracker.log, 'input_q10': input_scores,
                 **({'budget': budget} if budget else {})}, out / 'gen_pretrain.json')
    plot_validation_curve(tracker.log, out / 'gen_pretrain_valid.png', input_scores)
    save_state(kept_model(learn).state_dict(), final)
    return final


def _load_generator(arch, path):
    g = create_generator(arch)
    g.load_state_dict(read_generator_state(path))
    return g.eval()


@torch.no_grad()
def save_generated(gen, data, out, cfg=NoGANConfig()) -> Path:
    """Stage 2a: for each training image, `cfg.critic_patches` random patches, JPEG-damaged and restored by `gen`,
    written to `out`/generated, with the clean patches in `out`/clean (DeOldify's image_gen folder)."""
    out, gen = Path(out), gen.eval()
    rng = np.random.default_rng(cfg.seed)
    deg = JPEGDegradation(quality=cfg.quality)
    tmp = out.with_name(out.name + '.partial')
    shutil.rmtree(tmp, ignore_errors=True)
    for d in ('generated', 'clean'): (tmp / d).mkdir(parents=True)
    for f in progress_bar(list(find_images(data))):
        img = load_image(f)
        for k in range(cfg.critic_patches):
            w, h = img.size
            x, y = int(rng.integers(0, w - cfg.size + 1)), int(rng.integers(0, h - cfg.size + 1))
            clean = img.crop((x, y, x + cfg.size, y + cfg.size))
            inp = torch.from_numpy(np.asarray(deg(clean, rng))).permute(2, 0, 1)[None].float() / 255
            Image.fromarray(to_uint8(gen(inp)[0])).save(tmp / 'generated' / f'{f.stem}_{k}.png')
            clean.save(tmp / 'clean' / f'{f.stem}_{k}.png')
    shutil.rmtree(out, ignore_errors=True)
    os.replace(tmp, out)  # the folder appears whole or not at all
    return out


def pretrain_critic(out, critic_data, cfg=NoGANConfig()) -> Path:
    "Stage 2b: fit the critic on generated vs clean patches; writes `critic_pretrain.pth`."
    out = Path(out)
    final, ckpt = out / 'critic_pretrain.pth', out / 'critic_pretrain_ckpt.pth'
    dls = get_critic_dls(critic_data, size=cfg.size, bs=cfg.bs, seed=cfg.seed, num_workers=cfg.num_workers)
    learn = critic_learner(dls)
    _fit_resumable(learn, cfg.critic_epochs, cfg.critic_lr, ckpt)
    save_state(learn.model.state_dict(), final)
    return final


class GANCheckpoints(Callback):
    """Save the generator every `every` iterations (generator and critic steps alike) as `gen_{iter}.pth`, the
    whole GAN state to `gan_ckpt.pth` for resuming, and stop after `n_iters`. Skips fastai's per-epoch
    validation: `GANTrainer` would reset the switcher to the generator at every epoch, and the switch point is
    scored on fixed crops afterwards."""
    order = -20  # before GANTrainer's before_validate
    def __init__(self, folder, every, n_iters, start_iter=0):
        self.folder, self.every, self.n_iters, self.start_iter = Path(folder), every, n_iters, start_iter

    def before_fit(self):
        self.it, self.log_path = self.start_iter, self.folder / 'gan_log.json'
        self.log = [r for r in json.loads(self.log_path.read_text()) if r['iter'] <= self.it] if self.log_path.exists() else []
        self.steps = {'gen_steps': 0, 'critic_steps': 0}

    def before_validate(self): raise CancelValidException()

    def _log_losses(self):
        "Smoothed generator and critic losses and how many steps each took since the last save: gan_log.json."
        gt = self.learn.gan_trainer
        value = lambda l: float(l.value) if l.count else None
        self.log.append({'iter': self.it, 'gen_loss': value(gt.gen_loss), 'crit_loss': value(gt.crit_loss), **self.steps})
        self.steps = {'gen_steps': 0, 'critic_steps': 0}
        _write_json(self.log, self.log_path)

    def after_batch(self):
        if not self.training: return
        self.it += 1
        self.steps['gen_steps' if self.learn.gan_trainer.gen_mode else 'critic_steps'] += 1
        if self.it % self.every == 0 or self.it >= self.n_iters:
            self._log_losses()
            save_state(self.learn.model.generator.state_dict(), self.folder / f'gen_{self.it:06d}.pth')
            save_state({'generator': self.learn.model.generator.state_dict(),
                        'critic': self.learn.model.critic.state_dict(), 'iter': self.it}, self.folder / 'gan_ckpt.pth')
        if self.it >= self.n_iters: raise CancelFitException()


def train_gan(out, data, valid=None, cfg=NoGANConfig(), dls=None) -> Path:
    "Stage 3: the GAN phase from the pretrained generator and critic; checkpoints in `out`/gan."
    out = Path(out)
    folder, ckpt = out / 'gan', out / 'gan' / 'gan_ckpt.pth'
    dls = dls or _pair_dls(data, valid, cfg)
    learn_gen = gen_learner(dls, cfg.arch, cfg.gan_loss or cfg.gen_loss)
    learn_crit = critic_learner(dls)
    start = 0
    if ckpt.exists():
        st = load_state(ckpt)
        learn_gen.model.load_state_dict(st['generator']); learn_crit.model.load_state_dict(st['critic'])
        start = st['iter']
        print(f'resuming the GAN phase at iteration {start}/{cfg.gan_iters}')
    else:
        learn_gen.model.load_state_dict(load_state(out / 'gen_pretrain.pth'))
        learn_crit.model.load_state_dict(load_state(out / 'critic_pretrain.pth'))
    if start < cfg.gan_iters:
        switcher = AdaptiveGANSwitcher(critic_thresh=cfg.critic_thresh)
        learn = GANLearner.from_learners(learn_gen, learn_crit, switcher=switcher, weights_gen=cfg.gan_weights,
                                         opt_func=partial(Adam, mom=0., sqr_mom=0.99), show_img=False)
        learn.add_cbs([GANDiscriminativeLR(mult_lr=5.), GANCheckpoints(folder, cfg.save_every, cfg.gan_iters, start)])
        n_epochs = max(1, -(-(cfg.gan_iters - start) // len(dls.train)))
        with _distributed(learn): learn.fit(n_epochs, cfg.gan_lr)
    return folder


def _valid_set(valid, cfg):
    "Fixed validation pairs: centre crops of the first images, compressed at each validation quality."
    files = find_images(valid)[:cfg.valid_images]
    pairs = []
    for f in files:
        img = load_image(f)
        w, h = img.size
        c = min(cfg.valid_crop, w, h) // 16 * 16
        img = img.crop(((w - c) // 2, (h - c) // 2, (w - c) // 2 + c, (h - c) // 2 + c))
        for q in cfg.valid_qualities: pairs.append((q, np.array(img), np.array(jpeg_compress(img, q))))
    return pairs


@torch.no_grad()
def score_generator(gen, pairs, stlpips=None) -> dict:
    """Mean PSNR (and ST-LPIPS when `stlpips`, an `STLPIPS`, is given) of `gen`'s outputs on
    (quality, clean, compressed) `pairs`; gen=None scores the compressed input itself."""
    rows = []
    for _, clean, comp in pairs:
        out = comp
        if gen is not None:
            x = torch.from_numpy(comp).permute(2, 0, 1)[None].float() / 255
            out = to_uint8(gen.eval()(x.to(next(gen.parameters()).device))[0])
        rows.append({'psnr': psnr(clean, out), **({'stlpips': stlpips(clean, out)} if stlpips else {})})
    return {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}


def choose_switch_point(out, valid, cfg=NoGANConfig()) -> dict:
    """Stage 4: score the pretrained generator and each GAN checkpoint on `valid`; keep the checkpoint with the
    lowest ST-LPIPS whose PSNR is at most `cfg.max_psnr_drop` dB below the pretrained generator's (the
    pretrained generator itself when none qualifies). Writes `switch_point.json` and `generator.pth`."""
    out = Path(out)
    pairs, metric = _valid_set(valid, cfg), STLPIPS()
    rows = [{'checkpoint': 'input', **score_generator(None, pairs, metric)},
            {'checkpoint': 'gen_pretrain.pth', **score_generator(_load_generator(cfg.arch, out / 'gen_pretrain.pth'), pairs, metric)}]
    for f in progress_bar(sorted((out / 'gan').glob('gen_*.pth'))):
        rows.append({'checkpoint': f'gan/{f.name}', **score_generator(_load_generator(cfg.arch, f), pairs, metric)})
    floor = rows[1]['psnr'] - cfg.max_psnr_drop
    ok = [r for r in rows[1:] if r['psnr'] >= floor]
    best = min(ok, key=lambda r: r['stlpips'])
    result = {'rule': f'lowest ST-LPIPS with PSNR >= pretrained generator - {cfg.max_psnr_drop} dB',
              'chosen': best['checkpoint'], 'scores': rows,
              'valid': {'images': cfg.valid_images, 'crop': cfg.valid_crop, 'qualities': list(cfg.valid_qualities)}}
    with atomic_path(out / 'generator.pth') as tmp: shutil.copyfile(out / best['checkpoint'], tmp)
    _plot_results(out, pairs[:3], cfg.arch, best['checkpoint'])
    _write_json(result, out / 'switch_point.json')
    return result


@torch.no_grad()
def _plot_results(out, pairs, arch, chosen):
    "results.png: input | stage-1 generator | chosen generator | reference, for a few validation crops."
    gens = [_load_generator(arch, out / 'gen_pretrain.pth'), _load_generator(arch, out / chosen)]
    run = lambda g, x: to_uint8(g(torch.from_numpy(x).permute(2, 0, 1)[None].float() / 255)[0])
    rows = [[comp] + [run(g, comp) for g in gens] + [clean] for _, clean, comp in pairs]
    titles = [f'JPEG q{pairs[0][0]}', 'pretrained generator', f'chosen: {chosen}', 'reference']
    plot_side_by_side(rows, titles, out / 'results.png')


def _check_sources(data, valid, cfg):
    "Fail on a missing or empty image folder or a missing or unreadable `init` file before a run creates its folder."
    for folder in (data, valid):
        if folder: find_images(folder)
    if cfg.init: read_generator_state(cfg.init)


def run_nogan(out, data, valid=None, cfg=NoGANConfig(), cycles=1) -> dict:
    """All stages in order, skipping finished ones (so a rerun resumes); `cycles`>1 repeats critic and GAN
    stages from the chosen generator, as DeOldify repeated its NoGAN cycles."""
    out = Path(out)
    _check_sources(data, valid, cfg)
    out.mkdir(parents=True, exist_ok=True)
    _write_json({'config': asdict(cfg), 'data': str(data), 'valid': str(valid)}, out / 'config.json')
    valid_for_choice = valid or data
    times = json.loads((out / 'times.json').read_text()) if (out / 'times.json').exists() else {}

    def stage(name, done, fn):
        if done.exists(): return
        t = time.time(); fn()
        times[name] = times.get(name, 0) + time.time() - t
        _write_json(times, out / 'times.json')

    stage('gen_pretrain', out / 'gen_pretrain.pth', lambda: pretrain_generator(out, data, valid, cfg))
    result, prev = None, out
    for c in range(cycles):
        cyc = out if c == 0 else out / f'cycle{c}'
        if c and not (cyc / 'gen_pretrain.pth').exists():
            cyc.mkdir(exist_ok=True)
            shutil.copyfile(prev / 'generator.pth', cyc / 'gen_pretrain.pth')
        prev = cyc
        gen = lambda: _load_generator(cfg.arch, cyc / 'gen_pretrain.pth')
        stage(f'generate_{c}', cyc / 'critic_data', lambda: save_generated(gen(), data, cyc / 'critic_data', cfg))
        stage(f'critic_{c}', cyc / 'critic_pretrain.pth', lambda: pretrain_critic(cyc, cyc / 'critic_data', cfg))
        stage(f'gan_{c}', cyc / 'gan' / f'gen_{cfg.gan_iters:06d}.pth', lambda: train_gan(cyc, data, valid, cfg))
        stage(f'choose_{c}', cyc / 'switch_point.json', lambda: choose_switch_point(cyc, valid_for_choice, cfg))
        result = json.loads((cyc / 'switch_point.json').read_text())
    return result
