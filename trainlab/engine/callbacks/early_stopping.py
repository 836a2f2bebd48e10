"""Stop when a monitored metric stops improving; optionally put back the weights that scored best.

"The weights that scored best" means everything evaluation used at the best epoch: the trained weights and,
with ``train.ema``, the averaged weights that were actually validated.  Restoring only the trained weights would
leave the EMA — which ``eval``, ``predict`` and test metrics use — at the last epoch's average.

:func:`improved` is the one definition of "better" in the loop.  When early stopping is on, the checkpoint
callback's ``best`` follows this callback's decisions (see ``checkpoint.share_best_rule``), so the ``best-*``
checkpoint, the weights restored at the end, the test metrics, ``eval`` and ``predict`` are all one epoch.

In a distributed run (torchrun) every rank runs this callback on the same metrics — training and validation
sums are all-reduced before ``state.metrics`` is filled — so every rank stops at the same epoch and restores the
same weights; the trainer also makes any rank's stop everyone's (``distributed.sync_step``).
"""

from __future__ import annotations

import math
from typing import Any, Literal

from trainlab.engine.callbacks.base import Callback, TrainerView
from trainlab.engine.state import TrainState
from trainlab.registry import CALLBACKS


def improved(value: float, best: float, mode: Literal["min", "max"], min_delta: float = 0.0) -> bool:
    """True when ``value`` beats ``best`` by more than ``min_delta`` in direction ``mode``.

    A non-finite value (NaN, ±inf: a diverging or degenerate epoch) is never an improvement.
    """
    if not math.isfinite(value):
        return False
    if mode == "min":
        return value < best - min_delta
    return value > best + min_delta


@CALLBACKS.register("early_stopping", description="stop after `patience` epochs without improvement; restore best")
class EarlyStopping(Callback):
    """Watch ``monitor`` at each epoch end; an improvement must beat the best by more than ``min_delta``."""

    order = 20

    def __init__(self, monitor: str = "val_loss", mode: Literal["min", "max"] = "min", patience: int = 5,
                 min_delta: float = 0.0, restore_best: bool = True) -> None:
        if patience < 1:
            raise ValueError(f"early_stopping patience must be >= 1, got {patience}")
        self.monitor, self.mode, self.patience = monitor, mode, patience
        self.min_delta, self.restore_best = abs(min_delta), restore_best
        self.best = math.inf if mode == "min" else -math.inf
        self.best_epoch = 0
        self.wait = 0
        self.best_weights: dict[str, Any] | None = None  # Trainer.weights_snapshot(): CPU copies of model and EMA

    def improved(self, value: float) -> bool:
        """True when ``value`` beats the best so far by more than ``min_delta``."""
        return improved(value, self.best, self.mode, self.min_delta)

    def on_epoch_end(self, trainer: TrainerView, state: TrainState) -> None:
        if self.monitor not in state.metrics:
            raise KeyError(f"early_stopping monitors '{self.monitor}' but the epoch produced only: "
                           f"{', '.join(state.metrics)}; set callbacks.early_stopping.monitor")
        value = state.metrics[self.monitor]
        if self.improved(value):
            self.best, self.best_epoch, self.wait = value, state.epoch, 0
            if self.restore_best:
                self.best_weights = trainer.weights_snapshot()
            return
        self.wait += 1
        if self.wait >= self.patience:
            state.stop(f"early stopping: {self.monitor} has not improved for {self.patience} epochs "
                       f"(best {self.best:.4g} at epoch {self.best_epoch})")

    def on_fit_end(self, trainer: TrainerView, state: TrainState) -> None:
        if self.restore_best and self.best_weights is not None and self.best_epoch != state.epoch:
            trainer.restore_weights(self.best_weights)

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "best_epoch": self.best_epoch, "wait": self.wait, "best_weights": self.best_weights}

    def load_state_dict(self, data: dict[str, Any]) -> None:
        self.best, self.best_epoch, self.wait = data["best"], data["best_epoch"], data["wait"]
        best = data["best_weights"]
        # checkpoints from before the EMA was kept hold the bare model state dict
        self.best_weights = best if best is None or "model" in best else {"model": best, "ema": None}
