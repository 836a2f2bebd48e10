"""metrics.csv: one row per epoch, rewritten whole each epoch so it always matches the checkpointed history."""

from __future__ import annotations

import csv

from trainlab import atomic, rundir
from trainlab.engine.callbacks.base import Callback, TrainerView
from trainlab.engine.state import TrainState
from trainlab.registry import CALLBACKS

LEADING_COLUMNS = ["epoch", "lr", "train_loss", "train_acc", "train_rmse", "val_loss", "val_acc", "val_rmse",
                   "seconds", "examples_per_s"]


@CALLBACKS.register("csv_logger", description="write metrics.csv in the run directory, one row per epoch")
class CsvLogger(Callback):
    """Rewrites ``metrics.csv`` atomically from ``state.history`` at every epoch end."""

    order = 30

    def __init__(self, filename: str = rundir.METRICS_FILE) -> None:
        self.filename = filename

    def on_epoch_end(self, trainer: TrainerView, state: TrainState) -> None:
        if trainer.run_dir is None or not state.history:
            return
        keys = {k for row in state.history for k in row}
        columns = [c for c in LEADING_COLUMNS if c in keys] + sorted(keys - set(LEADING_COLUMNS))
        with atomic.atomic_path(trainer.run_dir / self.filename) as tmp, open(tmp, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=columns)
            writer.writeheader()
            writer.writerows(state.history)
