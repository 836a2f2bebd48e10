"""A finished k-fold run used as one model: the fold models' probabilities (or values) averaged."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import pandas as pd
import torch
from torch import nn
from torch.utils.data import Dataset

from trainlab import config as config_mod
from trainlab import data as data_mod
from trainlab import rundir
from trainlab.api import Prediction, Run
from trainlab.data.bundle import DataMeta
from trainlab.data.loaders import BatchTransform, make_loader
from trainlab.engine.metrics import MetricAccumulator
from trainlab.engine.runtime import resolve_device
from trainlab.losses import build_loss
from trainlab.predict_input import load_images

if TYPE_CHECKING:
    from trainlab.predict_table import TablePrediction

KFOLD_FILE = "kfold.json"
FOLDS_TABLE = "folds.csv"
OOF_FILE = "oof.csv"


def is_kfold_run(path: str | Path) -> bool:
    return (Path(path) / KFOLD_FILE).is_file()


@torch.no_grad()
def forward(model: nn.Module, x: torch.Tensor, task: str) -> torch.Tensor:
    """Class probabilities ``(n, classes)``, or one value per example ``(n,)``, in eval mode."""
    out = model.eval()(x)
    out = (out[0] if isinstance(out, (tuple, list)) else out).float()  # auxiliary heads: the first is the prediction
    return out.softmax(dim=1) if task == "classification" else out.reshape(-1)


def model_outputs(model: nn.Module, batches: Any, task: str) -> tuple[torch.Tensor, torch.Tensor]:
    """``(outputs, targets)`` over one pass of a loader."""
    pairs = [(forward(model, x, task), y) for x, y in batches.epoch(0)]
    return torch.cat([o for o, _ in pairs]).cpu(), torch.cat([y for _, y in pairs]).cpu()


def loader_for(dataset: Dataset, meta: DataMeta, batch_size: int, device: torch.device) -> Any:
    """A non-shuffled loader that prepares inputs the way training did."""
    return make_loader(dataset, batch_size=batch_size, device=device,
                       transform=BatchTransform.from_preprocess(meta.preprocess), shuffle=False)


class KFoldRun:
    """A k-fold directory: ``kfold.json``, the base ``config.yaml``, ``folds.csv``, ``oof.csv`` and ``fold-N/`` runs."""

    def __init__(self, path: str | Path) -> None:
        self.path = rundir.require_run(path)
        if not is_kfold_run(self.path):
            raise rundir.RunDirError(f"{self.path} is not a k-fold run (no {KFOLD_FILE})")
        self.info = rundir.read_json(self.path / KFOLD_FILE)
        self.config = config_mod.load(self.path / rundir.CONFIG_FILE)
        self.meta = DataMeta.from_dict(rundir.read_json(self.path / rundir.DATA_FILE))
        self.folds = [Run(self.path / name) for name in self.info["completed"]]
        if not self.folds:
            raise rundir.RunDirError(f"{self.path} has no completed fold to predict with")

    def __repr__(self) -> str:
        return f"KFoldRun('{self.path}', folds={len(self.folds)})"

    @property
    def summary(self) -> dict[str, Any]:
        return rundir.read_json(self.path / rundir.SUMMARY_FILE)

    @property
    def history(self) -> pd.DataFrame:
        """The per-fold table (one row per fold), as in ``folds.csv``."""
        return pd.read_csv(self.path / FOLDS_TABLE)

    def load_models(self, device: str | torch.device = "cpu") -> list[nn.Module]:
        return [fold.load_model(device) for fold in self.folds]

    @torch.no_grad()
    def predict_outputs(self, batch: torch.Tensor, models: Sequence[nn.Module] | None = None) -> torch.Tensor:
        """Mean over fold models of the class probabilities (classification) or values (regression)."""
        models = list(models) if models is not None else self.load_models(batch.device)
        return torch.stack([forward(model, batch, self.meta.task) for model in models]).mean(dim=0)

    def predict(self, paths: Sequence[str | Path], device: str = "cpu") -> list[Prediction] | TablePrediction:
        """Like :meth:`Run.predict` for image files, with the fold models' averaged probabilities.

        A k-fold run on a CSV table predicts a CSV file instead (see :meth:`predict_table`).
        """
        preprocess = self.meta.preprocess
        if preprocess.get("kind") == "table":
            return self.predict_table(paths, device)
        if preprocess.get("kind") != "image":
            raise ValueError(f"k-fold run {self.path} was trained on {preprocess.get('kind', 'non-image')} data; "
                             "predict on image files needs an image run")
        batch = BatchTransform.from_preprocess(preprocess)(load_images(paths, preprocess)).to(device)
        output = self.predict_outputs(batch, self.load_models(device))
        if self.meta.task != "classification":
            return [Prediction(str(p), None, None, float(v)) for p, v in zip(paths, output)]
        classes = self.meta.classes or [str(i) for i in range(output.shape[1])]
        top = output.max(dim=1)
        return [Prediction(str(p), classes[int(i)], float(v)) for p, v, i in zip(paths, top.values, top.indices)]

    def predict_table(self, table: Any, device: str = "cpu") -> TablePrediction:
        """Every row of a CSV file (or data frame) predicted by the mean of the fold models, on the target's scale.

        For a log target the fold models are averaged in log space (a geometric mean of the prices).
        """
        from trainlab.predict_table import predict_table

        return predict_table(self.load_models(device), table, self.meta, device)

    def evaluate(self, split: str = "test", device: str = "auto") -> dict[str, float]:
        """Metrics of the ensemble on a split of the run's dataset (``test`` is the one k-fold never trains on)."""
        cfg = self.config
        bundle = data_mod.build(cfg.data.name, seed=cfg.train.seed, val_fraction=cfg.data.val_fraction,
                                **cfg.data.options())
        dataset = getattr(bundle, split)
        if dataset is None:
            raise ValueError(f"dataset '{cfg.data.name}' has no {split} split")
        dev = resolve_device(device)
        models = self.load_models(dev)
        loader = loader_for(dataset, self.meta, cfg.train.batch_size, dev)
        return ensemble_metrics(models, loader, self.meta.task, build_loss(cfg.loss.name, self.meta.task,
                                                                             **cfg.loss.options()), split)


@torch.no_grad()
def ensemble_metrics(models: Sequence[nn.Module], loader: Any, task: str, loss_fn: nn.Module,
                     prefix: str) -> dict[str, float]:
    """Loss and accuracy/RMSE of averaged outputs; averaged probabilities enter the loss as log-probabilities."""
    totals = MetricAccumulator(task, torch.device("cpu"))
    for x, y in loader.epoch(0):
        mean = torch.stack([forward(model, x, task) for model in models]).mean(dim=0).cpu()
        output = mean.clamp_min(1e-12).log() if task == "classification" else mean
        y = y.cpu()
        totals.update(loss_fn(output, y), output, y)
    return totals.read(prefix)
