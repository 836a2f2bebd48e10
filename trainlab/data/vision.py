"""MNIST, Fashion-MNIST and CIFAR-10 from their official on-disk formats.

``data.size``, ``data.normalize`` and ``data.whiten`` apply to each (:mod:`trainlab.data.image_options`).
Files are read from ``data.root`` (or the default cache directory, see :func:`download.default_root`) and
downloaded only with ``data.download=true``.  Images are kept as raw uint8 ``N×C×H×W`` tensors; the official
test split is the test set and validation comes from the training set (stratified, seeded).
"""

from __future__ import annotations

import gzip
import math
import pickle
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch.utils.data import TensorDataset

from trainlab.data import download as dl
from trainlab.data.bundle import DataBundle, DataMeta, tensor_splits
from trainlab.data.image_options import finish_image_bundle
from trainlab.data.preprocess import image_preprocess
from trainlab.registry import DATASETS

_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


@dataclass(frozen=True)
class VisionSpec:
    """One dataset's files, mirrors, checksums, class names and channel statistics (of the scaled [0, 1] pixels)."""

    description: str
    classes: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    mirrors: tuple[str, ...]
    md5: dict[str, str]
    background: str = "dark"


IDX_SPECS: dict[str, VisionSpec] = {
    "mnist": VisionSpec(
        "MNIST handwritten digits, 28x28 gray, 10 classes (IDX files; data.root or data.download=true)",
        tuple(str(d) for d in range(10)), (0.1307,), (0.3081,),
        ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/"),
        {"train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
         "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
         "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
         "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c"}),
    "fashion-mnist": VisionSpec(
        "Zalando Fashion-MNIST clothing, 28x28 gray, 10 classes (IDX files; data.root or data.download=true)",
        ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
        (0.2860,), (0.3530,),
        ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
        {"train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
         "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
         "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
         "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310"}),
}
CIFAR10 = VisionSpec(
    "CIFAR-10 tiny color photos, 32x32 RGB, 10 classes (python batches; data.root or data.download=true)",
    ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"),
    (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616),
    ("https://www.cs.toronto.edu/~kriz/",), {"cifar-10-python.tar.gz": "c58f30108f718f92721af3b95e74349a"},
    background="any")
CIFAR_DIR = "cifar-10-batches-py"
CIFAR_FILES = tuple(f"data_batch_{i}" for i in range(1, 6)) + ("test_batch",)


REFETCH = "delete it and download it again (data.download=true), or check the copy"


def read_file_bytes(path: Path) -> bytes:
    """A dataset file's bytes, gunzipped when it is gzip; a truncated or corrupt file fails naming it and the fix."""
    try:
        raw = path.read_bytes()
        return gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw
    except (EOFError, zlib.error, gzip.BadGzipFile) as err:
        raise ValueError(f"{path} is truncated or corrupt ({type(err).__name__}: {err}); {REFETCH}") from None
    except OSError as err:
        raise ValueError(f"cannot read {path} ({err.strerror or err})") from None


def read_idx(path: Path) -> np.ndarray:
    """Parse one IDX file (gzipped or not) with a single ``frombuffer``; the header is validated against the size."""
    raw = read_file_bytes(path)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise ValueError(f"{path}: not an IDX file (bad magic number {raw[:4].hex()}); {REFETCH}")
    ndim = raw[3]
    offset = 4 + 4 * ndim
    if len(raw) < offset:
        raise ValueError(f"{path}: the IDX header declares {ndim} dimensions but the file ends after {len(raw)} bytes; "
                         f"{REFETCH}")
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    expected = math.prod(dims) * dtype.itemsize
    if len(raw) - offset != expected:
        raise ValueError(f"{path}: header says {dims} ({expected} bytes) but the file holds {len(raw) - offset} bytes; "
                         f"{REFETCH}")
    return np.frombuffer(bytearray(raw), dtype=dtype, offset=offset).reshape(dims)  # bytearray: writable


def _missing(name: str, root: Path, files: list[str]) -> FileNotFoundError:
    listed = "\n  ".join(files)
    return FileNotFoundError(
        f"{name}: these files are missing in {root}:\n  {listed}\n"
        f"put them there, or pass --set data.root=DIR for a folder that holds them, "
        f"or download them once with --set data.download=true")


def _find_idx(root: Path, stem: str) -> Path | None:
    for candidate in (root / f"{stem}.gz", root / stem):
        if candidate.is_file():
            return candidate
    return None


def load_idx_dataset(name: str, root: Path, download: bool) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{"train": (images, labels), "test": (...)}`` from the four IDX files, downloading them if asked."""
    spec = IDX_SPECS[name]
    paths = {stem: _find_idx(root, stem) for stem in IDX_FILES}
    missing = [f"{stem}.gz" for stem, p in paths.items() if p is None]
    if missing and download:
        for filename in missing:
            paths[filename[:-3]] = dl.download([m + filename for m in spec.mirrors], root / filename, spec.md5[filename])
        missing = []
    if missing:
        raise _missing(name, root, missing)
    out = {}
    for split, prefix in (("train", "train"), ("test", "t10k")):
        images = read_idx(paths[f"{prefix}-images-idx3-ubyte"])  # type: ignore[arg-type]
        labels = read_idx(paths[f"{prefix}-labels-idx1-ubyte"])  # type: ignore[arg-type]
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise ValueError(f"{name} {split}: images {images.shape} and labels {labels.shape} do not match")
        _check_pixels(images, paths[f"{prefix}-images-idx3-ubyte"])  # type: ignore[arg-type]
        _check_labels(labels, len(spec.classes), paths[f"{prefix}-labels-idx1-ubyte"])  # type: ignore[arg-type]
        out[split] = (images[:, None], labels)
    return out


def _check_pixels(images: np.ndarray, path: Path) -> None:
    """Images are stored as uint8; another IDX type would be silently wrapped around into 0..255."""
    if images.dtype != np.uint8:
        raise ValueError(f"{path}: holds {images.dtype} pixels, expected unsigned bytes (IDX type 0x08); {REFETCH}")


def _check_labels(labels: np.ndarray, classes: int, path: Path) -> None:
    """Labels must index the classes: an out-of-range label fails deep in the loss, far from the file."""
    if len(labels) and (labels.min() < 0 or labels.max() >= classes):
        bad = np.flatnonzero((labels < 0) | (labels >= classes))
        raise ValueError(f"{path}: labels must lie in 0..{classes - 1}, but {len(bad)} do not (first at index "
                         f"{int(bad[0])}: {labels[bad[0]]}); {REFETCH}")


class _CifarUnpickler(pickle.Unpickler):
    """Unpickles plain containers and numpy arrays only: a CIFAR batch can never run code or build other classes."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
        ("numpy", "ndarray"), ("numpy", "dtype"),
        ("_codecs", "encode"),  # how protocol-2 pickles written by Python 3 store bytes (as torch's safe loader allows)
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}: a CIFAR batch holds only arrays and lists")


def read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR python batch → (uint8 N×3×32×32 images, int labels)."""
    try:
        with open(path, "rb") as handle:
            batch = _CifarUnpickler(handle, encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, IndexError, KeyError, TypeError, AttributeError) as err:
        raise ValueError(f"{path}: not a CIFAR python batch, or truncated ({type(err).__name__}: {err}); "
                         f"{REFETCH}") from None
    except OSError as err:
        raise ValueError(f"cannot read {path} ({err.strerror or err})") from None
    if not isinstance(batch, dict):
        raise ValueError(f"{path}: not a CIFAR python batch (holds {type(batch).__name__}, expected a dict)")
    batch = {k.decode() if isinstance(k, bytes) else k: v for k, v in batch.items()}
    if "data" not in batch or "labels" not in batch:
        raise ValueError(f"{path}: a CIFAR batch needs 'data' and 'labels' entries, found {sorted(batch)}")
    try:
        data = np.asarray(batch["data"], dtype=np.uint8)
        labels = np.asarray(batch["labels"], dtype=np.int64)
    except (TypeError, ValueError, OverflowError) as err:
        raise ValueError(f"{path}: a CIFAR batch's 'data' must be bytes and 'labels' integers ({err}); "
                         f"{REFETCH}") from None
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(data) != len(labels):
        raise ValueError(f"{path}: data {data.shape} / labels {labels.shape} are not N×3072 / N")
    _check_labels(labels, len(CIFAR10.classes), path)
    return data.reshape(-1, 3, 32, 32), labels


def load_cifar10(root: Path, download: bool) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """CIFAR-10 train/test arrays from ``root/cifar-10-batches-py`` (or the batches directly in ``root``)."""
    folder = root / CIFAR_DIR if (root / CIFAR_DIR).is_dir() or not (root / "test_batch").is_file() else root
    missing = [f for f in CIFAR_FILES if not (folder / f).is_file()]
    if missing and download:
        archive = dl.download([m + "cifar-10-python.tar.gz" for m in CIFAR10.mirrors], root / "cifar-10-python.tar.gz",
                              CIFAR10.md5["cifar-10-python.tar.gz"])
        dl.extract_tar(archive, root)
        folder = root / CIFAR_DIR
        missing = [f for f in CIFAR_FILES if not (folder / f).is_file()]
    if missing:
        raise _missing("cifar10", folder, missing)
    parts = [read_cifar_batch(folder / f) for f in CIFAR_FILES[:-1]]
    train = (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))
    return {"train": train, "test": read_cifar_batch(folder / "test_batch")}


def _bundle(arrays: dict[str, tuple[np.ndarray, np.ndarray]], spec: VisionSpec, seed: int,
            val_fraction: float) -> DataBundle:
    x = torch.from_numpy(np.ascontiguousarray(arrays["train"][0], dtype=np.uint8))
    y = torch.from_numpy(arrays["train"][1].astype(np.int64))
    train, val = tensor_splits(x, y, val_fraction, seed, stratify=True)
    test_x = torch.from_numpy(np.ascontiguousarray(arrays["test"][0], dtype=np.uint8))
    test = TensorDataset(test_x, torch.from_numpy(arrays["test"][1].astype(np.int64)))
    channels, height, width = x.shape[1:]
    preprocess = image_preprocess(mode="L" if channels == 1 else "RGB", size=(height, width), mean=spec.mean,
                                  std=spec.std, background=spec.background)
    meta = DataMeta(task="classification", input_shape=(channels, height, width), num_classes=len(spec.classes),
                    classes=list(spec.classes), preprocess=preprocess)
    return DataBundle(train=train, val=val, test=test, meta=meta)


def _register_idx(name: str, spec: VisionSpec) -> None:
    def builder(*, seed: int = 0, val_fraction: float = 0.1, root: str | None = None, download: bool = False,
                size: int | list[int] | None = None, normalize: str | dict[str, Any] = "dataset",
                whiten: Literal["pca", "zca"] | None = None, whiten_eps: float | None = None) -> DataBundle:
        folder = Path(root).expanduser() if root else dl.default_root(name)
        return finish_image_bundle(_bundle(load_idx_dataset(name, folder, download), spec, seed, val_fraction),
                                   size=size, normalize=normalize, whiten=whiten, whiten_eps=whiten_eps)

    builder.__doc__ = f"{spec.description}; the official 10k test split is the test set."
    DATASETS.add(name, builder, description=spec.description)


for _name, _spec in IDX_SPECS.items():
    _register_idx(_name, _spec)


@DATASETS.register("cifar10", description=CIFAR10.description)
def cifar10(*, seed: int = 0, val_fraction: float = 0.1, root: str | None = None, download: bool = False,
            size: int | list[int] | None = None, normalize: str | dict[str, Any] = "dataset",
            whiten: Literal["pca", "zca"] | None = None, whiten_eps: float | None = None) -> DataBundle:
    """CIFAR-10 from its python batches; the official 10k test batch is the test set."""
    folder = Path(root).expanduser() if root else dl.default_root("cifar10")
    return finish_image_bundle(_bundle(load_cifar10(folder, download), CIFAR10, seed, val_fraction),
                               size=size, normalize=normalize, whiten=whiten, whiten_eps=whiten_eps)
