"""torch's own LR schedulers by name (``torch.LinearLR``, …): the LR of every update equals torch's scheduler driven
by hand, per update or per epoch, after warmup, across a checkpoint, in a training run and in ``schedule plot``."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import pytest
import torch
from torch.optim import lr_scheduler

from trainlab import config as config_mod
from trainlab.config import SchedConfig
from trainlab.optim import Schedule, build_schedule
from trainlab.registry import SCHEDULES

LR, SPE, EPOCHS, WARMUP = 0.1, 4, 6, 3
TOTAL = SPE * EPOCHS
# arguments for each class: torch's required ones plus some that change the curve from its default
ARGS: dict[str, dict[str, Any]] = {
    "torch.LinearLR": {"start_factor": 0.25, "end_factor": 0.5, "total_iters": 3},
    "torch.ConstantLR": {"factor": 0.5, "total_iters": 2},
    "torch.StepLR": {"step_size": 2, "gamma": 0.5},
    "torch.MultiStepLR": {"milestones": [1, 4], "gamma": 0.3},
    "torch.ExponentialLR": {"gamma": 0.8},
    "torch.PolynomialLR": {"total_iters": 4, "power": 2.0},
    "torch.CosineAnnealingLR": {"T_max": 2, "eta_min": 0.01},
    "torch.CosineAnnealingWarmRestarts": {"T_0": 2, "T_mult": 2, "eta_min": 0.001},
    "torch.OneCycleLR": {"pct_start": 0.25, "div_factor": 10.0, "final_div_factor": 100.0},
}
NAMES = SCHEDULES.names("torch.*")


def test_every_torch_schedule_has_test_arguments() -> None:
    assert sorted(ARGS) == NAMES and len(NAMES) >= 6


def _trainlab(name: str, interval: str, warmup: int = 0) -> Schedule:
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=LR)
    cfg = SchedConfig(name=name, warmup=warmup, interval=interval, **ARGS[name])
    return build_schedule(cfg, optimizer, TOTAL, steps_per_epoch=SPE)


def _by_hand(name: str, steps: int) -> list[float]:
    """torch's scheduler as a user drives it: read the LR, optimizer.step(), scheduler.step()."""
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=LR)
    extra = {"max_lr": LR, "total_steps": steps, "cycle_momentum": False} if name == "torch.OneCycleLR" else {}
    scheduler = getattr(lr_scheduler, name.removeprefix("torch."))(optimizer, **ARGS[name], **extra)
    lrs = []
    for _ in range(steps):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return lrs


def _lrs(schedule: Schedule, steps: int) -> list[float]:
    lrs = []
    for _ in range(steps):
        lrs.append(schedule.get_last_lr()[0])
        schedule.step()
    return lrs


@pytest.mark.parametrize("name", NAMES)
def test_per_update_lrs_equal_torch_driven_by_hand(name: str) -> None:
    assert _lrs(_trainlab(name, "update"), TOTAL) == pytest.approx(_by_hand(name, TOTAL), rel=1e-12, abs=1e-15)


@pytest.mark.parametrize("name", NAMES)
def test_per_epoch_lrs_equal_torch_driven_once_per_epoch(name: str) -> None:
    expected = [lr for lr in _by_hand(name, EPOCHS) for _ in range(SPE)]  # one torch step per epoch of SPE updates
    assert _lrs(_trainlab(name, "epoch"), TOTAL) == pytest.approx(expected, rel=1e-12, abs=1e-15)


@pytest.mark.parametrize("name", NAMES)
def test_after_warmup_the_torch_schedule_starts_from_its_own_step_zero(name: str) -> None:
    lrs = _lrs(_trainlab(name, "update", warmup=WARMUP), TOTAL)
    assert lrs[:WARMUP] == pytest.approx([LR * (i + 1) / (WARMUP + 1) for i in range(WARMUP)])
    assert lrs[WARMUP:] == pytest.approx(_by_hand(name, TOTAL - WARMUP), rel=1e-12, abs=1e-15)


@pytest.mark.parametrize("interval", ["update", "epoch"])
@pytest.mark.parametrize("name", NAMES)
def test_a_checkpointed_schedule_continues_exactly(name: str, interval: str) -> None:
    full = _lrs(_trainlab(name, interval, warmup=WARMUP), TOTAL)
    first = _trainlab(name, interval, warmup=WARMUP)
    _lrs(first, 10)
    buffer = io.BytesIO()
    torch.save(first.state_dict(), buffer)
    buffer.seek(0)
    second = _trainlab(name, interval, warmup=WARMUP)
    second.load_state_dict(torch.load(buffer, weights_only=True))
    assert _lrs(second, TOTAL - 10) == pytest.approx(full[10:], rel=1e-12, abs=1e-15)


def test_linear_lr_reaches_end_factor_at_total_iters_then_holds() -> None:
    lrs = _lrs(_trainlab("torch.LinearLR", "update"), TOTAL)
    assert lrs[:4] == pytest.approx([0.025, 0.025 + 0.025 / 3, 0.025 + 0.05 / 3, 0.05])
    assert lrs[3:] == pytest.approx([0.05] * (TOTAL - 3))


def test_cosine_annealing_lr_has_period_2_t_max_and_rises_smoothly_again() -> None:
    lrs = _lrs(_trainlab("torch.CosineAnnealingLR", "update"), 9)
    assert lrs == pytest.approx([0.1, 0.055, 0.01, 0.055, 0.1, 0.055, 0.01, 0.055, 0.1])


def _load(**overrides: Any) -> Any:
    return config_mod.load(overrides={"sched.name": "torch.CosineAnnealingLR", **overrides})


@pytest.mark.parametrize("overrides, message", [
    ({"sched.T_maxx": 3}, "sched.T_maxx: not an option of schedule 'torch.CosineAnnealingLR'; did you mean 'T_max'?"),
    ({"sched.T_max": "soon"}, "config error at sched.T_max: got 'soon'"),
    ({"sched.T_max": 3, "sched.interval": "batch"}, "config error at sched.interval: got 'batch'"),
    ({"sched.T_max": 3, "sched.last_epoch": 4}, "sched.last_epoch: not an option"),
    ({"sched.name": "torch.OneCycleLR", "sched.cycle_momentum": True}, "sched.cycle_momentum: not an option"),
])
def test_config_checks_arguments_against_torchs_signature(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(config_mod.ConfigError) as err:
        _load(**overrides)
    assert message in str(err.value)


def test_missing_required_and_refused_values_name_the_argument() -> None:
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=LR)
    with pytest.raises(ValueError, match=r"torch.CosineAnnealingLR needs sched.T_max \(e.g. --set sched.T_max="):
        build_schedule(_load().sched, optimizer, TOTAL, steps_per_epoch=SPE)
    cfg = config_mod.load(overrides={"sched.name": "torch.LinearLR", "sched.start_factor": 2.0})
    with pytest.raises(ValueError, match="torch.LinearLR refused its arguments .*start_factor.*multiplicative factor"):
        build_schedule(cfg.sched, optimizer, TOTAL, steps_per_epoch=SPE)


def test_schedule_plot_draws_a_torch_schedule(run_cli: Any, tmp_path: Path) -> None:
    out = tmp_path / "lr.png"
    code, stdout, _ = run_cli("schedule", "plot", "--sched", "torch.StepLR", "--set", "sched.step_size=2",
                              "--set", "sched.gamma=0.5", "--lr", "0.4", "--epochs", "5", "--steps-per-epoch", "3",
                              "-o", out)
    assert code == 0 and out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "15 steps (3 per epoch): first lr 0.4, max 0.4, last 0.1" in stdout


@pytest.mark.parametrize("extra, message", [
    (["--set", "sched.step_size=0"], "error: sched: torch.StepLR refused its arguments"),
    ([], "error: sched: torch.StepLR needs sched.step_size"),
    (["--set", "sched.stepsize=2"], "error: config error at sched.stepsize: not an option of schedule 'torch.StepLR'"),
])
def test_schedule_plot_bad_arguments_write_nothing(run_cli: Any, tmp_path: Path, extra: list[str], message: str) -> None:
    out = tmp_path / "lr.png"
    code, _, stderr = run_cli("schedule", "plot", "--sched", "torch.StepLR", *extra, "--epochs", "2",
                              "--steps-per-epoch", "3", "-o", out)
    assert code == 2 and stderr.startswith(message) and not out.exists()


def test_a_run_steps_a_torch_schedule_per_epoch(tmp_path: Path, run_cli: Any) -> None:
    code, _, stderr = run_cli("train", "--data", "circles", "--model", "mlp", "--set", "data.n=120", "--epochs", "3",
                              "--lr", "0.2", "--set", "sched.name=torch.StepLR", "--set", "sched.step_size=1",
                              "--set", "sched.gamma=0.5", "--set", "callbacks.progress.style=none",
                              "--set", "callbacks.plot_curves=null", "--out", tmp_path, "--name", "steplr")
    assert code == 0, stderr
    with open(tmp_path / "steplr" / "metrics.csv", newline="") as handle:
        lrs = [float(row["lr"]) for row in csv.DictReader(handle)]
    assert lrs == pytest.approx([0.1, 0.05, 0.025])  # the LR after each epoch's scheduler step, as torch's StepLR
