"""MobileNet v1 (2017, depthwise-separable convolutions) and v2 (2018, inverted residuals with linear bottlenecks).

A depthwise-separable convolution is a 3×3 convolution per channel (``groups = channels``) followed by a 1×1
convolution mixing channels: ``9·C + C·C'`` weights instead of ``9·C·C'``.  ``mobilenet_v1`` takes
``separable=False`` to build the same network with standard 3×3 convolutions, for comparing the two with
``trainlab summary``.  On small inputs the stride-2 stem convolution keeps stride 1.
"""

from __future__ import annotations

import torch
from torch import nn

from trainlab.models.init import init_weights
from trainlab.models.layers import ClassifierHead, ConvBNAct, check_positive, make_divisible, use_small_stem
from trainlab.models.options import check_image_model
from trainlab.registry import MODELS

V1_LAYOUT = ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
             (512, 1), (512, 1), (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1))  # (channels, stride)
V2_LAYOUT = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
             (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))  # (expansion t, channels c, repeats n, stride s)


def separable(c_in: int, c_out: int, stride: int, act: str) -> nn.Sequential:
    """Depthwise 3×3 (one filter per channel) → pointwise 1×1, each with BN and activation."""
    return nn.Sequential(ConvBNAct(c_in, c_in, 3, stride, groups=c_in, act=act), ConvBNAct(c_in, c_out, 1, act=act))


def mobilenet_v1_net(num_classes: int, in_channels: int, act: str, width_mult: float, small: bool,
                     separable_convs: bool, dropout: float) -> nn.Sequential:
    def scale(channels: int) -> int:
        return max(8, int(channels * width_mult))

    layers: list[nn.Module] = [ConvBNAct(in_channels, scale(32), 3, 1 if small else 2, act=act)]
    channels = scale(32)
    for out, stride in V1_LAYOUT:
        block = separable if separable_convs else (lambda i, o, s, a: ConvBNAct(i, o, 3, s, act=a))
        layers.append(block(channels, scale(out), stride, act))
        channels = scale(out)
    layers.append(ClassifierHead(channels, num_classes, dropout))
    return nn.Sequential(*layers)


class InvertedResidual(nn.Module):
    """1×1 expand (×t) → depthwise 3×3 → 1×1 linear projection; residual when shape is kept."""

    def __init__(self, c_in: int, c_out: int, stride: int, expansion: int, act: str) -> None:
        super().__init__()
        hidden = c_in * expansion
        layers: list[nn.Module] = [ConvBNAct(c_in, hidden, 1, act=act)] if expansion != 1 else []
        layers += [ConvBNAct(hidden, hidden, 3, stride, groups=hidden, act=act), ConvBNAct(hidden, c_out, 1, act=None)]
        self.body = nn.Sequential(*layers)
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x) if self.residual else self.body(x)


def mobilenet_v2_net(num_classes: int, in_channels: int, act: str, width_mult: float, small: bool,
                     dropout: float) -> nn.Sequential:
    channels = make_divisible(32 * width_mult)
    last = make_divisible(1280 * max(1.0, width_mult))
    layers: list[nn.Module] = [ConvBNAct(in_channels, channels, 3, 1 if small else 2, act=act)]
    for t, c, n, s in V2_LAYOUT:
        out = make_divisible(c * width_mult)
        for i in range(n):
            layers.append(InvertedResidual(channels, out, s if i == 0 else 1, t, act))
            channels = out
    layers += [ConvBNAct(channels, last, 1, act=act), ClassifierHead(last, num_classes, dropout)]
    return nn.Sequential(*layers)


def _check(name: str, input_size: tuple[int, int] | None, activation: str, init: str | None, width_mult: float,
           dropout: float) -> tuple[int, int]:
    size = check_image_model(name, input_size, activation, init)
    check_positive(name, width_mult=width_mult)
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"{name} dropout must be in [0, 1), got {dropout}")
    return size


@MODELS.register("mobilenet_v1", description="MobileNet v1: depthwise-separable conv stack; width_mult, separable=false to compare")
def mobilenet_v1(*, num_classes: int, in_channels: int, input_size: tuple[int, int] | None,
                 activation: str = "relu", width_mult: float = 1.0, separable: bool = True, dropout: float = 0.0,
                 small_input: bool | None = None, init: str | None = None) -> nn.Module:
    """MobileNet v1; ``separable=False`` swaps every depthwise-separable block for a standard 3×3 conv."""
    size = _check("mobilenet_v1", input_size, activation, init, width_mult, dropout)
    net = mobilenet_v1_net(num_classes, in_channels, activation, width_mult, use_small_stem(size, small_input),
                           separable, dropout)
    return init_weights(net, init)


@MODELS.register("mobilenet_v2", description="MobileNet v2: inverted residuals, linear bottlenecks, ReLU6; width_mult")
def mobilenet_v2(*, num_classes: int, in_channels: int, input_size: tuple[int, int] | None,
                 activation: str = "relu6", width_mult: float = 1.0, dropout: float = 0.2,
                 small_input: bool | None = None, init: str | None = None) -> nn.Module:
    """MobileNet v2 as in torchvision; ``width_mult`` scales channels (rounded to multiples of 8)."""
    size = _check("mobilenet_v2", input_size, activation, init, width_mult, dropout)
    net = mobilenet_v2_net(num_classes, in_channels, activation, width_mult, use_small_stem(size, small_input), dropout)
    return init_weights(net, init)
