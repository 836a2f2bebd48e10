"""TrainState: everything callbacks may read or set, and everything a resume needs about progress."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch


@dataclass
class TrainState:
    """Progress of one fit.

    ``epoch`` counts completed epochs and ``batch_in_epoch`` the batches done in the current one, so a
    checkpoint taken mid-epoch resumes at the next batch.  ``metrics`` holds the latest values read from the
    device (refreshed every ``log_every`` steps and at each epoch end); ``history`` one row per epoch.
    """

    epochs: int
    steps_per_epoch: int
    epoch: int = 0
    step: int = 0
    batch_in_epoch: int = 0
    metrics: dict[str, float] = field(default_factory=dict)
    history: list[dict[str, float]] = field(default_factory=list)
    should_stop: bool = False
    stop_reason: str | None = None
    failed: bool = False
    last_loss: torch.Tensor | None = None
    train_seconds: float = 0.0
    epoch_seconds: float = 0.0

    def stop(self, reason: str, failed: bool = False) -> None:
        """Ask the trainer to stop after the current step; ``failed`` marks a run that must not be trusted."""
        self.should_stop = True
        self.stop_reason = reason
        self.failed = self.failed or failed

    def state_dict(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "step": self.step,
            "batch_in_epoch": self.batch_in_epoch,
            "metrics": dict(self.metrics),
            "history": [dict(row) for row in self.history],
            "train_seconds": self.train_seconds,
            "epoch_seconds": self.epoch_seconds,
        }

    def load_state_dict(self, data: dict[str, Any]) -> None:
        for key, value in data.items():
            setattr(self, key, value)
