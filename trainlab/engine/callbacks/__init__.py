"""The loop's own callbacks, one per file, registered by name in :data:`trainlab.registry.CALLBACKS`.

Callbacks that write run files (``csv_logger``, ``plot_curves``) belong to the run directory's users and live in
:mod:`trainlab.training`.
"""

from trainlab.engine.callbacks import checkpoint, early_stopping, finetune, nan_guard, progress  # noqa: F401
from trainlab.engine.callbacks.base import Callback, TrainerView

__all__ = ["Callback", "TrainerView"]
