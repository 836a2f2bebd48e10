"""The preprocessing record: how a raw input becomes a model input, saved in ``data.json`` for ``predict``.

It is a plain JSON-safe dict at run time (runs written by trainlab 0.1.0 hold exactly these keys), typed here as
``TypedDict``s and built only by :func:`image_preprocess` and :func:`table_preprocess`, so every dataset writes
the same keys and :func:`check_preprocess` can name what is missing when a ``data.json`` is read back.
"""

from __future__ import annotations

from typing import Any, Literal, Sequence, TypedDict


class ImagePreprocess(TypedDict):
    """An image file → ``((pixels * scale) - mean) / std`` per channel, after converting to ``mode`` and ``size``."""

    kind: Literal["image"]
    mode: str  # PIL mode the model expects: "L" or "RGB"
    size: list[int]  # [height, width]
    max_value: int  # the largest raw pixel value (255; 16 for the 8x8 digits)
    scale: float  # raw value → [0, 1]
    mean: list[float]
    std: list[float]
    background: str | None  # "dark" when digits are light on dark: predict inverts light-background images


class NumericColumn(TypedDict):
    name: str
    log: bool  # log1p before standardizing (skewed, non-negative columns)
    mean: float
    std: float


class CategoricalColumn(TypedDict):
    name: str
    categories: list[str]  # one-hot, plus a missing and an unknown column


class TargetTransform(TypedDict, total=False):
    name: str
    log: bool  # the model predicts log1p(target)
    task: str
    shift: float  # subtracted from the (log) target: center_target


class TablePreprocess(TypedDict, total=False):
    """A table row → feature vector: standardized numeric columns and one-hot categories (csv), or as is."""

    kind: Literal["table"]
    scale: float
    features: list[str]  # model input feature names, in order
    numeric: list[NumericColumn]
    categorical: list[CategoricalColumn]
    id: str | None
    target: TargetTransform
    true_weights: list[float]  # synthetic-linear: the generating parameters, for comparison
    true_bias: float


Preprocess = ImagePreprocess | TablePreprocess
REQUIRED = {"image": set(ImagePreprocess.__required_keys__), "table": {"kind"}}


def image_preprocess(*, mode: str, size: Sequence[int], mean: Sequence[float], std: Sequence[float],
                     max_value: int = 255, background: str | None = None) -> ImagePreprocess:
    """The record of an image dataset whose raw pixels go from 0 to ``max_value``."""
    return {"kind": "image", "mode": mode, "size": [int(s) for s in size], "max_value": max_value,
            "scale": 1 / max_value, "mean": [float(m) for m in mean], "std": [float(s) for s in std],
            "background": background}


def table_preprocess(*, features: Sequence[str], **encoding: Any) -> TablePreprocess:
    """The record of a table: its feature names and, for CSV files, the fitted encoding and target transform."""
    unknown = set(encoding) - set(TablePreprocess.__annotations__)
    if unknown:
        raise TypeError(f"table_preprocess: unknown keys {sorted(unknown)}")
    return {"kind": "table", "scale": 1.0, "features": list(features), **encoding}  # type: ignore[typeddict-item]


def check_preprocess(record: Any, where: str) -> Preprocess:
    """``record`` if it is a preprocessing record with the keys its kind needs, else a ValueError naming ``where``."""
    kind = record.get("kind") if isinstance(record, dict) else None
    if kind not in REQUIRED:
        raise ValueError(f"{where}: preprocess.kind is {kind!r}; expected 'image' or 'table'")
    missing = sorted(REQUIRED[kind] - set(record))
    if missing:
        raise ValueError(f"{where}: the {kind} preprocessing record lacks {', '.join(missing)}")
    return record
