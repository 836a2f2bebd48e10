"""The model zoo, by name.

Every builder is registered in :data:`trainlab.registry.MODELS` and called as
``builder(num_classes=…, in_channels=…, input_size=…, **options)``: ``in_channels`` is the number of image
channels (or of table columns), ``input_size`` the image ``(height, width)`` or ``None`` for tables.
A name with a colon is your own ``nn.Module`` instead, ``path/to/file.py:ClassName`` or ``package.module:ClassName``
(:mod:`trainlab.models.custom`).
:func:`create` also accepts ``input_size=224`` (meaning 224x224, as timm and torchvision do) and normalises it
with :func:`~trainlab.models.options.normalize_input_size`, so builders only ever see a tuple or ``None``.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from trainlab.models import (  # noqa: F401  (registration; custom: own models by reference)
    alexnet,
    custom,
    densenet,
    efficientnet,
    googlenet,
    lenet,
    linear,
    mlp,
    mobilenet,
    mobilenetv3,
    nin,
    recurrent,
    resnet,
    seq2seq,
    shufflenet,
    simple,
    speedrun,
    vgg,
)
from trainlab.models.options import InputSize, normalize_input_size
from trainlab.registry import MODELS

__all__ = ["create"]


def create(name: str, *, num_classes: int, in_channels: int, input_size: InputSize = None,
           **options: Any) -> nn.Module:
    """Build the model registered as ``name`` (or named by a ``file.py:Class`` reference) for the data shape.

    ``input_size`` is normalised here, once, so every builder gets ``(height, width)`` or ``None`` whether the
    user typed ``224``, ``(224, 224)`` or ``[224, 224]``.
    """
    if custom.is_reference(name):  # your own nn.Module, file.py:Class or module:Class: imports (runs) that code
        return custom.create(name, num_classes=num_classes, in_channels=in_channels, input_size=input_size, **options)
    size = normalize_input_size(input_size)
    return MODELS.get(name)(num_classes=num_classes, in_channels=in_channels, input_size=size, **options)
