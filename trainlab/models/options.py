"""The options every image model in the zoo shares, checked the same way before any layer is built."""

from __future__ import annotations

from collections.abc import Sequence
from numbers import Integral

from trainlab.models.init import check_init
from trainlab.models.layers import check_activation, require_image

InputSize = int | Sequence[int] | None
"""What users may pass as ``input_size``: ``224``, ``(224, 224)``, ``[224, 224]`` or ``None`` (tables)."""

INPUT_SIZE_ACCEPTED = "an int > 0 (224 means 224x224), a (height, width) pair of ints > 0, or None for tables"


def _is_side(value: object) -> bool:
    """A positive integer pixel count; bools are ints to Python but never a size a user meant."""
    return isinstance(value, Integral) and not isinstance(value, bool) and int(value) > 0


def normalize_input_size(input_size: InputSize) -> tuple[int, int] | None:
    """``input_size`` as the ``(height, width)`` tuple every builder expects, or ``None`` for tables.

    Users type ``224`` as timm and torchvision accept, or a pair from config/data metadata; builders unpack
    ``(height, width)``.  Normalising once at the public entry point keeps builders strict and lets a bad value
    fail here with one clear message instead of an unpacking error deep inside a family file.
    """
    if input_size is None:
        return None
    if _is_side(input_size):
        side = int(input_size)  # type: ignore[arg-type]
        return side, side
    is_pair = isinstance(input_size, Sequence) and not isinstance(input_size, (str, bytes)) and len(input_size) == 2
    if is_pair and all(_is_side(side) for side in input_size):  # type: ignore[union-attr]
        height, width = input_size  # type: ignore[misc]
        return int(height), int(width)
    raise ValueError(f"input_size must be {INPUT_SIZE_ACCEPTED}; got {input_size!r}")


def check_image_model(model: str, input_size: tuple[int, int] | None, activation: str,
                      init: str | None) -> tuple[int, int]:
    """The image size, once ``input_size`` is known to be one and ``activation`` and ``init`` to be known names
    (each error names the model and the choices)."""
    size = require_image(model, input_size)
    check_activation(activation)
    check_init(init)
    return size
