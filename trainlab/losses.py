"""Loss functions by name; ``auto`` picks cross-entropy for classification and MSE for regression."""

from __future__ import annotations

from typing import Any

from torch import nn

from trainlab.registry import LOSSES


@LOSSES.register("cross_entropy", description="softmax cross-entropy over class logits (optional label smoothing)")
def cross_entropy(*, task: str = "classification", label_smoothing: float = 0.0) -> nn.Module:
    """Cross-entropy on logits; labels are class indices."""
    return nn.CrossEntropyLoss(label_smoothing=label_smoothing)


@LOSSES.register("mse", description="mean squared error for regression")
def mse(*, task: str = "regression") -> nn.Module:
    """Mean squared error; a one-column output is compared with the target directly."""
    return _Squeezed(nn.MSELoss())


class _Squeezed(nn.Module):
    """Regression models output (batch, 1); targets are (batch,)."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, output: Any, target: Any) -> Any:
        return self.inner(output.reshape(target.shape), target.float())


def build_loss(name: str, task: str, **options: Any) -> nn.Module:
    """The loss named ``name`` (``auto`` → by task)."""
    if name == "auto":
        name = "cross_entropy" if task == "classification" else "mse"
    return LOSSES.get(name)(task=task, **options)
