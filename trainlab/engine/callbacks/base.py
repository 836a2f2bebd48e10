"""The callback protocol: no-op hooks that receive ``(trainer, state)``, where ``trainer`` is a small typed view."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn

from trainlab.engine.state import TrainState


class TrainerView(Protocol):
    """What a callback may use of the trainer — nothing else, so the loop's internals stay free to change.

    ``run_dir`` is where run files go (None when nothing is written, e.g. an evaluation); ``save_checkpoint``
    writes into the checkpoint directory the trainer was handed; ``weights_snapshot``/``restore_weights`` put back
    exactly what evaluation used (trained weights and EMA).
    """

    model: nn.Module
    device: torch.device
    log_every: int
    run_dir: Path | None

    @property
    def batch_size(self) -> int: ...

    @property
    def lr(self) -> float: ...

    def save_checkpoint(self, kind: str, keep: int = 1) -> Path: ...

    def weights_snapshot(self) -> dict[str, Any]: ...

    def restore_weights(self, snapshot: dict[str, Any]) -> None: ...


class Callback:
    """Base class; override the hooks you need.

    Callbacks read ``state.metrics``, call ``state.stop(...)``, and use only the :class:`TrainerView`; they keep
    their own state in :meth:`state_dict` so a resumed run continues them exactly.  ``order`` sorts callbacks:
    lower runs first at every hook.
    """

    order: int = 50

    def on_fit_start(self, trainer: TrainerView, state: TrainState) -> None: ...

    def on_epoch_start(self, trainer: TrainerView, state: TrainState) -> None: ...

    def on_batch_end(self, trainer: TrainerView, state: TrainState) -> None: ...

    def on_epoch_end(self, trainer: TrainerView, state: TrainState) -> None: ...

    def on_fit_end(self, trainer: TrainerView, state: TrainState) -> None: ...

    def on_interrupt(self, trainer: TrainerView, state: TrainState) -> None: ...

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, data: dict[str, Any]) -> None: ...
