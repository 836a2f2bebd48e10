"""With an EMA, ``early_stopping.restore_best`` leaves the trainer evaluating exactly what scored best."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from trainlab import config as config_mod
from trainlab.engine.callbacks.base import Callback
from trainlab.session import build_session

SETTINGS = {"data.name": "digits", "model.name": "mlp", "train.batch_size": 256, "train.device": "cpu",
            "train.epochs": 4, "train.ema": 0.9, "train.deterministic": True, "data.val_fraction": 0.2,
            "callbacks.early_stopping.patience": 10, "callbacks.progress.style": "none",
            "callbacks.plot_curves": None}


class Sabotage(Callback):
    """From the third epoch on, kick the trained weights far away, so validation (of the EMA) gets worse."""

    def on_epoch_start(self, trainer: Any, state: Any) -> None:
        if state.epoch >= 2:
            generator = torch.Generator().manual_seed(state.epoch)
            with torch.no_grad():
                for param in trainer.model.parameters():
                    param.add_(torch.randn(param.shape, generator=generator) * 3.0)


@pytest.mark.parametrize("monitor,mode", [("val_loss", "min"), ("val_acc", "max")])
def test_after_fit_the_eval_model_scores_the_recorded_best(tmp_path: Path, monitor: str, mode: str) -> None:
    cfg = config_mod.load(overrides={**SETTINGS, "callbacks.early_stopping.monitor": monitor,
                                     "callbacks.early_stopping.mode": mode})
    session = build_session(cfg, run_dir=tmp_path, extra_callbacks={"sabotage": Sabotage()})
    trainer = session.trainer
    state = trainer.fit()
    stopper = trainer.callbacks["early_stopping"]
    history = [row[monitor] for row in state.history]
    assert stopper.best_epoch < state.epoch == 4, f"the setup must make the last epochs worse: {history}"
    assert history[-1] != pytest.approx(stopper.best, abs=1e-6)
    after = trainer.evaluate(trainer.val_loader, prefix="val")  # evaluates trainer.eval_model: the EMA
    assert after[monitor] == pytest.approx(stopper.best, abs=1e-6)
