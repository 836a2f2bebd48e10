"""The options every image model in the zoo shares, checked the same way before any layer is built."""

from __future__ import annotations

from trainlab.models.init import check_init
from trainlab.models.layers import check_activation, require_image


def check_image_model(model: str, input_size: tuple[int, int] | None, activation: str,
                      init: str | None) -> tuple[int, int]:
    """The image size, once ``input_size`` is known to be one and ``activation`` and ``init`` to be known names
    (each error names the model and the choices)."""
    size = require_image(model, input_size)
    check_activation(activation)
    check_init(init)
    return size
