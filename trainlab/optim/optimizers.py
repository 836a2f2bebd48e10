"""Optimizers by name.

Each builder takes the parameters (a list of tensors or of parameter-group dicts) plus ``lr`` and
``weight_decay`` from the config section's fixed keys, and its own options as typed keywords.  ``lamb`` and
``lion`` are not offered: torch ships neither, and trainlab adds no optimizer dependencies.
"""

from __future__ import annotations

from typing import Any, Iterable

import torch

from trainlab.registry import OPTIMIZERS

Params = Iterable[Any]


def _check_range(optimizer: str, **values: float) -> None:
    for key, value in values.items():
        if not 0.0 <= value < 1.0:
            raise ValueError(f"optim.{key} of {optimizer} must be in [0, 1), got {value}")


@OPTIMIZERS.register("sgd", description="stochastic gradient descent; momentum, Nesterov and dampening optional")
def sgd(params: Params, *, lr: float, weight_decay: float = 0.0, momentum: float = 0.0, nesterov: bool = False,
        dampening: float = 0.0) -> torch.optim.Optimizer:
    """SGD; ``momentum=0.9`` is the usual choice for conv nets, ``nesterov=true`` looks one step ahead."""
    _check_range("sgd", momentum=momentum, dampening=dampening)
    if nesterov and (momentum == 0 or dampening != 0):
        raise ValueError("optim.nesterov=true needs optim.momentum > 0 and optim.dampening=0, "
                         f"got momentum={momentum}, dampening={dampening}")
    return torch.optim.SGD(params, lr=lr, weight_decay=weight_decay, momentum=momentum, nesterov=nesterov,
                           dampening=dampening)


@OPTIMIZERS.register("adagrad", description="Adagrad: per-parameter LR shrinking with the sum of squared gradients")
def adagrad(params: Params, *, lr: float, weight_decay: float = 0.0, lr_decay: float = 0.0,
            initial_accumulator_value: float = 0.0, eps: float = 1e-10) -> torch.optim.Optimizer:
    """Adagrad (Duchi et al.); good for sparse features, its effective LR only ever decreases."""
    if lr_decay < 0 or initial_accumulator_value < 0 or eps <= 0:
        raise ValueError("optim.lr_decay and optim.initial_accumulator_value of adagrad must be >= 0 and eps > 0")
    return torch.optim.Adagrad(params, lr=lr, weight_decay=weight_decay, lr_decay=lr_decay,
                               initial_accumulator_value=initial_accumulator_value, eps=eps)


@OPTIMIZERS.register("rmsprop", description="RMSprop: gradients divided by a running RMS; optional momentum")
def rmsprop(params: Params, *, lr: float, weight_decay: float = 0.0, alpha: float = 0.99, eps: float = 1e-8,
            momentum: float = 0.0, centered: bool = False) -> torch.optim.Optimizer:
    """RMSprop (Hinton); ``alpha`` is the smoothing of the squared-gradient average."""
    _check_range("rmsprop", alpha=alpha, momentum=momentum)
    return torch.optim.RMSprop(params, lr=lr, weight_decay=weight_decay, alpha=alpha, eps=eps, momentum=momentum,
                               centered=centered)


@OPTIMIZERS.register("adam", description="Adam: adaptive moments; weight decay is L2 added to the gradient")
def adam(params: Params, *, lr: float, weight_decay: float = 0.0, beta1: float = 0.9, beta2: float = 0.999,
         eps: float = 1e-8, amsgrad: bool = False) -> torch.optim.Optimizer:
    """Adam (Kingma & Ba); a robust default for small models."""
    _check_range("adam", beta1=beta1, beta2=beta2)
    return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, betas=(beta1, beta2), eps=eps, amsgrad=amsgrad)


@OPTIMIZERS.register("adamw", description="AdamW: Adam with decoupled weight decay (set optim.weight_decay, e.g. 0.01)")
def adamw(params: Params, *, lr: float, weight_decay: float = 0.0, beta1: float = 0.9, beta2: float = 0.999,
          eps: float = 1e-8, amsgrad: bool = False) -> torch.optim.Optimizer:
    """AdamW (Loshchilov & Hutter): decay shrinks the weights directly instead of entering Adam's moments."""
    _check_range("adamw", beta1=beta1, beta2=beta2)
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, betas=(beta1, beta2), eps=eps,
                             amsgrad=amsgrad)
