"""A moving average of the generator's weights, kept beside the trained ones (as Real-ESRGAN keeps `params_ema`).

On small patches and a blind mix of JPEG qualities, the weights after one epoch scored up to 0.4 dB apart
from those one epoch later (MODEL_CARD, session 4); their average moves far less. `ModelEMA` keeps it in
its `average` (timm's `ModelEmaV3`), and the recipe validates and keeps the average.
"""
import torch
from fastai.callback.core import Callback
from timm.utils import ModelEmaV3

__all__ = ['check_decay', 'WeightAverage', 'ModelEMA', 'ema_callback', 'kept_model']


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
