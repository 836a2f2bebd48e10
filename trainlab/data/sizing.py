"""The deterministic image transforms: resize, center crop and normalize, batched on the device and per image.

Registered with the other augmentations in :mod:`trainlab.data.transforms`; :func:`resize_batch` is also how
``data.size`` resizes every batch of a built-in dataset (:class:`~trainlab.data.loaders.BatchTransform`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, ClassVar, Sequence

import torch
import torch.nn.functional as F

from trainlab.data.preprocess import size_pair
from trainlab.data.transform_base import Transform


def resize_batch(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Bilinear resize of ``(N, C, H, W)`` to ``size`` (antialiased when shrinking, as torchvision's Resize); an
    integer batch comes back rounded to its own dtype.  One call per batch, on the batch's device."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    shrink = size[0] < x.shape[-2] or size[1] < x.shape[-1]
    out = F.interpolate(x.float(), size=tuple(size), mode="bilinear", align_corners=False, antialias=shrink)
    if x.dtype.is_floating_point:
        return out.to(x.dtype)
    info = torch.iinfo(x.dtype)
    return out.round_().clamp_(info.min, info.max).to(x.dtype)


@dataclass(frozen=True)
class Sized(Transform):
    """A deterministic transform to ``size`` (``N`` or ``[H, W]``; unset: the dataset's image size).

    ``data.augment`` changes training batches only, so its pipeline must end at the dataset's size (e.g.
    ``center_crop`` then ``resize``: a zoom); ``data.size`` resizes every split, predict included."""

    size: int | list[int] | None = None  # stored as a (height, width) tuple
    label: ClassVar[str] = "size"

    def __post_init__(self) -> None:
        if self.size is not None:
            object.__setattr__(self, "size", size_pair(self.size, f"{self.label}: size"))

    def bind(self, input_shape: tuple[int, ...]) -> Sized:
        return self if self.size is not None else replace(self, size=tuple(input_shape[1:3]))

    def output_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        return (shape[0], *self.size) if self.size is not None else shape  # type: ignore[misc]


@dataclass(frozen=True)
class Resize(Sized):
    """Resize with bilinear interpolation, antialiased when shrinking (torchvision's ``Resize``)."""

    label: ClassVar[str] = "resize"

    def batch(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        return resize_batch(x, self.size or x.shape[-2:])  # type: ignore[arg-type]

    def v2(self, input_shape: tuple[int, ...]) -> Any:
        from torchvision.transforms import v2

        return v2.Resize(list(self.size or input_shape[1:3]), antialias=True)  # type: ignore[arg-type]


@dataclass(frozen=True)
class CenterCrop(Sized):
    """Cut the central ``size`` window, as torchvision's ``CenterCrop`` does."""

    label: ClassVar[str] = "center_crop"

    def check(self, input_shape: tuple[int, ...]) -> None:
        if self.size is not None and (self.size[0] > input_shape[1] or self.size[1] > input_shape[2]):  # type: ignore[index]
            raise ValueError(f"center_crop: size {list(self.size)} is larger than the {input_shape[1]}x{input_shape[2]} "  # type: ignore[arg-type]
                             "images it gets; crop a smaller window or resize first")

    def batch(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        (height, width), (h, w) = x.shape[-2:], self.size or x.shape[-2:]  # type: ignore[misc]
        top, left = int(round((height - h) / 2.0)), int(round((width - w) / 2.0))
        return x[..., top:top + h, left:left + w].contiguous()

    def v2(self, input_shape: tuple[int, ...]) -> Any:
        from torchvision.transforms import v2

        return v2.CenterCrop(list(self.size or input_shape[1:3]))  # type: ignore[arg-type]


@dataclass(frozen=True)
class Normalize(Transform):
    """``(x - mean) / std`` per channel on images scaled to [0, 1], as torchvision's Normalize.

    Every split is normalized by ``data.normalize`` (``dataset``, ``imagenet``, ``none`` or ``{mean, std}``), which
    checks its values with this class; in ``data.augment``, which changes training batches only, the bare name is
    accepted for familiarity and does nothing, and given values are refused, pointing to ``data.normalize``."""

    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        if (self.mean is None) != (self.std is None):
            raise ValueError("normalize: give both mean and std (one value per channel), or neither")
        if self.mean is not None and self.std is not None:
            if len(self.mean) != len(self.std) or not self.mean:
                raise ValueError(f"normalize: mean and std need one value per channel each, got {len(self.mean)} "
                                 f"mean and {len(self.std)} std values")
            if min(self.std) <= 0:
                raise ValueError(f"normalize: every std must be > 0 (it divides), got {list(self.std)}")

    def check(self, input_shape: tuple[int, ...]) -> None:
        if self.mean is not None:
            raise ValueError("normalize: data.augment changes training batches only, so normalizing there would give "
                             "evaluation and predict other inputs; set data.normalize={mean: [...], std: [...]} "
                             "instead (every split)")

    def check_channels(self, channels: int, key: str) -> None:
        """Refuse statistics for another number of channels, naming ``key`` (e.g. ``data.normalize``)."""
        if self.mean is not None and len(self.mean) != channels:
            kind = "gray (1 channel)" if channels == 1 else f"{channels}-channel"
            raise ValueError(f"{key}: {len(self.mean)} mean/std value(s) for {kind} images; give {channels} "
                             f"value(s), one per channel")

    def batch(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        if self.mean is None or self.std is None:
            return x
        shape = (1, -1) + (1,) * (x.dim() - 2)
        mean = torch.tensor(self.mean, dtype=torch.float32, device=x.device).view(shape)
        std = torch.tensor(self.std, dtype=torch.float32, device=x.device).view(shape)
        return (x.float() - mean) / std

    def v2(self, input_shape: tuple[int, ...]) -> Any:
        from torchvision.transforms import v2

        return v2.Identity() if self.mean is None else v2.Normalize(list(self.mean), list(self.std or ()))
