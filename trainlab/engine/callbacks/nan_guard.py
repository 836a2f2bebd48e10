"""Stop a diverging run at the first non-finite loss, before a bad checkpoint can be written."""

from __future__ import annotations

import math
from typing import Any

from trainlab.engine.callbacks.base import Callback
from trainlab.registry import CALLBACKS


@CALLBACKS.register("nan_guard", description="stop with a clear message when the loss becomes NaN or Inf")
class NanGuard(Callback):
    """Check the last step's loss every ``every`` steps (each check reads one number from the device)."""

    order = 0

    def __init__(self, every: int = 1) -> None:
        if every < 1:
            raise ValueError(f"nan_guard every must be >= 1, got {every}")
        self.every = every

    def on_batch_end(self, trainer: Any, state: Any) -> None:
        if state.step % self.every or state.last_loss is None:
            return
        loss = float(state.last_loss)
        if not math.isfinite(loss):
            state.stop(f"loss became {loss} at epoch {state.epoch + 1}, step {state.step} "
                       f"(batch {state.batch_in_epoch} of the epoch); lower the learning rate or clip gradients "
                       f"(train stopped; the last good checkpoint is kept)", failed=True)
