"""Multiply-accumulate counting, the one definition behind ``trainlab summary``'s MACs and the trainer's TFLOP/s."""

from __future__ import annotations

import math

import torch
from torch import nn

COUNTED = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)  # the layers that carry nearly all the compute


def layer_macs(module: nn.Module, output: torch.Tensor) -> int:
    """Multiply-accumulates ``module`` spent producing ``output`` (the whole batch); 0 for uncounted layers."""
    if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
        return output.numel() * (module.in_channels // module.groups) * math.prod(module.kernel_size)
    if isinstance(module, nn.Linear):
        return output.numel() * module.in_features
    return 0
