"""``train.test_each_epoch``: per-epoch test metrics in metrics.csv and the curves, recorded and never used to
select anything (early stopping, the best checkpoint, the LR plateau, the search objective)."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pytest

from trainlab import config as config_mod
from trainlab.api import train_config
from trainlab.engine import checkpoint
from trainlab.report import plots
from trainlab.training.summary import best_metrics

BASE = {"data.name": "circles", "data.n": 200, "model.name": "mlp", "model.hidden": [8],
        "callbacks.progress.style": "none", "callbacks.plot_curves": None, "train.batch_size": 32}


def _train(tmp_path: Path, name: str, **overrides: Any) -> Any:
    cfg = config_mod.load(flags={"epochs": 2, "out": tmp_path, "name": name},
                          overrides={**BASE, "optim.lr": 0.05, **overrides})
    return train_config(cfg)


def _rows(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "metrics.csv", newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Any]:
    """The same seeded run without and with per-epoch test metrics."""
    tmp = tmp_path_factory.mktemp("each-epoch")
    return _train(tmp, "plain"), _train(tmp, "tested", **{"train.test_each_epoch": True})


def test_metrics_csv_has_a_test_row_per_epoch_matching_the_best_checkpoints_test(runs: tuple[Any, Any]) -> None:
    _, tested = runs
    rows = _rows(tested.path)
    assert len(rows) == 2 and all(row["test_loss"] and row["test_acc"] for row in rows)
    assert all(0.0 <= float(row["test_acc"]) <= 1.0 for row in rows)
    best = checkpoint.load(checkpoint.latest(tested.path / "checkpoints", "best"))
    row = rows[best.meta["epoch"] - 1]  # the epoch the best checkpoint holds, evaluated on test after that epoch
    assert float(row["test_loss"]) == pytest.approx(tested.summary["test"]["test_loss"], rel=1e-5)
    assert float(row["test_acc"]) == pytest.approx(tested.summary["test"]["test_acc"], rel=1e-6)


def test_recording_test_metrics_changes_nothing_else(runs: tuple[Any, Any]) -> None:
    """Same seed: identical training, validation, best checkpoint and final test; only test_* columns are added."""
    plain, tested = runs
    for a, b in zip(_rows(plain.path), _rows(tested.path)):
        assert set(b) - set(a) == {"test_loss", "test_acc"}
        for key in ("lr", "train_loss", "train_acc", "val_loss", "val_acc"):
            assert a[key] == b[key], key
    assert plain.summary["test_checkpoint"] == tested.summary["test_checkpoint"]
    assert plain.summary["test"] == tested.summary["test"]
    assert plain.summary["best"] == tested.summary["best"]  # the search objective reads summary["best"]
    assert not any(key.startswith("test_") for key in tested.summary["best"])
    assert "test_acc" in tested.summary["final"]  # reported, clearly as test


def test_best_metrics_never_picks_a_test_epoch() -> None:
    history = [{"epoch": 1, "val_loss": 0.5, "test_loss": 0.1}, {"epoch": 2, "val_loss": 0.4, "test_loss": 0.9}]
    assert best_metrics(history) == {"val_loss": {"value": 0.4, "epoch": 2}}


@pytest.mark.parametrize("overrides", [
    {"callbacks.early_stopping.monitor": "test_loss"},
    {"sched.name": "plateau", "sched.monitor": "test_loss"},
], ids=["early_stopping", "plateau"])
def test_no_selection_can_monitor_a_test_metric(tmp_path: Path, overrides: dict[str, Any]) -> None:
    with pytest.raises(KeyError, match="test_"):
        _train(tmp_path, "select", **{"train.test_each_epoch": True, "train.epochs": 1, **overrides})


def test_the_best_checkpoint_never_follows_a_test_metric(tmp_path: Path) -> None:
    run = _train(tmp_path, "ckpt", **{"train.test_each_epoch": True, "train.epochs": 2,
                                      "callbacks.checkpoint.monitor": "test_acc", "callbacks.checkpoint.mode": "max"})
    assert checkpoint.latest(run.path / "checkpoints", "best") is None  # test_acc is not a metric it can see
    assert run.summary["test_checkpoint"].startswith("last-")


def test_curves_draw_the_test_split_labelled_as_recorded_only(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import matplotlib.axes

    labels: list[str] = []
    original = matplotlib.axes.Axes.plot

    def spy(self: Any, *args: Any, **kwargs: Any) -> Any:
        labels.append(kwargs.get("label"))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(matplotlib.axes.Axes, "plot", spy)
    history = [{"epoch": e, "train_loss": 1.0 / e, "val_loss": 1.1 / e, "test_loss": 1.2 / e, "train_acc": 0.5,
                "val_acc": 0.5, "test_acc": 0.4} for e in (1, 2)]
    plots.plot_history(history, tmp_path / "curves.png")
    assert labels == ["train", "val", "test (recorded only)"] * 2
    assert (tmp_path / "curves.png").stat().st_size > 0


def test_config_refuses_a_non_boolean(tmp_path: Path) -> None:
    with pytest.raises(config_mod.ConfigError, match="test_each_epoch"):
        config_mod.load(flags={"out": tmp_path}, overrides={"train.test_each_epoch": "sometimes"})
