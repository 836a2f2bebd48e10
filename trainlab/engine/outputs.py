"""From a model's raw output to the logits every evaluation uses: one definition for training metrics,
validation, test metrics, the LR finder and ``predict``, so they can never disagree."""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import nn


def prediction_logits(output: Any) -> torch.Tensor:
    """Models may return extra outputs in training (auxiliary heads); the first is the prediction."""
    return output[0] if isinstance(output, Sequence) and not isinstance(output, torch.Tensor) else output


def evaluation_logits(model: nn.Module, x: torch.Tensor, tta_flip: bool = False) -> torch.Tensor:
    """``model``'s prediction logits for ``x``; with ``tta_flip`` and image batches ``(N, C, H, W)``, the mean of the
    logits of the images and their left-right mirrors.  Validation, test metrics and ``predict`` all use this."""
    output = prediction_logits(model(x))
    if tta_flip and x.dim() == 4:
        output = (output + prediction_logits(model(x.flip(-1)))) / 2
    return output


def probabilities(logits: torch.Tensor, task: str) -> torch.Tensor:
    """Class probabilities ``(n, classes)`` for classification (``(n, steps, classes)`` for per-step outputs: the
    class dimension is always the last), else one value per example ``(n,)``."""
    logits = logits.float()
    return logits.softmax(dim=-1) if task == "classification" else logits.reshape(-1)
