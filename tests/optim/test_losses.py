"""Losses by name: each builds for its task, gives known values, and refuses the wrong task."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from trainlab.losses import build_loss
from trainlab.registry import LOSSES

CLASSIFICATION = {"cross_entropy", "bce", "nll"}


@pytest.mark.parametrize("name", LOSSES.names())
def test_every_loss_gives_a_differentiable_scalar(name: str) -> None:
    torch.manual_seed(0)
    if name in CLASSIFICATION:
        loss_fn, output, target = build_loss(name, "classification"), torch.randn(6, 3), torch.tensor([0, 1, 2] * 2)
        if name == "nll":
            output = output.log_softmax(dim=1)
    else:
        loss_fn, output, target = build_loss(name, "regression"), torch.rand(6, 1) + 1, torch.rand(6) + 1
    output.requires_grad_(True)
    loss = loss_fn(output, target)
    loss.backward()
    assert loss.dim() == 0 and math.isfinite(loss.item()) and output.grad is not None


def test_cross_entropy_options_match_torch() -> None:
    output, target = torch.randn(5, 3), torch.tensor([0, 2, 1, 1, 0])
    weights = [1.0, 2.0, 0.5]
    loss = build_loss("cross_entropy", "classification", label_smoothing=0.1, class_weights=weights)
    expected = F.cross_entropy(output, target, weight=torch.tensor(weights), label_smoothing=0.1)
    assert loss(output, target).item() == pytest.approx(expected.item())


def test_bce_uses_one_hot_targets_for_class_indices() -> None:
    output, target = torch.randn(4, 3), torch.tensor([0, 2, 1, 2])
    expected = F.binary_cross_entropy_with_logits(output, F.one_hot(target, 3).float())
    assert build_loss("bce", "classification")(output, target).item() == pytest.approx(expected.item())


def test_log_rmse_value() -> None:
    output, target = torch.tensor([[100.0], [1000.0]]), torch.tensor([200.0, 1000.0])
    expected = math.sqrt((math.log(100) - math.log(200)) ** 2 / 2)
    assert build_loss("log_rmse", "regression")(output, target).item() == pytest.approx(expected, rel=1e-5)


def test_regression_losses_match_torch() -> None:
    output, target = torch.tensor([[0.0], [3.0]]), torch.tensor([1.0, 0.5])
    assert build_loss("mae", "regression")(output, target).item() == pytest.approx(1.75)
    assert build_loss("huber", "regression", delta=1.0)(output, target).item() == pytest.approx((0.5 + 2.0) / 2)


def test_wrong_task_is_refused() -> None:
    with pytest.raises(ValueError, match="'mse' is for regression"):
        build_loss("mse", "classification")
    with pytest.raises(ValueError, match="label_smoothing"):
        build_loss("cross_entropy", "classification", label_smoothing=1.5)
