"""Live progress: a rich bar (epoch and batch, loss, accuracy, throughput) on a terminal, plain lines otherwise."""

from __future__ import annotations

import sys
import time
from typing import Any, Literal

from trainlab.engine.callbacks.base import Callback, TrainerView
from trainlab.engine.metrics import format_metrics
from trainlab.engine.state import TrainState
from trainlab.registry import CALLBACKS


@CALLBACKS.register("progress", description="rich progress bar on a terminal, one line per epoch otherwise")
class Progress(Callback):
    """``style``: ``auto`` (rich on a TTY, plain otherwise), ``rich``, ``plain`` or ``none``."""

    order = 80

    def __init__(self, style: Literal["auto", "rich", "plain", "none"] = "auto", refresh_s: float = 0.25) -> None:
        self.style = ("rich" if sys.stdout.isatty() else "plain") if style == "auto" else style
        self.refresh_s = refresh_s
        self._bar: Any = None
        self._task: Any = None
        self._last = 0.0
        self._epoch_start = 0.0

    def on_fit_start(self, trainer: TrainerView, state: TrainState) -> None:
        if self.style != "rich":
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self._bar = Progress(TextColumn("[bold]epoch {task.fields[epoch]}"), BarColumn(), MofNCompleteColumn(),
                             TimeRemainingColumn(), TextColumn("{task.fields[info]}"), transient=False)
        self._bar.start()

    def on_epoch_start(self, trainer: TrainerView, state: TrainState) -> None:
        self._epoch_start = time.perf_counter()
        if self._bar is not None:
            self._task = self._bar.add_task("train", total=state.steps_per_epoch, completed=state.batch_in_epoch,
                                            epoch=f"{state.epoch + 1}/{state.epochs}", info="")

    def on_batch_end(self, trainer: TrainerView, state: TrainState) -> None:
        now = time.perf_counter()
        if self._bar is None or now - self._last < self.refresh_s:
            return
        self._last = now
        seen = state.batch_in_epoch * trainer.batch_size
        rate = seen / max(now - self._epoch_start, 1e-9)
        self._bar.update(self._task, completed=state.batch_in_epoch,
                         info=f"{format_metrics(state.metrics)}  {rate:,.0f} ex/s")

    def on_epoch_end(self, trainer: TrainerView, state: TrainState) -> None:
        row = state.history[-1]
        line = f"epoch {state.epoch}/{state.epochs}  {format_metrics(row)}  {row['examples_per_s']:,.0f} ex/s"
        if self._bar is not None:
            self._bar.update(self._task, completed=state.steps_per_epoch, info=format_metrics(row))
        elif self.style == "plain":
            print(line, flush=True)

    def on_fit_end(self, trainer: TrainerView, state: TrainState) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None

    on_interrupt = on_fit_end
