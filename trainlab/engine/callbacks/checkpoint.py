"""Save the last and best checkpoints each epoch, and a mid-epoch one on Ctrl-C.

A checkpoint is never written from non-finite weights.  On an accelerator the NaN guard reads its device-side
record only every ``train.log_every`` steps, so a step checkpoint (``every_steps``) or an interrupt between two
reads could otherwise capture a diverged model; saving already waits for the device, so the check is free.
"""

from __future__ import annotations

import math
import warnings
from typing import Any, Literal

import torch
from torch import nn

from trainlab.engine.callbacks.base import Callback, TrainerView
from trainlab.engine.state import TrainState
from trainlab.registry import CALLBACKS


@CALLBACKS.register("checkpoint", description="atomic 'last' checkpoint every N epochs and 'best' by a metric")
class CheckpointCallback(Callback):
    """Write ``last`` every ``every`` epochs (or every ``every_steps`` steps, and on interrupt) and ``best`` when
    ``monitor`` improves."""

    order = 90  # after callbacks that update their own state at epoch end, so the checkpoint includes it

    def __init__(self, every: int = 1, keep: int = 1, monitor: str = "val_loss", mode: Literal["min", "max"] = "min",
                 save_best: bool = True, every_steps: int = 0) -> None:
        if every < 1 or keep < 1 or every_steps < 0:
            raise ValueError("checkpoint every and keep must be >= 1, every_steps >= 0 (0: only at epoch ends)")
        self.every, self.keep, self.monitor, self.mode, self.save_best = every, keep, monitor, mode, save_best
        self.every_steps = every_steps
        self.best = math.inf if mode == "min" else -math.inf
        self._warned_non_finite = False

    def on_batch_end(self, trainer: TrainerView, state: TrainState) -> None:
        if self.every_steps and state.step % self.every_steps == 0 and not state.failed and not state.should_stop:
            self._save(trainer, state, "last", self.keep)

    def on_epoch_end(self, trainer: TrainerView, state: TrainState) -> None:
        if state.failed:
            return
        value = state.metrics.get(self.monitor)
        if self.save_best and value is not None and math.isfinite(value) and self._better(value):
            self.best = value
            self._save(trainer, state, "best", 1)
        if state.epoch % self.every == 0 or state.epoch == state.epochs:
            self._save(trainer, state, "last", self.keep)

    def on_fit_end(self, trainer: TrainerView, state: TrainState) -> None:
        if not state.failed and state.batch_in_epoch:
            self._save(trainer, state, "last", self.keep)

    def on_interrupt(self, trainer: TrainerView, state: TrainState) -> None:
        if not state.failed:
            self._save(trainer, state, "last", self.keep)

    def _save(self, trainer: TrainerView, state: TrainState, kind: str, keep: int) -> None:
        if not weights_finite(trainer.model):
            if not self._warned_non_finite:  # once per run: every later save would repeat it
                warnings.warn(f"checkpoint '{kind}' at step {state.step} skipped: the weights hold NaN or Inf "
                              "(the previous checkpoint is kept; later ones are skipped too)", stacklevel=3)
                self._warned_non_finite = True
            return
        trainer.save_checkpoint(kind, keep=keep)

    def _better(self, value: float) -> bool:
        return value < self.best if self.mode == "min" else value > self.best

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best}

    def load_state_dict(self, data: dict[str, Any]) -> None:
        self.best = data["best"]


def weights_finite(model: nn.Module) -> bool:
    """Whether every floating-point parameter is finite (one device sync for the whole model)."""
    checks = [torch.isfinite(p).all() for p in model.parameters() if p.is_floating_point()]
    return bool(torch.stack(checks).all()) if checks else True
