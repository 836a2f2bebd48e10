"""``trainlab kfold --workers N``: folds trained at once in worker processes give what sequential folds give."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from trainlab import config
from trainlab.experiments.kfold import run_kfold

QUIET = ["data.n=241", "callbacks.progress.style=none", "callbacks.plot_curves=null", "train.threads=1"]


def _kfold(out: Path, workers: int) -> Path:
    cfg = config.load(None, flags={"model": "mlp", "data": "moons", "epochs": 2, "batch_size": 32, "seed": 5,
                                   "name": "kf", "out": str(out)}, overrides=QUIET)
    seen: list[int] = []
    result = run_kfold(cfg, 3, on_fold=lambda fold, row: seen.append(fold), workers=workers)
    assert seen == [1, 2, 3]  # rows arrive in fold order, whoever finished first
    return result.path


@pytest.mark.slow  # two k-fold runs of 3 folds, one of them in 2 spawned processes (each imports torch)
def test_parallel_folds_equal_sequential_folds(tmp_path: Path) -> None:
    sequential, parallel = _kfold(tmp_path / "seq", 1), _kfold(tmp_path / "par", 2)
    drop = ["train_seconds"]
    pd.testing.assert_frame_equal(pd.read_csv(parallel / "folds.csv").drop(columns=drop),
                                  pd.read_csv(sequential / "folds.csv").drop(columns=drop), check_exact=True)
    pd.testing.assert_frame_equal(pd.read_csv(parallel / "oof.csv"), pd.read_csv(sequential / "oof.csv"),
                                  check_exact=True)
    assert sorted(p.name for p in parallel.iterdir()) == sorted(p.name for p in sequential.iterdir())


@pytest.mark.parametrize("args, message", [
    (["--workers", "0"], "error: --workers must be at least 1 (folds trained at once), got 0"),
    (["--workers", "2", "--resume", "runs/x"], "error: --workers applies to a new k-fold run"),
])
def test_kfold_workers_bad_input(run_cli, tmp_path: Path, args: list[str], message: str) -> None:
    code, _, err = run_cli("kfold", *args, "--model", "mlp", "--epochs", "1", "--out", tmp_path / "runs")
    assert code == 2
    assert message in err
    assert err.count("error:") == 1
    assert not (tmp_path / "runs").exists()
