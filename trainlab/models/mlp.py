"""Multilayer perceptron: flatten, hidden layers, linear output."""

from __future__ import annotations

import math

from torch import nn

from trainlab.registry import MODELS


@MODELS.register("mlp", description="multilayer perceptron; hidden sizes, dropout and batch norm configurable")
def mlp(*, num_classes: int, in_channels: int, input_size: tuple[int, int] | None,
        hidden: list[int] | tuple[int, ...] = (256,), dropout: float = 0.0, batch_norm: bool = False) -> nn.Module:
    """Flatten the input, then ``Linear → [BatchNorm] → ReLU → [Dropout]`` per hidden size, then a linear head."""
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"mlp dropout must be in [0, 1), got {dropout}")
    features = in_channels * (math.prod(input_size) if input_size else 1)
    layers: list[nn.Module] = [nn.Flatten()]
    for width in hidden:
        layers.append(nn.Linear(features, width))
        if batch_norm:
            layers.append(nn.BatchNorm1d(width))
        layers.append(nn.ReLU(inplace=True))
        if dropout:
            layers.append(nn.Dropout(dropout))
        features = width
    layers.append(nn.Linear(features, num_classes))
    return nn.Sequential(*layers)
