"""PyTorch's own LR schedulers by name (``torch.LinearLR``, ``torch.CosineAnnealingLR``, …), with torch's semantics.

Each registered builder takes the torch class's own arguments (its signature, minus ``optimizer`` and
``last_epoch``), so the config checks names and types against torch's signature, plus ``interval``: whether one
scheduler step is one optimizer update (``update``) or one epoch (``epoch``; the default except for
``torch.OneCycleLR``, as in torch's documentation).  Epochs are counted after any warmup.

The LRs are torch's: a private copy of the scheduler is driven step by step on a one-parameter optimizer at the
base LR, exactly as a user would drive it by hand, and trainlab's :class:`~trainlab.optim.build.Schedule`
applies ``lr / base_lr`` as its multiplier.  So warmup, parameter groups (each group's LR scales with the
multiplier; absolute values such as ``eta_min`` or ``max_lr`` are read against ``optim.lr``), checkpoints (the
multiplier is a function of the step) and ``trainlab schedule plot`` all work unchanged.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable
from typing import Any, Literal

import torch
from torch.optim import lr_scheduler

from trainlab.registry import SCHEDULES

Interval = Literal["epoch", "update"]
# trainlab runs the scheduler for the whole run and resumes it from the step count, so these are never the user's;
# OneCycleLR's momentum cycling would need the real optimizer, and trainlab cycles the LR only.
HIDDEN = {"optimizer", "last_epoch", "verbose", "epochs", "steps_per_epoch", "total_steps", "cycle_momentum",
          "base_momentum", "max_momentum"}
# class name → (the interval one scheduler step is by default, what it does)
CLASSES: dict[str, tuple[Interval, str]] = {
    "LinearLR": ("epoch", "factor from start_factor to end_factor over total_iters steps, then held"),
    "ConstantLR": ("epoch", "factor for total_iters steps, then the base LR"),
    "StepLR": ("epoch", "multiply by gamma every step_size steps"),
    "MultiStepLR": ("epoch", "multiply by gamma at each step in milestones"),
    "ExponentialLR": ("epoch", "multiply by gamma every step"),
    "PolynomialLR": ("epoch", "(1 - t/total_iters) ** power to zero at total_iters, then held"),
    "CosineAnnealingLR": ("epoch", "cosine to eta_min over T_max steps, then back up: period 2*T_max"),
    "CosineAnnealingWarmRestarts": ("epoch", "SGDR: cosine to eta_min, restart after T_0 (times T_mult) steps"),
    "OneCycleLR": ("update", "1cycle up to max_lr (default optim.lr) and down over the run; LR only"),
}


class TorchMultiplier:
    """``step → lr / base_lr`` of a torch scheduler, computed by stepping a private copy of it as far as asked.

    ``interval`` ``epoch`` turns trainlab's update count into epochs (``steps_per_epoch`` updates each);
    ``last`` caps the scheduler's step count (OneCycleLR refuses to step past its ``total_steps``).
    """

    def __init__(self, scheduler: Any, optimizer: torch.optim.Optimizer, base_lr: float, per_step: int,
                 last: int | None) -> None:
        self.scheduler, self.optimizer, self.base_lr = scheduler, optimizer, base_lr
        self.per_step, self.last = per_step, last
        self.factors = [optimizer.param_groups[0]["lr"] / base_lr]

    def __call__(self, step: int) -> float:
        index = step // self.per_step
        if self.last is not None:
            index = min(index, self.last)
        while len(self.factors) <= index:
            self.scheduler.step()
            self.factors.append(self.optimizer.param_groups[0]["lr"] / self.base_lr)
        return self.factors[index]


def _annotations(cls: type) -> dict[str, Any]:
    """The constructor's annotations as types; torch writes them as strings (``Iterable[int]`` becomes a list)."""
    namespace = {**vars(typing), **vars(lr_scheduler), "Iterable": list, "Optimizer": torch.optim.Optimizer}
    hints: dict[str, Any] = {}
    for name, hint in inspect.get_annotations(cls.__init__).items():
        try:
            hints[name] = eval(hint, namespace) if isinstance(hint, str) else hint  # torch's own annotation text
        except (NameError, SyntaxError, TypeError):
            continue  # left unchecked by the config rather than guessed
    return hints


def _signature(cls: type, interval: Interval) -> tuple[inspect.Signature, dict[str, Any]]:
    """trainlab's supplied keywords, ``interval``, then the class's own keywords (OneCycleLR's ``max_lr`` optional)."""
    keyword = inspect.Parameter.KEYWORD_ONLY
    hints = _annotations(cls)
    params = [inspect.Parameter(name, keyword) for name in ("base_lr", "steps_per_epoch", "total_steps")]
    params.append(inspect.Parameter("interval", keyword, default=interval, annotation=Interval))
    annotations: dict[str, Any] = {"interval": Interval}
    for name, param in inspect.signature(cls).parameters.items():
        if name in HIDDEN:
            continue
        hint, default = hints.get(name, Any), param.default
        if cls is lr_scheduler.OneCycleLR and name == "max_lr":
            hint, default = float | None, None  # None: optim.lr is the peak
        elif default is param.empty:  # required by torch: None here, so a missing one gets the error below
            hint, default = hint | None, None
        params.append(inspect.Parameter(name, keyword, default=default, annotation=hint))
        annotations[name] = hint
    return inspect.Signature(params, return_annotation=TorchMultiplier), annotations


def _run_length(total_steps: int, steps_per_epoch: int | None, interval: Interval) -> int:
    """Scheduler steps in the run after warmup, in ``interval`` units."""
    return total_steps if interval == "update" else -(-total_steps // (steps_per_epoch or 1))


def _builder(class_name: str, interval: Interval) -> Callable[..., TorchMultiplier]:
    cls = getattr(lr_scheduler, class_name)
    name = f"torch.{class_name}"

    def build(*, base_lr: float, steps_per_epoch: int, total_steps: int, interval: Interval = interval,
              **options: Any) -> TorchMultiplier:
        # The keywords are torch's, published as ``__signature__`` below for the config to check against; they
        # are forwarded as given, so this function never has to copy torch's defaults.
        if interval not in ("epoch", "update"):
            raise ValueError(f"sched.interval of {name} must be epoch or update, got {interval!r}")
        missing = [key for key, param in inspect.signature(cls).parameters.items()
                   if param.default is param.empty and key not in HIDDEN and options.get(key) is None
                   and key != "max_lr"]
        if missing:
            raise ValueError(f"sched: {name} needs {', '.join(f'sched.{key}' for key in missing)} "
                             f"(e.g. --set sched.{missing[0]}=...; see torch.optim.lr_scheduler.{class_name})")
        length = _run_length(total_steps, steps_per_epoch, interval)
        last = None
        if cls is lr_scheduler.OneCycleLR:
            options = {**options, "max_lr": options.get("max_lr") or base_lr, "total_steps": length,
                       "cycle_momentum": False}
            last = length - 1
        optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=base_lr)
        per_step = steps_per_epoch if interval == "epoch" else 1
        try:
            scheduler = cls(optimizer, **options)
            optimizer.step()  # no gradients, no change; tells torch its scheduler steps after the optimizer
            multiplier = TorchMultiplier(scheduler, optimizer, base_lr, per_step, last)
            multiplier(2 * per_step)  # some values torch accepts fail at its first steps (StepLR step_size=0)
        except (ValueError, TypeError, ZeroDivisionError) as err:
            raise ValueError(f"sched: {name} refused its arguments {options}: {err}") from None
        return multiplier

    build.__name__ = build.__qualname__ = class_name
    build.__signature__, build.__annotations__ = _signature(cls, interval)  # type: ignore[attr-defined]
    build.__doc__ = f"torch.optim.lr_scheduler.{class_name}, stepped once per {interval} by default."
    return build


for _class_name, (_interval, _what) in CLASSES.items():
    SCHEDULES.add(f"torch.{_class_name}", _builder(_class_name, _interval),
                  description=f"torch's {_class_name}: {_what} (one step per {_interval} unless sched.interval)")

