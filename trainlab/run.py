"""A finished k-fold run used as one model: the fold models' probabilities (or values) averaged."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import pandas as pd
import torch
from torch import nn
from torch.utils.data import Dataset

from trainlab import rundir
from trainlab.api import Run, RunDirectory, average_outputs, build_data, model_outputs
from trainlab.data.bundle import DataMeta
from trainlab.data.loaders import BatchTransform, make_loader
from trainlab.engine.metrics import MetricAccumulator
from trainlab.engine.runtime import resolve_device
from trainlab.losses import build_loss

KFOLD_FILE = "kfold.json"
FOLDS_TABLE = "folds.csv"
OOF_FILE = "oof.csv"


def is_kfold_run(path: str | Path) -> bool:
    return (Path(path) / KFOLD_FILE).is_file()


def loader_outputs(model: nn.Module, batches: Any, task: str,
                   tta_flip: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """``(outputs, targets)`` over one pass of a loader (flip-averaged with ``tta_flip``, as evaluation does)."""
    pairs = [(model_outputs(model, x, task, tta_flip=tta_flip), y) for x, y in batches.epoch(0)]
    return torch.cat([o for o, _ in pairs]).cpu(), torch.cat([y for _, y in pairs]).cpu()


def loader_for(dataset: Dataset, meta: DataMeta, batch_size: int, device: torch.device) -> Any:
    """A non-shuffled loader that prepares inputs the way training did."""
    return make_loader(dataset, batch_size=batch_size, device=device,
                       transform=BatchTransform.from_preprocess(meta.preprocess), shuffle=False)


class KFoldRun(RunDirectory):
    """A k-fold directory: ``kfold.json``, the base ``config.yaml``, ``folds.csv``, ``oof.csv`` and ``fold-N/`` runs;
    it predicts with the mean of its fold models."""

    def __init__(self, path: str | Path) -> None:
        if not is_kfold_run(path):
            raise rundir.RunDirError(f"{path} is not a k-fold run (no {KFOLD_FILE})")
        super().__init__(path)
        self.info = rundir.read_json(self.path / KFOLD_FILE)
        self.folds = [Run(self.path / name) for name in self.info["completed"]]
        if not self.folds:
            raise rundir.RunDirError(f"{self.path} has no completed fold to predict with")

    def __repr__(self) -> str:
        return f"KFoldRun('{self.path}', folds={len(self.folds)})"

    @property
    def history(self) -> pd.DataFrame:
        """The per-fold table (one row per fold), as in ``folds.csv``."""
        return pd.read_csv(self.path / FOLDS_TABLE)

    def load_models(self, device: str | torch.device = "cpu") -> list[nn.Module]:
        return [fold.load_model(device) for fold in self.folds]

    @torch.no_grad()
    def predict_outputs(self, batch: torch.Tensor, models: Sequence[nn.Module] | None = None,
                        tta: bool | None = None) -> torch.Tensor:
        """Mean over fold models of the class probabilities (classification) or values (regression); image batches
        are flip-averaged when the folds were evaluated so (``train.tta_flip``) unless ``tta`` says otherwise."""
        models = list(models) if models is not None else self.load_models(batch.device)
        flip = self.config.train.tta_flip if tta is None else tta
        return average_outputs(models, batch, self.meta.task, tta_flip=flip)

    def evaluate(self, split: str = "test", device: str = "auto", tta: bool | None = None) -> dict[str, float]:
        """Metrics of the ensemble on a split of the run's dataset (``test`` is the one k-fold never trains on);
        flip-averaged as the folds were evaluated (``train.tta_flip``) unless ``tta`` says otherwise."""
        cfg = self.config
        bundle = build_data(cfg)
        dataset = getattr(bundle, split)
        if dataset is None:
            raise ValueError(f"dataset '{cfg.data.name}' has no {split} split")
        dev = resolve_device(device)
        models = self.load_models(dev)
        loader = loader_for(dataset, self.meta, cfg.train.batch_size, dev)
        loss_fn = build_loss(cfg.loss.name, self.meta.task, **cfg.loss.options())
        flip = cfg.train.tta_flip if tta is None else tta
        return ensemble_metrics(models, loader, self.meta.task, loss_fn, split, tta_flip=flip)


@torch.no_grad()
def ensemble_metrics(models: Sequence[nn.Module], loader: Any, task: str, loss_fn: nn.Module,
                     prefix: str, tta_flip: bool = False) -> dict[str, float]:
    """Loss and accuracy/RMSE of averaged outputs; averaged probabilities enter the loss as log-probabilities."""
    totals = MetricAccumulator(task, torch.device("cpu"))
    for x, y in loader.epoch(0):
        mean = average_outputs(models, x, task, tta_flip).cpu()
        output = mean.clamp_min(1e-12).log() if task == "classification" else mean
        y = y.cpu()
        totals.update(loss_fn(output, y), output, y)
    return totals.read(prefix)
