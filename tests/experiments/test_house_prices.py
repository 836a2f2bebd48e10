"""Kaggle House Prices end to end on the shared data: k-fold with configs/house-prices.yaml, then a submission.

Few epochs and 2 folds keep it fast; the full recipe's score is measured by bench/house_prices.py.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from trainlab import config as config_mod
from trainlab.run import KFoldRun

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "house-prices.yaml"


def test_config_is_a_log_target_regression_on_the_shared_csv() -> None:
    cfg = config_mod.load(CONFIG)
    data = cfg.data.options()
    assert cfg.data.name == "csv" and "root" not in data  # the user passes --set data.root=DIR
    assert (data["train"], data["test"], data["target"], data["id"]) == ("train.csv", "test.csv", "SalePrice", "Id")
    assert data["log_target"] is True  # val_rmse is then the RMSE of log prices: the Kaggle metric


def test_kfold_then_submission(shared_data: Path, run_cli, tmp_path: Path) -> None:
    root = shared_data / "house-prices"
    if not (root / "train.csv").is_file():
        pytest.skip(f"house-prices data not found at {root}")
    code, _, _ = run_cli("kfold", "-c", CONFIG, "--folds", "2", "--epochs", "2", "--out", tmp_path, "--name", "hp",
                         "--set", f"data.root={root}")
    assert code == 0
    kfold_dir = tmp_path / "hp"
    run = KFoldRun(kfold_dir)
    assert len(run.folds) == 2 and run.summary["status"] == "completed"
    assert np.isfinite(run.summary["mean"]["val_rmse"])
    test_csv = root / "test.csv"
    out = tmp_path / "submission.csv"
    code, stdout, _ = run_cli("predict", kfold_dir, test_csv, "--out", out)
    assert code == 0 and "1459 rows" in stdout
    submission = pd.read_csv(out)
    assert submission.columns.tolist() == ["Id", "SalePrice"]
    assert len(submission) == 1459
    assert submission["Id"].tolist() == pd.read_csv(test_csv)["Id"].tolist()
    assert not submission.isna().any().any()
    assert (submission["SalePrice"] > 0).all()
    # dollars, not log units: even two epochs land in the range of real sale prices
    assert 50_000 < submission["SalePrice"].median() < 500_000
