"""fastai callbacks of the training recipe, one concern each, and the state files they write.

Checkpoints are state_dicts written atomically (never pickled Learners), so a stopped run resumes from its last
epoch and a file is complete or absent. `ModelEMA` keeps a moving average of the generator's weights beside the
trained ones (as Real-ESRGAN keeps `params_ema`): on small patches and a blind mix of JPEG qualities, weights one
epoch apart scored up to 0.4 dB apart, and their average moves far less.
"""
import json
import time
from pathlib import Path

import numpy as np
import torch
from . import _fastai  # noqa: F401  (fastai without its import-time warning)
from fastai.callback.core import Callback, CancelFitException, CancelValidException
from fastai.torch_core import rank_distrib
from fastcore.basics import store_attr
from fastcore.foundation import L
from timm.utils import ModelEmaV3

from .files import atomic_path
from .losses import quality_reading_loss

__all__ = ['save_state', 'load_state', 'write_json', 'check_decay', 'WeightAverage', 'ModelEMA', 'ema_callback',
           'kept_model', 'CompletedEpochCallback', 'ResumableCheckpoint', 'QualityTracker', 'CPUAutocast',
           'QualityConditioning', 'StepTimer', 'GANCheckpoints']


def save_state(obj, path):
    """torch.save `obj` (tensors and plain data) to `path` through a temporary file, so no half file is left.
    In a distributed run only the first process writes."""
    if rank_distrib(): return
    with atomic_path(path) as tmp: torch.save(obj, tmp)


def load_state(path, map_location='cpu'): return torch.load(path, map_location=map_location, weights_only=True)


def write_json(obj, path):
    "`obj` as indented JSON in `path`, atomically; in a distributed run only the first process writes."
    if rank_distrib(): return
    with atomic_path(path) as tmp: Path(tmp).write_text(json.dumps(obj, indent=2, default=str))


def check_decay(decay) -> float:
    "`decay` when it makes an average (strictly between 0 and 1), else a clear error."
    if not 0 < decay < 1: raise ValueError(f'EMA decay must be between 0 and 1 (exclusive), not {decay}')
    return decay


class WeightAverage(ModelEmaV3):
    """timm's EMA of parameters and buffers with its own step count (saved in the state_dict, so a resumed fit
    goes on with the same average): a plain mean of all steps until `decay` is reached, then an EMA."""
    def __init__(self, model, decay=0.999):
        super().__init__(model, decay=decay, use_warmup=True, warmup_power=1.)
        self.register_buffer('steps', torch.zeros((), dtype=torch.long))

    def update(self, model):
        self.steps += 1
        super().update(model, step=int(self.steps))


class ModelEMA(Callback):
    """Keep a `WeightAverage` of the model, updated after every optimizer step. fastai makes the callback
    `learn.model_ema`; checkpoints save its `state_dict()`, a resumed fit loads it back."""
    order = 55  # before the trackers and checkpoints that read it
    def __init__(self, decay=0.999):
        self.decay, self.average = check_decay(decay), None
    def _created(self):
        if self.average is None: self.average = WeightAverage(self.learn.model, self.decay)
        return self.average
    def before_fit(self): self._created().to(next(self.model.parameters()).device)
    def after_step(self): self.average.update(self.model)
    def state_dict(self): return self._created().state_dict()
    def load_state_dict(self, sd): self._created().load_state_dict(sd)


def ema_callback(learn):
    "`learn`'s `ModelEMA`, or None (a Learner passes unknown attributes on to its model, hence the type check)."
    cb = getattr(learn, 'model_ema', None)
    return cb if isinstance(cb, ModelEMA) else None


def kept_model(learn):
    "The weights a recipe validates and keeps: the average when `learn` has a `ModelEMA`, else the model."
    cb = ema_callback(learn)
    return cb.average.module if cb is not None and cb.average is not None else learn.model


class CompletedEpochCallback(Callback):
    "Calls `after_completed_epoch` after epochs that ran: not after those a resumed fit skips (`start_epoch`)."
    def before_epoch(self): self.skipped = False
    def after_cancel_epoch(self): self.skipped = True
    def after_epoch(self):
        if not self.skipped: self.after_completed_epoch()


class ResumableCheckpoint(CompletedEpochCallback):
    "Save model, optimizer and the finished epoch after every epoch to `path`, so `fit` can resume there."
    order = 65
    def __init__(self, path): self.path = Path(path)
    def after_completed_epoch(self):
        ema = ema_callback(self.learn)
        save_state({'model': self.learn.model.state_dict(), 'opt': _plain(self.learn.opt.state_dict()),
                    'epoch': self.epoch, 'n_epoch': self.n_epoch, 'recorder': _history(self.learn),
                    **({'ema': ema.state_dict()} if ema is not None else {})}, self.path)


class QualityTracker(CompletedEpochCallback):
    """After each epoch, score the model (its weight average when it has one) with `scorer` (a
    `ValidationScorer`: PSNR, ST-LPIPS and the grid measures at q10, the PSNR gain at q95, which must not go
    below zero since a model that learns q10 can learn to blur q95, and the no-harm measures on smooth content)
    and log it with wall time."""
    order = 60
    def __init__(self, scorer, log_path):
        self.scorer, self.log_path = scorer, Path(log_path)
        self.log = json.loads(self.log_path.read_text()) if self.log_path.exists() else []

    def resume_at(self, epoch):
        "Forget logged epochs from `epoch` on: a fit resumed there redoes them."
        self.log = [r for r in self.log if r['epoch'] <= epoch]

    def before_fit(self): self.t0 = time.time() - (self.log[-1]['seconds'] if self.log else 0)

    def record(self, epoch, seconds, model):
        "Log `model`'s scores as those of `epoch` (0: the weights a run starts from, before any training)."
        self.log.append({'epoch': epoch, 'seconds': seconds, **self.scorer(model)})
        write_json(self.log, self.log_path)
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


class QualityConditioning(Callback):
    """Train a quality-aware generator's estimator beside it, and condition the generator as it will be in use.

    Adds `weight` x the estimator's error on each input's quality (`quality_reading_loss` at `quantile`) to the
    loss. In a share `p_estimated` of the batches the generator is told the estimator's reading (detached)
    instead of the label: in use it is told an estimate for every input without JPEG tables, and it must not
    over-smooth where the estimate is low (smooth content, whose small DCT coefficients look like heavy
    quantization); the other batches teach it what the quality means. A share `p_underread` of the samples is
    told a quality below its own (between half and all of it), as the estimator reads content it cannot judge:
    the generator learns to check the pixels before it smooths, so a low reading of a nearly clean image does
    little harm."""
    order = 5
    def __init__(self, weight=0.1, p_estimated=0.5, quantile=0.5, p_underread=0.0): store_attr()
    def before_batch(self):
        self.estimate = None
        model = getattr(self.model, 'module', self.model)  # the generator itself inside DistributedDataParallel
        if not self.training or len(self.xb) < 2 or not getattr(model, 'quality_aware', False): return
        x, self.label = self.xb[0], self.xb[1].as_subclass(torch.Tensor).float()
        self.estimate = model.estimator(x.as_subclass(torch.Tensor)).float()
        told = self.estimate.detach() if torch.rand(()) < self.p_estimated else self.label
        if self.p_underread:
            under = torch.rand_like(told) < self.p_underread
            told = torch.where(under, told * torch.empty_like(told).uniform_(0.5, 1), told)
        self.learn.xb = (x, told)
    def after_loss(self):
        if self.estimate is None: return
        err = quality_reading_loss(self.estimate, self.label, self.quantile)
        self.learn.loss_grad = self.learn.loss_grad + self.weight * err
        self.learn.loss = self.learn.loss + self.weight * err.detach()


class StepTimer(Callback):
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
        write_json(self.log, self.log_path)

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
