"""Network in Network (2013): each block is a spatial convolution followed by two 1×1 convolutions (a tiny MLP
per pixel), and the last block outputs one channel per class, averaged globally — no dense layers at all.
"""

from __future__ import annotations

from torch import nn

from trainlab.models.init import init_weights
from trainlab.models.layers import activation, use_small_stem
from trainlab.models.options import check_image_model
from trainlab.registry import MODELS


def nin_block(c_in: int, c_out: int, kernel: int, stride: int, padding: int, act: str) -> nn.Sequential:
    """Conv k×k → act → 1×1 → act → 1×1 → act."""
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel, stride, padding), activation(act),
        nn.Conv2d(c_out, c_out, 1), activation(act),
        nn.Conv2d(c_out, c_out, 1), activation(act),
    )


@MODELS.register("nin", description="Network in Network: conv + 1x1 conv blocks, global average pooling head")
def nin(*, num_classes: int, in_channels: int, input_size: tuple[int, int] | None, activation: str = "relu",
        dropout: float = 0.5, small_input: bool | None = None, init: str | None = None) -> nn.Module:
    """NiN blocks 96-256-384-classes; on small inputs the 11×11 stride-4 stem becomes 3×3 stride 1 without a pool."""
    size = check_image_model("nin", input_size, activation, init)
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"nin dropout must be in [0, 1), got {dropout}")
    stem: list[nn.Module] = (
        [nin_block(in_channels, 96, 3, 1, 1, activation)] if use_small_stem(size, small_input)
        else [nin_block(in_channels, 96, 11, 4, 0, activation), nn.MaxPool2d(3, 2)]
    )
    net = nn.Sequential(
        *stem,
        nin_block(96, 256, 5, 1, 2, activation), nn.MaxPool2d(3, 2),
        nin_block(256, 384, 3, 1, 1, activation), nn.MaxPool2d(3, 2),
        nn.Dropout(dropout),
        nin_block(384, num_classes, 3, 1, 1, activation),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(),
    )
    return init_weights(net, init)
