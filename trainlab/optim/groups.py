"""Parameter groups and weight penalties: which parameters decay, which form the head, what L1 covers.

Biases and normalization parameters (BatchNorm/LayerNorm/GroupNorm scales and shifts) set the position and
scale of activations rather than the capacity of the model, so decaying them toward zero mostly hurts; the
usual recipe excludes them from weight decay and from the L1 penalty.  The "head" is the last ``nn.Linear``
in the model: when fine-tuning it is new and usually wants a larger learning rate than the pretrained body.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

_NORM_TYPES = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm, nn.LocalResponseNorm)


def split_decay(model: nn.Module) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """(weights, biases-and-norm-parameters), each parameter once, in ``model.parameters()`` order."""
    no_decay: set[int] = set()
    for module in model.modules():
        for name, param in module.named_parameters(recurse=False):
            if isinstance(module, _NORM_TYPES) or name.endswith("bias"):
                no_decay.add(id(param))
    params = list(model.parameters())
    return [p for p in params if id(p) not in no_decay], [p for p in params if id(p) in no_decay]


def head_parameters(model: nn.Module, needed_by: str = "optim.head_lr_mult",
                    fix: str = "leave optim.head_lr_mult at 1.0") -> list[nn.Parameter]:
    """Parameters of the last ``nn.Linear`` module: the classifier or regression head."""
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError(f"{needed_by} needs a model whose head is an nn.Linear layer; "
                         f"{type(model).__name__} has none ({fix})")
    return list(linears[-1].parameters())


def param_groups(model: nn.Module, *, lr: float, weight_decay: float, no_decay_norm_bias: bool,
                 head_lr_mult: float) -> list[dict[str, Any]]:
    """Optimizer groups: body/head × decay/no-decay, empty ones dropped; the body comes first.

    Group 0 therefore carries the base learning rate whenever the model has a body, which is the LR that
    ``metrics.csv`` reports.
    """
    head_ids = {id(p) for p in head_parameters(model)} if head_lr_mult != 1.0 else set()
    decayed, exempt = split_decay(model) if no_decay_norm_bias else (list(model.parameters()), [])
    exempt_ids = {id(p) for p in exempt}
    groups = []
    for part, mult in (("body", 1.0), ("head", head_lr_mult)):
        for kind, decay in (("decay", weight_decay), ("no_decay", 0.0)):
            members = [p for p in decayed + exempt
                       if (id(p) in head_ids) == (part == "head") and (id(p) in exempt_ids) == (kind == "no_decay")]
            if members:
                groups.append({"params": members, "lr": lr * mult, "weight_decay": decay, "name": f"{part}/{kind}"})
    return groups


class L1Penalty:
    """``λ · Σ|w|`` over the weights only (biases and normalization parameters are left out)."""

    def __init__(self, model: nn.Module, strength: float) -> None:
        if strength < 0:
            raise ValueError(f"optim.l1 must be >= 0, got {strength}")
        self.strength = strength
        self.params = split_decay(model)[0]

    def __call__(self) -> torch.Tensor:
        return self.strength * sum(p.abs().sum() for p in self.params)
