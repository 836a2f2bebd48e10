"""MNIST-format and CIFAR-10 readers, the download path (network stubbed) and the shared Fashion-MNIST."""

from __future__ import annotations

import dataclasses
import gzip
import io
import os
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.data.files import IDX_NAMES, cifar_batch, idx_bytes, write_cifar, write_idx_dataset
from trainlab.data import download as dl
from trainlab.data import vision
from trainlab.registry import DATASETS


def test_read_idx_roundtrip_gz_and_plain(tmp_path: Path) -> None:
    array = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    (tmp_path / "a").write_bytes(idx_bytes(array))
    (tmp_path / "a.gz").write_bytes(gzip.compress(idx_bytes(array)))
    assert np.array_equal(vision.read_idx(tmp_path / "a"), array)
    assert np.array_equal(vision.read_idx(tmp_path / "a.gz"), array)


@pytest.mark.parametrize("payload, message", [(b"\x12\x34\x08\x01" + b"\x00" * 8, "bad magic"),
                                              (bytes([0, 0, 8, 1]) + (5).to_bytes(4, "big") + b"abc", "header says")])
def test_read_idx_rejects_broken_files(tmp_path: Path, payload: bytes, message: str) -> None:
    (tmp_path / "broken").write_bytes(payload)
    with pytest.raises(ValueError, match=message):
        vision.read_idx(tmp_path / "broken")


@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
def test_idx_builder_official_test_split_and_stratified_val(tmp_path: Path, name: str) -> None:
    arrays = write_idx_dataset(tmp_path, n_train=40, n_test=20)
    bundle = DATASETS.get(name)(root=str(tmp_path), val_fraction=0.25, seed=3)
    x_test, y_test = bundle.test.tensors
    assert x_test.dtype == torch.uint8 and x_test.shape == (20, 1, 6, 6)
    assert torch.equal(x_test[:, 0], torch.from_numpy(arrays["test"][0]))
    assert torch.equal(y_test, torch.from_numpy(arrays["test"][1]).long())
    x_val, y_val = bundle.val.tensors
    assert len(bundle.train) == 30 and len(y_val) == 10
    assert sorted(y_val.tolist()) == list(range(10))  # one of each class: stratified
    for x, y in (bundle.train.tensors, bundle.val.tensors):
        assert torch.equal(x[:, 0, 0, 0].long(), y)  # images stay paired with their labels
    again = DATASETS.get(name)(root=str(tmp_path), val_fraction=0.25, seed=3)
    assert torch.equal(again.val.tensors[1], y_val)
    assert bundle.meta.input_shape == (1, 6, 6) and bundle.meta.preprocess["size"] == [6, 6]
    assert len(bundle.meta.classes) == 10


def test_missing_files_error_names_files_and_both_fixes(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError) as err:
        DATASETS.get("fashion-mnist")(root=str(tmp_path))
    text = str(err.value)
    assert all(name in text for pair in IDX_NAMES.values() for name in pair)
    assert "data.root" in text and "data.download=true" in text


def test_default_root_follows_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TRAINLAB_DATA", str(tmp_path))
    write_idx_dataset(tmp_path / "mnist")
    assert len(DATASETS.get("mnist")(val_fraction=0.0).train) == 40


def _serve(files: dict[str, bytes], calls: list[str]):
    def fetch(url: str, dest: Path) -> None:
        calls.append(url)
        dest.write_bytes(files[url.rsplit("/", 1)[-1]])

    return fetch


def test_download_stops_at_the_network_call_and_checks_md5(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = tmp_path / "source"
    write_idx_dataset(source)
    files = {p.name: p.read_bytes() for p in source.iterdir()}
    calls: list[str] = []
    monkeypatch.setattr(dl, "fetch_url", _serve(files, calls))
    spec = dataclasses.replace(vision.IDX_SPECS["mnist"], md5={n: dl.md5sum(source / n) for n in files})
    monkeypatch.setitem(vision.IDX_SPECS, "mnist", spec)
    bundle = DATASETS.get("mnist")(root=str(tmp_path / "cache"), download=True, val_fraction=0.0)
    assert len(bundle.train) == 40 and len(calls) == 4
    assert calls[0].startswith(spec.mirrors[0])
    DATASETS.get("mnist")(root=str(tmp_path / "cache"), download=True)
    assert len(calls) == 4  # cached: no second download


def test_download_with_wrong_checksum_leaves_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dl, "fetch_url", lambda url, dest: dest.write_bytes(b"not the real file"))
    with pytest.raises(OSError, match="does not match"):
        DATASETS.get("fashion-mnist")(root=str(tmp_path), download=True)
    assert [p.name for p in tmp_path.iterdir()] == []


@pytest.mark.parametrize("protocol", [2, pickle.HIGHEST_PROTOCOL])
def test_cifar10_from_python_batches(tmp_path: Path, protocol: int) -> None:
    write_cifar(tmp_path / vision.CIFAR_DIR, per_batch=10, protocol=protocol)
    bundle = DATASETS.get("cifar10")(root=str(tmp_path), val_fraction=0.2)
    assert len(bundle.train) == 40 and len(bundle.val) == 10 and len(bundle.test) == 10
    x, y = bundle.train.tensors
    assert x.shape[1:] == (3, 32, 32) and x.dtype == torch.uint8
    assert torch.equal(x[:, 0, 0, 0].long(), y)
    assert bundle.meta.preprocess["mode"] == "RGB" and len(bundle.meta.preprocess["mean"]) == 3


def test_cifar10_download_extracts_archive(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    build = tmp_path / "build"
    write_cifar(build / vision.CIFAR_DIR, per_batch=2)
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w:gz") as tar:
        tar.add(build / vision.CIFAR_DIR, arcname=vision.CIFAR_DIR)
    blob = archive.getvalue()
    monkeypatch.setattr(dl, "fetch_url", lambda url, dest: dest.write_bytes(blob))
    (tmp_path / "blob").write_bytes(blob)
    monkeypatch.setattr(vision, "CIFAR10", dataclasses.replace(
        vision.CIFAR10, md5={"cifar-10-python.tar.gz": dl.md5sum(tmp_path / "blob")}))
    bundle = DATASETS.get("cifar10")(root=str(tmp_path / "cache"), download=True, val_fraction=0.0)
    assert len(bundle.train) == 10 and len(bundle.test) == 2


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_cifar_unpickler_refuses_code(tmp_path: Path) -> None:
    batch = cifar_batch(2, 0)
    batch[b"extra"] = _Evil()
    (tmp_path / "test_batch").write_bytes(pickle.dumps(batch))
    with pytest.raises(ValueError, match="refusing to load"):
        vision.read_cifar_batch(tmp_path / "test_batch")


def test_cifar_batch_with_wrong_layout(tmp_path: Path) -> None:
    (tmp_path / "b").write_bytes(pickle.dumps({b"data": np.zeros((2, 10), np.uint8), b"labels": [0, 1]}))
    with pytest.raises(ValueError, match="N×3072"):
        vision.read_cifar_batch(tmp_path / "b")


def test_shared_fashion_mnist(shared_data: Path) -> None:
    bundle = DATASETS.get("fashion-mnist")(root=str(shared_data / "fashion-mnist"), val_fraction=0.1)
    assert len(bundle.train) + len(bundle.val) == 60_000 and len(bundle.test) == 10_000
    x, y = bundle.train.tensors
    assert x.shape[1:] == (1, 28, 28) and x.dtype == torch.uint8
    assert torch.bincount(bundle.val.tensors[1]).tolist() == [600] * 10
    mean = float(torch.cat([x, bundle.val.tensors[0]]).float().mean() / 255)
    assert abs(mean - bundle.meta.preprocess["mean"][0]) < 1e-3
