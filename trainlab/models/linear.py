"""Linear models: one affine layer on the flattened input.

``linear`` (regression) and ``softmax`` (softmax regression) share the architecture; they differ in intent —
the softmax itself lives in the cross-entropy loss, so both output raw scores.
"""

from __future__ import annotations

import math
from typing import Callable

from torch import nn

from trainlab.models.init import check_init, init_weights
from trainlab.registry import MODELS

VARIANTS = {
    "linear": "linear regression: one affine layer (use with the mse loss; num_classes = outputs)",
    "softmax": "softmax regression: one affine layer producing class logits for cross-entropy",
}


def _builder(name: str) -> Callable[..., nn.Module]:
    def build(*, num_classes: int, in_channels: int, input_size: tuple[int, int] | None,
              init: str | None = None) -> nn.Module:
        """Flatten → Linear(in_channels × H × W, num_classes)."""
        check_init(init)
        features = in_channels * (math.prod(input_size) if input_size else 1)
        return init_weights(nn.Sequential(nn.Flatten(), nn.Linear(features, num_classes)), init)

    build.__name__ = build.__qualname__ = name
    return build


for _name, _description in VARIANTS.items():
    MODELS.add(_name, _builder(_name), description=_description)
