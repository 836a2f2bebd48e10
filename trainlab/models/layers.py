"""Building blocks shared by the model families: activations by name, conv-BN-activation, squeeze-excitation,
channel shuffle, and the small helpers every builder uses to check its input and pick a stem.

Keeping these in one place means a family file only states its architecture table; how an activation name is
resolved, or when an input counts as "small", is decided once.
"""

from __future__ import annotations

import difflib
from typing import Callable

import torch
from torch import nn

SMALL_INPUT_MAX = 64  # inputs up to this many pixels per side get a CIFAR-style stem (no early downsampling)

ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "relu6": nn.ReLU6,
    "leaky_relu": lambda: nn.LeakyReLU(0.01),
    "sigmoid": nn.Sigmoid,
    "hardsigmoid": nn.Hardsigmoid,
    "tanh": nn.Tanh,
    "silu": nn.SiLU,
    "gelu": nn.GELU,
    "hardswish": nn.Hardswish,
}


def did_you_mean(kind: str, name: str, choices: list[str]) -> str:
    """The error text for an unknown name: a close match when there is one, then all choices."""
    close = difflib.get_close_matches(str(name), choices, n=1, cutoff=0.6)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    return f"unknown {kind} '{name}'{hint}\nchoices: {', '.join(sorted(choices))}"


def check_activation(name: str) -> str:
    """Validate an activation name early, so a typo fails before any layer is built."""
    if name not in ACTIVATIONS:
        raise ValueError(did_you_mean("activation", name, list(ACTIVATIONS)))
    return name


def activation(name: str) -> nn.Module:
    """A fresh activation module for ``name`` (relu, leaky_relu, sigmoid, tanh, silu, gelu, hardswish, …)."""
    return ACTIVATIONS[check_activation(name)]()


def require_image(model: str, input_size: tuple[int, int] | None) -> tuple[int, int]:
    """Convolutional models need (height, width); tables have no spatial layout."""
    if input_size is None:
        raise ValueError(f"{model} needs image input (channels, height, width); for tables use 'mlp' or 'linear'")
    height, width = input_size
    if height < 8 or width < 8:
        raise ValueError(f"{model} needs images of at least 8x8 pixels, got {height}x{width}")
    return height, width


def use_small_stem(input_size: tuple[int, int], small_input: bool | None) -> bool:
    """``None`` means auto: images of at most 64 px per side keep their resolution in the stem."""
    return max(input_size) <= SMALL_INPUT_MAX if small_input is None else small_input


def check_positive(model: str, **values: float) -> None:
    """Raise a clear error for multipliers and divisors that must be > 0."""
    for key, value in values.items():
        if value <= 0:
            raise ValueError(f"{model} option {key} must be > 0, got {value}")


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round channel counts to a multiple of ``divisor`` without dropping more than 10% (MobileNet rule)."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


class ConvBNAct(nn.Sequential):
    """Conv (no bias) → BatchNorm → activation; ``act=None`` leaves the output linear."""

    def __init__(self, c_in: int, c_out: int, kernel: int = 3, stride: int = 1, groups: int = 1,
                 act: str | None = "relu", bn_eps: float = 1e-5) -> None:
        layers: list[nn.Module] = [
            nn.Conv2d(c_in, c_out, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
            nn.BatchNorm2d(c_out, eps=bn_eps),
        ]
        if act is not None:
            layers.append(activation(act))
        super().__init__(*layers)


class SqueezeExcite(nn.Module):
    """Channel attention: global pool → 1×1 reduce → act → 1×1 expand → gate, multiplied onto the input."""

    def __init__(self, channels: int, squeeze: int, act: str = "relu", gate: str = "sigmoid") -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, squeeze, 1)
        self.act = activation(act)
        self.fc2 = nn.Conv2d(squeeze, channels, 1)
        self.gate = activation(gate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(self.fc2(self.act(self.fc1(self.pool(x)))))


class ChannelShuffle(nn.Module):
    """Interleave channels across ``groups`` so grouped convolutions see every group (ShuffleNet)."""

    def __init__(self, groups: int) -> None:
        super().__init__()
        self.groups = groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, channels, height, width = x.shape
        x = x.view(batch, self.groups, channels // self.groups, height, width)
        return x.transpose(1, 2).reshape(batch, channels, height, width)


class ClassifierHead(nn.Sequential):
    """Global average pooling → flatten → optional dropout → linear: works at any input size."""

    def __init__(self, c_in: int, num_classes: int, dropout: float = 0.0) -> None:
        layers: list[nn.Module] = [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        if dropout:
            layers.append(nn.Dropout(dropout))
        layers.append(nn.Linear(c_in, num_classes))
        super().__init__(*layers)
