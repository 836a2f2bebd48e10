"""Datasets that ship inside an installed package, so trainlab works offline out of the box."""

from __future__ import annotations

import torch
from torch.utils.data import TensorDataset

from trainlab.data.bundle import DataBundle, DataMeta, stratified_split, tensor_splits
from trainlab.registry import DATASETS

_DIGITS_TEST_SEED = 0  # the test split never depends on the run seed, so runs stay comparable
_DIGITS_TEST_FRACTION = 0.2


@DATASETS.register("digits", description="scikit-learn's 1,797 real handwritten digits, 8x8 gray, 10 classes (offline)")
def digits(*, seed: int = 0, val_fraction: float = 0.1) -> DataBundle:
    """Real handwritten digits (UCI optical digits) shipped with scikit-learn; a fixed 20% test split."""
    from sklearn.datasets import load_digits

    raw = load_digits()
    x = torch.tensor(raw.images, dtype=torch.uint8).unsqueeze(1)  # values 0..16, ink is bright
    y = torch.tensor(raw.target, dtype=torch.long)
    rest, test = stratified_split(raw.target, _DIGITS_TEST_FRACTION, _DIGITS_TEST_SEED)
    train, val = tensor_splits(x[rest], y[rest], val_fraction, seed, stratify=True)
    meta = DataMeta(
        task="classification",
        input_shape=(1, 8, 8),
        num_classes=10,
        classes=[str(d) for d in range(10)],
        preprocess={
            "kind": "image",
            "mode": "L",
            "size": [8, 8],
            "max_value": 16,
            "scale": 1 / 16,
            "mean": [0.3047],
            "std": [0.3764],
            "background": "dark",
        },
    )
    return DataBundle(train=train, val=val, test=TensorDataset(x[test], y[test]), meta=meta)
