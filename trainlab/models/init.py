"""Weight initialization schemes by name.

Every builder accepts ``init``: ``None`` keeps PyTorch's per-layer defaults, a name re-initializes the weights
of every convolution and linear layer with that scheme (biases to zero) and resets normalization layers to
identity (weight 1, bias 0).  Comparing schemes is then one config key: ``--set model.init=xavier_uniform``.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from trainlab.models.layers import did_you_mean

INITS: dict[str, Callable[[torch.Tensor], object]] = {
    "normal": lambda w: nn.init.normal_(w, std=0.01),
    "uniform": lambda w: nn.init.uniform_(w, -0.05, 0.05),
    "xavier_uniform": nn.init.xavier_uniform_,
    "xavier_normal": nn.init.xavier_normal_,
    "kaiming_uniform": lambda w: nn.init.kaiming_uniform_(w, nonlinearity="relu"),
    "kaiming_normal": lambda w: nn.init.kaiming_normal_(w, nonlinearity="relu"),
    # mode="fan_out" keeps the gradients' scale in the backward pass instead (torchvision's ResNets use it)
    "kaiming_uniform_fan_out": lambda w: nn.init.kaiming_uniform_(w, mode="fan_out", nonlinearity="relu"),
    "kaiming_normal_fan_out": lambda w: nn.init.kaiming_normal_(w, mode="fan_out", nonlinearity="relu"),
    # every weight equal: the curriculum's demonstration that symmetric units never learn different features
    "zeros": nn.init.zeros_,
}

_WEIGHTED = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)
_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.LayerNorm, nn.GroupNorm)


def check_init(name: str | None) -> str | None:
    """Validate an init name (``None`` is allowed and means "PyTorch defaults")."""
    if name is not None and name not in INITS:
        raise ValueError(did_you_mean("init scheme", name, list(INITS)))
    return name


def init_weights(model: nn.Module, name: str | None) -> nn.Module:
    """Apply scheme ``name`` to ``model`` in place and return it; ``None`` leaves it untouched."""
    scheme = INITS.get(check_init(name)) if name is not None else None
    if scheme is None:
        return model
    for module in model.modules():
        if isinstance(module, _WEIGHTED):
            scheme(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, _NORMS) and getattr(module, "weight", None) is not None:
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
    return model
