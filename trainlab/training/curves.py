"""curves.png: loss and accuracy (or RMSE) against epoch, drawn when training ends or is interrupted."""

from __future__ import annotations

from trainlab import atomic, rundir
from trainlab.engine.callbacks.base import Callback, TrainerView
from trainlab.engine.state import TrainState
from trainlab.registry import CALLBACKS
from trainlab.report.plots import plot_history


@CALLBACKS.register("plot_curves", description="draw curves.png (loss and accuracy per epoch) at the end")
class PlotCurves(Callback):
    """Plots ``state.history`` once, at the end, so the loop pays nothing per epoch."""

    order = 40

    def __init__(self, filename: str = rundir.CURVES_FILE) -> None:
        self.filename = filename

    def on_fit_end(self, trainer: TrainerView, state: TrainState) -> None:
        if trainer.run_dir is not None and state.history:
            with atomic.atomic_path(trainer.run_dir / self.filename) as tmp:
                plot_history(state.history, tmp)

    on_interrupt = on_fit_end
