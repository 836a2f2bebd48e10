"""Multilayer perceptron: flatten, hidden layers, linear output."""

from __future__ import annotations

import math

from torch import nn

from trainlab.models.impl import Impl, check_impl, use_impl
from trainlab.models.init import check_init, init_weights
from trainlab.models.layers import activation as make_activation
from trainlab.models.layers import check_activation
from trainlab.registry import MODELS


@MODELS.register("mlp", description="multilayer perceptron; hidden sizes, activation, dropout and batch norm configurable")
def mlp(*, num_classes: int, in_channels: int, input_size: tuple[int, int] | None,
        hidden: list[int] | tuple[int, ...] = (256,), activation: str = "relu",
        dropout: float | list[float] = 0.0, batch_norm: bool = False, init: str | None = None,
        impl: Impl = "torch") -> nn.Module:
    """Flatten the input, then ``Linear → [BatchNorm] → activation → [Dropout]`` per hidden size, then a linear head.

    ``dropout`` is one rate for every hidden layer or, as the curriculum writes it (``[0.2, 0.5]``), one rate per
    hidden layer.  ``impl=scratch`` uses the hand-written BatchNorm and Dropout (:mod:`trainlab.models.impl`).
    """
    check_impl("mlp", impl)
    rates = _dropout_rates(dropout, len(hidden))
    if any(width < 1 for width in hidden):
        raise ValueError(f"mlp hidden sizes must be >= 1, got {list(hidden)}")
    check_activation(activation)
    check_init(init)
    features = in_channels * (math.prod(input_size) if input_size else 1)
    layers: list[nn.Module] = [nn.Flatten()]
    for width, rate in zip(hidden, rates):
        layers.append(nn.Linear(features, width))
        if batch_norm:
            layers.append(nn.BatchNorm1d(width))
        layers.append(make_activation(activation))
        if rate:
            layers.append(nn.Dropout(rate))
        features = width
    layers.append(nn.Linear(features, num_classes))
    return use_impl(init_weights(nn.Sequential(*layers), init), impl)


def _dropout_rates(dropout: float | list[float], layers: int) -> list[float]:
    """One dropout rate per hidden layer, each in [0, 1); a list must name exactly one rate per hidden layer."""
    rates = list(dropout) if isinstance(dropout, (list, tuple)) else [dropout] * layers
    if len(rates) != layers:
        raise ValueError(f"mlp dropout lists one rate per hidden layer: {layers} hidden layer(s), got {len(rates)} "
                         f"rate(s) {rates}; give {layers} rates or a single number")
    bad = [rate for rate in rates if not 0.0 <= rate < 1.0]
    if bad:
        raise ValueError(f"mlp dropout must be in [0, 1), got {bad[0]}")
    return rates
