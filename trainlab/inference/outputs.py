"""Model outputs for evaluation and prediction: probabilities (or values), averaged over models and flips.

Everything that turns a trained model into numbers outside the training loop — ``predict`` on image files, k-fold
ensembles, out-of-fold predictions, the report's confusion matrix — goes through :func:`model_outputs`, which uses
the trainer's own :func:`~trainlab.engine.outputs.evaluation_logits`, so predictions match the reported metrics.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn
from torch.utils.data import Dataset

from trainlab.data.bundle import DataMeta
from trainlab.data.images import load_images
from trainlab.data.loaders import BatchTransform, make_loader
from trainlab.engine.metrics import MetricAccumulator
from trainlab.engine.outputs import evaluation_logits, probabilities


@dataclass
class Prediction:
    """One input's prediction: class name and probability (classification) or value (regression)."""

    path: str
    label: str | None
    probability: float | None
    value: float | None = None


@torch.no_grad()
def model_outputs(model: nn.Module, x: torch.Tensor, task: str, tta_flip: bool = False) -> torch.Tensor:
    """Class probabilities ``(n, classes)``, or one value per example ``(n,)``, in eval mode; ``tta_flip`` averages
    the logits of each image and its mirror first, exactly as the trainer's evaluation does."""
    return probabilities(evaluation_logits(model.eval(), x, tta_flip), task)


def average_outputs(models: Sequence[nn.Module], x: torch.Tensor, task: str, tta_flip: bool = False) -> torch.Tensor:
    """The models' probabilities (or values) averaged: one model gives its own, fold models an ensemble."""
    return torch.stack([model_outputs(model, x, task, tta_flip) for model in models]).mean(dim=0)


def loader_for(dataset: Dataset, meta: DataMeta, batch_size: int, device: torch.device) -> Any:
    """A non-shuffled loader that prepares inputs the way training did."""
    return make_loader(dataset, batch_size=batch_size, device=device,
                       transform=BatchTransform.from_preprocess(meta.preprocess), shuffle=False)


def loader_outputs(model: nn.Module, batches: Any, task: str,
                   tta_flip: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """``(outputs, targets)`` over one pass of a loader (flip-averaged with ``tta_flip``, as evaluation does)."""
    pairs = [(model_outputs(model, x, task, tta_flip=tta_flip), y) for x, y in batches.epoch(0)]
    return torch.cat([o for o, _ in pairs]).cpu(), torch.cat([y for _, y in pairs]).cpu()


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


def predict_images(models: Sequence[nn.Module], paths: Sequence[str | Path], meta: DataMeta,
                   device: str | torch.device = "cpu", tta_flip: bool = False) -> list[Prediction]:
    """Predict image files of any size or mode, preprocessed as the training data was (``meta.preprocess``)."""
    preprocess = meta.preprocess
    batch = BatchTransform.from_preprocess(preprocess)(load_images(paths, preprocess)).to(device)
    output = average_outputs(models, batch, meta.task, tta_flip=tta_flip)
    if meta.task != "classification":
        return [Prediction(str(p), None, None, float(v)) for p, v in zip(paths, output)]
    classes = meta.classes or [str(i) for i in range(output.shape[1])]
    top = output.max(dim=1)
    return [Prediction(str(p), classes[int(i)], float(v)) for p, v, i in zip(paths, top.values, top.indices)]


def class_predictions(model: nn.Module, loader: Any, tta_flip: bool = False) -> tuple[Any, Any]:
    """``(targets, predicted classes)`` as numpy arrays over one pass of a classification loader."""
    outputs, targets = loader_outputs(model, loader, "classification", tta_flip)
    if outputs.dim() == 3:  # per-step outputs (N, T, C): each labelled step is one prediction, -100 padding is none
        keep = targets >= 0
        return targets[keep].numpy(), outputs.argmax(dim=-1)[keep].numpy()
    return targets.numpy(), outputs.argmax(dim=1).numpy()
