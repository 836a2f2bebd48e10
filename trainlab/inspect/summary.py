"""Per-layer model summary: output shapes, parameters, multiply-accumulates and receptive fields.

One forward pass of a single example is traced.  Leaf modules (those without children) become rows, in call
order.  Receptive fields are tracked on the tensors themselves: every torch operation passes the largest
receptive field and jump (stride product) of its inputs on to its outputs, and convolution/pooling modules
grow them with the standard recurrences

    rf_out   = rf_in + (kernel − 1) · dilation · jump_in
    jump_out = jump_in · stride

so residual additions, concatenations and channel shuffles need no special cases.  Once an output depends on
the whole input (global pooling, dense layers, squeeze-excitation gates) the receptive field is NA.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator

import pandas as pd
import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from trainlab.models.macs import layer_macs
from trainlab.registry import MODELS

_RF = "_trainlab_rf"  # tensor attribute: (rf, jump), or None when the tensor depends on the whole input
_UNTRACKED = object()
_WINDOWED = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d,
             nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d)
_ADAPTIVE = (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d,
             nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d)
COLUMNS = ["layer", "type", "output_shape", "params", "macs", "rf", "jump"]


def parse_input_size(text: str | tuple[int, ...] | list[int], sequence: bool = False) -> tuple[int, ...]:
    """``"1x28x28"`` or ``(1, 28, 28)`` → ``(1, 28, 28)``; ``"13"`` → ``(13,)`` for a table with 13 columns;
    with ``sequence`` (rnn, gru, lstm), ``"80x35"`` → ``(80, 35)``: vocabulary (or features) x time steps."""
    if isinstance(text, str):
        try:
            dims = tuple(int(part) for part in text.lower().split("x"))
        except ValueError:
            raise ValueError(f"bad input size '{text}': expected CxHxW such as 1x28x28, or a feature count") from None
    else:
        dims = tuple(int(d) for d in text)
    if len(dims) not in ((1, 2) if sequence else (1, 3)) or min(dims) < 1:
        expected = ("vocabulary x steps (e.g. 80x35) for a sequence model" if sequence else
                    "channels x height x width (e.g. 3x32x32) or a number of table columns (e.g. 13)")
        raise ValueError(f"bad input size {text!r}: expected {expected}")
    return dims


def _tensors(value: Any) -> Iterator[torch.Tensor]:
    """Tensors inside nested tuples, lists and dicts (operation arguments and results)."""
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, (tuple, list)):
        for item in value:
            yield from _tensors(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _tensors(item)


def _combine(fields: list[Any]) -> Any:
    """Receptive field of a result: the widest of its inputs; None (whole input) wins."""
    if any(f is None for f in fields):
        return None
    return max(f[0] for f in fields), max(f[1] for f in fields)


class _PropagateRF(TorchFunctionMode):
    """Carries each tensor's receptive field to the outputs of every torch operation applied to it."""

    def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: ANN001 (torch's protocol)
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        fields = [f for f in (getattr(t, _RF, _UNTRACKED) for t in _tensors((args, kwargs))) if f is not _UNTRACKED]
        if fields:
            value = _combine(fields)
            for tensor in _tensors(out):
                if not isinstance(tensor, nn.Parameter):
                    setattr(tensor, _RF, value)
        return out


def _first(value: Any) -> int | float:
    return value[0] if isinstance(value, (tuple, list)) else value


def _grow(module: nn.Module, before: Any, inp: torch.Tensor, out: torch.Tensor) -> Any:
    """Receptive field after ``module`` given the one before it (None = whole input)."""
    if isinstance(module, _WINDOWED) and before is not None:
        kernel, stride = _first(module.kernel_size), _first(module.stride or module.kernel_size)
        dilation = _first(getattr(module, "dilation", 1))
        return before[0] + (kernel - 1) * dilation * before[1], before[1] * stride
    if isinstance(module, nn.Linear) or (isinstance(module, _ADAPTIVE) and inp.shape[2:] != out.shape[2:]):
        return None
    return before


def _macs(module: nn.Module, inp: torch.Tensor, out: torch.Tensor) -> int:
    """Multiply-accumulates per example of convolutions and dense layers (the bulk of the compute)."""
    return layer_macs(module, out) // max(1, out.shape[0])


@dataclass
class _Recorder:
    """Forward hooks that turn each leaf-module call into a row."""

    names: dict[nn.Module, str]
    rows: list[dict[str, Any]] = field(default_factory=list)
    counted: set[int] = field(default_factory=set)

    def hook(self, module: nn.Module, inputs: tuple[Any, ...], output: Any) -> None:
        inp = next(_tensors(inputs), None)
        out = next(_tensors(output), None)
        if inp is None or out is None:
            return
        before = getattr(inp, _RF, _UNTRACKED)
        rf = _grow(module, before, inp, out) if before is not _UNTRACKED else _UNTRACKED
        if rf is not _UNTRACKED:
            for tensor in _tensors(output):
                setattr(tensor, _RF, rf)
        first_call = id(module) not in self.counted
        self.counted.add(id(module))
        self.rows.append({
            "layer": self.names[module], "type": type(module).__name__, "output_shape": tuple(out.shape[1:]),
            "params": sum(p.numel() for p in module.parameters(recurse=False)) if first_call else 0,
            "macs": _macs(module, inp, out),
            "rf": rf[0] if isinstance(rf, tuple) else pd.NA,
            "jump": rf[1] if isinstance(rf, tuple) else pd.NA,
        })


def summary(model: nn.Module | str, input_size: str | tuple[int, ...] = (1, 28, 28), *, num_classes: int = 10,
            **options: Any) -> pd.DataFrame:
    """A DataFrame with one row per leaf-layer call: layer, type, output_shape, params, macs, rf, jump.

    ``model`` is a module, a registered model name or an own model's ``file.py:Class`` reference (built for
    ``input_size`` and ``num_classes`` with ``options``; a reference imports, so runs, that file).
    ``input_size`` is ``(C, H, W)`` (or ``"CxHxW"``), or ``(features,)`` for tables.  Totals
    are in ``df.attrs["totals"]``: params, trainable_params, macs, size_mb (parameters + buffers).
    """
    sequence = hasattr(model, "example_input") or isinstance(model, str) and _is_sequence_model(model)
    dims = parse_input_size(input_size, sequence)
    if isinstance(model, str):
        from trainlab.models import create

        model = create(model, num_classes=num_classes, in_channels=dims[0],
                       input_size=dims[1:] if len(dims) == 3 else None, **options)
    elif options:
        raise ValueError("summary options are for building a model by name; got a module and "
                         f"options {sorted(options)}")
    rows = _trace(model, dims)
    frame = pd.DataFrame(rows, columns=COLUMNS).astype({"rf": "Int64", "jump": "Int64"})
    frame.attrs["totals"] = totals(model, int(frame["macs"].sum()))
    frame.attrs["input_size"] = dims
    return frame


def _is_sequence_model(name: str) -> bool:
    return name in MODELS and bool(MODELS.entry(name).meta.get("sequence"))


def _trace(model: nn.Module, dims: tuple[int, ...]) -> list[dict[str, Any]]:
    """Run one example through ``model`` in eval mode with hooks on every leaf module."""
    names = {module: name or "(model)" for name, module in model.named_modules()}
    recorder = _Recorder(names)
    handles = [m.register_forward_hook(recorder.hook) for m in model.modules() if not any(m.children())]
    parameter = next(model.parameters(), None)
    device = parameter.device if parameter is not None else torch.device("cpu")
    example = getattr(model, "example_input", None)  # sequence models: token ids, not a float image
    x = example(dims) if example is not None else torch.zeros(1, *dims, device=device)
    if len(dims) == 3:
        setattr(x, _RF, (1, 1))
    was_training = model.training
    try:
        with torch.no_grad(), _PropagateRF():
            model.eval()(x)
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    return recorder.rows


def totals(model: nn.Module, macs: int) -> dict[str, float]:
    """Whole-model figures: parameter counts, MACs per example, and size in MiB of parameters and buffers."""
    size = sum(t.numel() * t.element_size() for t in [*model.parameters(), *model.buffers()])
    return {
        "params": sum(p.numel() for p in model.parameters()),
        "trainable_params": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "macs": macs,
        "size_mb": size / 2**20,
    }
