"""Divergence (NaN/Inf stop the run within one step, only finite checkpoints remain) and batch_size=auto."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

import trainlab
from tests.reliability.helpers import QUIET
from trainlab import rundir
from trainlab.api import TrainingFailed
from trainlab.config import load as load_config
from trainlab.engine import autobatch, checkpoint
from trainlab.engine.autobatch import BatchSizeError, find_batch_size, largest_fitting
from trainlab.registry import LOSSES, Entry
from trainlab.session import build_data


class BadAfter(nn.Module):
    """Cross-entropy whose training calls from number ``after`` + 1 on return ``value`` (NaN, Inf, -Inf)."""

    def __init__(self, task: str = "classification", after: int = 0, value: str = "nan") -> None:
        super().__init__()  # value is text ("nan", "inf", "-inf"): the config refuses non-finite float options
        self.after, self.value, self.calls = after, float(value), 0
        self.inner = nn.CrossEntropyLoss()

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        loss = self.inner(output, target)
        if not torch.is_grad_enabled():  # validation passes do not count
            return loss
        self.calls += 1
        return loss * self.value if self.calls > self.after else loss


@pytest.fixture
def bad_loss(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(LOSSES._entries, "bad_after", Entry("bad_after", BadAfter, "test"))


def all_finite(value: object) -> bool:
    if isinstance(value, torch.Tensor):
        return not value.is_floating_point() or bool(torch.isfinite(value).all())
    if isinstance(value, dict):
        return all(all_finite(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return all(all_finite(v) for v in value)
    return True


@pytest.mark.parametrize("value, every_steps", [(math.inf, 1), (math.nan, 1), (-math.inf, 0)])
def test_divergence_stops_within_one_step_and_leaves_only_finite_checkpoints(
        tmp_path: Path, bad_loss: None, value: float, every_steps: int) -> None:
    # digits at batch 64: 21 steps per epoch, so training step 25 is in epoch 2
    overrides = {**QUIET, "loss.name": "bad_after", "loss.after": 24, "loss.value": str(value),
                 "callbacks.checkpoint.every_steps": every_steps, "callbacks.checkpoint.keep": 3}
    with pytest.raises(TrainingFailed) as failure:
        trainlab.train(epochs=3, out=tmp_path, name="bad", overrides=overrides)
    assert f"loss became {value} at epoch 2, step 25" in str(failure.value)
    run_dir = tmp_path / "bad"
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "failed" and summary["steps"] == 25
    ckpt_dir = run_dir / "checkpoints"
    kept = checkpoint.list_complete(ckpt_dir, "last") + checkpoint.list_complete(ckpt_dir, "best")
    assert kept, "the last good checkpoint is kept"
    for path in kept:
        ckpt = checkpoint.load(path)
        assert ckpt.meta["step"] < 25 and all_finite(ckpt.model) and all_finite(ckpt.state), path
    newest = checkpoint.latest(ckpt_dir, "last")
    assert checkpoint.load(newest).meta["step"] == (24 if every_steps else 21)


def test_step_checkpoints_are_never_written_from_diverged_weights(tmp_path: Path, bad_loss: None, caplog) -> None:
    """Without a per-step NaN guard read (as on an accelerator between reads; here the guard is off), the
    checkpoint callback itself refuses non-finite weights, so the newest checkpoint is the last good one."""
    overrides = {**QUIET, "loss.name": "bad_after", "loss.after": 24, "loss.value": "nan",
                 "callbacks.nan_guard": None, "callbacks.checkpoint.every_steps": 1, "callbacks.checkpoint.keep": 50}
    with caplog.at_level("WARNING", logger="trainlab"):
        trainlab.train(epochs=2, out=tmp_path, name="unguarded", overrides=overrides)
    skipped = [r.getMessage() for r in caplog.records if r.name == "trainlab.engine.callbacks.checkpoint"]
    assert skipped == ["checkpoint 'last' at step 25 skipped: the weights hold NaN or Inf "
                       "(the previous checkpoint is kept; later ones are skipped too)"]  # once per run
    ckpt_dir = tmp_path / "unguarded" / "checkpoints"
    kept = checkpoint.list_complete(ckpt_dir, "last") + checkpoint.list_complete(ckpt_dir, "best")
    assert kept and all(all_finite(checkpoint.load(path).model) for path in kept)
    assert checkpoint.load(checkpoint.latest(ckpt_dir, "last")).meta["step"] == 24


# ---- batch_size=auto ----------------------------------------------------------------------------------------

def oom_above(limit: int, monkeypatch: pytest.MonkeyPatch, error: type[Exception] = RuntimeError) -> list[int]:
    """Simulate a device that runs out of memory for batches larger than ``limit``; returns the probed sizes."""
    original, probed = autobatch.forward_backward, []

    def probe(model: nn.Module, loss_fn: nn.Module, x: torch.Tensor, y: torch.Tensor) -> None:
        probed.append(len(x))
        original(model, loss_fn, x, y)  # really run it, so BatchNorm statistics and gradients do change
        if len(x) > limit:
            raise error("CUDA out of memory. Tried to allocate 2.00 GiB (simulated)")

    monkeypatch.setattr(autobatch, "forward_backward", probe)
    return probed


@pytest.mark.parametrize("cap", [1, 2, 5, 32, 33])
def test_largest_fitting_finds_the_exact_limit(cap: int) -> None:
    for limit in range(0, 40):
        calls: list[int] = []
        found = largest_fitting(lambda n: calls.append(n) or n <= limit, cap)
        assert found == min(limit, cap)
        assert max(calls) <= cap and len(calls) <= 2 * math.ceil(math.log2(cap + 1)) + 1


def test_auto_batch_size_backs_off_on_oom_and_keeps_the_weights(monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = load_config(overrides={**QUIET, "model.name": "simple-cnn"})
    bundle = build_data(cfg)
    model = trainlab.create_model("simple-cnn", num_classes=10, in_channels=1, input_size=(8, 8), width=4)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    assert any("running_mean" in k for k in before), "a model with BatchNorm statistics, which a probe would move"
    model.eval()
    probed = oom_above(100, monkeypatch, getattr(torch.cuda, "OutOfMemoryError", RuntimeError))
    size = find_batch_size(model, nn.CrossEntropyLoss(), bundle.train, bundle.meta, torch.device("cpu"), cap=1024)
    assert size == 100 and 128 in probed and max(probed) == 128
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before), "probing must not change weights or buffers"
    assert all(p.grad is None for p in model.parameters()) and not model.training


def test_auto_batch_size_caps_and_failures() -> None:
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 3))
    data = TensorDataset(torch.randn(50, 4), torch.randint(0, 3, (50,)))
    meta = trainlab.data.DataMeta(task="classification", input_shape=(4,), num_classes=3, preprocess={"kind": "table"})
    loss = nn.CrossEntropyLoss()
    assert find_batch_size(model, loss, data, meta, torch.device("cpu"), cap=1024) == 50  # dataset size
    assert find_batch_size(model, loss, data, meta, torch.device("cpu"), cap=20) == 20  # max_batch_size


def test_nothing_fits_and_other_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 3))
    data = TensorDataset(torch.randn(50, 4), torch.randint(0, 3, (50,)))
    meta = trainlab.data.DataMeta(task="classification", input_shape=(4,), num_classes=3, preprocess={"kind": "table"})
    oom_above(0, monkeypatch)
    with pytest.raises(BatchSizeError, match="not even one example fits"):
        find_batch_size(model, nn.CrossEntropyLoss(), data, meta, torch.device("cpu"))
    monkeypatch.setattr(autobatch, "forward_backward", lambda *a: (_ for _ in ()).throw(RuntimeError("shape mismatch")))
    with pytest.raises(RuntimeError, match="shape mismatch"):  # a real bug is not mistaken for running out of memory
        find_batch_size(model, nn.CrossEntropyLoss(), data, meta, torch.device("cpu"))


def test_auto_batch_size_through_the_cli_is_printed_recorded_and_kept_on_resume(
        tmp_path: Path, run_cli, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    oom_above(200, monkeypatch)
    code, _, err = run_cli("train", "--epochs", "1", "--out", tmp_path, "--name", "auto", "--batch-size", "auto",
                           "--set", "callbacks.progress.style=none", "--set", "model.width=4",
                           "--set", "callbacks.plot_curves=null")
    assert code == 0, err
    assert "batch_size=auto: using 200" in err
    run = trainlab.load_run(tmp_path / "auto")
    assert run.summary["batch_size"] == 200 and run.config.train.batch_size == 200
    assert json.loads((tmp_path / "auto" / rundir.SUMMARY_FILE).read_text())["steps"] == math.ceil(1294 / 200)
    code, _, err = run_cli("train", "--resume", tmp_path / "auto", "--epochs", "2")
    assert code == 0 and "batch_size=auto" not in err, "a resume reuses the probed size"
    with pytest.raises(SystemExit) as bad_flag:
        run_cli("train", "--batch-size", "0")
    assert bad_flag.value.code == 2 and "expected a positive integer or auto, got 0" in capsys.readouterr().err
