"""AlexNet (2012), in torchvision's single-GPU channel layout (64-192-384-256-256).

On small inputs the 11×11 stride-4 stem and the first max pool would shrink a 28×28 image to 3×3 before the
second convolution; the small-input stem is a 3×3 stride-1 convolution without that pool, so the feature map
reaching the dense head is 6×6, as it is at 224×224.
"""

from __future__ import annotations

from torch import nn

from trainlab.models.init import init_weights
from trainlab.models.layers import activation, check_positive, use_small_stem
from trainlab.models.options import check_image_model
from trainlab.registry import MODELS


@MODELS.register("alexnet", description="AlexNet: 5 convs + 3 dense layers with dropout; small-input stem for <= 64 px")
def alexnet(*, num_classes: int, in_channels: int, input_size: tuple[int, int] | None,
            activation: str = "relu", dropout: float = 0.5, hidden: int = 4096, small_input: bool | None = None,
            init: str | None = None) -> nn.Module:
    """Convolutions 64-192-384-256-256 with three max pools, adaptive 6×6 pooling, two dense layers of ``hidden``."""
    size = check_image_model("alexnet", input_size, activation, init)
    check_positive("alexnet", hidden=hidden)
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"alexnet dropout must be in [0, 1), got {dropout}")
    return init_weights(_alexnet(num_classes, in_channels, activation, dropout, hidden,
                                 use_small_stem(size, small_input)), init)


def _alexnet(num_classes: int, in_channels: int, act: str, dropout: float, hidden: int, small: bool) -> nn.Sequential:
    stem: list[nn.Module] = (
        [nn.Conv2d(in_channels, 64, 3, 1, 1), activation(act)] if small
        else [nn.Conv2d(in_channels, 64, 11, 4, 2), activation(act), nn.MaxPool2d(3, 2)]
    )
    return nn.Sequential(
        *stem,
        nn.Conv2d(64, 192, 5, padding=2), activation(act), nn.MaxPool2d(3, 2),
        nn.Conv2d(192, 384, 3, padding=1), activation(act),
        nn.Conv2d(384, 256, 3, padding=1), activation(act),
        nn.Conv2d(256, 256, 3, padding=1), activation(act), nn.MaxPool2d(3, 2),
        nn.AdaptiveAvgPool2d((6, 6)), nn.Flatten(),
        nn.Dropout(dropout), nn.Linear(256 * 6 * 6, hidden), activation(act),
        nn.Dropout(dropout), nn.Linear(hidden, hidden), activation(act),
        nn.Linear(hidden, num_classes),
    )
