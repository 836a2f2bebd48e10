"""GoogLeNet / Inception v1 (2014), laid out as torchvision builds it (BN after every conv, and the "5×5"
branch using a 3×3 kernel, torchvision's long-standing choice) so parameter counts match exactly.

Auxiliary classifiers (``aux_logits=True``) hang off inception 4a and 4d.  In train mode the model returns
``(logits, aux1, aux2)``; :meth:`GoogLeNet.wrap_loss` turns any loss into ``loss(main) + aux_weight × (loss(aux1)
+ loss(aux2))``, so the trainer needs no special case.  In eval mode the model returns the logits only.
"""

from __future__ import annotations

import torch
from torch import nn

from trainlab.models.init import init_weights
from trainlab.models.layers import activation, use_small_stem
from trainlab.models.options import check_image_model
from trainlab.registry import MODELS

# Inception blocks: (in, 1x1, 3x3 reduce, 3x3, "5x5" reduce, "5x5", pool proj); None is a 3x3 stride-2 max pool.
BLOCKS = (
    ("3a", (192, 64, 96, 128, 16, 32, 32)), ("3b", (256, 128, 128, 192, 32, 96, 64)), ("pool3", None),
    ("4a", (480, 192, 96, 208, 16, 48, 64)), ("4b", (512, 160, 112, 224, 24, 64, 64)),
    ("4c", (512, 128, 128, 256, 24, 64, 64)), ("4d", (512, 112, 144, 288, 32, 64, 64)),
    ("4e", (528, 256, 160, 320, 32, 128, 128)), ("pool4", None),
    ("5a", (832, 256, 160, 320, 32, 128, 128)), ("5b", (832, 384, 192, 384, 48, 128, 128)),
)
AUX_AFTER = {"4a": 512, "4d": 528}  # auxiliary heads: block they follow → its output channels


class BasicConv(nn.Sequential):
    """Conv (no bias) → BatchNorm (eps 1e-3) → activation."""

    def __init__(self, c_in: int, c_out: int, kernel: int, act: str, stride: int = 1) -> None:
        super().__init__(nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, bias=False),
                         nn.BatchNorm2d(c_out, eps=0.001), activation(act))


class Inception(nn.Module):
    """Four parallel branches concatenated on channels: 1×1 | 1×1→3×3 | 1×1→3×3 | maxpool→1×1."""

    def __init__(self, c_in: int, c1: int, r3: int, c3: int, r5: int, c5: int, pool_proj: int, act: str) -> None:
        super().__init__()
        self.branch1 = BasicConv(c_in, c1, 1, act)
        self.branch2 = nn.Sequential(BasicConv(c_in, r3, 1, act), BasicConv(r3, c3, 3, act))
        self.branch3 = nn.Sequential(BasicConv(c_in, r5, 1, act), BasicConv(r5, c5, 3, act))
        self.branch4 = nn.Sequential(nn.MaxPool2d(3, 1, 1, ceil_mode=True), BasicConv(c_in, pool_proj, 1, act))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], dim=1)


class AuxHead(nn.Sequential):
    """Auxiliary classifier: pool to 4×4 → 1×1 conv 128 → dense 1024 → dropout 0.7 → classes."""

    def __init__(self, c_in: int, num_classes: int, act: str) -> None:
        super().__init__(nn.AdaptiveAvgPool2d((4, 4)), BasicConv(c_in, 128, 1, act), nn.Flatten(),
                         nn.Linear(2048, 1024), activation(act), nn.Dropout(0.7), nn.Linear(1024, num_classes))


class AuxLoss(nn.Module):
    """``base(main) + weight × Σ base(aux)`` on a tuple output; plain ``base`` on a tensor (eval mode)."""

    def __init__(self, base: nn.Module, weight: float) -> None:
        super().__init__()
        self.base, self.weight = base, weight

    def forward(self, output: torch.Tensor | tuple[torch.Tensor, ...], target: torch.Tensor) -> torch.Tensor:
        if isinstance(output, torch.Tensor):
            return self.base(output, target)
        main, *aux = output
        return self.base(main, target) + self.weight * sum(self.base(a, target) for a in aux)


class GoogLeNet(nn.Module):
    """Stem, nine inception blocks with two max pools between stages, global pooling, dropout, linear."""

    def __init__(self, num_classes: int, in_channels: int, act: str, small: bool, aux_logits: bool,
                 aux_weight: float, dropout: float) -> None:
        super().__init__()
        self.aux_weight = aux_weight
        self.stem = self._stem(in_channels, act, small)
        self.blocks = nn.ModuleDict({
            name: Inception(*spec, act=act) if spec else nn.MaxPool2d(3 if name == "pool3" else 2, 2, ceil_mode=True)
            for name, spec in BLOCKS
        })
        self.aux = nn.ModuleDict({name: AuxHead(c, num_classes, act) for name, c in AUX_AFTER.items()}) \
            if aux_logits else None
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout), nn.Linear(1024, num_classes))

    @staticmethod
    def _stem(in_channels: int, act: str, small: bool) -> nn.Sequential:
        """ImageNet: 7×7/2, pool, 1×1, 3×3, pool (÷8).  Small inputs: the same convs with a 3×3 first and no pools."""
        if small:
            return nn.Sequential(BasicConv(in_channels, 64, 3, act), BasicConv(64, 64, 1, act),
                                 BasicConv(64, 192, 3, act))
        return nn.Sequential(BasicConv(in_channels, 64, 7, act, stride=2), nn.MaxPool2d(3, 2, ceil_mode=True),
                             BasicConv(64, 64, 1, act), BasicConv(64, 192, 3, act), nn.MaxPool2d(3, 2, ceil_mode=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        x = self.stem(x)
        aux_out = []
        for name, block in self.blocks.items():
            x = block(x)
            if self.aux is not None and self.training and name in self.aux:
                aux_out.append(self.aux[name](x))
        logits = self.head(x)
        return (logits, *aux_out) if aux_out else logits

    def wrap_loss(self, base_loss: nn.Module) -> nn.Module:
        """The training loss: main loss plus ``aux_weight`` times each auxiliary head's loss."""
        return AuxLoss(base_loss, self.aux_weight) if self.aux is not None else base_loss


@MODELS.register("googlenet", description="GoogLeNet / Inception v1 with optional auxiliary classifiers")
def googlenet(*, num_classes: int, in_channels: int, input_size: tuple[int, int] | None, activation: str = "relu",
              aux_logits: bool = False, aux_weight: float = 0.3, dropout: float = 0.2,
              small_input: bool | None = None, init: str | None = None) -> nn.Module:
    """GoogLeNet; ``aux_logits`` adds the two auxiliary classifiers, weighted by ``aux_weight`` in the loss."""
    size = check_image_model("googlenet", input_size, activation, init)
    if aux_weight < 0:
        raise ValueError(f"googlenet aux_weight must be >= 0, got {aux_weight}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"googlenet dropout must be in [0, 1), got {dropout}")
    model = GoogLeNet(num_classes, in_channels, activation, use_small_stem(size, small_input), aux_logits,
                      aux_weight, dropout)
    return init_weights(model, init)
