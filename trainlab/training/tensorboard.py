"""TensorBoard event files in the run directory (``callbacks.tensorboard``), so ``tensorboard --logdir runs`` shows
every run: scalars per epoch and per log step, the learning rate, and on request weight histograms and the graph.

Optional extra: ``pip install "trainlab[tensorboard]"``.  The events go to ``<run>/tensorboard/`` (a name owned
by :mod:`trainlab.rundir`).  Tags: ``epoch/<metric>`` (every numeric column of the epoch's metrics.csv row, at
step = epoch, so the values are metrics.csv's), ``step/train_loss`` … and ``step/lr`` every ``train.log_every``
updates (at step = update count), ``weights/<param>`` and ``grads/<param>`` histograms per epoch.  A resumed run
purges the events written after its checkpoint, so curves never double back.
"""

from __future__ import annotations

import logging
import math
import warnings
from typing import Any

import torch

from trainlab import rundir
from trainlab.engine.callbacks.base import Callback, TrainerView
from trainlab.engine.state import TrainState
from trainlab.registry import CALLBACKS

logger = logging.getLogger(__name__)
INSTALL = 'pip install "trainlab[tensorboard]" (or pip install tensorboard)'


def _summary_writer() -> Any:
    """torch's SummaryWriter class; a clear error when the optional tensorboard package is missing."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise ValueError(f"callbacks.tensorboard needs the optional package tensorboard: install it with {INSTALL}, "
                         "or switch the callback off with --set callbacks.tensorboard=null") from None
    return SummaryWriter


@CALLBACKS.register("tensorboard", description="write TensorBoard events (scalars, LR; histograms and graph on request)")
class TensorBoardLogger(Callback):
    """Writes scalars per epoch and per log step; ``histograms`` adds weights and gradients per epoch; ``graph``
    traces the model once on a zero input of the dataset's shape (skipped with a notice when tracing fails)."""

    order = 35  # after csv_logger (30): the epoch's row is final

    def __init__(self, histograms: bool = False, graph: bool = False) -> None:
        self.writer_class = _summary_writer()  # fail while the session is built, before anything trains
        self.histograms, self.graph = histograms, graph
        self.writer: Any = None

    def on_fit_start(self, trainer: TrainerView, state: TrainState) -> None:
        if trainer.run_dir is None:
            return
        purge = {"purge_step": state.step} if state.step else {}  # a resume rewrites what came after its checkpoint
        self.writer = self.writer_class(log_dir=str(trainer.run_dir / rundir.TENSORBOARD_DIR), **purge)
        if self.graph and not state.step:
            self._add_graph(trainer)

    def on_batch_end(self, trainer: TrainerView, state: TrainState) -> None:
        if self.writer is None or state.step % trainer.log_every:
            return
        for key, value in state.metrics.items():
            if key.startswith("train_") and _finite_number(value):
                self.writer.add_scalar(f"step/{key}", float(value), state.step)
        self.writer.add_scalar("step/lr", trainer.lr, state.step)

    def on_epoch_end(self, trainer: TrainerView, state: TrainState) -> None:
        if self.writer is None or not state.history:
            return
        row = state.history[-1]
        epoch = int(row["epoch"])
        for key, value in row.items():
            if key != "epoch" and _finite_number(value):
                self.writer.add_scalar(f"epoch/{key}", float(value), epoch)
        if self.histograms:
            for name, param in trainer.model.named_parameters():
                self.writer.add_histogram(f"weights/{name}", param.detach().float().cpu(), epoch)
                if param.grad is not None:
                    self.writer.add_histogram(f"grads/{name}", param.grad.detach().float().cpu(), epoch)
        self.writer.flush()

    def on_fit_end(self, trainer: TrainerView, state: TrainState) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None

    on_interrupt = on_fit_end

    def _add_graph(self, trainer: TrainerView) -> None:
        """Trace the model on two zero examples of the dataset's input shape, in eval mode (no batch statistics
        move, no dropout draws), and put its train/eval mode back."""
        model = trainer.model
        was_training = model.training
        try:
            shape = rundir.read_data_meta(trainer.run_dir).input_shape
            model.eval()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)  # add_graph uses torch.jit.trace, deprecated in torch
                self.writer.add_graph(model, torch.zeros(2, *shape, device=trainer.device))
        except Exception as err:  # noqa: BLE001 (any model may fail to trace; the run must not)
            logger.info("tensorboard: the model graph is skipped, tracing failed (%s: %s)", type(err).__name__,
                        str(err).splitlines()[0] if str(err) else "")
        finally:
            model.train(was_training)


def _finite_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
