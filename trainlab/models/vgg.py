"""VGG (2014): stacks of 3×3 convolutions separated by 2×2 max pools, then three dense layers.

``width_div`` divides every convolution's channels (the common "channels ÷ 4" teaching variant that trains
on a CPU).  At 224×224 the head sees a 7×7 map, as in torchvision; on small inputs a pool is skipped once the
map is down to one pixel and the head pools to 1×1, so 28×28 and 32×32 work without a 25,088-wide layer.
"""

from __future__ import annotations

from typing import Callable

from torch import nn

from trainlab.models.impl import feature_dropout
from trainlab.models.init import init_weights
from trainlab.models.layers import activation, check_positive, use_small_stem
from trainlab.models.options import check_image_model
from trainlab.registry import MODELS

# Channels per convolution; "M" is a 2x2 max pool.
LAYOUTS = {
    11: (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"),
    13: (64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"),
    16: (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"),
    19: (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"),
}
VARIANTS = {f"vgg{depth}{suffix}": dict(depth=depth, batch_norm=bool(suffix))
            for depth in LAYOUTS for suffix in ("", "_bn")}


def vgg_features(layout: tuple, in_channels: int, act: str, batch_norm: bool, width_div: int,
                 side: int, dropout2d: float = 0.0) -> tuple[nn.Sequential, int]:
    """The convolutional part; returns it with its output channels.  Pools that would go below 1 px are skipped;
    ``dropout2d`` follows every pool that is kept."""
    layers: list[nn.Module] = []
    channels = in_channels
    for item in layout:
        if item == "M":
            if side >= 2:
                layers += [nn.MaxPool2d(2, 2), *feature_dropout("vgg", dropout2d)]
                side //= 2
            continue
        out = max(1, item // width_div)
        layers.append(nn.Conv2d(channels, out, 3, padding=1))
        if batch_norm:
            layers.append(nn.BatchNorm2d(out))
        layers.append(activation(act))
        channels = out
    return nn.Sequential(*layers), channels


def vgg_net(depth: int, batch_norm: bool, num_classes: int, in_channels: int, size: tuple[int, int], act: str,
            width_div: int, hidden: int, dropout: float, small: bool, dropout2d: float = 0.0) -> nn.Sequential:
    features, channels = vgg_features(LAYOUTS[depth], in_channels, act, batch_norm, width_div, min(size), dropout2d)
    pooled = 1 if small else 7
    return nn.Sequential(
        features, nn.AdaptiveAvgPool2d((pooled, pooled)), nn.Flatten(),
        nn.Linear(channels * pooled * pooled, hidden), activation(act), nn.Dropout(dropout),
        nn.Linear(hidden, hidden), activation(act), nn.Dropout(dropout),
        nn.Linear(hidden, num_classes),
    )


def _builder(name: str, depth: int, batch_norm: bool) -> Callable[..., nn.Module]:
    def build(*, num_classes: int, in_channels: int, input_size: tuple[int, int] | None,
              activation: str = "relu", width_div: int = 1, hidden: int = 4096, dropout: float = 0.5,
              small_input: bool | None = None, init: str | None = None, dropout2d: float = 0.0) -> nn.Module:
        """VGG of this depth; ``width_div`` divides conv channels, ``hidden`` sizes the two dense layers;
        ``dropout`` acts in the dense head, ``dropout2d`` on the feature maps after each pool."""
        size = check_image_model(name, input_size, activation, init)
        check_positive(name, width_div=width_div, hidden=hidden)
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"{name} dropout must be in [0, 1), got {dropout}")
        feature_dropout(name, dropout2d)  # a bad rate names this variant
        net = vgg_net(depth, batch_norm, num_classes, in_channels, size, activation, width_div, hidden, dropout,
                      use_small_stem(size, small_input), dropout2d)
        return init_weights(net, init)

    build.__name__ = build.__qualname__ = name
    return build


for _name, _spec in VARIANTS.items():
    _bn = " with batch norm" if _spec["batch_norm"] else ""
    MODELS.add(_name, _builder(_name, **_spec),
               description=f"VGG-{_spec['depth']}{_bn}: 3x3 conv stacks + 3 dense layers; width_div for thin variants")
