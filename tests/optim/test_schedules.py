"""Schedules: every registered one runs, checkpoints exactly, and hits known values at known steps."""

from __future__ import annotations

import io
import math
from typing import Any

import pytest
import torch

from trainlab.config import SchedConfig
from trainlab.optim import Schedule, build_schedule, lr_curve
from trainlab.registry import SCHEDULES

REQUIRED: dict[str, dict[str, Any]] = {"multistep": {"milestones": [1, 2]}, "torch.StepLR": {"step_size": 2},
                                      "torch.MultiStepLR": {"milestones": [1, 3]}, "torch.ExponentialLR": {"gamma": 0.9},
                                      "torch.CosineAnnealingLR": {"T_max": 3},
                                      "torch.CosineAnnealingWarmRestarts": {"T_0": 2}}
LR, SPE, TOTAL = 0.1, 10, 50


def _schedule(name: str, total: int = TOTAL, **options: Any) -> Schedule:
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=LR)
    return build_schedule(SchedConfig(name=name, **options), optimizer, total, steps_per_epoch=SPE)


def _lr_at(schedule: Schedule, step: int) -> float:
    return LR * schedule.factor(step)


def _roundtrip(data: dict[str, Any]) -> dict[str, Any]:
    buffer = io.BytesIO()
    torch.save(data, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


@pytest.mark.parametrize("name", SCHEDULES.names())
def test_every_schedule_runs_and_resumes_exactly(name: str) -> None:
    options = {**REQUIRED.get(name, {}), "warmup": 5}
    full = _schedule(name, **options)
    lrs = []
    for _ in range(TOTAL):
        lrs.append(full.get_last_lr()[0])
        full.step()
    assert all(math.isfinite(lr) and 0 <= lr <= LR + 1e-12 for lr in lrs)
    assert lrs[:5] == pytest.approx([LR * (i + 1) / 6 for i in range(5)])
    first, second = _schedule(name, **options), _schedule(name, **options)
    for _ in range(20):
        first.step()
    second.load_state_dict(_roundtrip(first.state_dict()))
    assert second.get_last_lr() == pytest.approx([lrs[20]])


def test_warmup_end_and_half_way_cosine() -> None:
    schedule = _schedule("cosine", total=110, warmup=10, min_lr=0.01)
    assert _lr_at(schedule, 9) == pytest.approx(LR * 10 / 11)
    assert _lr_at(schedule, 10) == pytest.approx(LR)
    assert _lr_at(schedule, 60) == pytest.approx(0.01 + (LR - 0.01) * 0.5)
    assert _lr_at(schedule, 110) == pytest.approx(0.01)


def test_warmup_in_epochs() -> None:
    assert _schedule("constant", warmup_epochs=1.5).warmup == 15
    with pytest.raises(ValueError, match="not both"):
        _schedule("constant", warmup=3, warmup_epochs=1)
    with pytest.raises(ValueError, match="shorter than the run"):
        _schedule("constant", warmup=TOTAL)


@pytest.mark.parametrize("name, options, expected", [
    ("step", {"step_epochs": 2, "gamma": 0.5}, {19: 1.0, 20: 0.5, 40: 0.25}),
    ("multistep", {"milestones": [1, 3]}, {9: 1.0, 10: 0.1, 29: 0.1, 30: 0.01}),
    ("exponential", {"gamma": 0.5}, {0: 1.0, 10: 0.5, 15: 0.5**1.5}),
    ("inverse_time", {"decay": 0.5}, {0: 1.0, 10: 1 / 1.5, 20: 0.5}),
    ("linear", {}, {0: 1.0, 25: 0.5, 50: 0.0}),
    ("polynomial", {"power": 2.0}, {25: 0.25, 50: 0.0}),
    ("cosine_restarts", {"cycle_epochs": 2}, {0: 1.0, 10: 0.5, 20: 1.0, 30: 0.5}),
    ("cosine_restarts", {"cycle_epochs": 1, "cycle_mult": 2}, {10: 1.0, 20: 0.5, 30: 1.0}),
    ("cyclic", {"half_cycle_epochs": 1}, {0: 0.1, 5: 0.55, 10: 1.0, 20: 0.1}),
    ("one_cycle", {"pct_start": 0.2, "div_factor": 10, "final_div_factor": 100}, {0: 0.1, 10: 1.0, 50: 0.001}),
])
def test_schedule_values_at_known_steps(name: str, options: dict[str, Any], expected: dict[int, float]) -> None:
    schedule = _schedule(name, **options)
    for step, factor in expected.items():
        assert schedule.factor(step) == pytest.approx(factor), f"{name} at step {step}"


def test_plateau_reduces_after_patience_and_checkpoints_its_counters() -> None:
    schedule = _schedule("plateau", patience=2, factor=0.5, min_lr=0.02)
    for value in (1.0, 0.9, 0.95, 0.91):  # two epochs without improvement after the best 0.9
        schedule.observe({"val_loss": value})
    assert schedule.get_last_lr() == pytest.approx([0.05])
    clone = _schedule("plateau", patience=2, factor=0.5, min_lr=0.02)
    clone.load_state_dict(_roundtrip(schedule.state_dict()))
    for value in (0.99, 0.99):
        schedule.observe({"val_loss": value})
        clone.observe({"val_loss": value})
    assert clone.get_last_lr() == schedule.get_last_lr() == pytest.approx([0.025])
    for _ in range(4):
        schedule.observe({"val_loss": 2.0})
    assert schedule.get_last_lr() == pytest.approx([0.02])  # floored at min_lr
    with pytest.raises(KeyError, match="sched.monitor"):
        schedule.observe({"train_loss": 1.0})


def test_bad_schedule_options_are_explained() -> None:
    with pytest.raises(ValueError, match="milestones"):
        _schedule("multistep")
    with pytest.raises(ValueError, match="min_lr"):
        _schedule("cosine", min_lr=1.0)
    with pytest.raises(ValueError, match="steps_per_epoch"):
        build_schedule(SchedConfig(name="step"), torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1), 10)


def test_lr_curve_has_one_value_per_update() -> None:
    curve = lr_curve(SchedConfig(name="cosine", warmup=2), 0.1, 20, 5)
    assert len(curve) == 20 and max(curve) == pytest.approx(0.1) and curve[-1] < 0.01
