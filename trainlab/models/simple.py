"""A small convolutional network for quick runs on small images (the default model)."""

from __future__ import annotations

from torch import nn

from trainlab.registry import MODELS


def _block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
        nn.Conv2d(c_out, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
    )


@MODELS.register("simple-cnn", description="two conv-BN-ReLU blocks + global pooling; any input size, fast on CPU")
def simple_cnn(*, num_classes: int, in_channels: int, input_size: tuple[int, int] | None,
               width: int = 32, dropout: float = 0.0) -> nn.Module:
    """Two double-conv blocks (the second after 2x2 max pooling), global average pooling, a linear head."""
    if input_size is None:
        raise ValueError("simple-cnn needs image input (channels, height, width); use 'mlp' for tables")
    return nn.Sequential(
        _block(in_channels, width),
        nn.MaxPool2d(2) if min(input_size) >= 4 else nn.Identity(),
        _block(width, 2 * width),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Dropout(dropout),
        nn.Linear(2 * width, num_classes),
    )
