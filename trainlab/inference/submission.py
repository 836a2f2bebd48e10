"""Kaggle-style submission files: one id column and one prediction column, one row per test example."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

import pandas as pd

from trainlab import atomic


def write_submission(ids: Sequence[Any], predictions: Sequence[Any], path: str | Path, id_col: str = "Id",
                     target_col: str = "SalePrice") -> Path:
    """Write ``id_col,target_col`` rows, refusing anything a leaderboard would reject.

    Checked before writing: as many predictions as ids, no duplicate ids, no missing or non-finite
    prediction.  The file is written to a temporary name and renamed, so a failed write never leaves a
    half-written submission behind.
    """
    ids, predictions = list(ids), list(predictions)
    if len(ids) != len(predictions):
        raise ValueError(f"submission: {len(ids)} ids but {len(predictions)} predictions; they must match one to one")
    if not ids:
        raise ValueError("submission: no rows to write")
    if id_col == target_col:
        raise ValueError(f"submission: id column and target column are both named '{id_col}'")
    duplicated = pd.Series(ids)[pd.Series(ids).duplicated()].tolist()
    if duplicated:
        raise ValueError(f"submission: duplicate ids, e.g. {duplicated[:3]}")
    bad = [i for i, value in zip(ids, predictions) if not _valid(value)]
    if bad:
        raise ValueError(f"submission: {len(bad)} missing or non-finite predictions (ids {bad[:5]}); "
                         "check the model's output for NaN before submitting")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic.atomic_path(path) as tmp:
        pd.DataFrame({id_col: ids, target_col: predictions}).to_csv(tmp, index=False)
    return path


def _valid(value: Any) -> bool:
    if value is None:
        return False
    if isinstance(value, str):
        return bool(value.strip())
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False
