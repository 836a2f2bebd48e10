"""Learning-rate schedules by name, as per-step multipliers of the base LR.

A schedule builder returns ``step → multiplier`` for the steps after warmup (step 0 is the first step after
warmup).  It declares what it needs among ``total_steps`` (decay steps after warmup), ``steps_per_epoch``
and ``base_lr`` (optimizer LR, to turn an absolute ``min_lr`` into a ratio); trainlab supplies those.
Options measured in epochs (``step_epochs``, ``milestones``, …) are converted with ``steps_per_epoch``, so
every schedule steps once per optimizer update and is exact for any epoch count or batch size.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Literal

from trainlab.registry import SCHEDULES

Multiplier = Callable[[int], float]


def _floor(min_lr: float, base_lr: float, schedule: str) -> float:
    """``min_lr`` as a fraction of the base LR."""
    if not 0.0 <= min_lr <= base_lr:
        raise ValueError(f"sched.min_lr of {schedule} must be in [0, optim.lr={base_lr}], got {min_lr}")
    return min_lr / base_lr


def _positive(schedule: str, **values: float) -> None:
    for key, value in values.items():
        if not value > 0:
            raise ValueError(f"sched.{key} of {schedule} must be > 0, got {value}")


@SCHEDULES.register("constant", description="the base learning rate throughout (after any warmup)")
def constant() -> Multiplier:
    """Multiplier 1 at every step."""
    return lambda step: 1.0


@SCHEDULES.register("step", description="multiply the LR by gamma every step_epochs epochs")
def step(*, steps_per_epoch: int, step_epochs: float = 10.0, gamma: float = 0.1) -> Multiplier:
    """Staircase decay: ``gamma ** floor(epoch / step_epochs)``."""
    _positive("step", step_epochs=step_epochs, gamma=gamma)
    size = max(1, round(step_epochs * steps_per_epoch))
    return lambda s: gamma ** (s // size)


@SCHEDULES.register("multistep", description="multiply the LR by gamma at each epoch in milestones")
def multistep(*, steps_per_epoch: int, milestones: list[float] | None = None, gamma: float = 0.1) -> Multiplier:
    """Staircase decay at chosen epochs, e.g. ``milestones=[30, 60]``."""
    if not milestones:
        raise ValueError("multistep needs sched.milestones, the epochs where the LR drops, e.g. "
                         "--set sched.milestones=[10,15]")
    _positive("multistep", gamma=gamma)
    bounds = sorted(round(m * steps_per_epoch) for m in milestones)
    return lambda s: gamma ** sum(s >= b for b in bounds)


@SCHEDULES.register("exponential", description="smooth exponential decay by gamma per epoch")
def exponential(*, steps_per_epoch: int, gamma: float = 0.9) -> Multiplier:
    """``gamma ** (step / steps_per_epoch)``: the LR shrinks by ``gamma`` each epoch, smoothly per step."""
    _positive("exponential", gamma=gamma)
    return lambda s: gamma ** (s / steps_per_epoch)


@SCHEDULES.register("inverse_time", description="1 / (1 + decay * epoch) ** power (power 0.5: inverse square root)")
def inverse_time(*, steps_per_epoch: int, decay: float = 0.5, power: float = 1.0) -> Multiplier:
    """The classic ``η / (1 + k·t)`` decay of stochastic approximation, with ``t`` in (fractional) epochs."""
    _positive("inverse_time", decay=decay, power=power)
    return lambda s: (1.0 + decay * s / steps_per_epoch) ** -power


@SCHEDULES.register("cosine", description="cosine decay from the base LR to min_lr over the whole run")
def cosine(*, total_steps: int, base_lr: float, min_lr: float = 0.0) -> Multiplier:
    """Half a cosine wave from the base LR to ``min_lr`` over the steps after warmup."""
    low = _floor(min_lr, base_lr, "cosine")
    return lambda s: low + (1 - low) * 0.5 * (1 + math.cos(math.pi * min(s / total_steps, 1.0)))


@SCHEDULES.register("linear", description="straight line from the base LR to min_lr over the whole run")
def linear(*, total_steps: int, base_lr: float, min_lr: float = 0.0) -> Multiplier:
    """Linear decay to ``min_lr`` at the last step."""
    low = _floor(min_lr, base_lr, "linear")
    return lambda s: low + (1 - low) * (1 - min(s / total_steps, 1.0))


@SCHEDULES.register("polynomial", description="(1 - progress) ** power from the base LR to min_lr")
def polynomial(*, total_steps: int, base_lr: float, power: float = 2.0, min_lr: float = 0.0) -> Multiplier:
    """Polynomial decay; ``power=1`` is linear, larger powers drop faster early."""
    _positive("polynomial", power=power)
    low = _floor(min_lr, base_lr, "polynomial")
    return lambda s: low + (1 - low) * (1 - min(s / total_steps, 1.0)) ** power


@SCHEDULES.register("cosine_restarts", description="SGDR: cosine cycles of cycle_epochs (times cycle_mult each restart)")
def cosine_restarts(*, steps_per_epoch: int, base_lr: float, cycle_epochs: float = 10.0, cycle_mult: float = 1.0,
                    min_lr: float = 0.0) -> Multiplier:
    """Cosine decay to ``min_lr`` that jumps back to the base LR at each restart (Loshchilov & Hutter)."""
    _positive("cosine_restarts", cycle_epochs=cycle_epochs)
    if cycle_mult < 1.0:
        raise ValueError(f"sched.cycle_mult of cosine_restarts must be >= 1, got {cycle_mult}")
    low = _floor(min_lr, base_lr, "cosine_restarts")
    first = max(1.0, cycle_epochs * steps_per_epoch)

    def multiplier(s: int) -> float:
        length, start = first, 0.0
        while s >= start + length:
            start, length = start + length, length * cycle_mult
        return low + (1 - low) * 0.5 * (1 + math.cos(math.pi * (s - start) / length))

    return multiplier


@SCHEDULES.register("cyclic", description="triangular cycles between min_lr and the base LR (Smith's CLR)")
def cyclic(*, steps_per_epoch: int, base_lr: float, min_lr: float | None = None,
           half_cycle_epochs: float = 2.0) -> Multiplier:
    """Rise linearly from ``min_lr`` (default: base LR / 10) to the base LR in ``half_cycle_epochs``, fall back."""
    _positive("cyclic", half_cycle_epochs=half_cycle_epochs)
    low = _floor(base_lr / 10 if min_lr is None else min_lr, base_lr, "cyclic")
    half = max(1.0, half_cycle_epochs * steps_per_epoch)
    return lambda s: low + (1 - low) * (1 - abs((s / half) % 2 - 1))


@SCHEDULES.register("one_cycle", description="1cycle: warm up to the base LR for pct_start of the run, then anneal")
def one_cycle(*, total_steps: int, pct_start: float = 0.3, div_factor: float = 25.0,
              final_div_factor: float = 1e4) -> Multiplier:
    """Smith's 1cycle policy with cosine phases: base/div → base over ``pct_start``, then → base/(div·final)."""
    if not 0.0 < pct_start < 1.0:
        raise ValueError(f"sched.pct_start of one_cycle must be in (0, 1), got {pct_start}")
    _positive("one_cycle", div_factor=div_factor, final_div_factor=final_div_factor)
    start, end, peak = 1 / div_factor, 1 / (div_factor * final_div_factor), max(1.0, pct_start * total_steps)

    def multiplier(s: int) -> float:
        if s < peak:
            return start + (1 - start) * 0.5 * (1 - math.cos(math.pi * s / peak))
        progress = min((s - peak) / max(total_steps - peak, 1.0), 1.0)
        return end + (1 - end) * 0.5 * (1 + math.cos(math.pi * progress))

    return multiplier


class Plateau:
    """Multiply the LR by ``factor`` when ``monitor`` has not improved for ``patience`` epochs.

    It steps like every schedule, but only changes at epoch ends, when the trainer passes it the epoch's
    metrics through :meth:`observe`; its counters are part of the schedule's checkpointed state.
    """

    def __init__(self, monitor: str, mode: str, factor: float, patience: int, threshold: float, cooldown: int,
                 floor: float) -> None:
        self.monitor, self.mode, self.factor, self.patience = monitor, mode, factor, patience
        self.threshold, self.cooldown, self.floor = threshold, cooldown, floor
        self.scale, self.wait, self.cooling = 1.0, 0, 0
        self.best = math.inf if mode == "min" else -math.inf

    def __call__(self, step: int) -> float:
        return self.scale

    def observe(self, metrics: dict[str, float]) -> None:
        """Count an epoch without improvement of ``monitor`` (relative ``threshold``) and reduce when due."""
        if self.monitor not in metrics:
            raise KeyError(f"plateau schedule monitors '{self.monitor}' but the epoch produced only: "
                           f"{', '.join(metrics)}; set sched.monitor")
        value = metrics[self.monitor]
        better = value < self.best * (1 - self.threshold) if self.mode == "min" else value > self.best * (1 + self.threshold)
        if better:
            self.best, self.wait = value, 0
        elif self.cooling > 0:
            self.cooling -= 1
        else:
            self.wait += 1
        if self.wait >= self.patience:
            self.scale, self.wait, self.cooling = max(self.scale * self.factor, self.floor), 0, self.cooldown

    def state_dict(self) -> dict[str, Any]:
        return {"scale": self.scale, "wait": self.wait, "cooling": self.cooling, "best": self.best}

    def load_state_dict(self, data: dict[str, Any]) -> None:
        self.scale, self.wait, self.cooling, self.best = data["scale"], data["wait"], data["cooling"], data["best"]


@SCHEDULES.register("plateau", description="reduce the LR by factor when a monitored metric stops improving")
def plateau(*, base_lr: float, monitor: str = "val_loss", mode: Literal["min", "max"] = "min", factor: float = 0.1,
            patience: int = 3, threshold: float = 1e-4, cooldown: int = 0, min_lr: float = 0.0) -> Plateau:
    """ReduceLROnPlateau, per epoch: ``patience`` epochs without a relative improvement of ``threshold``."""
    if not 0.0 < factor < 1.0:
        raise ValueError(f"sched.factor of plateau must be in (0, 1), got {factor}")
    if patience < 1 or cooldown < 0 or threshold < 0:
        raise ValueError("sched.patience of plateau must be >= 1, cooldown >= 0 and threshold >= 0")
    return Plateau(monitor, mode, factor, patience, threshold, cooldown, _floor(min_lr, base_lr, "plateau"))
