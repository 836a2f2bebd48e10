"""Generated datasets for first lessons: linear regression and two-dimensional classification.

The data themselves come from ``data_seed`` (fixed by default) so every run sees the same points and the
test split stays comparable across runs; only the validation split follows the run seed.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import TensorDataset

from trainlab.data.bundle import DataBundle, DataMeta, stratified_split, tensor_splits
from trainlab.data.preprocess import table_preprocess
from trainlab.registry import DATASETS

_TEST_FRACTION = 0.2


def _check(n: int, noise: float) -> None:
    if n < 10:
        raise ValueError(f"synthetic data needs n >= 10 examples, got n={n}")
    if noise < 0:
        raise ValueError(f"noise must be >= 0, got {noise}")


def _bundle(x: np.ndarray, y: np.ndarray, seed: int, val_fraction: float, meta: DataMeta, classify: bool,
            data_seed: int) -> DataBundle:
    xt = torch.tensor(x, dtype=torch.float32)
    yt = torch.tensor(y, dtype=torch.long if classify else torch.float32)
    rest, test = stratified_split(y if classify else np.zeros(len(y)), _TEST_FRACTION, data_seed, stratify=classify)
    train, val = tensor_splits(xt[rest], yt[rest], val_fraction, seed, stratify=classify)
    return DataBundle(train=train, val=val, test=TensorDataset(xt[test], yt[test]), meta=meta)


def _table_meta(task: str, num_features: int, classes: list[str] | None = None) -> DataMeta:
    preprocess = table_preprocess(features=[f"x{i}" for i in range(num_features)])
    return DataMeta(task=task, input_shape=(num_features,), num_classes=len(classes) if classes else None,  # type: ignore[arg-type]
                    classes=classes, preprocess=preprocess)


@DATASETS.register("synthetic-linear", description="y = Xw + b + noise (the classic first regression), any size")
def synthetic_linear(*, seed: int = 0, val_fraction: float = 0.1, n: int = 1000, weights: list[float] | None = None,
                     bias: float = 4.2, noise: float = 0.01, data_seed: int = 0) -> DataBundle:
    """Features ~ N(0, 1); ``weights`` default to d2l's ``[2, -3.4]``; Gaussian label noise of std ``noise``."""
    _check(n, noise)
    w = np.asarray(weights if weights is not None else [2.0, -3.4], dtype=np.float64)
    if w.ndim != 1 or len(w) == 0:
        raise ValueError(f"synthetic-linear weights must be a non-empty list of numbers, got {weights!r}")
    rng = np.random.default_rng(data_seed)
    x = rng.normal(size=(n, len(w)))
    y = x @ w + bias + rng.normal(scale=noise, size=n)
    meta = _table_meta("regression", len(w))
    meta.preprocess.update(true_weights=w.tolist(), true_bias=bias)
    return _bundle(x, y, seed, val_fraction, meta, classify=False, data_seed=data_seed)


@DATASETS.register("circles", description="two concentric noisy circles, 2 features, 2 classes")
def circles(*, seed: int = 0, val_fraction: float = 0.1, n: int = 1000, noise: float = 0.1, factor: float = 0.5,
            data_seed: int = 0) -> DataBundle:
    """scikit-learn's ``make_circles``: an inner circle of radius ``factor`` inside the unit circle."""
    from sklearn.datasets import make_circles

    _check(n, noise)
    if not 0 < factor < 1:
        raise ValueError(f"circles factor (inner radius) must be in (0, 1), got {factor}")
    x, y = make_circles(n_samples=n, noise=noise, factor=factor, random_state=data_seed)
    return _bundle(x, y, seed, val_fraction, _table_meta("classification", 2, ["outer", "inner"]), True, data_seed)


@DATASETS.register("moons", description="two interleaving noisy half-moons, 2 features, 2 classes")
def moons(*, seed: int = 0, val_fraction: float = 0.1, n: int = 1000, noise: float = 0.2,
          data_seed: int = 0) -> DataBundle:
    """scikit-learn's ``make_moons``: not linearly separable, a small MLP separates it."""
    from sklearn.datasets import make_moons

    _check(n, noise)
    x, y = make_moons(n_samples=n, noise=noise, random_state=data_seed)
    return _bundle(x, y, seed, val_fraction, _table_meta("classification", 2, ["upper", "lower"]), True, data_seed)
