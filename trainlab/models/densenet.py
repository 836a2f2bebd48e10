"""DenseNet (2016): inside a dense block every layer receives the concatenation of all earlier feature maps and
adds ``growth`` new channels; transitions (1×1 conv halving channels + 2×2 average pool) sit between blocks.

``densenet121`` follows torchvision (bottleneck layers: BN-act-1×1 to 4×growth, then BN-act-3×3); the teaching
``densenet-small`` (as in d2l) uses plain BN-act-3×3 layers and four blocks of four.
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
    "densenet121": dict(growth=32, blocks=(6, 12, 24, 16), init_features=64, bn_size=4,
                        description="DenseNet-121: dense blocks (6,12,24,16) with 1x1 bottlenecks, growth 32"),
    "densenet-small": dict(growth=32, blocks=(4, 4, 4, 4), init_features=64, bn_size=None,
                           description="teaching DenseNet: four dense blocks of four BN-ReLU-3x3 layers, growth 32"),
}


class DenseLayer(nn.Module):
    """BN-act-[1×1 to bn_size×growth → BN-act]-3×3 producing ``growth`` channels, concatenated onto the input."""

    def __init__(self, c_in: int, growth: int, bn_size: int | None, act: str) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.BatchNorm2d(c_in), activation(act)]
        if bn_size:
            layers += [nn.Conv2d(c_in, bn_size * growth, 1, bias=False), nn.BatchNorm2d(bn_size * growth),
                       activation(act)]
            c_in = bn_size * growth
        layers.append(nn.Conv2d(c_in, growth, 3, padding=1, bias=False))
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, self.body(x)], dim=1)


def transition(c_in: int, c_out: int, act: str) -> nn.Sequential:
    """BN-act-1×1 conv to ``c_out`` channels, then 2×2 average pooling."""
    return nn.Sequential(nn.BatchNorm2d(c_in), activation(act), nn.Conv2d(c_in, c_out, 1, bias=False),
                         nn.AvgPool2d(2, 2))


def densenet_net(growth: int, blocks: tuple[int, ...], init_features: int, bn_size: int | None, num_classes: int,
                 in_channels: int, act: str, small: bool) -> nn.Sequential:
    """Stem, dense blocks with transitions between them, final BN-act, global pool, linear."""
    stem = (ConvBNAct(in_channels, init_features, 3, act=act) if small
            else nn.Sequential(ConvBNAct(in_channels, init_features, 7, 2, act=act), nn.MaxPool2d(3, 2, 1)))
    layers: list[nn.Module] = [stem]
    channels = init_features
    for index, count in enumerate(blocks):
        dense = []
        for _ in range(count):
            dense.append(DenseLayer(channels, growth, bn_size, act))
            channels += growth
        layers.append(nn.Sequential(*dense))
        if index < len(blocks) - 1:
            layers.append(transition(channels, channels // 2, act))
            channels //= 2
    layers += [nn.BatchNorm2d(channels), activation(act), ClassifierHead(channels, num_classes)]
    return nn.Sequential(*layers)


def _builder(name: str, spec: dict) -> Callable[..., nn.Module]:
    def build(*, num_classes: int, in_channels: int, input_size: tuple[int, int] | None, activation: str = "relu",
              small_input: bool | None = None, init: str | None = None) -> nn.Module:
        """DenseNet of this variant; ``small_input`` None = 3×3 stride-1 stem for images ≤ 64 px."""
        size = check_image_model(name, input_size, activation, init)
        arch = {k: v for k, v in spec.items() if k != "description"}
        net = densenet_net(num_classes=num_classes, in_channels=in_channels, act=activation,
                           small=use_small_stem(size, small_input), **arch)
        return init_weights(net, init)

    build.__name__ = build.__qualname__ = name.replace("-", "_")
    return build


for _name, _spec in VARIANTS.items():
    MODELS.add(_name, _builder(_name, _spec), description=_spec["description"])
