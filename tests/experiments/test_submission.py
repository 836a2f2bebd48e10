"""write_submission: right rows and columns, no missing values, clear refusals."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

from trainlab.inference.submission import write_submission


def test_writes_id_and_target_columns(tmp_path: Path) -> None:
    ids = list(range(1461, 2920))  # House Prices test ids: 1,459 rows
    preds = [100_000.0 + i for i in range(len(ids))]
    path = write_submission(ids, preds, tmp_path / "sub" / "submission.csv", "Id", "SalePrice")
    frame = pd.read_csv(path)
    assert frame.columns.tolist() == ["Id", "SalePrice"]
    assert len(frame) == 1459 and frame["Id"].tolist() == ids
    assert frame["SalePrice"].tolist() == pytest.approx(preds)
    assert not frame.isna().any().any()
    assert not list(path.parent.glob("*.tmp"))


@pytest.mark.parametrize("ids, preds, message", [
    ([1, 2, 3], [1.0, 2.0], "3 ids but 2 predictions"),
    ([1, 1], [1.0, 2.0], "duplicate ids"),
    ([1, 2], [1.0, math.nan], "missing or non-finite"),
    ([1, 2], [None, 2.0], "missing or non-finite"),
    ([1, 2], [1.0, math.inf], "missing or non-finite"),
    ([], [], "no rows"),
])
def test_refuses_what_a_leaderboard_would_reject(tmp_path: Path, ids, preds, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        write_submission(ids, preds, tmp_path / "s.csv", "Id", "SalePrice")
    assert not (tmp_path / "s.csv").exists()


def test_class_labels_are_valid_predictions(tmp_path: Path) -> None:
    path = write_submission(["a", "b"], ["cat", "dog"], tmp_path / "s.csv", "id", "label")
    assert pd.read_csv(path).to_dict("list") == {"id": ["a", "b"], "label": ["cat", "dog"]}


def test_same_column_names_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="both named 'Id'"):
        write_submission([1], [1.0], tmp_path / "s.csv", "Id", "Id")
