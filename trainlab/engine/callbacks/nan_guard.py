"""Stop a diverging run at the first non-finite loss, before a bad checkpoint can be written.

Reading the loss is free on the CPU but forces a GPU to finish all queued work, which costs the step
pipelining that makes small models fast there.  So by default the guard reads every step on the CPU, while on
an accelerator it records the first bad step on the device (no sync) and reads that record when the trainer
reads its metrics anyway (every ``train.log_every`` steps) and at the end of each epoch, before any
end-of-epoch checkpoint.  The message names the exact step either way; ``every=N`` forces a read each N steps.
"""

from __future__ import annotations

import math

import torch

from trainlab.engine.callbacks.base import Callback, TrainerView
from trainlab.engine.state import TrainState
from trainlab.registry import CALLBACKS


@CALLBACKS.register("nan_guard", description="stop with a clear message when the loss becomes NaN or Inf")
class NanGuard(Callback):
    """Check the loss each step on the CPU, or via a device-side record at log intervals (``every=None``)."""

    order = 0

    def __init__(self, every: int | None = None) -> None:
        if every is not None and every < 1:
            raise ValueError(f"nan_guard every must be >= 1 (or null for automatic), got {every}")
        self.every = every
        self._first_bad: torch.Tensor | None = None
        self._bad_loss: torch.Tensor | None = None

    def on_batch_end(self, trainer: TrainerView, state: TrainState) -> None:
        loss = state.last_loss
        if loss is None:
            return
        if self.every is not None or loss.device.type == "cpu":
            if state.step % (self.every or 1) == 0:
                self._judge(state, float(loss), state.step, state.epoch + 1, state.batch_in_epoch)
            return
        self._record(loss.detach(), state.step)
        log_every = trainer.log_every
        if state.step % log_every == 0 or state.batch_in_epoch >= state.steps_per_epoch:
            self._read_record(state)

    def _record(self, loss: torch.Tensor, step: int) -> None:
        """Remember the first non-finite loss and its step, on the device."""
        if self._first_bad is None:
            self._first_bad = torch.full((), -1, dtype=torch.long, device=loss.device)
            self._bad_loss = torch.zeros((), dtype=torch.float32, device=loss.device)
        fresh = ~torch.isfinite(loss) & (self._first_bad < 0)
        self._first_bad = torch.where(fresh, step, self._first_bad)
        self._bad_loss = torch.where(fresh, loss.float(), self._bad_loss)

    def _read_record(self, state: TrainState) -> None:
        step = int(self._first_bad)  # type: ignore[arg-type]  # the one sync per interval
        if step >= 0:  # steps count batches from 1, so the epoch and batch follow from it
            epoch, batch = (step - 1) // state.steps_per_epoch + 1, (step - 1) % state.steps_per_epoch + 1
            self._judge(state, float(self._bad_loss), step, epoch, batch)  # type: ignore[arg-type]

    @staticmethod
    def _judge(state: TrainState, loss: float, step: int, epoch: int, batch: int) -> None:
        if math.isfinite(loss):
            return
        state.stop(f"loss became {loss} at epoch {epoch}, step {step} "
                   f"(batch {batch} of the epoch); lower the learning rate or clip gradients "
                   f"(train stopped; the last good checkpoint is kept)", failed=True)
