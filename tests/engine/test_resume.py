"""Exact resume: an interrupted and resumed run ends bit-identical to an uninterrupted one (CPU, deterministic)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import torch

import trainlab
from tests.conftest import interrupted_write
from trainlab.api import TrainingInterrupted
from trainlab.config import ConfigError
from trainlab.engine import checkpoint
from trainlab.engine.callbacks.base import Callback
from trainlab.registry import CALLBACKS, Entry
from trainlab.rundir import RunDirError

COMMON = {"model.width": 8, "model.dropout": 0.3, "train.deterministic": True, "train.seed": 3,
          "data.val_fraction": 0.2, "callbacks.progress.style": "none", "callbacks.early_stopping.patience": 5,
          "sched.name": "cosine", "sched.warmup": 5}


class InterruptAt(Callback):
    """Simulates Ctrl-C after a given optimizer step."""

    def __init__(self, step: int = 0) -> None:
        self.step = step

    def on_batch_end(self, trainer: Any, state: Any) -> None:
        if state.step == self.step:
            raise KeyboardInterrupt


@pytest.fixture
def interrupt_callback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(CALLBACKS._entries, "interrupt_at", Entry("interrupt_at", InterruptAt, "test"))


def final_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return checkpoint.load(checkpoint.latest(run_dir / "checkpoints", "last")).model


def comparable(history: pd.DataFrame) -> pd.DataFrame:
    return history.drop(columns=["seconds", "examples_per_s"])


@pytest.mark.parametrize("stop_step", [23, 40])  # 23: mid-epoch 2; 40: exactly at the end of epoch 2
def test_interrupted_then_resumed_equals_uninterrupted(tmp_path: Path, interrupt_callback: None, stop_step: int) -> None:
    full = trainlab.train(epochs=3, out=tmp_path, name="full", overrides=COMMON)
    with pytest.raises(TrainingInterrupted) as stop:
        trainlab.train(epochs=3, out=tmp_path, name="cut",
                       overrides={**COMMON, "callbacks.interrupt_at.step": stop_step})
    resumed = trainlab.train(resume=stop.value.run_dir)
    expected, actual = final_weights(full.path), final_weights(resumed.path)
    assert expected.keys() == actual.keys()
    for name in expected:
        assert torch.equal(expected[name], actual[name]), f"{name} differs after resume"
    pd.testing.assert_frame_equal(comparable(full.history), comparable(resumed.history))
    assert resumed.summary["status"] == "completed"


def test_resume_with_changed_config_is_refused_unless_forced(tmp_path: Path) -> None:
    run = trainlab.train(epochs=1, out=tmp_path, name="r", overrides={"callbacks.progress.style": "none",
                                                                      "model.width": 8})
    with pytest.raises(ConfigError) as err:
        trainlab.train(data="digits", resume=run.path, overrides={"model.width": 4, "optim.lr": 0.01})
    message = str(err.value)
    assert "model.width: 8 → 4" in message and "optim.lr: 0.001 → 0.01" in message and "--resume-force" in message
    assert "data.name" not in message
    longer = trainlab.train(epochs=2, resume=run.path)  # more epochs is a safe change
    assert longer.summary["epochs_completed"] == 2
    forced = trainlab.train(epochs=3, resume=run.path, resume_force=True, overrides={"optim.lr": 0.01})
    assert forced.config.optim.lr == 0.01 and forced.summary["epochs_completed"] == 3


def test_run_from_a_newer_trainlab_is_refused(tmp_path: Path) -> None:
    run = trainlab.train(epochs=1, out=tmp_path, name="r", overrides={"callbacks.progress.style": "none",
                                                                      "model.width": 8})
    summary = json.loads((run.path / "summary.json").read_text())
    summary["versions"]["trainlab"] = "99.0.0"
    (run.path / "summary.json").write_text(json.dumps(summary))
    with pytest.raises(RunDirError, match="written by trainlab 99.0.0, newer than this trainlab"):
        trainlab.load_run(run.path)
    with pytest.raises(RunDirError, match="upgrade trainlab"):
        trainlab.train(resume=run.path)


def test_a_resume_sweeps_what_writers_killed_mid_write_left_and_a_refused_one_does_not(tmp_path: Path) -> None:
    run = trainlab.train(epochs=1, out=tmp_path, name="r", overrides={"callbacks.progress.style": "none"})
    leftovers = [interrupted_write(run.path, "metrics.csv"), interrupted_write(run.path / "checkpoints", "meta.json")]
    with pytest.raises(ConfigError):
        trainlab.train(resume=run.path, epochs=2, overrides={"optim.lr": 0.5})  # a changed recipe: refused
    assert all(path.exists() for path in leftovers)
    trainlab.train(resume=run.path, epochs=2)
    assert not any(path.exists() for path in leftovers)


def test_resume_without_checkpoint_fails_clearly(tmp_path: Path) -> None:
    run = trainlab.train(epochs=1, out=tmp_path, name="r", overrides={"callbacks.checkpoint": None,
                                                                      "callbacks.progress.style": "none"})
    with pytest.raises(checkpoint.CheckpointError, match="has no complete checkpoint to resume from"):
        trainlab.train(resume=run.path)


def test_a_run_being_trained_cannot_be_resumed_by_a_second_process_at_once(tmp_path: Path, run_cli) -> None:
    import os
    import subprocess
    import sys

    from trainlab import rundir

    run = trainlab.train(epochs=1, out=tmp_path, name="r", overrides={"callbacks.progress.style": "none",
                                                                      "model.width": 8})
    before = checkpoint.latest(run.path / "checkpoints", "last")
    with rundir.exclusive(run.path):  # as the first training process holds it
        with pytest.raises(RunDirError, match=f"in use by another training process \\(pid {os.getpid()}\\)"):
            trainlab.train(resume=run.path, epochs=2)
        code, _, err = run_cli("train", "--resume", str(run.path), "--epochs", "2")
        assert code == 2 and "in use by another training process" in err
    assert checkpoint.latest(run.path / "checkpoints", "last") == before  # the refused resumes wrote nothing
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from pathlib import Path; "
                               "from trainlab import rundir\nwith rundir.exclusive(Path(sys.argv[1])):\n"
                               "    print('held', flush=True); time.sleep(60)", str(run.path)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(RunDirError, match=f"pid {holder.pid}"):
            trainlab.train(resume=run.path, epochs=2)
    finally:
        holder.kill()
        holder.wait()
    assert trainlab.train(resume=run.path, epochs=2).summary["epochs_completed"] == 2  # a killed holder frees it
