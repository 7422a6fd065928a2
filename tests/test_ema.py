import pytest
import torch

from artifact_removal.callbacks import ModelEMA, WeightAverage


def _set(model, value):
    with torch.no_grad(): model.weight.fill_(value)
    return model


def test_weight_average_is_a_mean_then_an_ema():
    model = torch.nn.Linear(2, 2, bias=False)
    avg = WeightAverage(_set(model, 0.), decay=0.75)
    for v in [1., 2., 3.]: avg.update(_set(model, v))  # the mean of the first steps (1 - 1/step stays below 0.75)
    assert torch.allclose(avg.module.weight, torch.full((2, 2), 2.)) and int(avg.steps) == 3
    avg.update(_set(model, 6.))  # from here on an EMA: 0.75 * 2 + 0.25 * 6
    assert torch.allclose(avg.module.weight, torch.full((2, 2), 3.))
    restored = WeightAverage(model, decay=0.75)
    restored.load_state_dict(avg.state_dict())
    assert int(restored.steps) == 4 and torch.equal(restored.module.weight, avg.module.weight)


def test_bad_decay_is_refused():
    for decay in [0., 1., 1.5, -0.1]:
        with pytest.raises(ValueError, match='EMA decay must be between 0 and 1'): ModelEMA(decay)
