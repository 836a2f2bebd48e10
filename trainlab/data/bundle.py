"""The value every dataset builder returns, and the stratified splitting they share."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
from torch.utils.data import Dataset, TensorDataset

from trainlab.data.preprocess import check_preprocess

Task = Literal["classification", "regression"]


@dataclass(frozen=True)
class DataMeta:
    """What the rest of trainlab needs to know about a dataset.

    ``preprocess`` is the JSON-safe record of :mod:`trainlab.data.preprocess`, saved with each run: it says how a
    raw input becomes a model input (``scale`` then ``(x - mean) / std`` per channel for images, plus image
    ``mode`` and ``size`` for predict; the fitted encoding for tables).
    """

    task: Task
    input_shape: tuple[int, ...]
    num_classes: int | None = None
    classes: list[str] | None = None
    preprocess: Any = field(default_factory=dict)  # an ImagePreprocess or TablePreprocess record

    @property
    def in_channels(self) -> int:
        return self.input_shape[0]

    @property
    def input_size(self) -> tuple[int, int] | None:
        return tuple(self.input_shape[1:3]) if len(self.input_shape) == 3 else None  # type: ignore[return-value]

    @property
    def text_task(self) -> str | None:
        """``lm``, ``classify`` or ``seq2seq`` for text datasets (their preprocessing record says), else None."""
        record = self.preprocess
        return record.get("task") if isinstance(record, dict) and record.get("kind") == "text" else None

    @property
    def num_outputs(self) -> int:
        return self.num_classes if self.task == "classification" and self.num_classes else 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "input_shape": list(self.input_shape),
            "num_classes": self.num_classes,
            "classes": self.classes,
            "preprocess": self.preprocess,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "the data description") -> "DataMeta":
        """Read back :meth:`to_dict`; a malformed preprocessing record fails naming ``where``."""
        if "preprocess" in data:
            check_preprocess(data["preprocess"], where)
        return cls(
            task=data["task"],
            input_shape=tuple(data["input_shape"]),
            num_classes=data.get("num_classes"),
            classes=data.get("classes"),
            preprocess=data.get("preprocess", {}),
        )


@dataclass
class DataBundle:
    """Train / validation / test sources of one dataset with its metadata."""

    train: Dataset
    val: Dataset | None
    test: Dataset | None
    meta: DataMeta


def stratified_split(labels: np.ndarray, fraction: float, seed: int, stratify: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Indices (keep, held_out) with ``fraction`` of each class held out, reproducible for a seed."""
    rng = np.random.default_rng(seed)
    groups = [np.flatnonzero(labels == c) for c in np.unique(labels)] if stratify else [np.arange(len(labels))]
    held: list[np.ndarray] = []
    for idx, count in zip(groups, held_counts([len(g) for g in groups], fraction)):
        idx = rng.permutation(idx)
        held.append(idx[:count])
    held_out = np.sort(np.concatenate(held)) if held else np.array([], dtype=int)
    keep = np.setdiff1d(np.arange(len(labels)), held_out)
    return keep, held_out


def held_counts(sizes: list[int], fraction: float) -> list[int]:
    """Per-group held-out counts summing to ``round(total * fraction)`` (largest remainders get the extra ones),
    so small classes still yield a validation set of the requested size."""
    exact = np.asarray(sizes, dtype=np.float64) * fraction
    counts = np.floor(exact).astype(int)
    extra = int(round(sum(sizes) * fraction)) - int(counts.sum())
    for i in np.argsort(-(exact - counts), kind="stable")[:max(extra, 0)]:
        counts[i] += 1
    return counts.tolist()


def tensor_splits(
    x: torch.Tensor, y: torch.Tensor, val_fraction: float, seed: int, stratify: bool
) -> tuple[TensorDataset, TensorDataset | None]:
    """Split in-memory tensors into train and (optionally empty) validation sets."""
    if val_fraction <= 0:
        return TensorDataset(x, y), None
    keep, held = stratified_split(y.numpy(), val_fraction, seed, stratify)
    return TensorDataset(x[keep], y[keep]), TensorDataset(x[held], y[held])


def channel_stats(x: torch.Tensor, scale: float = 1.0, chunk: int = 8192) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of ``x * scale`` for N×C×H×W data, accumulated in float64 chunk by chunk."""
    channels = x.shape[1]
    total = torch.zeros(channels, dtype=torch.float64)
    squares = torch.zeros(channels, dtype=torch.float64)
    for start in range(0, len(x), chunk):
        part = x[start:start + chunk].double() * scale
        total += part.sum(dim=(0, 2, 3))
        squares += part.pow(2).sum(dim=(0, 2, 3))
    count = max(x.numel() // channels, 1)
    mean = total / count
    std = (squares / count - mean.pow(2)).clamp_min(0).sqrt()
    return mean.tolist(), std.tolist()
