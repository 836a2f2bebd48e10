"""One definition of "best" per run: with early stopping's ``restore_best`` and a ``min_delta``, the ``best-*``
checkpoint, the weights restored at the end, the test metrics in summary.json, ``eval`` and ``predict`` are all
the same epoch."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from trainlab import config as config_mod
from trainlab.api import train_config
from trainlab.engine import checkpoint
from trainlab.engine.callbacks.base import Callback

# val_loss as early stopping and the checkpoint see it: 0.99 and 0.98 improve on 1.0, but not by min_delta 0.05,
# so early stopping's best (the weights it restores) stays epoch 1, while "any improvement" would pick epoch 3.
SCRIPT = [1.0, 0.99, 0.98]
SETTINGS = {"callbacks.progress.style": "none", "callbacks.plot_curves": None, "model.width": 4,
            "callbacks.early_stopping.restore_best": True, "callbacks.early_stopping.min_delta": 0.05,
            "callbacks.early_stopping.patience": 5}


class ScriptedValLoss(Callback):
    """Replaces the measured val_loss with a scripted one before early stopping (20) and checkpoint (90) read it."""

    order = 5

    def __init__(self, values: list[float]) -> None:
        self.values = values

    def on_epoch_end(self, trainer: Any, state: Any) -> None:
        state.metrics["val_loss"] = self.values[state.epoch - 1]


def test_best_checkpoint_test_metrics_eval_and_predict_use_the_epoch_early_stopping_restored(tmp_path: Path) -> None:
    cfg = config_mod.load(flags={"epochs": len(SCRIPT), "out": tmp_path, "name": "es"}, overrides=SETTINGS)
    run = train_config(cfg, callbacks={"script": ScriptedValLoss(SCRIPT)})
    ckpt_dir = run.path / "checkpoints"
    best = checkpoint.latest(ckpt_dir, "best")
    assert best is not None and checkpoint.load(best).meta["epoch"] == 1  # the epoch, not the last improvement
    last = checkpoint.load(checkpoint.latest(ckpt_dir, "last"))
    stopping = last.state["callbacks"]["early_stopping"]
    assert stopping["best_epoch"] == 1
    restored = stopping["best_weights"]["model"]
    kept = checkpoint.load(best).model
    assert all(torch.equal(restored[name], kept[name]) for name in kept)  # what restore_best put back
    summary = run.summary
    assert summary["test_checkpoint"] == best.name
    evaluated = run.evaluate("test", device="cpu")  # what `trainlab eval` prints
    assert evaluated == pytest.approx(summary["test"], rel=1e-6)
    model = run.load_model()  # what `trainlab predict` uses
    assert all(torch.equal(model.state_dict()[name], kept[name]) for name in kept)
    report = (run.path / "report.html").read_text()
    assert f"<th>test ({best.name})</th>" in report and "last weights" not in report
