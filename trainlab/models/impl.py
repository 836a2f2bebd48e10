"""``model.impl``: the zoo's small models built from ``torch.nn`` (``torch``) or from the hand-written layers of
:mod:`trainlab.models.scratch` (``scratch``), so the curriculum's from-scratch experiments are one command.

A ``scratch`` model is the ``torch`` model with each layer that has a hand-written version swapped for it, its
parameters and buffers copied: the same seed gives the same weights, and the two compute the same outputs.  What
has no hand-written version (``Linear``, activations, adaptive pooling, flatten) stays ``torch.nn``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from torch import nn

from trainlab.models import scratch

Impl = Literal["torch", "scratch"]
IMPLS = ("torch", "scratch")


def _conv(layer: nn.Conv2d) -> nn.Module:
    if layer.groups != 1 or layer.dilation != (1, 1) or layer.padding_mode != "zeros" or isinstance(layer.padding, str):
        raise ValueError(f"model.impl=scratch: {layer} has no hand-written version (groups, dilation, string "
                         "padding or a padding mode); use model.impl=torch")
    return scratch.Conv2d(layer.in_channels, layer.out_channels, layer.kernel_size, layer.stride, layer.padding,
                          bias=layer.bias is not None)


def _pool(kind: type[nn.Module]) -> Callable[[nn.Module], nn.Module]:
    def swap(layer: nn.Module) -> nn.Module:
        if getattr(layer, "ceil_mode", False) or getattr(layer, "dilation", 1) != 1 \
                or not getattr(layer, "count_include_pad", True) or getattr(layer, "divisor_override", None):
            raise ValueError(f"model.impl=scratch: {layer} has no hand-written version; use model.impl=torch")
        return kind(layer.kernel_size, layer.stride, layer.padding)

    return swap


def _batch_norm(num_dims: int) -> Callable[[nn.Module], nn.Module]:
    def swap(layer: nn.Module) -> nn.Module:
        if not layer.affine or not layer.track_running_stats or layer.momentum is None:
            raise ValueError(f"model.impl=scratch: {layer} has no hand-written version (needs affine, running "
                             "statistics and a momentum); use model.impl=torch")
        return scratch.BatchNorm(layer.num_features, num_dims, eps=layer.eps, momentum=layer.momentum)

    return swap


# exact classes only: a subclass of a torch layer may compute something else
SWAPS: dict[type[nn.Module], Callable[[nn.Module], nn.Module]] = {
    nn.Conv2d: _conv,
    nn.MaxPool2d: _pool(scratch.MaxPool2d),
    nn.AvgPool2d: _pool(scratch.AvgPool2d),
    nn.Dropout: lambda layer: scratch.Dropout(layer.p),
    nn.Dropout2d: lambda layer: scratch.Dropout2d(layer.p),
    nn.BatchNorm1d: _batch_norm(2),
    nn.BatchNorm2d: _batch_norm(4),
}


def check_impl(model: str, impl: str) -> None:
    """An unknown ``model.impl`` names the model and the choices (before anything is built)."""
    if impl not in IMPLS:
        raise ValueError(f"{model} impl must be one of {', '.join(IMPLS)}, got {impl!r}")


def use_impl(model: nn.Module, impl: str) -> nn.Module:
    """``model`` itself for ``torch``; for ``scratch``, every swappable layer replaced in place, weights kept."""
    if impl == "torch":
        return model
    for name, child in list(model.named_children()):
        swap = SWAPS.get(type(child))
        if swap is None:
            use_impl(child, impl)
            continue
        replacement = swap(child)
        replacement.load_state_dict(child.state_dict())
        replacement.train(child.training)
        setattr(model, name, replacement)
    return model


def feature_dropout(model: str, rate: float) -> list[nn.Module]:
    """``[nn.Dropout2d(rate)]`` for the ``dropout2d`` option (dropping whole channels of a feature map), or nothing
    at 0, so models without it keep their layer indices (and saved runs their state dict keys)."""
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"{model} dropout2d must be in [0, 1), got {rate}")
    return [nn.Dropout2d(rate)] if rate else []
