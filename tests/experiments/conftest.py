"""Tiny configs for experiment tests: a small MLP on the built-in digits, one epoch, no progress bar or plot,
and a synthetic regression dataset registered only for the test that asks for it."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch.utils.data import TensorDataset

from trainlab import config as config_mod
from trainlab.config import RunConfig
from trainlab.data.bundle import DataBundle, DataMeta, tensor_splits
from trainlab.registry import DATASETS

TINY = {"model.name": "mlp", "model.hidden": [8], "train.epochs": 1, "train.batch_size": 128,
        "callbacks.progress.style": "none", "callbacks.plot_curves": None}
REGRESSION = "test-regression"


def tiny_config(out: Path, **overrides: object) -> RunConfig:
    return config_mod.load(overrides={**TINY, "train.out": str(out), **overrides})


def _regression(*, seed: int = 0, val_fraction: float = 0.1) -> DataBundle:
    """y = x · w + noise over 4 features: 200 train, 50 test rows."""
    gen = torch.Generator().manual_seed(123)
    x = torch.randn(250, 4, generator=gen)
    y = x @ torch.tensor([1.0, -2.0, 0.5, 3.0]) + 0.1 * torch.randn(250, generator=gen)
    train, val = tensor_splits(x[:200], y[:200], val_fraction, seed, stratify=False)
    meta = DataMeta(task="regression", input_shape=(4,), preprocess={"kind": "table"})
    return DataBundle(train=train, val=val, test=TensorDataset(x[200:], y[200:]), meta=meta)


@pytest.fixture
def regression_data():
    """Registers a synthetic regression dataset for one test and removes it afterwards."""
    DATASETS.add(REGRESSION, _regression, description="synthetic linear regression (tests only)")
    yield REGRESSION
    DATASETS._entries.pop(REGRESSION)
