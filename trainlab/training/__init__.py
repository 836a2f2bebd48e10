"""The fit lifecycle (train, resume, summary) and the callbacks that write the run directory's files."""

from trainlab.training import curves, metrics_csv  # noqa: F401  (registers plot_curves and csv_logger)
from trainlab.training import tensorboard  # noqa: F401  (registers tensorboard)
from trainlab.training.lifecycle import (
                                         RESUME_SAFE,
                                         TrainingFailed,
                                         TrainingInterrupted,
                                         resume_config,
                                         train,
                                         train_config,
)

__all__ = ["RESUME_SAFE", "TrainingFailed", "TrainingInterrupted", "resume_config", "train", "train_config"]
