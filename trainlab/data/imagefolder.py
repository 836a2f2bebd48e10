"""Image folders: ``root/<class>/<image>``, optionally split into ``root/train``, ``root/val`` and ``root/test``.

Class indices follow the sorted class-folder names of the training split (stable, saved with the run as
``meta.classes``).  Hidden files and folders are ignored.  Every other file must be a readable image: corrupt,
truncated and non-image files are collected with their paths, and the build fails listing all of them unless
``data.skip_bad=true``.  Images are converted exactly as ``trainlab predict`` converts files (same mode, same
resizing), stored as uint8 in memory, and normalized with the training split's own mean and std.
"""

from __future__ import annotations

import logging
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from torch.utils.data import TensorDataset

from trainlab.data.bundle import DataBundle, DataMeta, channel_stats, tensor_splits
from trainlab.data.checks import Findings, dataset_findings, enforce
from trainlab.data.image_options import check_image_options, finish_image_bundle
from trainlab.data.images import InputError, load_image
from trainlab.data.preprocess import image_preprocess, size_pair
from trainlab.registry import DATASETS

logger = logging.getLogger(__name__)

VAL_NAMES = ("val", "valid", "validation")


@dataclass
class FolderReport:
    """What a scan found: splits, classes, readable files per split, and every problem with its path."""

    root: Path
    splits: dict[str, Path]
    classes: list[str]
    files: dict[str, list[tuple[Path, int]]] = field(default_factory=dict)
    bad: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.bad and not self.problems


def _visible(path: Path, base: Path) -> bool:
    return not any(part.startswith(".") for part in path.relative_to(base).parts)


def _class_dirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def find_splits(root: Path) -> dict[str, Path]:
    """``{"train": ..., "val": ..., "test": ...}``: explicit split folders when ``root/train`` exists, else root."""
    if not root.is_dir():
        raise FileNotFoundError(f"imagefolder: {root} is not a directory (set data.root=DIR)")
    if not (root / "train").is_dir():
        return {"train": root}
    splits = {"train": root / "train"}
    val = next((root / n for n in VAL_NAMES if (root / n).is_dir()), None)
    if val is not None:
        splits["val"] = val
    if (root / "test").is_dir():
        splits["test"] = root / "test"
    return splits


def scan(root: str | Path) -> FolderReport:
    """List every split's image files by class, and the structural problems (no classes, unknown classes)."""
    root = Path(root).expanduser()
    splits = find_splits(root)
    classes = [p.name for p in _class_dirs(splits["train"])]
    report = FolderReport(root, splits, classes)
    if not classes:
        report.problems.append(f"{splits['train']}: no class sub-folders (expected {splits['train']}/<class>/<image>)")
    index = {name: i for i, name in enumerate(classes)}
    for split, folder in splits.items():
        report.files[split] = []
        for class_dir in _class_dirs(folder):
            if class_dir.name not in index:
                report.problems.append(f"{class_dir}: class '{class_dir.name}' is not among the train classes")
                continue
            found = sorted(p for p in class_dir.rglob("*") if p.is_file() and _visible(p, class_dir))
            if not found:
                report.problems.append(f"{class_dir}: empty class folder")
            report.files[split] += [(p, index[class_dir.name]) for p in found]
    return report


def read_image(path: Path, mode: str, size: tuple[int, int]) -> torch.Tensor:
    """One file → uint8 (C, H, W), converted like ``trainlab predict`` does; raises InputError when unreadable."""
    from PIL import Image

    try:
        return load_image(path, {"mode": mode, "size": list(size), "max_value": 255}).to(torch.uint8)
    except InputError:
        raise
    except (ValueError, SyntaxError, EOFError, struct.error, zlib.error, Image.DecompressionBombError) as err:
        raise InputError(f"{path}: not a readable image ({err})") from None


def first_size(report: FolderReport) -> tuple[int, int]:
    """The (height, width) of the first readable training image: the default ``data.size``."""
    from PIL import Image

    for path, _ in report.files.get("train", []):
        try:
            with Image.open(path) as img:
                if img.width * img.height <= (Image.MAX_IMAGE_PIXELS or float("inf")):
                    return img.height, img.width
        except (OSError, ValueError, SyntaxError, EOFError, struct.error, zlib.error, Image.DecompressionBombError):
            continue
    raise ValueError(f"imagefolder: no readable training image under {report.splits['train']}")


def load_split(report: FolderReport, split: str, mode: str, size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Read a split into memory; unreadable files are appended to ``report.bad``."""
    images, labels = [], []
    for path, label in report.files.get(split, []):
        try:
            images.append(read_image(path, mode, size))
            labels.append(label)
        except InputError as err:
            report.bad.append(str(err))
    channels = 1 if mode == "L" else 3
    x = torch.stack(images) if images else torch.zeros((0, channels, *size), dtype=torch.uint8)
    return x, torch.tensor(labels, dtype=torch.long)


def folder_findings(report: FolderReport, labels: dict[str, torch.Tensor], val_fraction: float) -> Findings:
    """The shared dataset checks (two classes at least, splits that are not empty) for the readable images of each
    split (``labels``), as training will split them: ``val_fraction`` applies only without a validation folder."""
    found = Findings()
    for split in ("val", "test"):
        if split in labels and len(labels[split]) == 0:
            found.problems.append(f"{report.splits[split]}: no readable images in the {split} split")
    if not report.classes or len(labels.get("train", ())) == 0:
        return found  # scan() and the build already say so, naming the folder
    separate = "val" in labels
    shared = dataset_findings(labels["train"].numpy(), task="classification", classes=report.classes,
                              val_fraction=0.0 if separate else val_fraction,
                              where=f"imagefolder: {report.splits['train']}", classes_from="class sub-folders",
                              val_rows=len(labels["val"]) if separate else None)
    found.problems += shared.problems
    found.warnings += shared.warnings
    return found


def _size(size: int | list[int] | None, report: FolderReport) -> tuple[int, int]:
    return first_size(report) if size is None else size_pair(size, "data.size")


def _background(x: torch.Tensor) -> str:
    """'dark' when image borders are mostly black (ink on black, as MNIST), 'light' when white, else 'any'."""
    border = torch.cat([x[..., 0, :].flatten(), x[..., -1, :].flatten(), x[..., 0].flatten(), x[..., -1].flatten()])
    level = border.float().mean().item() / 255 if border.numel() else 0.5
    return "dark" if level < 0.25 else "light" if level > 0.75 else "any"


@DATASETS.register("imagefolder", description="your images: data.root=DIR with one sub-folder per class (+ train/val/test)")
def imagefolder(*, seed: int = 0, val_fraction: float = 0.1, root: str | None = None,
                mode: Literal["L", "RGB"] = "RGB", size: int | list[int] | None = None,
                skip_bad: bool = False, normalize: str | dict[str, Any] = "dataset",
                whiten: Literal["pca", "zca"] | None = None, whiten_eps: float | None = None) -> DataBundle:
    """Class-per-folder images loaded into memory at ``size`` (default: the first image's size) in ``mode``.

    Unlike the built-in datasets, whose batches are resized on the device, files of any size are resized once, as
    they are read (predict reads a file the same way); ``normalize`` and ``whiten`` are those of every image
    dataset (:func:`~trainlab.data.image_options.finish_image_bundle`)."""
    if root is None:
        raise ValueError("imagefolder needs data.root=DIR (DIR/<class>/<image>, or DIR/train/<class>/... )")
    report = scan(root)
    if report.problems:
        raise ValueError("imagefolder: " + "\n  ".join([f"problems in {report.root}:", *report.problems]))
    hw = _size(size, report)
    check_image_options(1 if mode == "L" else 3, hw, normalize, whiten, whiten_eps)
    arrays = {split: load_split(report, split, mode, hw) for split in report.splits}
    if report.bad and not skip_bad:
        raise ValueError("\n  ".join([f"imagefolder: {len(report.bad)} unreadable file(s) in {report.root}:", *report.bad])
                         + "\nremove them, or set data.skip_bad=true to skip them (see `trainlab data check DIR`)")
    if report.bad:
        logger.info("imagefolder skipped %d unreadable file(s) in %s", len(report.bad), report.root)
    x, y = arrays["train"]
    if len(y) == 0:
        raise ValueError(f"imagefolder: no readable training images under {report.splits['train']}")
    enforce(folder_findings(report, {split: labels for split, (_, labels) in arrays.items()}, val_fraction))
    if "val" in arrays:
        train, val = TensorDataset(x, y), TensorDataset(*arrays["val"])
    else:
        train, val = tensor_splits(x, y, val_fraction, seed, stratify=True)
    test = TensorDataset(*arrays["test"]) if "test" in arrays else None
    mean, std = channel_stats(train.tensors[0], 1 / 255)
    preprocess = image_preprocess(mode=mode, size=hw, mean=mean, std=[max(s, 1e-3) for s in std],
                                  background=_background(train.tensors[0]))
    meta = DataMeta(task="classification", input_shape=(x.shape[1], *hw), num_classes=len(report.classes),
                    classes=report.classes, preprocess=preprocess)
    return finish_image_bundle(DataBundle(train=train, val=val, test=test, meta=meta), normalize=normalize,
                               whiten=whiten, whiten_eps=whiten_eps)
