"""Augmentation pipelines from config (``data.augment``), batched on the device where possible.

A spec is a list such as ``["hflip", {"crop": {"padding": 4}}, {"erasing": {"p": 0.25}}]``.  Geometric
transforms that have a batched version (flips, crop with padding, translate) run on whole uint8 batches on the
training device before normalization; random erasing runs on the normalized batch (erased pixels become 0, the
dataset mean).  Transforms that exist only per image (rotation, color jitter, grayscale, random resized crop)
switch the geometric part to ``torchvision.transforms.v2`` on the DataLoader path.  The deterministic ``resize``,
``center_crop`` and ``normalize`` (:mod:`trainlab.data.sizing`) have both versions; since augmentation changes
training batches only, a pipeline must end at the dataset's image size (``data.size`` resizes every split).

Randomness never comes from the global RNG: each batch draws from a generator seeded with
``(seed, epoch, batch index)`` and each per-image transform from one seeded with ``(seed, epoch, sample index)``,
so an epoch's augmentation is reproducible and a run resumed mid-epoch continues the same stream.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar, Sequence

import torch
import torch.nn.functional as F

from trainlab.config import build_augmentation
from trainlab.data.sizing import CenterCrop, Normalize, Resize
from trainlab.data.transform_base import Stage, Transform, batch_generator, mix_seed, probability, rand_draws
from trainlab.registry import AUGMENTATIONS

__all__ = ["Augmentation", "Transform", "TRANSFORMS", "batch_generator", "mix_seed", "parse_augment"]


@dataclass(frozen=True)
class HFlip(Transform):
    """Mirror left-right with probability ``p``."""

    p: float = 0.5
    dim: ClassVar[int] = -1

    def __post_init__(self) -> None:
        probability(type(self).__name__.lower(), self.p)

    def batch(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        flip = (rand_draws(gen, len(x), x.device) < self.p).view(-1, *([1] * (x.dim() - 1)))
        return torch.where(flip, x.flip(self.dim), x)

    def v2(self, input_shape: tuple[int, ...]) -> Any:
        from torchvision.transforms import v2

        return v2.RandomHorizontalFlip(self.p)


@dataclass(frozen=True)
class VFlip(HFlip):
    """Mirror top-bottom with probability ``p``."""

    dim: ClassVar[int] = -2

    def v2(self, input_shape: tuple[int, ...]) -> Any:
        from torchvision.transforms import v2

        return v2.RandomVerticalFlip(self.p)


def shifted_crop(x: torch.Tensor, pad_h: int, pad_w: int, gen: torch.Generator) -> torch.Tensor:
    """Zero-pad every image by (pad_h, pad_w) and cut a same-size window at a random offset per image."""
    n, _, height, width = x.shape
    padded = F.pad(x, (pad_w, pad_w, pad_h, pad_h))
    dy = torch.randint(0, 2 * pad_h + 1, (n,), generator=gen).to(x.device)
    dx = torch.randint(0, 2 * pad_w + 1, (n,), generator=gen).to(x.device)
    rows = (dy[:, None] + torch.arange(height, device=x.device))[:, :, None]
    cols = (dx[:, None] + torch.arange(width, device=x.device))[:, None, :]
    picked = padded[torch.arange(n, device=x.device)[:, None, None], :, rows, cols]  # (N, H, W, C)
    return picked.permute(0, 3, 1, 2).contiguous()


@dataclass(frozen=True)
class Crop(Transform):
    """Random crop with zero ``padding`` back to the original size (the CIFAR recipe)."""

    padding: int = 4

    def __post_init__(self) -> None:
        if self.padding < 0:
            raise ValueError(f"crop: padding must be >= 0, got {self.padding}")

    def batch(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        return shifted_crop(x, self.padding, self.padding, gen)

    def v2(self, input_shape: tuple[int, ...]) -> Any:
        from torchvision.transforms import v2

        return v2.RandomCrop(list(input_shape[1:]), padding=self.padding)


@dataclass(frozen=True)
class Translate(Transform):
    """Shift by up to ``max`` (fraction of height/width) in each direction, filling with zeros."""

    max: float = 0.1

    def __post_init__(self) -> None:
        if not 0.0 <= self.max < 1.0:
            raise ValueError(f"translate: max must be in [0, 1), got {self.max}")

    def batch(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        return shifted_crop(x, round(self.max * x.shape[-2]), round(self.max * x.shape[-1]), gen)

    def v2(self, input_shape: tuple[int, ...]) -> Any:
        from torchvision.transforms import v2

        return v2.RandomAffine(degrees=0.0, translate=(self.max, self.max))


@dataclass(frozen=True)
class Erasing(Transform):
    """Random erasing (Zhong et al.): with probability ``p`` a rectangle of the normalized image is set to ``value``.

    Area fraction from ``scale`` and aspect ratio from ``ratio``; a rectangle that would not fit is clipped to the
    image rather than redrawn.
    """

    p: float = 0.5
    scale: tuple[float, float] = (0.02, 0.33)
    ratio: tuple[float, float] = (0.3, 3.3)
    value: float = 0.0
    stage: ClassVar[Stage] = "normalized"

    def __post_init__(self) -> None:
        probability("erasing", self.p)
        if not 0 < self.scale[0] <= self.scale[1] <= 1 or not 0 < self.ratio[0] <= self.ratio[1]:
            raise ValueError(f"erasing: need 0 < scale[0] <= scale[1] <= 1 and 0 < ratio[0] <= ratio[1], "
                             f"got scale={self.scale}, ratio={self.ratio}")

    def batch(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        n, _, height, width = x.shape
        draws = torch.rand(5, n, generator=gen)
        area = height * width * (self.scale[0] + (self.scale[1] - self.scale[0]) * draws[1])
        log_lo, log_hi = math.log(self.ratio[0]), math.log(self.ratio[1])
        aspect = torch.exp(log_lo + (log_hi - log_lo) * draws[2])
        h = torch.sqrt(area * aspect).round().clamp(1, height)
        w = torch.sqrt(area / aspect).round().clamp(1, width)
        top = (draws[3] * (height - h + 1)).floor()
        left = (draws[4] * (width - w + 1)).floor()
        rows, cols = torch.arange(height), torch.arange(width)
        in_rows = (rows >= top[:, None]) & (rows < (top + h)[:, None])
        in_cols = (cols >= left[:, None]) & (cols < (left + w)[:, None])
        mask = in_rows[:, :, None] & in_cols[:, None, :] & (draws[0] < self.p)[:, None, None]
        return x.masked_fill(mask[:, None].to(x.device, non_blocking=True), self.value)


@dataclass(frozen=True)
class Rotation(Transform):
    """Rotate by a uniform angle in ``[-degrees, degrees]`` (per image, DataLoader path)."""

    degrees: float = 15.0
    batched: ClassVar[bool] = False

    def v2(self, input_shape: tuple[int, ...]) -> Any:
        from torchvision.transforms import v2

        return v2.RandomRotation(abs(self.degrees))


@dataclass(frozen=True)
class ColorJitter(Transform):
    """Random brightness / contrast / saturation / hue changes (per image, DataLoader path).

    ``saturation`` left unset means 0.2 on RGB images and none on gray ones, so the defaults work on both; set
    explicitly, saturation and hue need RGB images.
    """

    brightness: float = 0.2
    contrast: float = 0.2
    saturation: float | None = None
    hue: float = 0.0
    batched: ClassVar[bool] = False

    DEFAULT_SATURATION: ClassVar[float] = 0.2

    def __post_init__(self) -> None:
        if min(self.brightness, self.contrast, self.saturation or 0.0) < 0 or not 0 <= self.hue <= 0.5:
            raise ValueError("color_jitter: brightness, contrast, saturation must be >= 0 and hue in [0, 0.5]")

    def check(self, input_shape: tuple[int, ...]) -> None:
        if input_shape[0] != 3 and (self.saturation or self.hue):
            raise ValueError("color_jitter: saturation and hue need RGB images; set them to 0 for gray images")

    def v2(self, input_shape: tuple[int, ...]) -> Any:
        from torchvision.transforms import v2

        saturation = self.DEFAULT_SATURATION if self.saturation is None and input_shape[0] == 3 else self.saturation
        return v2.ColorJitter(self.brightness, self.contrast, saturation or None, self.hue or None)


@dataclass(frozen=True)
class Grayscale(Transform):
    """Turn an RGB image gray (kept as 3 channels) with probability ``p`` (per image, DataLoader path)."""

    p: float = 0.1
    batched: ClassVar[bool] = False

    def __post_init__(self) -> None:
        probability("grayscale", self.p)

    def check(self, input_shape: tuple[int, ...]) -> None:
        if input_shape[0] != 3:
            raise ValueError("grayscale: the images are not RGB, there is nothing to convert")

    def v2(self, input_shape: tuple[int, ...]) -> Any:
        from torchvision.transforms import v2

        return v2.RandomGrayscale(self.p)


@dataclass(frozen=True)
class ResizedCrop(Transform):
    """Crop a random area fraction ``scale`` with aspect ``ratio`` and resize it back to the input size."""

    scale: tuple[float, float] = (0.08, 1.0)
    ratio: tuple[float, float] = (0.75, 4 / 3)
    batched: ClassVar[bool] = False

    def __post_init__(self) -> None:
        if not 0 < self.scale[0] <= self.scale[1] <= 1 or not 0 < self.ratio[0] <= self.ratio[1]:
            raise ValueError(f"resized_crop: need 0 < scale[0] <= scale[1] <= 1 and 0 < ratio[0] <= ratio[1], "
                             f"got scale={list(self.scale)}, ratio={list(self.ratio)}")

    def v2(self, input_shape: tuple[int, ...]) -> Any:
        from torchvision.transforms import v2

        return v2.RandomResizedCrop(list(input_shape[1:]), scale=self.scale, ratio=self.ratio, antialias=True)


TRANSFORMS: dict[str, type[Transform]] = {
    "hflip": HFlip, "vflip": VFlip, "crop": Crop, "translate": Translate, "erasing": Erasing,
    "normalize": Normalize, "rotation": Rotation, "color_jitter": ColorJitter, "grayscale": Grayscale,
    "resized_crop": ResizedCrop, "resize": Resize, "center_crop": CenterCrop,
}
for _name, _cls in TRANSFORMS.items():
    AUGMENTATIONS.add(_name, _cls)


def parse_augment(specs: Sequence[Any] | None) -> list[Transform]:
    """Validate a whole ``data.augment`` list (used by the config, so mistakes fail before loading data)."""
    return [build_augmentation(spec) for spec in specs or []]


class Augmentation:
    """A parsed ``data.augment`` pipeline for images of ``input_shape``; knows whether it can run batched."""

    def __init__(self, specs: Sequence[Any], input_shape: tuple[int, ...]):
        if len(input_shape) != 3:
            raise ValueError("data.augment applies to images; this dataset is a table (remove data.augment)")
        self.transforms = [t.bind(input_shape) for t in parse_augment(specs)]
        shape = input_shape
        for transform in self.transforms:
            transform.check(shape)
            shape = transform.output_shape(shape)
        if shape != input_shape:
            raise ValueError(f"data.augment: the pipeline leaves training images at {'x'.join(map(str, shape))}, but "
                             f"evaluation images (not augmented) and the model get {'x'.join(map(str, input_shape))}; "
                             "end with a resize or center_crop back to that size, or resize every split with "
                             "data.size")
        self.input_shape = input_shape
        self.raw = [t for t in self.transforms if t.stage == "raw"]
        self.normalized = [t for t in self.transforms if t.stage == "normalized"]

    @property
    def per_sample(self) -> list[str]:
        """Names of the transforms that have no batched version (non-empty → DataLoader path)."""
        names = {cls: name for name, cls in TRANSFORMS.items()}
        return [names[type(t)] for t in self.transforms if not t.batched]

    def v2_pipeline(self) -> Any:
        """The raw-stage transforms as one ``torchvision.transforms.v2`` pipeline for single uint8 images."""
        from torchvision.transforms import v2

        return v2.Compose([t.v2(self.input_shape) for t in self.raw])

    def before_normalize(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        for transform in self.raw:
            x = transform.batch(x, gen)
        return x

    def after_normalize(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        for transform in self.normalized:
            x = transform.batch(x, gen)
        return x
