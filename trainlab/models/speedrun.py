"""A small, fast conv net for speedruns on small images (Fashion-MNIST, CIFAR-sized inputs).

The design follows the lessons of Keller Jordan's airbench CIFAR-10 speedruns, re-derived here rather than
copied: few layers at low resolution (a stem, then three groups that each halve the image with max pooling
*before* normalizing, so BatchNorm and GELU run on a quarter of the pixels), no residual additions but
identity-initialized convolutions (each conv starts as a pass-through of its first input channels, an
implicit residual that trains fast), global max pooling, and a bias-free linear head whose logits are scaled
down (``head_scale``) so the initial predictions are near uniform.  Variants differ in width only.
"""

from __future__ import annotations

from torch import Tensor, nn

from trainlab.registry import MODELS

VARIANTS: dict[str, dict] = {
    "speedrun-net-xs": dict(stem=8, widths=(16, 32, 32), description="tiny speedrun net for CPU tests (~36k params)"),
    "speedrun-net": dict(stem=24, widths=(64, 256, 256),
                         description="airbench-style 7-conv net; the Fashion-MNIST 94% speedrun model"),
    "speedrun-net-l": dict(stem=32, widths=(128, 384, 384),
                           description="wider speedrun net for the Fashion-MNIST 95% recipe"),
}


def _conv(c_in: int, c_out: int) -> nn.Conv2d:
    """3x3 'same' conv without bias, initialized so that its first channels pass their input through."""
    conv = nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)
    nn.init.dirac_(conv.weight.data[:min(c_in, c_out)])
    return conv


class ConvGroup(nn.Module):
    """conv → max-pool(2) → BN → GELU → conv → BN → GELU: halves the resolution, sets the width."""

    def __init__(self, c_in: int, c_out: int, pool: bool) -> None:
        super().__init__()
        self.conv1 = _conv(c_in, c_out)
        self.pool = nn.MaxPool2d(2) if pool else nn.Identity()
        self.norm1 = nn.BatchNorm2d(c_out)
        self.conv2 = _conv(c_out, c_out)
        self.norm2 = nn.BatchNorm2d(c_out)
        self.act = nn.GELU()

    def forward(self, x: Tensor) -> Tensor:
        x = self.act(self.norm1(self.pool(self.conv1(x))))
        return self.act(self.norm2(self.conv2(x)))


class SpeedrunNet(nn.Module):
    """Stem conv, three :class:`ConvGroup` stages, global max pooling, scaled linear head."""

    def __init__(self, num_classes: int, in_channels: int, input_size: tuple[int, int], stem: int,
                 widths: tuple[int, int, int], head_scale: float) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_channels, stem, 3, padding=1, bias=False), nn.BatchNorm2d(stem),
                                  nn.GELU())
        groups, size, c_in = [], min(input_size), stem
        for width in widths:
            pool = size >= 2  # tiny inputs keep their resolution rather than pool to nothing
            groups.append(ConvGroup(c_in, width, pool))
            size, c_in = size // 2 if pool else size, width
        self.groups = nn.Sequential(*groups)
        self.pool = nn.AdaptiveMaxPool2d(1)
        self.head = nn.Linear(c_in, num_classes, bias=False)
        self.head_scale = head_scale

    def forward(self, x: Tensor) -> Tensor:
        x = self.pool(self.groups(self.stem(x))).flatten(1)
        return self.head(x) * self.head_scale


def _register(name: str, stem: int, widths: tuple[int, int, int], description: str) -> None:
    def builder(*, num_classes: int, in_channels: int, input_size: tuple[int, int] | None,
                head_scale: float = 1 / 9) -> nn.Module:
        if input_size is None:
            raise ValueError(f"{name} needs image input (channels, height, width); use 'mlp' for tables")
        if head_scale <= 0:
            raise ValueError(f"model.head_scale of {name} must be > 0, got {head_scale}")
        return SpeedrunNet(num_classes, in_channels, input_size, stem, widths, head_scale)

    builder.__doc__ = f"{description}: stem {stem}, group widths {widths}."
    MODELS.add(name, builder, description=description)


for _name, _spec in VARIANTS.items():
    _register(_name, **_spec)
