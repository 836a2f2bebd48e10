"""Save the last and best checkpoints each epoch, and a mid-epoch one on Ctrl-C.

A checkpoint is never written from non-finite weights.  On an accelerator the NaN guard reads its device-side
record only every ``train.log_every`` steps, so a step checkpoint (``every_steps``) or an interrupt between two
reads could otherwise capture a diverged model; saving already waits for the device, so the check is free.

"Best" has one definition per run.  Without early stopping it is this callback's ``monitor``/``mode`` (any
strict improvement).  With early stopping on, :func:`share_best_rule` makes this callback follow early
stopping's decisions — its monitor, mode and ``min_delta`` — so the ``best-*`` checkpoint that test metrics,
``eval`` and ``predict`` use is the epoch whose weights early stopping restores.
"""

from __future__ import annotations

import logging
import math
from typing import Any, Literal, Mapping

import torch
from torch import nn

from trainlab.engine.callbacks.base import Callback, TrainerView
from trainlab.engine.callbacks.early_stopping import EarlyStopping, improved
from trainlab.engine.state import TrainState
from trainlab.registry import CALLBACKS

logger = logging.getLogger(__name__)


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
        self.rule: EarlyStopping | None = None  # set by share_best_rule: whose decision "best" is
        self._warned_non_finite = False

    def follow(self, rule: EarlyStopping) -> None:
        """Save ``best`` exactly when ``rule`` (early stopping, which runs earlier at each epoch end) records a new
        best epoch, instead of by this callback's own monitor and mode."""
        if (self.monitor, self.mode) != (rule.monitor, rule.mode):
            logger.info("checkpoint: 'best' follows early_stopping (%s, mode %s, min_delta %g) instead of "
                        "callbacks.checkpoint (%s, mode %s), so the best checkpoint is the epoch early stopping "
                        "restores", rule.monitor, rule.mode, rule.min_delta, self.monitor, self.mode)
        self.rule = rule
        self.monitor, self.mode = rule.monitor, rule.mode
        self.best = math.inf if rule.mode == "min" else -math.inf  # recorded for the reader; the rule decides

    def on_batch_end(self, trainer: TrainerView, state: TrainState) -> None:
        if self.every_steps and state.step % self.every_steps == 0 and not state.failed and not state.should_stop:
            self._save(trainer, state, "last", self.keep)

    def on_epoch_end(self, trainer: TrainerView, state: TrainState) -> None:
        if state.failed:
            return
        if self.save_best and self._is_best(state):
            self.best = state.metrics[self.monitor]
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
                logger.warning(f"checkpoint '{kind}' at step {state.step} skipped: the weights hold NaN or Inf "
                               "(the previous checkpoint is kept; later ones are skipped too)")
                self._warned_non_finite = True
            return
        trainer.save_checkpoint(kind, keep=keep)

    def _is_best(self, state: TrainState) -> bool:
        """Whether this epoch is the new best: early stopping's verdict when following it, else a strict
        improvement of ``monitor`` in direction ``mode`` (never a NaN or infinite value)."""
        if self.rule is not None:
            return self.rule.best_epoch == state.epoch and self.monitor in state.metrics
        value = state.metrics.get(self.monitor)
        return value is not None and improved(value, self.best, self.mode)

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best}

    def load_state_dict(self, data: dict[str, Any]) -> None:
        self.best = data["best"]


def share_best_rule(callbacks: Mapping[str, Callback]) -> None:
    """Give a run one definition of its best epoch: with early stopping enabled, every checkpoint callback
    follows its decisions (monitor, mode, ``min_delta``).

    Without this, ``restore_best`` with a ``min_delta`` put back one epoch's weights while the ``best-*``
    checkpoint — the one test metrics, ``eval`` and ``predict`` load — held another.  Call it once the callbacks
    of a fit are built, before training or resuming.
    """
    rules = [cb for cb in callbacks.values() if isinstance(cb, EarlyStopping)]
    if len(rules) != 1:  # none: the checkpoint's own rule; several: no single answer, keep each its own
        return
    for cb in callbacks.values():
        if isinstance(cb, CheckpointCallback):
            cb.follow(rules[0])


def weights_finite(model: nn.Module) -> bool:
    """Whether every floating-point parameter is finite (one device sync for the whole model)."""
    checks = [torch.isfinite(p).all() for p in model.parameters() if p.is_floating_point()]
    return bool(torch.stack(checks).all()) if checks else True
