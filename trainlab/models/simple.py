"""A small convolutional network for quick runs on small images (the default model)."""

from __future__ import annotations

from torch import nn

from trainlab.models.impl import Impl, check_impl, feature_dropout, use_impl
from trainlab.registry import MODELS


def _block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
        nn.Conv2d(c_out, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
    )


@MODELS.register("simple-cnn", description="two conv-BN-ReLU blocks + global pooling; any input size, fast on CPU")
def simple_cnn(*, num_classes: int, in_channels: int, input_size: tuple[int, int] | None,
               width: int = 32, dropout: float = 0.0, dropout2d: float = 0.0, impl: Impl = "torch") -> nn.Module:
    """Two double-conv blocks (the second after 2x2 max pooling), global average pooling, a linear head.

    ``dropout`` acts on the pooled features before the head; ``dropout2d`` drops whole channels of the feature
    maps after each block.  ``impl=scratch`` uses the hand-written Conv2d, BatchNorm, pooling and dropout.
    """
    if input_size is None:
        raise ValueError("simple-cnn needs image input (channels, height, width); use 'mlp' for tables")
    check_impl("simple-cnn", impl)
    maps = feature_dropout("simple-cnn", dropout2d)
    return use_impl(nn.Sequential(
        _block(in_channels, width), *maps,
        nn.MaxPool2d(2) if min(input_size) >= 4 else nn.Identity(),
        _block(width, 2 * width), *feature_dropout("simple-cnn", dropout2d),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Dropout(dropout),
        nn.Linear(2 * width, num_classes),
    ), impl)
