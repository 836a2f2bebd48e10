"""The LR finder sweeps a copy: model, optimizer and RNG are untouched; the suggestion is the steepest descent."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from trainlab.engine.lr_finder import find_lr, suggest_lr


class Batches:
    def __init__(self, x: torch.Tensor, y: torch.Tensor, size: int) -> None:
        self.x, self.y, self.size = x, y, size

    def epoch(self, epoch: int, start: int = 0):
        for i in range(start, len(self.y) // self.size):
            yield self.x[i * self.size:(i + 1) * self.size], self.y[i * self.size:(i + 1) * self.size]


def test_find_lr_leaves_model_optimizer_and_rng_untouched() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.1), nn.Linear(16, 3))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    x, y = torch.randn(128, 4), torch.randint(0, 3, (128,))
    nn.functional.cross_entropy(model(x), y).backward()
    optimizer.step()  # give the optimizer some state to protect
    model_before = {k: v.clone() for k, v in model.state_dict().items()}
    opt_before = optimizer.state_dict()
    moments = [optimizer.state[p]["exp_avg"].clone() for p in model.parameters()]
    rng_before = torch.get_rng_state()

    result = find_lr(model, optimizer, nn.CrossEntropyLoss(), Batches(x, y, 16), start_lr=1e-5, end_lr=10, steps=30)

    assert 5 <= len(result.lrs) <= 30 and len(result.losses) == len(result.smoothed) == len(result.lrs)
    assert result.lrs[0] == pytest.approx(1e-5)
    assert all(math.isfinite(v) for v in result.smoothed)
    for key, value in model.state_dict().items():
        assert torch.equal(value, model_before[key]), key
    assert optimizer.state_dict()["param_groups"] == opt_before["param_groups"]
    assert all(torch.equal(optimizer.state[p]["exp_avg"], m) for p, m in zip(model.parameters(), moments))
    assert all(p is q for p, q in zip(optimizer.param_groups[0]["params"], model.parameters()))
    assert torch.equal(torch.get_rng_state(), rng_before)


def test_suggestion_is_the_steepest_descent_before_the_minimum() -> None:
    lrs = [10 ** (i / 10 - 5) for i in range(60)]
    curve = [2.0] * 20 + [2.0 - 0.02 * i**2 for i in range(1, 10)] + [0.4] * 5 + [0.4 + 0.5 * i for i in range(26)]
    suggestion = suggest_lr(lrs, curve)
    assert suggestion == pytest.approx(lrs[27])
    assert suggest_lr(lrs, sorted(curve)) is None  # the loss never fell


def test_find_lr_rejects_a_bad_range() -> None:
    with pytest.raises(ValueError, match="start_lr < end_lr"):
        find_lr(nn.Linear(2, 2), torch.optim.SGD(nn.Linear(2, 2).parameters(), lr=0.1), nn.MSELoss(), None,
                start_lr=1.0, end_lr=0.1)
