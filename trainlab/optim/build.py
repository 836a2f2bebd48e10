"""Turn the ``optim`` and ``sched`` config sections into an optimizer and a per-step :class:`Schedule`."""

from __future__ import annotations

import math
from typing import Any, Iterable

import torch
from torch import nn

from trainlab.config import FinetuneConfig, OptimConfig, SchedConfig
from trainlab.optim.finetune import finetune_groups
from trainlab.optim.groups import param_groups
from trainlab.optim.schedules import Multiplier
from trainlab.registry import OPTIMIZERS, SCHEDULES, builder_params


def build_optimizer(cfg: OptimConfig, model: nn.Module | Iterable[Any],
                    finetune: FinetuneConfig | None = None) -> torch.optim.Optimizer:
    """The configured optimizer over ``model``'s parameter groups (or over a plain iterable of parameters).

    Per-group options (``no_decay_norm_bias``, ``head_lr_mult``, an active ``finetune`` section) need the module
    structure, so they require a model rather than bare parameters.  Fine-tuning groups follow the model's blocks
    (:func:`~trainlab.optim.finetune.finetune_groups`).
    """
    if isinstance(model, nn.Module) and finetune is not None and finetune.active():
        params: Any = finetune_groups(model, cfg, finetune)
    elif isinstance(model, nn.Module):
        params = param_groups(model, lr=cfg.lr, weight_decay=cfg.weight_decay,
                                   no_decay_norm_bias=cfg.no_decay_norm_bias, head_lr_mult=cfg.head_lr_mult)
    elif cfg.no_decay_norm_bias or cfg.head_lr_mult != 1.0 or (finetune is not None and finetune.active()):
        raise ValueError("optim.no_decay_norm_bias, optim.head_lr_mult and the finetune section need the model, not "
                         "bare parameters: call build_optimizer(cfg, model)")
    else:
        params = list(model)
    return OPTIMIZERS.get(cfg.name)(params, lr=cfg.lr, weight_decay=cfg.weight_decay, **cfg.options())


class Schedule:
    """Sets every group's LR to ``base_lr × factor(step)`` after each optimizer update.

    ``factor`` is linear warmup from ``1/(warmup+1)`` to 1 over ``warmup`` steps, then the named schedule from
    its own step 0.  Unlike ``LambdaLR`` it checkpoints the multiplier's own state (the plateau counters)
    with plain values only, and forwards epoch metrics to multipliers that watch them (:meth:`observe`).
    """

    def __init__(self, optimizer: torch.optim.Optimizer, multiplier: Multiplier, warmup: int = 0) -> None:
        self.optimizer, self.multiplier, self.warmup = optimizer, multiplier, warmup
        self.base_lrs = [group["lr"] for group in optimizer.param_groups]
        self.last_step = 0
        self._apply()

    def factor(self, step: int) -> float:
        """The LR multiplier in force for update number ``step`` (0-based)."""
        if step < self.warmup:
            return (step + 1) / (self.warmup + 1)
        return self.multiplier(step - self.warmup)

    def step(self) -> None:
        """Advance one optimizer update."""
        self.last_step += 1
        self._apply()

    def observe(self, metrics: dict[str, float]) -> None:
        """Epoch-end metrics, for schedules that react to them (``plateau``); others ignore them."""
        observe = getattr(self.multiplier, "observe", None)
        if observe is not None:
            observe(metrics)
            self._apply()

    def get_last_lr(self) -> list[float]:
        return [group["lr"] for group in self.optimizer.param_groups]

    def _apply(self) -> None:
        factor = self.factor(self.last_step)
        for group, base in zip(self.optimizer.param_groups, self.base_lrs):
            group["lr"] = base * factor

    def state_dict(self) -> dict[str, Any]:
        own = getattr(self.multiplier, "state_dict", None)
        return {"last_step": self.last_step, "base_lrs": list(self.base_lrs), "multiplier": own() if own else {}}

    def load_state_dict(self, data: dict[str, Any]) -> None:
        self.last_step, self.base_lrs = data["last_step"], list(data["base_lrs"])
        if data["multiplier"]:
            self.multiplier.load_state_dict(data["multiplier"])  # type: ignore[attr-defined]
        self._apply()


def warmup_steps(cfg: SchedConfig, steps_per_epoch: int | None) -> int:
    """``sched.warmup`` (updates) or ``sched.warmup_epochs`` converted to updates; not both."""
    if cfg.warmup and cfg.warmup_epochs:
        raise ValueError(f"set sched.warmup ({cfg.warmup} steps) or sched.warmup_epochs ({cfg.warmup_epochs}), "
                         "not both")
    if cfg.warmup_epochs:
        return round(cfg.warmup_epochs * _need_steps_per_epoch(steps_per_epoch, "sched.warmup_epochs"))
    return cfg.warmup


def _need_steps_per_epoch(steps_per_epoch: int | None, what: str) -> int:
    if not steps_per_epoch:
        raise ValueError(f"{what} is measured in epochs: build_schedule needs steps_per_epoch")
    return steps_per_epoch


def build_schedule(cfg: SchedConfig, optimizer: torch.optim.Optimizer, total_steps: int, *,
                   steps_per_epoch: int | None = None) -> Schedule:
    """A per-update :class:`Schedule`; ``total_steps`` counts all optimizer updates of the run, warmup included."""
    warmup = warmup_steps(cfg, steps_per_epoch)
    if warmup >= total_steps:
        raise ValueError(f"sched warmup ({warmup} steps) must be shorter than the run ({total_steps} steps); "
                         "lower sched.warmup / sched.warmup_epochs or train longer")
    builder = SCHEDULES.get(cfg.name)
    available = {"total_steps": total_steps - warmup, "base_lr": optimizer.defaults["lr"],
                 "steps_per_epoch": steps_per_epoch}
    supplied = {key: value for key, value in available.items() if key in builder_params(builder)}
    if "steps_per_epoch" in supplied:
        _need_steps_per_epoch(steps_per_epoch, f"schedule '{cfg.name}'")
    return Schedule(optimizer, builder(**supplied, **cfg.options()), warmup)


def lr_curve(cfg: SchedConfig, lr: float, total_steps: int, steps_per_epoch: int) -> list[float]:
    """The LR at every update of a run, computed without a model (for ``trainlab schedule plot``)."""
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=lr)
    schedule = build_schedule(cfg, optimizer, total_steps, steps_per_epoch=steps_per_epoch)
    curve = []
    for _ in range(total_steps):
        curve.append(schedule.get_last_lr()[0])
        schedule.step()
    return curve


def updates_per_epoch(batches: int, accumulate: int) -> int:
    """Optimizer updates in an epoch of ``batches`` batches with gradient accumulation over ``accumulate``."""
    return math.ceil(batches / accumulate)
