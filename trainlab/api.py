"""The public Python API — a facade of re-exports: ``train()``, ``load_run()``, :class:`Run` and friends.

Nothing is defined here, so the package's layers stay the single owners of what they do (``docs/architecture.md``);
only the CLI and ``trainlab/__init__`` import this module.
"""

from trainlab.export import export_run
from trainlab.models import create as create_model
from trainlab.run import KFoldRun, Run, RunDirectory, load_run
from trainlab.training import TrainingFailed, TrainingInterrupted, resume_config, train, train_config

__all__ = ["KFoldRun", "Run", "RunDirectory", "TrainingFailed", "TrainingInterrupted", "create_model", "export_run",
           "load_run", "resume_config", "train", "train_config"]
