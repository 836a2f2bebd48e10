"""The confusion matrix and per-class accuracy, built from test predictions handed in (no model, no data)."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np


def confusion_matrix(targets: np.ndarray, preds: np.ndarray, num_classes: int) -> np.ndarray:
    """``matrix[true, predicted]`` counts."""
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (targets.astype(int), preds.astype(int)), 1)
    return matrix


def per_class_accuracy(matrix: np.ndarray, classes: Sequence[str]) -> list[dict[str, Any]]:
    """Rows of class, support, correct and accuracy (recall) — the classes a model confuses stand out."""
    rows = []
    for i, name in enumerate(classes):
        support = int(matrix[i].sum())
        correct = int(matrix[i, i])
        rows.append({"class": name, "support": support, "correct": correct,
                     "accuracy": correct / support if support else float("nan")})
    return rows
