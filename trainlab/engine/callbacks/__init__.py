"""Built-in callbacks, one per file, registered by name in :data:`trainlab.registry.CALLBACKS`."""

from trainlab.engine.callbacks import (  # noqa: F401  (registration)
    checkpoint,
    csv_logger,
    early_stopping,
    nan_guard,
    plot_curves,
    progress,
)
from trainlab.engine.callbacks.base import Callback

__all__ = ["Callback"]
