"""ResNet (2015) and ResNeXt (2016): stages of residual blocks, ``out = act(F(x) + shortcut(x))``.

Basic blocks (two 3×3 convs) for depths 18/34, bottleneck blocks (1×1 reduce → 3×3 → 1×1 expand ×4) for
50/101/152; ResNeXt widens the bottleneck's 3×3 into a grouped convolution (32 groups × 4 channels).  On
small inputs the 7×7 stride-2 stem and its max pool become one 3×3 stride-1 conv (the CIFAR ResNet stem).
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from trainlab.models.init import init_weights
from trainlab.models.layers import ClassifierHead, ConvBNAct, activation, use_small_stem
from trainlab.models.options import check_image_model
from trainlab.registry import MODELS

VARIANTS = {
    "resnet18": dict(block="basic", layers=(2, 2, 2, 2)),
    "resnet34": dict(block="basic", layers=(3, 4, 6, 3)),
    "resnet50": dict(block="bottleneck", layers=(3, 4, 6, 3)),
    "resnet101": dict(block="bottleneck", layers=(3, 4, 23, 3)),
    "resnet152": dict(block="bottleneck", layers=(3, 8, 36, 3)),
    "resnext50_32x4d": dict(block="bottleneck", layers=(3, 4, 6, 3), groups=32, width_per_group=4),
}


class BasicBlock(nn.Module):
    """3×3 conv-BN-act → 3×3 conv-BN, plus the shortcut, then act."""

    expansion = 1

    def __init__(self, c_in: int, planes: int, stride: int, act: str, groups: int = 1, base_width: int = 64) -> None:
        super().__init__()
        self.conv1 = ConvBNAct(c_in, planes, 3, stride, act=act)
        self.conv2 = ConvBNAct(planes, planes, 3, act=None)
        self.shortcut = _shortcut(c_in, planes, stride)
        self.act = activation(act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv2(self.conv1(x)) + self.shortcut(x))


class Bottleneck(nn.Module):
    """1×1 reduce → 3×3 (grouped for ResNeXt, carries the stride) → 1×1 expand to 4× planes, plus shortcut."""

    expansion = 4

    def __init__(self, c_in: int, planes: int, stride: int, act: str, groups: int = 1, base_width: int = 64) -> None:
        super().__init__()
        width = int(planes * base_width / 64) * groups
        self.conv1 = ConvBNAct(c_in, width, 1, act=act)
        self.conv2 = ConvBNAct(width, width, 3, stride, groups=groups, act=act)
        self.conv3 = ConvBNAct(width, planes * 4, 1, act=None)
        self.shortcut = _shortcut(c_in, planes * 4, stride)
        self.act = activation(act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv3(self.conv2(self.conv1(x))) + self.shortcut(x))


def _shortcut(c_in: int, c_out: int, stride: int) -> nn.Module:
    """Identity when shapes match, else a 1×1 projection (conv-BN) with the block's stride."""
    return nn.Identity() if stride == 1 and c_in == c_out else ConvBNAct(c_in, c_out, 1, stride, act=None)


BLOCKS = {"basic": BasicBlock, "bottleneck": Bottleneck}


def resnet_net(block: str, layers: tuple[int, ...], num_classes: int, in_channels: int, act: str, small: bool,
               groups: int = 1, width_per_group: int = 64) -> nn.Sequential:
    """Stem, four stages (64-128-256-512 planes; stages 2-4 halve the resolution), global pool, linear."""
    kind = BLOCKS[block]
    stem = (ConvBNAct(in_channels, 64, 3, act=act) if small
            else nn.Sequential(ConvBNAct(in_channels, 64, 7, 2, act=act), nn.MaxPool2d(3, 2, 1)))
    stages: list[nn.Module] = []
    channels = 64
    for index, (planes, count) in enumerate(zip((64, 128, 256, 512), layers)):
        blocks = []
        for i in range(count):
            stride = 2 if index > 0 and i == 0 else 1
            blocks.append(kind(channels, planes, stride, act, groups, width_per_group))
            channels = planes * kind.expansion
        stages.append(nn.Sequential(*blocks))
    return nn.Sequential(stem, *stages, ClassifierHead(channels, num_classes))


def _builder(name: str, spec: dict) -> Callable[..., nn.Module]:
    def build(*, num_classes: int, in_channels: int, input_size: tuple[int, int] | None, activation: str = "relu",
              small_input: bool | None = None, init: str | None = None) -> nn.Module:
        """Residual network of this variant; ``small_input`` None = CIFAR stem for images ≤ 64 px."""
        size = check_image_model(name, input_size, activation, init)
        net = resnet_net(num_classes=num_classes, in_channels=in_channels, act=activation,
                         small=use_small_stem(size, small_input), **spec)
        return init_weights(net, init)

    build.__name__ = build.__qualname__ = name
    return build


def _describe(name: str, spec: dict) -> str:
    depth = 2 * sum(spec["layers"]) + 2 if spec["block"] == "basic" else 3 * sum(spec["layers"]) + 2
    grouped = f", {spec['groups']}x{spec['width_per_group']}d grouped convs" if "groups" in spec else ""
    return f"{'ResNeXt' if grouped else 'ResNet'}-{depth}: {spec['block']} residual blocks {spec['layers']}{grouped}"


for _name, _spec in VARIANTS.items():
    MODELS.add(_name, _builder(_name, _spec), description=_describe(_name, _spec))
