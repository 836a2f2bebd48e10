"""The preprocessing record: how a raw input becomes a model input, saved in ``data.json`` for ``predict``.

It is a plain JSON-safe dict at run time (runs written by trainlab 0.1.0 hold exactly these keys), typed here as
``TypedDict``s and built only by :func:`image_preprocess` and :func:`table_preprocess`, so every dataset writes
the same keys and :func:`check_preprocess` can name what is missing when a ``data.json`` is read back.
"""

from __future__ import annotations

from typing import Any, Literal, Sequence, TypedDict


class WhitenRecord(TypedDict):
    """PCA or ZCA whitening fitted on the training split: ``(features - mean) @ matrix`` (see :mod:`whiten`)."""

    method: Literal["pca", "zca"]
    eps: float
    mean: list[float]  # one per model input feature (C*H*W for images)
    matrix: list[list[float]]  # features x features


class ImageOptions(TypedDict, total=False):
    """Keys every new image record holds (None when unused) but runs written before they existed lack."""

    resize: list[int] | None  # [height, width] the batch is resized to on the device, after scaling (data.size)
    whiten: WhitenRecord | None  # applied to the flattened normalized image (data.whiten)


class ImagePreprocess(ImageOptions):
    """An image file → ``((pixels * scale) - mean) / std`` per channel, after converting to ``mode`` and ``size``.

    ``size`` is the size images are stored at (and a file is read at); ``resize``, when present, is the model's
    input size, reached by resizing each batch on the device, so training, evaluation and predict resize alike."""

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
    whiten: WhitenRecord  # applied to the encoded feature vector (data.whiten)


class TextPreprocess(TypedDict, total=False):
    """Text → token ids: the vocabulary built from the training text (index 0 padding, 1 unknown), see data/text.py."""

    kind: Literal["text"]
    level: str  # "char" or "word"
    lowercase: bool
    vocab: list[str]  # token of each id: ["<pad>", "<unk>", ...]
    task: str  # "lm" (next token per step) or "classify" (one label per passage)
    num_steps: int  # lm: time steps per training window
    max_length: int  # classify: the longest passage in tokens
    styles: dict[str, str]  # lm over several novels (austen-styles): novel → the style token its paragraphs begin with


Preprocess = ImagePreprocess | TablePreprocess | TextPreprocess
REQUIRED = {"image": set(ImagePreprocess.__required_keys__), "table": {"kind"}, "text": {"kind", "level", "vocab"}}


def image_preprocess(*, mode: str, size: Sequence[int], mean: Sequence[float], std: Sequence[float],
                     max_value: int = 255, background: str | None = None) -> ImagePreprocess:
    """The record of an image dataset whose raw pixels go from 0 to ``max_value``."""
    return {"kind": "image", "mode": mode, "size": [int(s) for s in size], "max_value": max_value,
            "scale": 1 / max_value, "mean": [float(m) for m in mean], "std": [float(s) for s in std],
            "background": background, "resize": None, "whiten": None}


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
        raise ValueError(f"{where}: preprocess.kind is {kind!r}; expected 'image', 'table' or 'text'")
    missing = sorted(REQUIRED[kind] - set(record))
    if missing:
        raise ValueError(f"{where}: the {kind} preprocessing record lacks {', '.join(missing)}")
    return record


def size_pair(size: Any, key: str) -> tuple[int, int]:
    """``N`` or ``[height, width]`` → ``(height, width)``; a ValueError naming ``key`` for anything else.

    One rule for ``data.size`` of every image dataset and the ``size`` of the resize and center_crop transforms;
    ``N`` is a square, as every built-in dataset's images are (torchvision's ``Resize(N)`` would keep the aspect
    ratio, which for a square image is the same)."""
    pair = [size, size] if isinstance(size, int) and not isinstance(size, bool) else size
    if (not isinstance(pair, (list, tuple)) or len(pair) != 2
            or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in pair)):
        raise ValueError(f"{key} must be N or [height, width] with positive whole numbers, got {size!r}")
    return int(pair[0]), int(pair[1])
