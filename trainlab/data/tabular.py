"""CSV tables: preprocessing fitted on the training rows only, saved with the run, re-applied at predict time.

Numeric columns: optional ``log1p`` when skewed, standardized with the training mean and std, missing values
filled with 0 (the training mean).  Other columns (strings, booleans, pandas ``category``/``str`` dtypes):
one-hot over the training categories plus a ``<missing>`` and an ``<unknown>`` column; categories never seen in
training go to ``<unknown>`` with a warning.  Everything predict needs lives in ``meta.preprocess``
(``kind: table``), and :func:`transform_table` applies it to any data frame.
"""

from __future__ import annotations

import gzip
import logging
import lzma
import zipfile
import zlib
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch
from torch.utils.data import TensorDataset

from trainlab.data.bundle import DataBundle, DataMeta, stratified_split
from trainlab.data.checks import check_dataset
from trainlab.data.preprocess import table_preprocess
from trainlab.data.whiten import Whitening, check_whiten, fit_whitening, moments
from trainlab.registry import DATASETS

logger = logging.getLogger(__name__)

MISSING, UNKNOWN = "<missing>", "<unknown>"
FLOAT32_MAX = float(np.finfo(np.float32).max)  # the model computes in float32: larger magnitudes become inf
MAX_CELLS = 2 ** 30  # encoded table cells (rows x features) beyond which the in-memory matrix cannot be built
WIDE_CATEGORIES = 50  # a text column with more distinct values than this, nearly one per row, looks like an id
CORRUPT_FILE_ERRORS = (EOFError, zlib.error, lzma.LZMAError, zipfile.BadZipFile, gzip.BadGzipFile)
FEATURE_FIX = ("replace them with real values or blank those cells (blank means missing), or leave the column out "
               "with data.drop")
TARGET_FIX = "fix those values, or blank them to drop those rows"


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


def _cell_error(series: pd.Series, bad: pd.Series | np.ndarray, where: str, problem: str, fix: str) -> ValueError:
    """Name the column, the file's line numbers (header = line 1) and the first offending values."""
    bad = np.asarray(bad, dtype=bool)
    lines = [str(int(i) + 2) if isinstance(i, (int, np.integer)) else str(i) for i in series.index[bad][:5]]
    values = ", ".join(repr(v) for v in series[bad].head(5))
    more = " ..." if int(bad.sum()) > 5 else ""
    return ValueError(f"csv: column '{series.name}' {problem} at line(s) {', '.join(lines)}{more} of {where} "
                      f"({values}{more}); {fix}")


def _text_error(series: pd.Series, bad: pd.Series, where: str, why: str) -> ValueError:
    return _cell_error(series, bad, where, f"{why} but has text", "fix or blank those cells (blank and NA mean "
                       "missing), or leave the column out with data.drop")


def _finite_numbers(series: pd.Series, where: str, fix: str = FEATURE_FIX) -> np.ndarray:
    """The column as float64 (blank = NaN), refusing ``inf``, ``-inf`` and magnitudes beyond float32, which would
    otherwise train to a NaN loss (in a feature) or be blamed on the learning rate (in the target)."""
    values = pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    bad = np.isinf(values) | (np.abs(np.nan_to_num(values)) > FLOAT32_MAX)
    if bad.any():
        raise _cell_error(series, bad, where, f"has infinite values or values beyond float32 (|x| > {FLOAT32_MAX:.3g})",
                          fix)
    return values


def _standardized(series: pd.Series, info: dict[str, Any], where: str) -> np.ndarray:
    """One numeric column as the model sees it (log1p, then the training mean and std), refusing values that only
    overflow there: finite in the file, but too far from the training rows to fit in float32 once standardized."""
    values = _finite_numbers(series, where)
    if info["log"]:
        values = np.log1p(np.clip(values, 0, None))
    with np.errstate(over="ignore"):
        scaled = (values - info["mean"]) / info["std"]
    over = np.abs(np.nan_to_num(scaled)) > FLOAT32_MAX
    if over.any():
        raise _cell_error(series, over, where, f"is beyond float32 after standardizing with the training rows' "
                          f"mean {info['mean']:.4g} and std {info['std']:.4g}", FEATURE_FIX)
    return np.nan_to_num(scaled, nan=0.0)


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
            values = pd.Series(_finite_numbers(series, source), index=series.index)
            skew = values.skew()
            log = bool(skew_threshold is not None and values.min() >= 0 and abs(skew) > skew_threshold)
            values = np.log1p(values) if log else values
            mean, std = float(values.mean()) if values.notna().any() else 0.0, float(values.std(ddof=0) or 0.0)
            numeric.append({"name": column, "log": log, "mean": mean, "std": std if std > 0 and np.isfinite(std) else 1.0})
            names.append(column)
        else:
            text, missing = _as_text(series)
            categories = sorted(set(text[~missing].tolist()))
            if len(categories) > max(WIDE_CATEGORIES, 0.5 * (~missing).sum()):
                logger.warning("csv: column '%s' of %s has %d distinct values in %d rows: one-hot encoding it gives "
                               "the model a feature per value that tells nothing about new rows; if it names or "
                               "numbers the rows, leave it out with data.drop (or make it data.id)",
                               column, source, len(categories), int((~missing).sum()))
            categorical.append({"name": column, "categories": categories})
            names += [f"{column}={c}" for c in categories] + [f"{column}={MISSING}", f"{column}={UNKNOWN}"]
    return {"numeric": numeric, "categorical": categorical, "features": names}


def transform_table(df: pd.DataFrame, preprocess: dict[str, Any], source: str = "the table") -> torch.Tensor:
    """Apply the saved table preprocessing to ``df``: a float32 ``(rows, features)`` tensor for the model.

    Whitening (``data.whiten``), when the record has it, comes last.  Raises ``ValueError`` naming every column the
    frame lacks, and the lines of text, infinite or overflowing values in a numeric column; warns about categories
    not seen in training.
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
        blocks.append(_standardized(df[info["name"]], info, source)[:, None])
    for info in preprocess["categorical"]:
        blocks.append(_one_hot(df[info["name"]], info))
    matrix = np.concatenate(blocks, axis=1) if blocks else np.zeros((len(df), 0))
    x = torch.tensor(matrix, dtype=torch.float32)
    return Whitening(preprocess["whiten"])(x) if preprocess.get("whiten") else x


def _one_hot(series: pd.Series, info: dict[str, Any]) -> np.ndarray:
    categories = info["categories"]
    index = {c: i for i, c in enumerate(categories)}
    text, missing = _as_text(series)
    slots = np.array([index.get(v, len(categories) + 1) for v in text], dtype=np.int64)
    slots[missing] = len(categories)
    unseen = sorted(set(text[(slots == len(categories) + 1) & ~missing].tolist()))
    if unseen:
        shown = ", ".join(unseen[:5]) + (" ..." if len(unseen) > 5 else "")
        logger.warning(f"column '{info['name']}': {len(unseen)} value(s) not seen in training ({shown}) "
                       f"are encoded as {UNKNOWN}")
    out = np.zeros((len(series), len(categories) + 2))
    out[np.arange(len(series)), slots] = 1.0
    return out


def _read(path: str | None, root: str | None, what: str) -> pd.DataFrame | None:
    if path is None:
        return None
    full = Path(root, path) if root else Path(path)
    if not full.expanduser().is_file():
        raise FileNotFoundError(_not_found(path, root, what))
    return read_csv_file(full.expanduser())


def _not_found(path: str, root: str | None, what: str) -> str:
    """Where the missing table was looked for, and the exact ``--set`` that points trainlab at it."""
    fix = f"pass --set data.root=DIR for the folder that holds {path}"
    if root is None:
        if Path(path).expanduser().is_absolute():
            return f"csv: {what} file not found: {path} (set data.{what}=FILE)"
        return (f"csv: {what} file not found: {path} in the working directory {Path.cwd()} (data.root is not set); "
                f"{fix}, or set data.{what} to the file's full path")
    folder = Path(root).expanduser()
    if not folder.is_dir():
        state = "is a file, not a folder" if folder.exists() else "does not exist"
        return f"csv: data.root {root} {state}; {fix}"
    return f"csv: {what} file not found: {Path(root, path)} (data.{what} is relative to data.root); {fix}"


def read_csv_file(path: Path) -> pd.DataFrame:
    """A CSV file (UTF-8, optionally compressed) with a unique header and at least one data row.

    Every way a user's file can fail to parse becomes one ``ValueError`` naming the file and the fix, instead of a
    bare ``UnicodeDecodeError``/``EOFError`` from the parser; duplicate header names are refused because pandas
    would silently rename the copies (``LotArea.1``), which then no file to predict has.
    """
    try:
        header = pd.read_csv(path, header=None, nrows=1, dtype=str, keep_default_na=False).iloc[0].tolist()
        frame = pd.read_csv(path)
    except UnicodeDecodeError as err:
        line = _first_non_utf8_line(path)
        at = f" (line {line}: byte {err.object[err.start:err.start + 1]!r})" if line else ""
        raise ValueError(f"csv: {path} is not UTF-8 text{at}; save it as UTF-8 (a spreadsheet's 'CSV UTF-8' "
                         "format, or `iconv -f latin1 -t utf-8 FILE > NEW`)") from None
    except pd.errors.EmptyDataError:
        raise ValueError(f"csv: {path} is empty; expected a header line of column names, then data rows") from None
    except pd.errors.ParserError as err:
        raise ValueError(f"csv: {path} is not a readable CSV table ({err}); check that line's quotes and "
                         "commas") from None
    except CORRUPT_FILE_ERRORS as err:
        raise ValueError(f"csv: {path} is truncated or corrupt ({type(err).__name__}: {err}); check the copy, "
                         "or copy or decompress it again") from None
    except OSError as err:
        raise ValueError(f"csv: cannot read {path} ({err.strerror or err})") from None
    names = [str(name) for name in header if str(name) != ""]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValueError(f"csv: {path} names column(s) {', '.join(map(repr, duplicates))} more than once in its "
                         f"header (line 1); pandas would rename the copies (e.g. '{duplicates[0]}.1') and no file to "
                         "predict would have them; rename or remove the duplicates")
    if frame.empty:
        raise ValueError(f"csv: {path} has a header but no data rows")
    return frame


def _first_non_utf8_line(path: Path) -> int | None:
    """The 1-based line of the first byte sequence that is not UTF-8 (plain or ``.gz`` files), if it can be found."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            for number, line in enumerate(handle, start=1):
                try:
                    line.decode("utf-8")
                except UnicodeDecodeError:
                    return number
    except (OSError, *CORRUPT_FILE_ERRORS):
        return None
    return None


def _separator_hint(frame: pd.DataFrame) -> str:
    """A hint when a whole header landed in one column: the file uses another separator than the comma."""
    if len(frame.columns) == 1:
        for separator, name in ((";", "';'"), ("\t", "tabs"), ("|", "'|'")):
            if separator in str(frame.columns[0]):
                return f" (the header is one column: the file seems separated by {name}; save it comma-separated)"
    return ""


def _target(df: pd.DataFrame, target: str, task: str, log_target: bool,
            classes: list[str] | None, source: str) -> tuple[pd.DataFrame, np.ndarray]:
    """Rows with a target and the encoded target (class index or float, finite)."""
    keep = df[target].notna().to_numpy()
    if not keep.all():
        logger.warning(f"csv: dropping {int((~keep).sum())} row(s) without a '{target}' value")
    df = df[keep]
    if task == "classification":
        text, _ = _as_text(df[target])
        lookup = {c: i for i, c in enumerate(classes or [])}
        unknown = sorted(set(text.tolist()) - set(lookup))
        if unknown:
            raise ValueError(f"csv: target classes {unknown[:5]} of {source} are not in the training data's classes "
                             f"{(classes or [])[:10]}")
        return df, np.array([lookup[v] for v in text], dtype=np.int64)
    bad = _text_in_numbers(df[target])
    if bad.any():
        raise _cell_error(df[target], bad, source, "is a regression target but has text",
                          "fix those cells, or set data.task=classification")
    y = _finite_numbers(df[target], source, TARGET_FIX)
    if log_target:
        if (y <= -1).any():
            raise ValueError(f"csv: data.log_target=true needs '{target}' > -1 (log1p), found {y.min()}")
        y = np.log1p(y)
    return df, y


def _require_columns(frame: pd.DataFrame, source: str, target: str, id: str | None, drop: list[str] | None) -> None:
    """Every column the options name exists, and the target has at least one value."""
    for role, column in (("target", target), ("id", id), *(("drop", c) for c in drop or [])):
        if column is not None and column not in frame.columns:
            raise ValueError(f"csv: data.{role} column '{column}' is not in {source}; columns: "
                             f"{', '.join(map(str, frame.columns))}{_separator_hint(frame)}")
    if frame[target].isna().all():
        raise ValueError(f"csv: the target column '{target}' of {source} has no values (all {len(frame)} rows are "
                         "blank); fill it in, or name the right column with data.target")


def _check_width(preprocess: dict[str, Any], rows: int, source: str) -> None:
    """Refuse an encoding too wide to hold in memory (text columns with a value per row, thousands of columns)."""
    cells = rows * len(preprocess["features"])
    if cells > MAX_CELLS:
        widest = sorted(preprocess["categorical"], key=lambda c: -len(c["categories"]))[:3]
        named = ", ".join(f"'{c['name']}' ({len(c['categories'])} values)" for c in widest)
        raise ValueError(f"csv: {source} would encode to {rows} rows x {len(preprocess['features'])} features "
                         f"({cells:.3g} cells, more than {MAX_CELLS:.3g}); "
                         + (f"the widest one-hot columns are {named}: leave such id or free-text columns out with "
                            "data.drop" if widest else "leave columns out with data.drop"))


@DATASETS.register("csv", description="a CSV table: data.train=FILE, data.target=COLUMN, optional data.test=FILE, data.id=COLUMN")
def csv(*, seed: int = 0, val_fraction: float = 0.1, train: str | None = None, test: str | None = None,
        target: str | None = None, id: str | None = None, root: str | None = None,
        task: Literal["auto", "classification", "regression"] = "auto", log_target: bool = False,
        skew_threshold: float | None = None, drop: list[str] | None = None, center_target: bool = False,
        whiten: Literal["pca", "zca"] | None = None, whiten_eps: float | None = None) -> DataBundle:
    """Tabular data from CSV; preprocessing is fitted on the training rows (after the validation split).

    ``whiten`` (pca or zca, :mod:`trainlab.data.whiten`) decorrelates the encoded features, fitted on the training
    rows only and saved in the record, so :func:`transform_table` applies it to validation, test and predict rows.

    ``center_target`` subtracts the training rows' mean target (after ``log_target``) so a freshly initialised
    network starts near the answer; a shift leaves RMSE unchanged, and predict adds it back.
    """
    frame = _read(train, root, "train")
    if frame is None or target is None:
        raise ValueError("csv needs data.train=FILE and data.target=COLUMN, e.g. "
                         "--set data.train=train.csv --set data.target=SalePrice")
    _require_columns(frame, str(train), target, id, drop)
    if task == "auto":
        task = "regression" if _is_numeric(frame[target]) else "classification"
    classes = sorted(set(_as_text(frame[target].dropna())[0].tolist())) if task == "classification" else None
    frame, y = _target(frame, target, task, log_target, classes, str(train))
    features = [c for c in frame.columns if c not in {target, id, *(drop or [])}]
    if not features:
        raise ValueError(f"csv: no feature columns left in {train} after removing target/id/drop columns")
    check_dataset(y, task=task, classes=classes, val_fraction=val_fraction, where=f"csv: {train}",
                  classes_from=f"values of the target column '{target}'")
    for column in features:
        if _is_numeric(frame[column]):
            _finite_numbers(frame[column], str(train))  # every row, in file order, before the split
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
    _check_width(preprocess, len(frame), str(train))
    eps = check_whiten(whiten, whiten_eps, len(preprocess["features"]), f"the table {train}")
    x = transform_table(frame, preprocess, source=str(train))
    if whiten is not None:
        preprocess["whiten"] = fit_whitening(whiten, *moments([x[keep]]), eps)
        x = Whitening(preprocess["whiten"])(x)
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
    if frame[target].isna().all():
        logger.info("csv: the test file %s has a '%s' column without values: it is treated as unlabelled "
                    "(no test metrics)", source, target)
        return None
    frame, y = _target(frame, target, task, log_target, classes, f"test file {source}")
    y = y - preprocess["target"].get("shift", 0.0) if task == "regression" else y
    return TensorDataset(transform_table(frame, preprocess, source=f"test file {source}"),
                         torch.tensor(y, dtype=torch.long if task == "classification" else torch.float32))
