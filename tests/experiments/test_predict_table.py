"""Predict a CSV table with a tabular run or a k-fold ensemble: saved preprocessing in, target scale out."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import trainlab
from trainlab.experiments.kfold import run_kfold
from trainlab.inference.table import TablePrediction, to_target_scale
from trainlab.run import KFoldRun

from .conftest import tiny_config

COLORS = ["red", "green", "blue"]


def make_table(rows: int, seed: int, with_target: bool = True) -> pd.DataFrame:
    """Houses: two numbers and a colour; the price grows with size and depends on colour (always positive)."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"Id": np.arange(1000 + seed * 1000, 1000 + seed * 1000 + rows),
                          "size": rng.uniform(50, 250, rows), "rooms": rng.integers(1, 7, rows),
                          "color": rng.choice(COLORS, rows)})
    if with_target:
        bonus = frame["color"].map({"red": 1.2, "green": 1.0, "blue": 0.9})
        frame["price"] = (1000 * frame["size"] * bonus * rng.uniform(0.9, 1.1, rows)).round(0)
    return frame


CSV_DATA = {"data.name": "csv", "data.train": "train.csv", "data.target": "price", "data.id": "Id",
            "data.log_target": True, "data.center_target": True}


@pytest.fixture(scope="module")
def table_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("table")
    make_table(120, 0).to_csv(root / "train.csv", index=False)
    make_table(15, 1, with_target=False).to_csv(root / "test.csv", index=False)
    return root


@pytest.fixture(scope="module")
def table_run(table_dir: Path) -> trainlab.Run:
    cfg = tiny_config(table_dir / "runs", **CSV_DATA, **{"data.root": str(table_dir), "train.epochs": 3,
                                                        "train.batch_size": 32, "model.hidden": [16]})
    return trainlab.api.train_config(cfg)


@pytest.fixture(scope="module")
def kfold_run(table_dir: Path) -> KFoldRun:
    cfg = tiny_config(table_dir / "kfold", **CSV_DATA, **{"data.root": str(table_dir), "train.epochs": 2,
                                                         "train.batch_size": 32, "data.val_fraction": 0.0,
                                                         "model.hidden": [16], "train.name": "cv"})
    return run_kfold(cfg, 3).open()


def test_target_transform_is_undone() -> None:
    preprocess = {"target": {"log": True, "shift": 12.0}}
    values = np.array([-0.5, 0.0, 0.25])
    assert to_target_scale(values, preprocess) == pytest.approx(np.expm1(values + 12.0))
    assert to_target_scale(values, {"target": {"log": False, "shift": 2.0}}) == pytest.approx(values + 2.0)
    assert to_target_scale(values, {}) == pytest.approx(values)


def test_run_predicts_every_row_in_target_units(table_run: trainlab.Run, table_dir: Path) -> None:
    prediction = table_run.predict([table_dir / "test.csv"])
    assert isinstance(prediction, TablePrediction)
    test = pd.read_csv(table_dir / "test.csv")
    assert prediction.ids == test["Id"].tolist()
    assert (prediction.id_col, prediction.target_col) == ("Id", "price")
    values = np.asarray(prediction.values)
    assert len(values) == 15 and np.isfinite(values).all() and (values > 0).all()
    # undoing log1p and the centering puts predictions in the price range, not around 0 or 12
    assert 10_000 < np.median(values) < 1_000_000


def test_unseen_category_warns_and_still_predicts(table_run: trainlab.Run, table_dir: Path, caplog) -> None:
    frame = make_table(4, 2, with_target=False)
    frame.loc[0, "color"] = "purple"
    with caplog.at_level("WARNING", logger="trainlab"):
        prediction = table_run.predict_table(frame)
    assert [r.getMessage() for r in caplog.records] == [
        "column 'color': 1 value(s) not seen in training (purple) are encoded as <unknown>"]
    assert len(prediction) == 4 and all(v > 0 for v in prediction.values)


def test_missing_feature_column_fails_naming_it(table_run: trainlab.Run, table_dir: Path, run_cli) -> None:
    path = table_dir / "no_rooms.csv"
    make_table(5, 3, with_target=False).drop(columns=["rooms"]).to_csv(path, index=False)
    with pytest.raises(ValueError, match="rooms"):
        table_run.predict([path])
    code, _, err = run_cli("predict", table_run.path, path, "--out", table_dir / "never.csv")
    assert code == 2 and "error:" in err and "rooms" in err
    assert not (table_dir / "never.csv").exists()


def test_missing_id_column_fails_naming_it(table_run: trainlab.Run) -> None:
    with pytest.raises(ValueError, match="id column 'Id'"):
        table_run.predict_table(make_table(3, 4, with_target=False).drop(columns=["Id"]))


def test_one_csv_at_a_time(table_run: trainlab.Run, table_dir: Path) -> None:
    with pytest.raises(ValueError, match="one CSV file"):
        table_run.predict([table_dir / "test.csv", table_dir / "test.csv"])


def test_kfold_prediction_averages_the_fold_models(kfold_run: KFoldRun, table_dir: Path) -> None:
    ensemble = kfold_run.predict([table_dir / "test.csv"])
    folds = [fold.predict_table(table_dir / "test.csv") for fold in kfold_run.folds]
    assert len(folds) == 3
    shift = kfold_run.meta.preprocess["target"]["shift"]
    fold_logs = np.mean([np.log1p(f.values) - shift for f in folds], axis=0)
    assert np.log1p(ensemble.values) - shift == pytest.approx(fold_logs, abs=1e-4)
    assert not np.allclose(folds[0].values, folds[1].values)  # the folds really differ


def test_cli_writes_submission(kfold_run: KFoldRun, table_dir: Path, run_cli) -> None:
    out = table_dir / "sub" / "submission.csv"
    code, stdout, _ = run_cli("predict", kfold_run.path, table_dir / "test.csv", "--out", out)
    assert code == 0 and "wrote 15 rows (Id,price)" in stdout
    frame = pd.read_csv(out)
    assert frame.columns.tolist() == ["Id", "price"]
    assert frame["Id"].tolist() == pd.read_csv(table_dir / "test.csv")["Id"].tolist()
    assert not frame.isna().any().any() and (frame["price"] > 0).all()


def test_classification_table_predicts_labels(table_dir: Path) -> None:
    cfg = tiny_config(table_dir / "cls", **{"data.name": "csv", "data.root": str(table_dir),
                                            "data.train": "train.csv", "data.target": "color", "data.id": "Id",
                                            "model.hidden": [8]})
    run = trainlab.api.train_config(cfg)
    frame = make_table(6, 5).drop(columns=["color"])
    prediction = run.predict_table(frame)
    assert set(prediction.values) <= set(COLORS)
    probs = prediction.frame()[[f"prob_{c}" for c in sorted(COLORS)]]
    assert probs.sum(axis=1).to_numpy() == pytest.approx(np.ones(6), abs=1e-5)


def test_center_target_shifts_by_the_training_mean(table_dir: Path) -> None:
    from trainlab.data import build

    options = dict(root=str(table_dir), train="train.csv", target="price", id="Id", log_target=True)
    plain = build("csv", **options)
    centered = build("csv", center_target=True, **options)
    shift = centered.meta.preprocess["target"]["shift"]
    assert shift == pytest.approx(float(plain.train.tensors[1].double().mean()), abs=1e-4)
    assert centered.train.tensors[1].numpy() == pytest.approx(plain.train.tensors[1].numpy() - shift, abs=1e-4)
    assert centered.val.tensors[1].numpy() == pytest.approx(plain.val.tensors[1].numpy() - shift, abs=1e-4)
    with pytest.raises(ValueError, match="center_target"):
        build("csv", root=str(table_dir), train="train.csv", target="color", center_target=True)
