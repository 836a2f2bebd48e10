"""ShuffleNet v1 (2017) and v2 (2018): cheap units built from grouped/depthwise convolutions, with a channel
shuffle so information crosses the groups.

v1 units: grouped 1×1 → shuffle → depthwise 3×3 → grouped 1×1, added to the input (or concatenated with an
average-pooled input when downsampling).  v2 units split the channels in two, transform one half
(1×1 → depthwise 3×3 → 1×1) and shuffle the concatenation.  ``shufflenet_v2`` matches torchvision's x1.0;
``width`` picks 0.5/1.0/1.5/2.0.  On small inputs the stride-2 stem keeps stride 1 and skips its max pool.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from trainlab.models.init import init_weights
from trainlab.models.layers import ChannelShuffle, ClassifierHead, ConvBNAct, activation, use_small_stem
from trainlab.models.options import check_image_model
from trainlab.registry import MODELS

REPEATS = (4, 8, 4)
V1_CHANNELS = {1: (144, 288, 576), 2: (200, 400, 800), 3: (240, 480, 960), 4: (272, 544, 1088), 8: (384, 768, 1536)}
V2_CHANNELS = {0.5: (48, 96, 192, 1024), 1.0: (116, 232, 464, 1024), 1.5: (176, 352, 704, 1024),
               2.0: (244, 488, 976, 2048)}


def _stem(in_channels: int, act: str, small: bool) -> nn.Sequential:
    if small:
        return nn.Sequential(ConvBNAct(in_channels, 24, 3, act=act))
    return nn.Sequential(ConvBNAct(in_channels, 24, 3, 2, act=act), nn.MaxPool2d(3, 2, 1))


class ShuffleV1Unit(nn.Module):
    """Grouped 1×1 → shuffle → depthwise 3×3 → grouped 1×1; add (stride 1) or concat with avg-pooled input."""

    def __init__(self, c_in: int, c_out: int, stride: int, groups: int, act: str) -> None:
        super().__init__()
        branch_out = c_out - c_in if stride == 2 else c_out
        mid = c_out // 4
        first_groups = 1 if c_in == 24 else groups  # the first unit sees only the 24 stem channels
        self.body = nn.Sequential(
            ConvBNAct(c_in, mid, 1, groups=first_groups, act=act), ChannelShuffle(first_groups),
            ConvBNAct(mid, mid, 3, stride, groups=mid, act=None), ConvBNAct(mid, branch_out, 1, groups=groups, act=None))
        self.shortcut = nn.AvgPool2d(3, 2, 1) if stride == 2 else None
        self.act = activation(act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.shortcut is None:
            return self.act(x + self.body(x))
        return self.act(torch.cat([self.shortcut(x), self.body(x)], dim=1))


class ShuffleV2Unit(nn.Module):
    """Stride 1: split channels, transform one half.  Stride 2: transform two copies.  Then concat and shuffle."""

    def __init__(self, c_in: int, c_out: int, stride: int, act: str) -> None:
        super().__init__()
        half = c_out // 2
        self.stride = stride
        self.branch1 = nn.Sequential(ConvBNAct(c_in, c_in, 3, stride, groups=c_in, act=None),
                                     ConvBNAct(c_in, half, 1, act=act)) if stride == 2 else nn.Identity()
        self.branch2 = nn.Sequential(ConvBNAct(c_in if stride == 2 else half, half, 1, act=act),
                                     ConvBNAct(half, half, 3, stride, groups=half, act=None),
                                     ConvBNAct(half, half, 1, act=act))
        self.shuffle = ChannelShuffle(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:
            keep, change = x.chunk(2, dim=1)
            return self.shuffle(torch.cat([keep, self.branch2(change)], dim=1))
        return self.shuffle(torch.cat([self.branch1(x), self.branch2(x)], dim=1))


def _stages(unit: Callable[[int, int, int], nn.Module], channels: int,
            outs: tuple[int, ...]) -> tuple[list[nn.Module], int]:
    """Three stages; the first unit of each halves the resolution."""
    stages: list[nn.Module] = []
    for out, repeats in zip(outs, REPEATS):
        stages.append(nn.Sequential(*(unit(channels if i == 0 else out, out, 2 if i == 0 else 1) for i in range(repeats))))
        channels = out
    return stages, channels


def _check(name: str, input_size: tuple[int, int] | None, act: str, init: str | None, value: float,
           table: dict, option: str) -> tuple[int, int]:
    size = check_image_model(name, input_size, act, init)
    if value not in table:
        raise ValueError(f"{name} {option} must be one of {sorted(table)}, got {value}")
    return size


@MODELS.register("shufflenet_v1", description="ShuffleNet v1: grouped 1x1 convs + channel shuffle (groups 1/2/3/4/8)")
def shufflenet_v1(*, num_classes: int, in_channels: int, input_size: tuple[int, int] | None, groups: int = 3,
                  activation: str = "relu", small_input: bool | None = None, init: str | None = None) -> nn.Module:
    """ShuffleNet v1 1.0× with ``groups`` groups in its pointwise convolutions."""
    size = _check("shufflenet_v1", input_size, activation, init, groups, V1_CHANNELS, "groups")
    stages, channels = _stages(lambda i, o, s: ShuffleV1Unit(i, o, s, groups, activation), 24, V1_CHANNELS[groups])
    net = nn.Sequential(_stem(in_channels, activation, use_small_stem(size, small_input)), *stages,
                        ClassifierHead(channels, num_classes))
    return init_weights(net, init)


@MODELS.register("shufflenet_v2", description="ShuffleNet v2: channel split + shuffle; width 0.5/1.0/1.5/2.0 (1.0 = torchvision x1_0)")
def shufflenet_v2(*, num_classes: int, in_channels: int, input_size: tuple[int, int] | None, width: float = 1.0,
                  activation: str = "relu", small_input: bool | None = None, init: str | None = None) -> nn.Module:
    """ShuffleNet v2 at ``width``×: three stages (4, 8, 4 units), a 1×1 conv to 1024 (2048 at 2.0×), linear."""
    size = _check("shufflenet_v2", input_size, activation, init, width, V2_CHANNELS, "width")
    *outs, last = V2_CHANNELS[width]
    stages, channels = _stages(lambda i, o, s: ShuffleV2Unit(i, o, s, activation), 24, tuple(outs))
    net = nn.Sequential(_stem(in_channels, activation, use_small_stem(size, small_input)), *stages,
                        ConvBNAct(channels, last, 1, act=activation), ClassifierHead(last, num_classes))
    return init_weights(net, init)
