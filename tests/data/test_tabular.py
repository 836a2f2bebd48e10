"""CSV tables: preprocessing fitted on training rows, saved in meta, re-applied by transform_table."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from trainlab.data import build, transform_table


def _frame(n: int = 40) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame({
        "Id": np.arange(n),
        "area": rng.exponential(100.0, n).round(1),
        "rooms": rng.integers(1, 6, n),
        "color": pd.Series(rng.choice(["red", "blue", None], n), dtype="str"),
        "garage": rng.choice([True, False], n),
        "price": rng.normal(200.0, 30.0, n).round(2),
    })


@pytest.fixture
def table_dir(tmp_path: Path) -> Path:
    frame = _frame()
    frame.loc[3, "area"] = np.nan
    frame.to_csv(tmp_path / "train.csv", index=False)
    test = _frame(10).drop(columns="price")
    test.loc[0, "color"] = "purple"
    test.to_csv(tmp_path / "test.csv", index=False)
    return tmp_path


def test_csv_features_and_json_safe_meta(table_dir: Path) -> None:
    bundle = build("csv", root=str(table_dir), train="train.csv", test="test.csv", target="price", id="Id",
                   val_fraction=0.25)
    pre = bundle.meta.preprocess
    assert bundle.meta.task == "regression" and bundle.test is None  # Kaggle-style test has no target
    assert [c["name"] for c in pre["numeric"]] == ["area", "rooms"]
    assert [c["name"] for c in pre["categorical"]] == ["color", "garage"]
    assert pre["categorical"][0]["categories"] == ["blue", "red"]
    assert "color=<missing>" in pre["features"] and "color=<unknown>" in pre["features"]
    assert bundle.meta.input_shape == (len(pre["features"]),) and bundle.meta.input_size is None
    x, _ = bundle.train.tensors
    assert not torch.isnan(x).any()
    area = x[:, pre["features"].index("area")]
    assert abs(float(area.mean())) < 1e-5  # standardized with the training rows' statistics
    assert len(bundle.train) == 30 and len(bundle.val) == 10
    json.dumps(bundle.meta.to_dict())


def test_preprocessing_is_fitted_on_training_rows_only(table_dir: Path) -> None:
    bundle = build("csv", root=str(table_dir), train="train.csv", target="price", val_fraction=0.25)
    frame = pd.read_csv(table_dir / "train.csv")
    full_mean = frame["rooms"].mean()
    stored = next(c for c in bundle.meta.preprocess["numeric"] if c["name"] == "rooms")["mean"]
    assert stored != pytest.approx(full_mean)


def test_transform_table_unknown_category_and_missing_column(table_dir: Path, caplog) -> None:
    bundle = build("csv", root=str(table_dir), train="train.csv", target="price", id="Id")
    pre = bundle.meta.preprocess
    test = pd.read_csv(table_dir / "test.csv")
    with caplog.at_level("WARNING", logger="trainlab"):
        x = transform_table(test, pre)
    assert "column 'color': 1 value(s) not seen in training (purple) are encoded as <unknown>" in caplog.text
    assert x.shape == (10, len(pre["features"]))
    assert x[0, pre["features"].index("color=<unknown>")] == 1.0
    with pytest.raises(ValueError, match="area, color"):
        transform_table(test.drop(columns=["area", "color"]), pre)


def test_log_target_and_skewed_columns(table_dir: Path) -> None:
    bundle = build("csv", root=str(table_dir), train="train.csv", target="price", log_target=True,
                   skew_threshold=0.5, val_fraction=0.0)
    frame = pd.read_csv(table_dir / "train.csv")
    assert torch.allclose(bundle.train.tensors[1], torch.tensor(np.log1p(frame["price"].to_numpy()), dtype=torch.float32))
    area = next(c for c in bundle.meta.preprocess["numeric"] if c["name"] == "area")
    assert area["log"] is True  # exponential: skewed
    assert bundle.meta.preprocess["target"] == {"name": "price", "log": True, "task": "regression"}


def test_classification_target_with_labelled_test(tmp_path: Path) -> None:
    frame = _frame(30).assign(kind=lambda f: np.where(f["price"] > 200, "dear", "cheap"))
    frame.to_csv(tmp_path / "train.csv", index=False)
    frame.iloc[:8].to_csv(tmp_path / "test.csv", index=False)
    bundle = build("csv", root=str(tmp_path), train="train.csv", test="test.csv", target="kind", drop=["price"])
    assert bundle.meta.task == "classification" and bundle.meta.classes == ["cheap", "dear"]
    assert len(bundle.test) == 8 and bundle.test.tensors[1].dtype == torch.long
    assert "price" not in bundle.meta.preprocess["features"]


@pytest.mark.parametrize("options, message", [
    ({"target": "price"}, "data.train"),
    ({"train": "nope.csv", "target": "price"}, "not found"),
    ({"train": "train.csv", "target": "Price"}, "columns: Id"),
])
def test_csv_errors(table_dir: Path, options: dict, message: str) -> None:
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        build("csv", root=str(table_dir), **options)


def test_pandas_string_dtypes_are_categorical() -> None:
    frame = pd.DataFrame({"s": pd.Series(["a", "b", None], dtype="string"), "c": pd.Categorical(["x", "y", "x"]),
                          "n": pd.array([1, None, 3], dtype="Int64")})
    from trainlab.data.tabular import fit_table

    pre = fit_table(frame, ["s", "c", "n"], None)
    assert [c["name"] for c in pre["numeric"]] == ["n"]
    x = transform_table(frame, pre)
    assert x.shape == (3, 1 + 4 + 4) and not torch.isnan(x).any()


def test_house_prices(shared_data: Path) -> None:
    root = shared_data / "house-prices"
    bundle = build("csv", root=str(root), train="train.csv", target="SalePrice", id="Id", log_target=True)
    assert len(bundle.train) + len(bundle.val) == 1460
    test = pd.read_csv(root / "test.csv")
    x = transform_table(test, bundle.meta.preprocess)
    assert x.shape == (1459, bundle.meta.input_shape[0]) and not torch.isnan(x).any()
    assert math.isclose(float(bundle.train.tensors[1].mean()), 12.02, abs_tol=0.05)
