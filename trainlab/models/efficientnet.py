"""EfficientNet (2019): MBConv blocks (inverted residual + squeeze-excitation, SiLU) scaled by compound
multipliers — ``width_mult`` scales channels (multiples of 8), ``depth_mult`` scales block repeats (rounded up).
B0 is the base network; B1–B7 are B0 with larger multipliers (and resolution).  Laid out as torchvision's
``efficientnet_b0``.  On small inputs the stride-2 stem keeps stride 1.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from trainlab.models.init import init_weights
from trainlab.models.layers import (
    ClassifierHead,
    ConvBNAct,
    SqueezeExcite,
    check_positive,
    make_divisible,
    use_small_stem,
)
from trainlab.models.options import check_image_model
from trainlab.registry import MODELS

# (expansion, kernel, stride, channels in, channels out, repeats) — the B0 table
B0_STAGES = ((1, 3, 1, 32, 16, 1), (6, 3, 2, 16, 24, 2), (6, 5, 2, 24, 40, 2), (6, 3, 2, 40, 80, 3),
             (6, 5, 1, 80, 112, 3), (6, 5, 2, 112, 192, 4), (6, 3, 1, 192, 320, 1))
BN_EPS = 0.001


class MBConv(nn.Module):
    """[1×1 expand] → depthwise k×k → squeeze-excite (to ¼ of the block input) → 1×1 projection (+ residual)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, expansion: int, act: str) -> None:
        super().__init__()
        hidden = make_divisible(c_in * expansion)
        layers: list[nn.Module] = [ConvBNAct(c_in, hidden, 1, act=act, bn_eps=BN_EPS)] if hidden != c_in else []
        layers += [ConvBNAct(hidden, hidden, kernel, stride, groups=hidden, act=act, bn_eps=BN_EPS),
                   SqueezeExcite(hidden, max(1, c_in // 4), act, "sigmoid"),
                   ConvBNAct(hidden, c_out, 1, act=None, bn_eps=BN_EPS)]
        self.body = nn.Sequential(*layers)
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x) if self.residual else self.body(x)


def efficientnet_net(num_classes: int, in_channels: int, act: str, width_mult: float, depth_mult: float,
                     small: bool, dropout: float) -> nn.Sequential:
    """Stem 3×3 (32 ch), seven MBConv stages, 1×1 head conv to 4× the last stage's channels, pooled linear."""
    channels = make_divisible(32 * width_mult)
    layers: list[nn.Module] = [ConvBNAct(in_channels, channels, 3, 1 if small else 2, act=act, bn_eps=BN_EPS)]
    for expansion, kernel, stride, _, c_out, repeats in B0_STAGES:
        out = make_divisible(c_out * width_mult)
        blocks = [MBConv(channels if i == 0 else out, out, kernel, stride if i == 0 else 1, expansion, act)
                  for i in range(math.ceil(repeats * depth_mult))]
        layers.append(nn.Sequential(*blocks))
        channels = out
    head = 4 * channels
    layers += [ConvBNAct(channels, head, 1, act=act, bn_eps=BN_EPS), ClassifierHead(head, num_classes, dropout)]
    return nn.Sequential(*layers)


@MODELS.register("efficientnet_b0", description="EfficientNet-B0: MBConv + squeeze-excitation, SiLU; width/depth multipliers")
def efficientnet_b0(*, num_classes: int, in_channels: int, input_size: tuple[int, int] | None,
                    width_mult: float = 1.0, depth_mult: float = 1.0, activation: str = "silu", dropout: float = 0.2,
                    small_input: bool | None = None, init: str | None = None) -> nn.Module:
    """EfficientNet-B0; raise ``width_mult``/``depth_mult`` together for the compound-scaled family (B1: 1.0/1.1)."""
    size = check_image_model("efficientnet_b0", input_size, activation, init)
    check_positive("efficientnet_b0", width_mult=width_mult, depth_mult=depth_mult)
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"efficientnet_b0 dropout must be in [0, 1), got {dropout}")
    net = efficientnet_net(num_classes, in_channels, activation, width_mult, depth_mult,
                           use_small_stem(size, small_input), dropout)
    return init_weights(net, init)
