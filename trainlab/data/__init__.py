"""Datasets by name.

A dataset builder returns a :class:`DataBundle`: train / validation / test sources plus the metadata that
models (input shape, number of classes) and ``trainlab predict`` (how raw inputs were preprocessed) need.
In-memory datasets are ``TensorDataset`` objects holding raw values; the per-batch conversion to model
input (dtype, scale, normalization, augmentation) happens in :mod:`trainlab.data.loaders`, on the device.
"""

from __future__ import annotations

from trainlab.data import embedded, imagefolder, synthetic, tabular, vision  # noqa: F401  (registration)
from trainlab.data import seq2seq, timeseries  # noqa: F401  (registration)
from trainlab.data import text_classify, text_lm, text_styles  # noqa: F401  (registration)
from trainlab.data.bundle import DataBundle, DataMeta
from trainlab.data.checks import check_bundle
from trainlab.data.tabular import transform_table
from trainlab.registry import DATASETS

__all__ = ["DataBundle", "DataMeta", "build", "transform_table"]


def build(name: str, *, seed: int = 0, val_fraction: float = 0.1, **options: object) -> DataBundle:
    """Build the dataset registered as ``name`` with a seeded validation split.

    Every bundle passes :func:`~trainlab.data.checks.check_bundle`: no builder can hand the trainer an empty split or
    a single class."""
    bundle = DATASETS.get(name)(seed=seed, val_fraction=val_fraction, **options)
    check_bundle(bundle, val_fraction, where=f"{name}")
    return bundle
