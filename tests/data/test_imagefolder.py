"""Image folders: class map, split folders, conversion, and bad files reported by path (build and CLI)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.data.files import write_image_folder, write_png
from trainlab.data import build


def _add_bad_files(root: Path) -> list[str]:
    (root / "cat" / "notes.txt").write_text("not an image")
    (root / "dog" / "empty.png").write_bytes(b"")
    good = (root / "dog" / "0.png").read_bytes()
    write_png(root / "dog" / "big.png", (1, 2, 3), size=(40, 40))
    (root / "dog" / "truncated.png").write_bytes((root / "dog" / "big.png").read_bytes()[:60])
    (root / "dog" / "big.png").unlink()
    (root / "cat" / "garbage.jpg").write_bytes(good[:8] + b"\x00" * 50)
    return ["notes.txt", "empty.png", "truncated.png", "garbage.jpg"]


def test_imagefolder_classes_mode_size_and_hidden(tmp_path: Path) -> None:
    write_image_folder(tmp_path)
    (tmp_path / ".cache").mkdir()
    (tmp_path / ".cache" / "x.png").write_bytes(b"junk")
    (tmp_path / "cat" / ".DS_Store").write_bytes(b"junk")
    bundle = build("imagefolder", root=str(tmp_path), size=4, mode="RGB", val_fraction=0.25)
    assert bundle.meta.classes == ["cat", "dog"]
    x, y = bundle.train.tensors
    assert x.shape == (6, 3, 4, 4) and x.dtype == torch.uint8
    for image, label in zip(x, y.tolist()):  # cats red, dogs green (JPEG: approximately)
        assert int(image[label].float().mean()) > 100  # channel 0 for cats, 1 for dogs
    pre = bundle.meta.preprocess
    assert pre["size"] == [4, 4] and len(pre["mean"]) == 3 and pre["kind"] == "image"
    gray = build("imagefolder", root=str(tmp_path), mode="L", val_fraction=0.0)
    assert gray.train.tensors[0].shape == (8, 1, 5, 6)  # default size: the first image's (height, width)


def test_imagefolder_split_folders(tmp_path: Path) -> None:
    write_image_folder(tmp_path / "train", per_class=3)
    write_image_folder(tmp_path / "val", per_class=1)
    write_image_folder(tmp_path / "test", per_class=2)
    bundle = build("imagefolder", root=str(tmp_path), size=[3, 5])
    assert (len(bundle.train), len(bundle.val), len(bundle.test)) == (6, 2, 4)
    assert bundle.test.tensors[0].shape[1:] == (3, 3, 5)


def test_imagefolder_fails_listing_every_bad_file_unless_skipped(tmp_path: Path, caplog) -> None:
    write_image_folder(tmp_path)
    bad = _add_bad_files(tmp_path)
    with pytest.raises(ValueError) as err:
        build("imagefolder", root=str(tmp_path), size=4)
    assert all(name in str(err.value) for name in bad) and "data.skip_bad=true" in str(err.value)
    with caplog.at_level("INFO", logger="trainlab"):
        bundle = build("imagefolder", root=str(tmp_path), size=4, skip_bad=True, val_fraction=0.0)
    assert len(bundle.train) == 8
    assert f"skipped {len(bad)} unreadable" in caplog.text


def test_imagefolder_structure_problems(tmp_path: Path) -> None:
    write_image_folder(tmp_path / "train")
    write_image_folder(tmp_path / "test", classes=("cat", "owl"))
    with pytest.raises(ValueError, match="'owl' is not among the train classes"):
        build("imagefolder", root=str(tmp_path))
    with pytest.raises(ValueError, match="data.root"):
        build("imagefolder")


def test_data_check_cli(tmp_path: Path, run_cli) -> None:
    write_image_folder(tmp_path)
    code, out, _ = run_cli("data", "check", tmp_path)
    assert code == 0 and "no problems" in out and "2 classes" in out
    bad = _add_bad_files(tmp_path)
    code, out, _ = run_cli("data", "check", tmp_path)
    assert code == 1 and all(name in out for name in bad) and f"{len(bad)} problem(s)" in out
