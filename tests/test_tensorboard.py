"""The ``tensorboard`` callback: event files in the run directory, read back with TensorBoard's own reader, hold
exactly metrics.csv's numbers per epoch, the LR and train loss per log step, histograms and the graph on request;
a missing extra is one clear error; a model that cannot be traced only skips the graph."""

from __future__ import annotations

import csv
import logging
import sys
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("tensorboard", reason="the optional tensorboard extra is not installed")
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from trainlab import config as config_mod
from trainlab.api import train_config

BASE = {"data.name": "circles", "data.n": 200, "model.name": "mlp", "model.hidden": [8], "train.batch_size": 16,
        "train.log_every": 3, "callbacks.progress.style": "none", "callbacks.plot_curves": None}


def _train(tmp_path: Path, name: str, **overrides: Any) -> Any:
    cfg = config_mod.load(flags={"epochs": 2, "out": tmp_path, "name": name}, overrides={**BASE, **overrides})
    return train_config(cfg)


def _events(run_dir: Path) -> EventAccumulator:
    events = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"scalars": 0, "histograms": 0})
    events.Reload()
    return events


def test_event_file_holds_metrics_csv_lr_histograms_and_graph(tmp_path: Path) -> None:
    run = _train(tmp_path, "tb", **{"callbacks.tensorboard": {"histograms": True, "graph": True},
                                    "train.test_each_epoch": True})
    events = _events(run.path)
    with open(run.path / "metrics.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    columns = [key for key in rows[0] if key != "epoch"]
    assert {"lr", "train_loss", "val_acc", "test_acc"} <= set(columns)
    tags = events.Tags()
    for key in columns:
        scalars = events.Scalars(f"epoch/{key}")
        assert [s.step for s in scalars] == [1, 2]
        assert [s.value for s in scalars] == pytest.approx([float(row[key]) for row in rows], rel=1e-6), key
    # 200 circles: 40 test, 16 validation, 144 train = 9 batches of 16 per epoch; a log step every 3 updates
    steps = [s.step for s in events.Scalars("step/train_loss")]
    assert steps == list(range(3, 19, 3))
    assert [s.value for s in events.Scalars("step/lr")] == pytest.approx([0.001] * len(steps))
    assert {"weights/1.weight", "weights/3.bias", "grads/1.weight"} <= set(tags["histograms"])
    assert tags["graph"] is True


def test_a_model_that_cannot_be_traced_skips_only_the_graph(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    from torch.utils.tensorboard import SummaryWriter

    def refuse(self: Any, *args: Any, **kwargs: Any) -> None:
        raise RuntimeError("cannot trace this model\nmore detail")

    monkeypatch.setattr(SummaryWriter, "add_graph", refuse)
    with caplog.at_level(logging.INFO, logger="trainlab"):
        run = _train(tmp_path, "untraced", **{"callbacks.tensorboard": {"graph": True}})
    assert run.summary["status"] == "completed"
    assert "tensorboard: the model graph is skipped, tracing failed (RuntimeError: cannot trace this model)" \
        in caplog.text
    assert _events(run.path).Tags()["graph"] is False and _events(run.path).Scalars("epoch/val_loss")


def test_missing_extra_is_one_error_saying_how_to_install(run_cli: Any, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # what an environment without it raises
    code, _, stderr = run_cli("train", "--data", "circles", "--model", "mlp", "--epochs", "1", "--out", tmp_path,
                              "--name", "none", "--set", "callbacks.tensorboard={}",
                              "--set", "callbacks.progress.style=none")
    assert code == 2
    assert stderr.strip().splitlines()[-1].startswith("error: callbacks.tensorboard needs the optional package "
                                                      'tensorboard: install it with pip install "trainlab[tensorboard]"')
    assert not (tmp_path / "none").exists()


def test_unknown_option_is_a_config_error() -> None:
    with pytest.raises(config_mod.ConfigError, match="did you mean 'histograms'"):
        config_mod.load(overrides={"callbacks.tensorboard.histogram": True})


def test_a_resumed_run_continues_the_same_curves(run_cli: Any, tmp_path: Path) -> None:
    """A resumed run writes a second event file; together they hold each epoch once, equal to metrics.csv."""
    common = ["--data", "circles", "--model", "mlp", "--set", "data.n=200", "--set", "callbacks.progress.style=none",
              "--set", "callbacks.plot_curves=null"]
    code, _, stderr = run_cli("train", *common, "--epochs", "1", "--out", tmp_path, "--name", "r",
                              "--set", "callbacks.tensorboard={}")
    assert code == 0, stderr
    code, _, stderr = run_cli("train", "--resume", tmp_path / "r", "--epochs", "3",
                              "--set", "callbacks.progress.style=none")
    assert code == 0, stderr
    with open(tmp_path / "r" / "metrics.csv", newline="") as handle:
        losses = [float(row["val_loss"]) for row in csv.DictReader(handle)]
    scalars = _events(tmp_path / "r").Scalars("epoch/val_loss")
    assert [s.step for s in scalars] == [1, 2, 3]
    assert [s.value for s in scalars] == pytest.approx(losses, rel=1e-6)
