"""CSV tables: preprocessing fitted on the training rows only, saved with the run, re-applied at predict time.

Numeric columns: optional ``log1p`` when skewed, standardized with the training mean and std, missing values
filled with 0 (the training mean).  Other columns (strings, booleans, pandas ``category``/``str`` dtypes):
one-hot over the training categories plus a ``<missing>`` and an ``<unknown>`` column; categories never seen in
training go to ``<unknown>`` with a warning.  Everything predict needs lives in ``meta.preprocess``
(``kind: table``), and :func:`transform_table` applies it to any data frame.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch
from torch.utils.data import TensorDataset

from trainlab.data.bundle import DataBundle, DataMeta, stratified_split
from trainlab.data.preprocess import table_preprocess
from trainlab.registry import DATASETS

MISSING, UNKNOWN = "<missing>", "<unknown>"


def _is_numeric(series: pd.Series) -> bool:
    """Numbers but not booleans; works for numpy, nullable and pandas-3 string dtypes alike."""
    return pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)


def _as_text(series: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(string values, missing mask) of a column, whatever its dtype."""
    missing = series.isna().to_numpy()
    values = np.array([str(v) for v in series.to_numpy(dtype=object)], dtype=object)
    return values, missing


def _text_in_numbers(series: pd.Series) -> pd.Series:
    """Mask of present values that are not numbers (blank cells and NA markers count as missing, not text)."""
    numbers = pd.to_numeric(series, errors="coerce")
    return series.notna() & numbers.isna() & (series.astype(str).str.strip() != "")


def _text_error(series: pd.Series, bad: pd.Series, where: str, why: str) -> ValueError:
    """Name the column, the file's line numbers (header = line 1) and the offending values."""
    lines = [str(int(i) + 2) if isinstance(i, (int, np.integer)) else str(i) for i in series.index[bad][:5]]
    values = ", ".join(repr(v) for v in series[bad].head(5))
    more = " ..." if int(bad.sum()) > 5 else ""
    return ValueError(f"csv: column '{series.name}' {why} but has text at line(s) {', '.join(lines)}{more} of {where} "
                      f"({values}{more}); fix or blank those cells (blank and NA mean missing), or leave the column "
                      "out with data.drop")


def fit_table(df: pd.DataFrame, features: list[str], skew_threshold: float | None, source: str = "the table") -> dict[str, Any]:
    """Learn the per-column preprocessing from training rows ``df``.

    A column whose values are numbers except a few stray words (≤ 5 %) is a data error, not a category column:
    it is refused, naming the lines, rather than silently one-hot encoded.
    """
    numeric, categorical, names = [], [], []
    for column in features:
        series = df[column]
        bad = _text_in_numbers(series) if not _is_numeric(series) else None
        if bad is not None and 0 < bad.sum() <= 0.05 * series.notna().sum():
            raise _text_error(series, bad, source, "holds numbers")
        if _is_numeric(series):
            values = series.astype("float64")
            skew = values.skew()
            log = bool(skew_threshold is not None and values.min() >= 0 and abs(skew) > skew_threshold)
            values = np.log1p(values) if log else values
            mean, std = float(values.mean()) if values.notna().any() else 0.0, float(values.std(ddof=0) or 0.0)
            numeric.append({"name": column, "log": log, "mean": mean, "std": std if std > 0 and np.isfinite(std) else 1.0})
            names.append(column)
        else:
            text, missing = _as_text(series)
            categories = sorted(set(text[~missing].tolist()))
            categorical.append({"name": column, "categories": categories})
            names += [f"{column}={c}" for c in categories] + [f"{column}={MISSING}", f"{column}={UNKNOWN}"]
    return {"numeric": numeric, "categorical": categorical, "features": names}


def transform_table(df: pd.DataFrame, preprocess: dict[str, Any], source: str = "the table") -> torch.Tensor:
    """Apply the saved table preprocessing to ``df``: a float32 ``(rows, features)`` tensor for the model.

    Raises ``ValueError`` naming every column the frame lacks and any text in a numeric column; warns about
    categories not seen in training.
    """
    needed = [c["name"] for c in preprocess["numeric"]] + [c["name"] for c in preprocess["categorical"]]
    absent = [c for c in needed if c not in df.columns]
    if absent:
        raise ValueError(f"{source} lacks column(s) used in training: {', '.join(absent)}")
    blocks = []
    for info in preprocess["numeric"]:
        bad = _text_in_numbers(df[info["name"]])
        if bad.any():
            raise _text_error(df[info["name"]], bad, source, "was numeric in training")
        values = pd.to_numeric(df[info["name"]], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        if info["log"]:
            values = np.log1p(np.clip(values, 0, None))
        blocks.append(np.nan_to_num((values - info["mean"]) / info["std"], nan=0.0)[:, None])
    for info in preprocess["categorical"]:
        blocks.append(_one_hot(df[info["name"]], info))
    matrix = np.concatenate(blocks, axis=1) if blocks else np.zeros((len(df), 0))
    return torch.tensor(matrix, dtype=torch.float32)


def _one_hot(series: pd.Series, info: dict[str, Any]) -> np.ndarray:
    categories = info["categories"]
    index = {c: i for i, c in enumerate(categories)}
    text, missing = _as_text(series)
    slots = np.array([index.get(v, len(categories) + 1) for v in text], dtype=np.int64)
    slots[missing] = len(categories)
    unseen = sorted(set(text[(slots == len(categories) + 1) & ~missing].tolist()))
    if unseen:
        shown = ", ".join(unseen[:5]) + (" ..." if len(unseen) > 5 else "")
        warnings.warn(f"column '{info['name']}': {len(unseen)} value(s) not seen in training ({shown}) "
                      f"are encoded as {UNKNOWN}", UserWarning, stacklevel=3)
    out = np.zeros((len(series), len(categories) + 2))
    out[np.arange(len(series)), slots] = 1.0
    return out


def _read(path: str | None, root: str | None, what: str) -> pd.DataFrame | None:
    if path is None:
        return None
    full = Path(root, path) if root else Path(path)
    if not full.expanduser().is_file():
        raise FileNotFoundError(f"csv: {what} file not found: {full} (set data.{what}=PATH, relative to data.root)")
    return pd.read_csv(full.expanduser())


def _target(df: pd.DataFrame, target: str, task: str, log_target: bool,
            classes: list[str] | None) -> tuple[pd.DataFrame, np.ndarray]:
    """Rows with a target and the encoded target (class index or float)."""
    keep = df[target].notna().to_numpy()
    if not keep.all():
        warnings.warn(f"csv: dropping {int((~keep).sum())} row(s) without a '{target}' value", UserWarning, stacklevel=3)
    df = df[keep]
    if task == "classification":
        text, _ = _as_text(df[target])
        lookup = {c: i for i, c in enumerate(classes or [])}
        unknown = sorted(set(text.tolist()) - set(lookup))
        if unknown:
            raise ValueError(f"csv: target classes {unknown[:5]} are not in the training data's classes")
        return df, np.array([lookup[v] for v in text], dtype=np.int64)
    y = pd.to_numeric(df[target], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    if np.isnan(y).any():
        raise ValueError(f"csv: target column '{target}' has non-numeric values; set data.task=classification")
    if log_target:
        if (y <= -1).any():
            raise ValueError(f"csv: data.log_target=true needs '{target}' > -1 (log1p), found {y.min()}")
        y = np.log1p(y)
    return df, y


@DATASETS.register("csv", description="a CSV table: data.train=FILE, data.target=COLUMN, optional data.test=FILE, data.id=COLUMN")
def csv(*, seed: int = 0, val_fraction: float = 0.1, train: str | None = None, test: str | None = None,
        target: str | None = None, id: str | None = None, root: str | None = None,
        task: Literal["auto", "classification", "regression"] = "auto", log_target: bool = False,
        skew_threshold: float | None = None, drop: list[str] | None = None, center_target: bool = False) -> DataBundle:
    """Tabular data from CSV; preprocessing is fitted on the training rows (after the validation split).

    ``center_target`` subtracts the training rows' mean target (after ``log_target``) so a freshly initialised
    network starts near the answer; a shift leaves RMSE unchanged, and predict adds it back.
    """
    frame = _read(train, root, "train")
    if frame is None or target is None:
        raise ValueError("csv needs data.train=FILE and data.target=COLUMN, e.g. "
                         "--set data.train=train.csv --set data.target=SalePrice")
    for role, column in (("target", target), ("id", id), *(("drop", c) for c in drop or [])):
        if column is not None and column not in frame.columns:
            raise ValueError(f"csv: data.{role} column '{column}' is not in {train}; columns: {', '.join(map(str, frame.columns))}")
    if task == "auto":
        task = "regression" if _is_numeric(frame[target]) else "classification"
    classes = sorted(set(_as_text(frame[target].dropna())[0].tolist())) if task == "classification" else None
    frame, y = _target(frame, target, task, log_target, classes)
    features = [c for c in frame.columns if c not in {target, id, *(drop or [])}]
    if not features:
        raise ValueError(f"csv: no feature columns left in {train} after removing target/id/drop columns")
    keep, held = (stratified_split(y, val_fraction, seed, stratify=task == "classification")
                  if val_fraction > 0 else (np.arange(len(y)), np.array([], dtype=int)))
    target_info: dict[str, Any] = {"name": target, "log": log_target, "task": task}
    if center_target:
        if task != "regression":
            raise ValueError("csv: data.center_target=true is for regression targets; remove it for classification")
        target_info["shift"] = float(y[keep].mean())
        y = y - target_info["shift"]
    preprocess = table_preprocess(id=id, target=target_info,
                                  **fit_table(frame.iloc[keep], features, skew_threshold, source=str(train)))
    x = transform_table(frame, preprocess, source=str(train))
    yt = torch.tensor(y, dtype=torch.long if task == "classification" else torch.float32)
    val = TensorDataset(x[held], yt[held]) if len(held) else None
    test_set = _test_split(_read(test, root, "test"), target, task, log_target, classes, preprocess, str(test))
    meta = DataMeta(task=task, input_shape=(x.shape[1],), num_classes=len(classes) if classes else None,  # type: ignore[arg-type]
                    classes=classes, preprocess=preprocess)
    return DataBundle(train=TensorDataset(x[keep], yt[keep]), val=val, test=test_set, meta=meta)


def _test_split(frame: pd.DataFrame | None, target: str, task: str, log_target: bool, classes: list[str] | None,
                preprocess: dict[str, Any], source: str) -> TensorDataset | None:
    """A labelled test split when the test file has the target; a Kaggle-style unlabelled file is for predict."""
    if frame is None or target not in frame.columns:
        return None
    frame, y = _target(frame, target, task, log_target, classes)
    y = y - preprocess["target"].get("shift", 0.0) if task == "regression" else y
    return TensorDataset(transform_table(frame, preprocess, source=f"test file {source}"),
                         torch.tensor(y, dtype=torch.long if task == "classification" else torch.float32))
