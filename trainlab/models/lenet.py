"""LeNet-5: the 1998 design (sigmoid, average pooling) and its modern form (ReLU, max pooling, optional BN).

The first convolution pads by 2 so that 28×28 digits get the 32×32 geometry of the original paper; the
flattened size is computed from the actual input, so any image size ≥ 12 px works.
"""

from __future__ import annotations

from typing import Callable

from torch import nn

from trainlab.models.impl import Impl, check_impl, feature_dropout, use_impl
from trainlab.models.init import check_init, init_weights
from trainlab.models.layers import activation as make_activation
from trainlab.models.layers import check_activation, require_image
from trainlab.registry import MODELS

VARIANTS = {
    "lenet": dict(activation="sigmoid", pool=nn.AvgPool2d,
                  description="LeNet-5 as in 1998: 5x5 convs, sigmoid, average pooling, 120-84 dense head"),
    "lenet-modern": dict(activation="relu", pool=nn.MaxPool2d,
                         description="LeNet-5 with ReLU and max pooling (optional batch norm)"),
}


def conv_out(size: int, kernel: int, padding: int = 0, stride: int = 1) -> int:
    """Output size of a convolution or pooling: (W − F + 2P) / S + 1."""
    return (size - kernel + 2 * padding) // stride + 1


def flat_side(size: int) -> int:
    """Side of the feature map entering the dense head: conv5 pad 2, pool 2, conv5, pool 2."""
    size = conv_out(size, 5, padding=2)
    size = conv_out(size, 2, stride=2)
    size = conv_out(size, 5)
    return conv_out(size, 2, stride=2)


def lenet_net(num_classes: int, in_channels: int, input_size: tuple[int, int], activation: str,
              pool: type[nn.Module], batch_norm: bool, dropout2d: float = 0.0) -> nn.Sequential:
    """conv5(6, pad 2) → act → pool2 → conv5(16) → act → pool2 → 120 → 84 → classes (``dropout2d`` after each pool)."""
    def norm(channels: int, dims: int) -> list[nn.Module]:
        return [(nn.BatchNorm2d if dims == 2 else nn.BatchNorm1d)(channels)] if batch_norm else []

    height, width = (flat_side(side) for side in input_size)
    return nn.Sequential(
        nn.Conv2d(in_channels, 6, 5, padding=2), *norm(6, 2), make_activation(activation), pool(2, 2),
        *feature_dropout("lenet", dropout2d),
        nn.Conv2d(6, 16, 5), *norm(16, 2), make_activation(activation), pool(2, 2),
        *feature_dropout("lenet", dropout2d),
        nn.Flatten(),
        nn.Linear(16 * height * width, 120), *norm(120, 1), make_activation(activation),
        nn.Linear(120, 84), *norm(84, 1), make_activation(activation),
        nn.Linear(84, num_classes),
    )


def _builder(name: str, spec: dict) -> Callable[..., nn.Module]:
    def build(*, num_classes: int, in_channels: int, input_size: tuple[int, int] | None,
              activation: str | None = None, batch_norm: bool = False, init: str | None = None,
              dropout2d: float = 0.0, impl: Impl = "torch") -> nn.Module:
        """LeNet-5; ``activation`` None keeps the variant's own (sigmoid for lenet, relu for lenet-modern).

        ``dropout2d`` drops whole feature-map channels after each pooling; ``impl=scratch`` builds it from the
        hand-written Conv2d, pooling, BatchNorm and dropout.
        """
        size = require_image(name, input_size)
        check_impl(name, impl)
        feature_dropout(name, dropout2d)  # a bad rate names this variant
        if min(flat_side(side) for side in size) < 1:
            raise ValueError(f"{name} needs images of at least 12x12 pixels, got {size[0]}x{size[1]}")
        act = check_activation(activation or spec["activation"])
        check_init(init)
        net = lenet_net(num_classes, in_channels, size, act, spec["pool"], batch_norm, dropout2d)
        return use_impl(init_weights(net, init), impl)

    build.__name__ = build.__qualname__ = name.replace("-", "_")
    return build


for _name, _spec in VARIANTS.items():
    MODELS.add(_name, _builder(_name, _spec), description=_spec["description"])
