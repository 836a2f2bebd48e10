"""The model zoo, by name.

Every builder is registered in :data:`trainlab.registry.MODELS` and called as
``builder(num_classes=…, in_channels=…, input_size=…, **options)``: ``in_channels`` is the number of image
channels (or of table columns), ``input_size`` the image ``(height, width)`` or ``None`` for tables.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from trainlab.models import (  # noqa: F401  (registration)
    alexnet,
    densenet,
    efficientnet,
    googlenet,
    lenet,
    linear,
    mlp,
    mobilenet,
    mobilenetv3,
    nin,
    resnet,
    shufflenet,
    simple,
    speedrun,
    vgg,
)
from trainlab.registry import MODELS

__all__ = ["create"]


def create(name: str, *, num_classes: int, in_channels: int, input_size: tuple[int, int] | None = None,
           **options: Any) -> nn.Module:
    """Build the model registered as ``name`` for the given data shape."""
    return MODELS.get(name)(num_classes=num_classes, in_channels=in_channels, input_size=input_size, **options)
