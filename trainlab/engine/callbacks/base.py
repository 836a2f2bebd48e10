"""The callback protocol: no-op hooks that receive ``(trainer, state)``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from trainlab.engine.state import TrainState
    from trainlab.engine.trainer import Trainer


class Callback:
    """Base class; override the hooks you need.

    Callbacks read ``state.metrics``, call ``state.stop(...)``, and use the trainer's public methods
    (``save_checkpoint``, ``weights_snapshot``/``restore_weights``, ``model``); they keep their own state in
    :meth:`state_dict` so a resumed run continues them exactly.  ``order`` sorts callbacks: lower runs first at
    every hook.
    """

    order: int = 50

    def on_fit_start(self, trainer: "Trainer", state: "TrainState") -> None: ...

    def on_epoch_start(self, trainer: "Trainer", state: "TrainState") -> None: ...

    def on_batch_end(self, trainer: "Trainer", state: "TrainState") -> None: ...

    def on_epoch_end(self, trainer: "Trainer", state: "TrainState") -> None: ...

    def on_fit_end(self, trainer: "Trainer", state: "TrainState") -> None: ...

    def on_interrupt(self, trainer: "Trainer", state: "TrainState") -> None: ...

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, data: dict[str, Any]) -> None: ...
