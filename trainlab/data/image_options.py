"""``data.size``, ``data.normalize`` and ``data.whiten`` for every image dataset, in one place.

Each image builder makes its bundle at the images' own size with its own statistics, then hands it to
:func:`finish_image_bundle`, which records in the preprocessing record (``data.json``) how every batch becomes
model input, so training, evaluation and ``trainlab predict`` all do the same:

* ``size`` → ``resize``: each batch is resized on the device (bilinear), once per batch, after the stored uint8
  images are scaled.  The images stay in memory at their own size (Fashion-MNIST at 224x224 would take 3.5 GB as
  uint8), and predict reads a file at the stored size and resizes it with the same function.
* ``normalize`` → ``mean``/``std``: the dataset's own statistics, ImageNet's, none (pixels in [0, 1]) or given.
* ``whiten`` → ``whiten``: PCA or ZCA fitted on the training split's model inputs (:mod:`trainlab.data.whiten`).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from trainlab.data.bundle import DataBundle
from trainlab.data.loaders import BatchTransform
from trainlab.data.preprocess import size_pair
from trainlab.data.sizing import Normalize
from trainlab.data.whiten import check_whiten, fit_whitening, moments

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
NORMALIZE_NAMES = ("dataset", "imagenet", "none")
NORMALIZE_CHOICES = "dataset, imagenet, none, or {mean: [...], std: [...]} with one value per channel"
FIT_CHUNK = 2048  # training images per step when fitting whitening


def resolve_normalize(spec: Any, channels: int, dataset_mean: list[float],
                      dataset_std: list[float]) -> tuple[list[float], list[float]]:
    """The per-channel (mean, std) that ``data.normalize`` asks for; a ValueError naming the key otherwise."""
    if spec == "dataset":
        return list(dataset_mean), list(dataset_std)
    if spec == "none":
        return [0.0] * channels, [1.0] * channels
    if spec == "imagenet":
        if channels != 3:
            raise ValueError(f"data.normalize=imagenet: ImageNet's statistics are for RGB images, these have "
                             f"{channels} channel(s); use dataset, none or {{mean: [...], std: [...]}}")
        return list(IMAGENET_MEAN), list(IMAGENET_STD)
    if isinstance(spec, dict):
        if set(spec) != {"mean", "std"}:
            raise ValueError(f"data.normalize: a mapping needs exactly the keys mean and std, got {sorted(spec)}")
        values = {key: _numbers(spec[key], key) for key in ("mean", "std")}
        try:
            stats = Normalize(mean=tuple(values["mean"]), std=tuple(values["std"]))
        except ValueError as err:
            raise ValueError(f"data.{err}") from None
        stats.check_channels(channels, "data.normalize")
        return values["mean"], values["std"]
    raise ValueError(f"data.normalize: unknown value {spec!r}; choices: {NORMALIZE_CHOICES}")


def _numbers(value: Any, key: str) -> list[float]:
    """A number or a list of numbers as floats (``{mean: 0.5}`` is ``[0.5]``)."""
    items = value if isinstance(value, list) else [value]
    if not items or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in items):
        raise ValueError(f"data.normalize: {key} must be a list of numbers, one per channel, got {value!r}")
    return [float(v) for v in items]


def check_image_options(channels: int, hw: tuple[int, int], normalize: Any, whiten: str | None,
                        whiten_eps: float | None) -> None:
    """Refuse bad ``data.normalize``/``data.whiten`` values before a slow read of the images."""
    resolve_normalize(normalize, channels, [0.0] * channels, [1.0] * channels)
    check_whiten(whiten, whiten_eps, channels * hw[0] * hw[1], f"images of {channels}x{hw[0]}x{hw[1]}")


def finish_image_bundle(bundle: DataBundle, *, size: Any = None, normalize: Any = "dataset",
                        whiten: str | None = None, whiten_eps: float | None = None) -> DataBundle:
    """``bundle`` with ``data.size``, ``data.normalize`` and ``data.whiten`` applied to its preprocessing record and
    input shape; the stored images are untouched.  Every check runs before the (slower) whitening fit."""
    meta, record = bundle.meta, dict(bundle.meta.preprocess)
    channels, height, width = meta.input_shape
    hw = size_pair(size, "data.size") if size is not None else (height, width)
    record["mean"], record["std"] = resolve_normalize(normalize, channels, record["mean"], record["std"])
    if hw != (height, width):
        record["resize"] = list(hw)
    eps = check_whiten(whiten, whiten_eps, channels * hw[0] * hw[1], f"images of {channels}x{hw[0]}x{hw[1]}")
    if whiten is not None:
        record["whiten"] = fit_whitening(whiten, *image_moments(bundle.train.tensors[0], record), eps)  # type: ignore[attr-defined]
    meta = dataclasses.replace(meta, input_shape=(channels, *hw), preprocess=record)
    return dataclasses.replace(bundle, meta=meta)


def image_moments(images: torch.Tensor, record: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and covariance of the training images as the model gets them (resized, normalized), chunk by chunk."""
    transform = BatchTransform.from_preprocess({k: v for k, v in record.items() if k != "whiten"})
    return moments(transform(images[start:start + FIT_CHUNK]) for start in range(0, len(images), FIT_CHUNK))
