"""Exact resume in a fresh process: interrupt at step k, ``python -m trainlab train --resume``, finish; the result
equals an uninterrupted run bit for bit (CPU, deterministic), with shuffling, dropout, random augmentation,
gradient accumulation, EMA, a multistep schedule and early stopping all active.  A negative control shows the
comparison has teeth: the same resume with RNG restore disabled ends differently.

The schedule of the run (digits at batch 128, validation 20 % → 9 batches per epoch; accumulate 3 → 3 updates
per epoch; LR milestone at epoch 1.5 → optimizer update 4 = batch step 12; early stopping with an unreachable
min_delta and patience 2 → stop decided at the end of epoch 3, step 27, of 4 epochs).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import torch

import trainlab
from tests.reliability.helpers import ctrl_c_after_step, run_python, trainlab_cli
from trainlab.api import TrainingInterrupted
from trainlab.engine import checkpoint

SETTINGS = {
    "model.width": 4, "model.dropout": 0.3, "train.deterministic": True, "train.seed": 5, "train.batch_size": 128,
    "data.val_fraction": 0.2, "data.augment": ["hflip", {"translate": {"max": 0.25}}],
    "train.accumulate": 3, "train.ema": 0.9, "sched.name": "multistep", "sched.milestones": [1.5],
    "callbacks.early_stopping.patience": 2, "callbacks.early_stopping.min_delta": 10.0,
    "callbacks.progress.style": "none", "callbacks.plot_curves": None,
}
STEPS_PER_EPOCH, MILESTONE_STEP, STOP_STEP = 9, 12, 27
SPLIT_POINTS = {
    4: "mid-epoch, mid accumulation group (1 of 3 batches summed)",
    5: "mid accumulation group (2 of 3)",
    9: "last batch of epoch 1, before the epoch's validation and checkpoint",
    10: "first batch after an epoch boundary",
    11: "just before the LR milestone update",
    12: "at the LR milestone update",
    13: "just after the LR milestone",
    17: "just before the first early-stopping check that fails to improve",
    26: "just before the stopping decision, mid accumulation",
    27: "the last batch before the stopping decision",
}
TIMING = {"seconds", "examples_per_s", "train_seconds", "epoch_seconds", "wall_seconds"}

NO_RNG_RESTORE = """
import sys
import trainlab.engine.trainer as trainer
trainer.rng_restore = lambda snapshot: None
from trainlab.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The uninterrupted run."""
    torch.set_num_threads(1)
    run = trainlab.train(epochs=4, out=tmp_path_factory.mktemp("ref"), name="full", overrides=SETTINGS)
    assert run.summary["steps"] == STOP_STEP and run.summary["epochs_completed"] == 3
    assert "early stopping" in run.summary["stop_reason"]
    lrs = run.history["lr"].tolist()
    assert lrs[0] > lrs[1] == lrs[2], "the milestone falls in epoch 2"
    return run.path


def interrupted_at(step: int, out: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Train the same config in-process and simulate Ctrl-C right after batch ``step``'s callbacks ran."""
    with ctrl_c_after_step(step, monkeypatch):
        with pytest.raises(TrainingInterrupted) as stop:
            trainlab.train(epochs=4, out=out, name="cut", overrides=SETTINGS)
    meta = checkpoint.load(checkpoint.latest(stop.value.run_dir / "checkpoints", "last")).meta
    assert meta["step"] == step
    return stop.value.run_dir


def final_state(run_dir: Path) -> dict[str, Any]:
    last = checkpoint.load(checkpoint.latest(run_dir / "checkpoints", "last"))
    return {"weights": last.model, "state": last.state, "meta": last.meta}


def differences(expected: Any, actual: Any, where: str = "") -> list[str]:
    """Every place two nested checkpoint structures differ (timing values excluded)."""
    if isinstance(expected, dict) and isinstance(actual, dict):
        if expected.keys() != actual.keys():
            return [f"{where}: keys {sorted(expected)} != {sorted(actual)}"]
        return [d for key in expected if key not in TIMING
                for d in differences(expected[key], actual[key], f"{where}.{key}")]
    if isinstance(expected, (list, tuple)) and isinstance(actual, (list, tuple)):
        if len(expected) != len(actual):
            return [f"{where}: length {len(expected)} != {len(actual)}"]
        return [d for i, (e, a) in enumerate(zip(expected, actual)) for d in differences(e, a, f"{where}[{i}]")]
    if isinstance(expected, torch.Tensor) and isinstance(actual, torch.Tensor):
        same = expected.shape == actual.shape and expected.dtype == actual.dtype and torch.equal(expected, actual)
        return [] if same else [f"{where}: tensors differ"]
    return [] if expected == actual or (expected != expected and actual != actual) else [f"{where}: {expected!r} != {actual!r}"]


def compare_runs(reference: Path, resumed: Path) -> list[str]:
    found = differences(final_state(reference), final_state(resumed))
    timing = [c for c in TIMING if c in trainlab.load_run(reference).history.columns]
    expected = trainlab.load_run(reference).history.drop(columns=timing)
    actual = trainlab.load_run(resumed).history.drop(columns=timing)
    try:
        pd.testing.assert_frame_equal(expected, actual, check_exact=True)
    except AssertionError as err:
        found.append(f"metrics.csv: {err}")
    return found


def check_split_point(step: int, reference: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cut = interrupted_at(step, tmp_path, monkeypatch)
    done = trainlab_cli("train", "--resume", cut, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    summary = trainlab.load_run(cut).summary
    assert summary["status"] == "completed" and summary["steps"] == STOP_STEP
    problems = compare_runs(reference, cut)
    assert not problems, f"resume at step {step} ({SPLIT_POINTS[step]}) differs:\n" + "\n".join(problems[:20])


def test_exact_resume_in_a_fresh_process_mid_accumulation_at_the_milestone(
        reference: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    check_split_point(11, reference, tmp_path, monkeypatch)


@pytest.mark.slow
@pytest.mark.parametrize("step", [s for s in SPLIT_POINTS if s != 11])
def test_exact_resume_in_a_fresh_process(step: int, reference: Path, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    check_split_point(step, reference, tmp_path, monkeypatch)


@pytest.mark.slow
def test_negative_control_without_rng_restore_the_comparison_fails(
        reference: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cut = interrupted_at(11, tmp_path, monkeypatch)
    script = tmp_path / "no_rng_restore.py"
    script.write_text(NO_RNG_RESTORE)
    done = run_python(script, "train", "--resume", cut, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    problems = compare_runs(reference, cut)
    assert any(p.startswith(".weights") for p in problems), "without RNG restore the weights must differ"
