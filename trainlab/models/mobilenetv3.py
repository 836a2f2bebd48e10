"""MobileNet v3 (2019): inverted residuals with optional squeeze-excitation and a mix of ReLU ("RE") and
hard-swish ("HS") activations, as found by architecture search; laid out as torchvision builds it.

On small inputs the stride-2 stem keeps stride 1.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from trainlab.models.init import check_init, init_weights
from trainlab.models.layers import (
    ConvBNAct,
    SqueezeExcite,
    check_positive,
    make_divisible,
    require_image,
    use_small_stem,
)
from trainlab.registry import MODELS

# (kernel, expanded channels, output channels, squeeze-excite, activation, stride)
VARIANTS = {
    "mobilenet_v3_large": dict(last_channel=1280, blocks=(
        (3, 16, 16, False, "RE", 1), (3, 64, 24, False, "RE", 2), (3, 72, 24, False, "RE", 1),
        (5, 72, 40, True, "RE", 2), (5, 120, 40, True, "RE", 1), (5, 120, 40, True, "RE", 1),
        (3, 240, 80, False, "HS", 2), (3, 200, 80, False, "HS", 1), (3, 184, 80, False, "HS", 1),
        (3, 184, 80, False, "HS", 1), (3, 480, 112, True, "HS", 1), (3, 672, 112, True, "HS", 1),
        (5, 672, 160, True, "HS", 2), (5, 960, 160, True, "HS", 1), (5, 960, 160, True, "HS", 1))),
    "mobilenet_v3_small": dict(last_channel=1024, blocks=(
        (3, 16, 16, True, "RE", 2), (3, 72, 24, False, "RE", 2), (3, 88, 24, False, "RE", 1),
        (5, 96, 40, True, "HS", 2), (5, 240, 40, True, "HS", 1), (5, 240, 40, True, "HS", 1),
        (5, 120, 48, True, "HS", 1), (5, 144, 48, True, "HS", 1), (5, 288, 96, True, "HS", 2),
        (5, 576, 96, True, "HS", 1), (5, 576, 96, True, "HS", 1))),
}
ACT = {"RE": "relu", "HS": "hardswish"}
BN_EPS = 0.001


class Bneck(nn.Module):
    """[1×1 expand] → depthwise k×k → [squeeze-excite] → 1×1 linear projection; residual when shape is kept."""

    def __init__(self, c_in: int, kernel: int, expanded: int, c_out: int, se: bool, act: str, stride: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        if expanded != c_in:
            layers.append(ConvBNAct(c_in, expanded, 1, act=act, bn_eps=BN_EPS))
        layers.append(ConvBNAct(expanded, expanded, kernel, stride, groups=expanded, act=act, bn_eps=BN_EPS))
        if se:
            layers.append(SqueezeExcite(expanded, make_divisible(expanded // 4), "relu", "hardsigmoid"))
        layers.append(ConvBNAct(expanded, c_out, 1, act=None, bn_eps=BN_EPS))
        self.body = nn.Sequential(*layers)
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x) if self.residual else self.body(x)


def mobilenet_v3_net(blocks: tuple, last_channel: int, num_classes: int, in_channels: int, width_mult: float,
                     small: bool, dropout: float) -> nn.Sequential:
    """Hard-swish stem (16 ch), the bneck table, 1×1 to 6× channels, pooled dense head with hard-swish."""
    channels = make_divisible(16 * width_mult)
    layers: list[nn.Module] = [ConvBNAct(in_channels, channels, 3, 1 if small else 2, act="hardswish", bn_eps=BN_EPS)]
    for kernel, expanded, out, se, act, stride in blocks:
        out = make_divisible(out * width_mult)
        layers.append(Bneck(channels, kernel, make_divisible(expanded * width_mult), out, se, ACT[act], stride))
        channels = out
    head_in = 6 * channels
    layers += [
        ConvBNAct(channels, head_in, 1, act="hardswish", bn_eps=BN_EPS),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(head_in, last_channel), nn.Hardswish(), nn.Dropout(dropout), nn.Linear(last_channel, num_classes),
    ]
    return nn.Sequential(*layers)


def _builder(name: str, spec: dict) -> Callable[..., nn.Module]:
    def build(*, num_classes: int, in_channels: int, input_size: tuple[int, int] | None, width_mult: float = 1.0,
              dropout: float = 0.2, small_input: bool | None = None, init: str | None = None) -> nn.Module:
        """MobileNet v3 of this size; ``width_mult`` scales channels (multiples of 8)."""
        size = require_image(name, input_size)
        check_init(init)
        check_positive(name, width_mult=width_mult)
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"{name} dropout must be in [0, 1), got {dropout}")
        net = mobilenet_v3_net(spec["blocks"], spec["last_channel"], num_classes, in_channels, width_mult,
                               use_small_stem(size, small_input), dropout)
        return init_weights(net, init)

    build.__name__ = build.__qualname__ = name
    return build


for _name, _spec in VARIANTS.items():
    MODELS.add(_name, _builder(_name, _spec),
               description=f"MobileNet v3 {_name.rsplit('_', 1)[1]}: bnecks with squeeze-excitation and hard-swish")
