"""Loss functions by name; ``auto`` picks cross-entropy for classification and MSE for regression.

Every builder receives the dataset's ``task`` and refuses a task it cannot serve, so a regression loss on a
classification dataset fails before training rather than with a shape error mid-epoch.  Regression models
output ``(batch, 1)``; the wrappers compare that with ``(batch,)`` targets.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from trainlab.registry import LOSSES


def _require(loss: str, task: str, wanted: str) -> None:
    if task != wanted:
        raise ValueError(f"loss '{loss}' is for {wanted} but the dataset is {task}; pick another loss.name "
                         "(see `trainlab list losses`) or leave it at auto")


class _Squeezed(nn.Module):
    """Reshape the (batch, 1) output to the target's shape and compare as floats."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.inner(output.reshape(target.shape).float(), target.float())


@LOSSES.register("cross_entropy", description="softmax cross-entropy over class logits; label smoothing, class weights")
def cross_entropy(*, task: str = "classification", label_smoothing: float = 0.0,
                  class_weights: list[float] | None = None) -> nn.Module:
    """Cross-entropy on logits; labels are class indices.  ``class_weights`` counter class imbalance."""
    _require("cross_entropy", task, "classification")
    if not 0.0 <= label_smoothing < 1.0:
        raise ValueError(f"loss.label_smoothing must be in [0, 1), got {label_smoothing}")
    weight = torch.tensor(class_weights, dtype=torch.float32) if class_weights is not None else None
    return nn.CrossEntropyLoss(weight=weight, label_smoothing=label_smoothing)


class _BCEWithIndices(nn.Module):
    """Binary cross-entropy on logits; class-index targets become one-hot for multi-column outputs."""

    def __init__(self, pos_weight: float | None) -> None:
        super().__init__()
        self.pos_weight = pos_weight

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if output.dim() == 2 and output.shape[1] > 1 and target.dim() == 1:
            target = F.one_hot(target.long(), output.shape[1])
        target = target.reshape(output.shape).to(output.dtype)
        weight = None if self.pos_weight is None else torch.tensor(self.pos_weight, device=output.device)
        return F.binary_cross_entropy_with_logits(output, target, pos_weight=weight)


@LOSSES.register("bce", description="binary cross-entropy with logits (one-vs-rest for several classes)")
def bce(*, task: str = "classification", pos_weight: float | None = None) -> nn.Module:
    """Sigmoid + binary cross-entropy, numerically stable; ``pos_weight`` up-weights positive labels."""
    if pos_weight is not None and pos_weight <= 0:
        raise ValueError(f"loss.pos_weight must be > 0, got {pos_weight}")
    return _BCEWithIndices(pos_weight)


@LOSSES.register("nll", description="negative log-likelihood of models that end in log_softmax")
def nll(*, task: str = "classification", class_weights: list[float] | None = None) -> nn.Module:
    """``-log p[target]`` where the model already outputs log-probabilities."""
    _require("nll", task, "classification")
    weight = torch.tensor(class_weights, dtype=torch.float32) if class_weights is not None else None
    return nn.NLLLoss(weight=weight)


@LOSSES.register("mse", description="mean squared error for regression")
def mse(*, task: str = "regression") -> nn.Module:
    """Mean squared error."""
    _require("mse", task, "regression")
    return _Squeezed(nn.MSELoss())


def _l1(*, task: str = "regression") -> nn.Module:
    """Mean absolute error: robust to outliers, estimates the conditional median."""
    _require("l1", task, "regression")
    return _Squeezed(nn.L1Loss())


LOSSES.add("l1", _l1, description="mean absolute error (L1) for regression")
LOSSES.add("mae", _l1, description="mean absolute error; same as l1")


@LOSSES.register("huber", description="Huber: squared below delta, linear above; robust regression")
def huber(*, task: str = "regression", delta: float = 1.0) -> nn.Module:
    """Quadratic for small errors, linear for large ones."""
    _require("huber", task, "regression")
    if delta <= 0:
        raise ValueError(f"loss.delta must be > 0, got {delta}")
    return _Squeezed(nn.HuberLoss(delta=delta))


class _LogRMSE(nn.Module):
    """RMSE between logarithms; predictions below ``floor`` are clamped so the log stays finite."""

    def __init__(self, floor: float) -> None:
        super().__init__()
        self.floor = floor

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        pred = output.reshape(target.shape).float().clamp(min=self.floor)
        return torch.sqrt(F.mse_loss(pred.log(), target.float().clamp(min=self.floor).log()))


@LOSSES.register("log_rmse", description="RMSE of log values for positive targets (the House Prices metric)")
def log_rmse(*, task: str = "regression", floor: float = 1.0) -> nn.Module:
    """Relative errors count equally for cheap and expensive items; targets must be positive."""
    _require("log_rmse", task, "regression")
    if floor <= 0:
        raise ValueError(f"loss.floor must be > 0, got {floor}")
    return _LogRMSE(floor)


def build_loss(name: str, task: str, **options: Any) -> nn.Module:
    """The loss named ``name`` (``auto`` → by task)."""
    if name == "auto":
        name = "cross_entropy" if task == "classification" else "mse"
    return LOSSES.get(name)(task=task, **options)
