"""Trainer behaviour through the API: divergence handling and the regression path."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

import trainlab
from trainlab.api import TrainingFailed
from trainlab.data.bundle import DataBundle, DataMeta
from trainlab.engine import checkpoint
from trainlab.registry import DATASETS, LOSSES, Entry

QUIET = {"callbacks.progress.style": "none", "model.width": 8}


class NanAfter(nn.Module):
    """Cross-entropy that turns NaN from the given call on (a scripted divergence)."""

    def __init__(self, task: str = "classification", after: int = 0) -> None:
        super().__init__()
        self.after, self.calls = after, 0
        self.inner = nn.CrossEntropyLoss()

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        loss = self.inner(output, target)
        return loss * float("nan") if self.calls > self.after else loss


def synthetic_regression(*, seed: int = 0, val_fraction: float = 0.1) -> DataBundle:
    """y = 3·x0 − 2·x1 + 0.5 with a little noise."""
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(600, 2, generator=generator)
    y = 3 * x[:, 0] - 2 * x[:, 1] + 0.5 + 0.01 * torch.randn(600, generator=generator)
    meta = DataMeta(task="regression", input_shape=(2,), preprocess={"kind": "table"})
    return DataBundle(TensorDataset(x[:400], y[:400]), TensorDataset(x[400:500], y[400:500]),
                      TensorDataset(x[500:], y[500:]), meta)


@pytest.fixture
def scripted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(LOSSES._entries, "nan_after", Entry("nan_after", NanAfter, "test"))
    monkeypatch.setitem(DATASETS._entries, "tiny-regression", Entry("tiny-regression", synthetic_regression, "test"))


def test_nan_stops_within_one_step_and_keeps_last_good_checkpoint(tmp_path: Path, scripted: None) -> None:
    # digits: 1,294 training examples at batch 64 → 21 steps per epoch; NaN from training step 30 (epoch 2)
    # The loss also runs in validation (3 batches per epoch), so call 30 + 3 is training step 30.
    with pytest.raises(TrainingFailed) as failure:
        trainlab.train(epochs=3, out=tmp_path, name="nan", overrides={**QUIET, "loss.name": "nan_after", "loss.after": 32})
    assert "loss became nan at epoch 2, step 30" in str(failure.value)
    run_dir = tmp_path / "nan"
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "failed" and summary["steps"] == 30
    last = checkpoint.load(checkpoint.latest(run_dir / "checkpoints", "last"))
    assert last.meta["epoch"] == 1
    assert all(torch.isfinite(t).all() for t in last.model.values() if t.is_floating_point())


def test_nan_failure_exits_nonzero_on_the_cli(tmp_path: Path, scripted: None, run_cli) -> None:
    code, out, _ = run_cli("train", "--epochs", "1", "--out", tmp_path, "--set", "loss.name=nan_after",
                           "--set", "callbacks.progress.style=none", "--set", "model.width=8")
    assert code == 1 and "training failed" in out and "loss became nan at epoch 1, step 1" in out


def test_regression_reports_rmse_and_learns(tmp_path: Path, scripted: None) -> None:
    run = trainlab.train(model="mlp", data="tiny-regression", epochs=30, out=tmp_path, lr=0.01,
                         overrides={"callbacks.progress.style": "none", "model.hidden": [16]})
    history = run.history
    assert {"train_rmse", "val_rmse"} <= set(history.columns) and "train_acc" not in history.columns
    assert history["val_rmse"].iloc[-1] < 0.25 * history["val_rmse"].iloc[0]
    assert run.summary["test"]["test_rmse"] < 0.5
