"""Predict a CSV table with a tabular run: the saved preprocessing in, the target's own scale out.

A run trained on the ``csv`` dataset saves everything prediction needs in ``data.json`` → ``preprocess``
(``kind: table``): the feature encoding, the id column and how the target was transformed.  Predicting a new
table applies that encoding (:func:`~trainlab.data.tabular.transform_table`: a missing feature column is an
error naming it, an unseen category a warning; then the run's ``data.whiten`` matrix, if any, exactly as training
applied it), runs the model or averages several (a k-fold ensemble), and undoes the target transform —
``log_target`` and ``center_target`` — so a House Prices run answers in dollars.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn

from trainlab.data.bundle import DataMeta
from trainlab.data.tabular import transform_table
from trainlab.inference.outputs import average_outputs
from trainlab.inference.submission import write_submission

ROW_COLUMN = "row"  # id column of the output when the run has no data.id


@dataclass
class TablePrediction:
    """One prediction per input row: ids, values on the target's own scale, and class probabilities if any."""

    ids: list[Any]
    values: list[Any]
    id_col: str
    target_col: str
    probabilities: pd.DataFrame | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.ids)

    def frame(self) -> pd.DataFrame:
        """``id_col, target_col`` as a data frame (probability columns follow for classification)."""
        out = pd.DataFrame({self.id_col: self.ids, self.target_col: self.values})
        return out if self.probabilities is None else pd.concat([out, self.probabilities], axis=1)

    def write(self, path: str | Path) -> Path:
        """A Kaggle-style submission: exactly ``id_col,target_col``, checked for missing values."""
        return write_submission(self.ids, self.values, path, id_col=self.id_col, target_col=self.target_col)


def read_table(source: str | Path | pd.DataFrame | Sequence[str | Path]) -> pd.DataFrame:
    """The table to predict: a data frame, a CSV path, or a one-element list holding a CSV path."""
    if isinstance(source, pd.DataFrame):
        return source
    if not isinstance(source, (str, Path)):
        paths = list(source)
        if len(paths) != 1:
            raise ValueError(f"a table run predicts one CSV file at a time, got {len(paths)} inputs")
        source = paths[0]
    path = Path(source).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"CSV file to predict not found: {path}")
    try:
        return pd.read_csv(path)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as err:
        raise ValueError(f"{path}: not a readable CSV table ({err})") from None


def to_target_scale(values: np.ndarray, preprocess: dict[str, Any]) -> np.ndarray:
    """Undo the training target transform: add back the centering shift, then ``expm1`` for ``log_target``."""
    target = preprocess.get("target", {})
    values = values.astype(np.float64) + float(target.get("shift", 0.0))
    return np.expm1(values) if target.get("log") else values


@torch.no_grad()
def predict_table(models: Sequence[nn.Module], source: str | Path | pd.DataFrame | Sequence[str | Path],
                  meta: DataMeta, device: str | torch.device = "cpu") -> TablePrediction:
    """Predict every row of ``source`` with the mean output of ``models`` (one model, or a k-fold's folds)."""
    preprocess = meta.preprocess
    if preprocess.get("kind") != "table":
        raise ValueError(f"this run was trained on {preprocess.get('kind', 'non-table')} data; "
                         "predicting a CSV table needs a run trained on the csv dataset")
    frame = read_table(source)
    id_name = preprocess.get("id")
    if id_name is not None and id_name not in frame.columns:
        raise ValueError(f"the table lacks the id column '{id_name}' (data.id of the run)")
    where = "the table" if isinstance(source, pd.DataFrame) else str(source if isinstance(source, (str, Path))
                                                                     else next(iter(source)))
    x = transform_table(frame, preprocess, source=where).to(device)  # errors name the file's lines
    output = average_outputs(models, x, meta.task).cpu()
    ids = frame[id_name].tolist() if id_name is not None else list(range(1, len(frame) + 1))
    target_name = preprocess.get("target", {}).get("name", "prediction")
    if meta.task != "classification":
        values = to_target_scale(output.numpy(), preprocess).tolist()
        return TablePrediction(ids, values, id_name or ROW_COLUMN, target_name)
    classes = meta.classes or [str(i) for i in range(output.shape[1])]
    labels = [classes[int(i)] for i in output.argmax(dim=1)]
    probs = pd.DataFrame(output.numpy(), columns=[f"prob_{c}" for c in classes])
    return TablePrediction(ids, labels, id_name or ROW_COLUMN, target_name, probs)
