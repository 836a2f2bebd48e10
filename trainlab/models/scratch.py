"""Layers written from scratch, the way the d2l-style curriculum writes them by hand.

These exist for teaching: each one spells out the formula with plain tensor arithmetic instead of calling the
matching ``torch.nn`` / ``torch.nn.functional`` op, so a student can read how a convolution, a pooling window,
dropout or batch normalisation actually computes. They are checked against torch (``tests/models/test_scratch.py``:
same forward values and the same gradients after copying weights through ``state_dict``), so what they teach is
what the library layers do. Parameter and buffer names and shapes match torch's, so state dicts move both ways.

They are slower than torch's kernels and are not models of their own: the zoo's small models use them with
``model.impl=scratch`` (:mod:`trainlab.models.impl` swaps them in), and ``trainlab.nn`` re-exports them.
``Tensor.unfold`` (a strided view of sliding windows) is the one helper used for convolution and pooling windows.
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["AvgPool2d", "BatchNorm", "Conv2d", "Dropout", "Dropout2d", "MaxPool2d", "corr2d"]

IntPair = int | tuple[int, int]


def _pair(value: IntPair, name: str) -> tuple[int, int]:
    """``3`` → ``(3, 3)``; a pair stays a pair. Torch accepts both for sizes, strides and paddings."""
    pair = (value, value) if isinstance(value, int) else tuple(value)
    if len(pair) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) for v in pair):
        raise ValueError(f"{name} must be an int or a pair of ints, got {value!r}")
    return pair  # type: ignore[return-value]


def _require_4d(layer: str, x: torch.Tensor) -> None:
    """Convolution and pooling read (batch, channels, height, width); say so instead of failing in unfold."""
    if x.ndim != 4:
        raise ValueError(f"{layer} expects a 4-D input (batch, channels, height, width), got shape {tuple(x.shape)}")


def _pad(x: torch.Tensor, padding: tuple[int, int], value: float) -> torch.Tensor:
    """Surround the last two dimensions with ``value``: zeros for convolution and averaging, -inf for max.

    Written as "allocate, then copy the image into the middle" so the padding itself is visible arithmetic.
    """
    ph, pw = padding
    if ph == 0 and pw == 0:
        return x
    *lead, height, width = x.shape
    out = x.new_full((*lead, height + 2 * ph, width + 2 * pw), value)
    out[..., ph:ph + height, pw:pw + width] = x
    return out


def _windows(x: torch.Tensor, kernel: tuple[int, int], stride: tuple[int, int]) -> torch.Tensor:
    """Every kernel-sized window of ``(N, C, H, W)`` as ``(N, C, H_out, W_out, kh, kw)``, a view without copying.

    ``H_out = (H - kh) // sh + 1`` (and likewise for the width): windows that would run past the edge are dropped,
    as torch does with ``ceil_mode=False``.
    """
    (kh, kw), (sh, sw) = kernel, stride
    if x.shape[-2] < kh or x.shape[-1] < kw:
        raise ValueError(f"kernel {kh}x{kw} is larger than the (padded) input {x.shape[-2]}x{x.shape[-1]}; "
                         "use a smaller kernel or more padding")
    return x.unfold(-2, kh, sh).unfold(-2, kw, sw)


def corr2d(x: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """2-D cross-correlation of one single-channel image ``x`` (H, W) with a kernel ``k`` (h, w).

    ``Y[i, j] = sum_{a, b} X[i + a, j + b] * K[a, b]`` for an output of shape ``(H - h + 1, W - w + 1)``. This is
    what deep-learning "convolution" layers compute (no kernel flip). The loop runs over the kernel's offsets, not
    over output pixels: each offset adds one shifted, scaled copy of the image, so it is loop-light and
    differentiable in both ``x`` and ``k``.
    """
    if x.ndim != 2 or k.ndim != 2:
        raise ValueError(f"corr2d takes a 2-D image and a 2-D kernel, got shapes {tuple(x.shape)} and {tuple(k.shape)}")
    h, w = k.shape
    out_h, out_w = x.shape[0] - h + 1, x.shape[1] - w + 1
    if out_h < 1 or out_w < 1:
        raise ValueError(f"kernel {h}x{w} is larger than the image {x.shape[0]}x{x.shape[1]}")
    y = torch.zeros(out_h, out_w, dtype=torch.result_type(x, k), device=x.device)
    for a in range(h):
        for b in range(w):
            y = y + x[a:a + out_h, b:b + out_w] * k[a, b]
    return y


class Conv2d(nn.Module):
    """Multi-channel 2-D cross-correlation, the layer behind ``nn.Conv2d`` (groups=1, dilation=1).

    ``Y[n, o, i, j] = b[o] + sum_{c, a, b'} X_pad[n, c, i*sh + a, j*sw + b'] * W[o, c, a, b']``: every output
    channel sums a cross-correlation over all input channels. ``weight`` is ``(out, in, kh, kw)`` and ``bias``
    ``(out,)``, initialised like torch (uniform in ``±1/sqrt(in*kh*kw)``), so ``load_state_dict`` from an
    ``nn.Conv2d`` works.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: IntPair, stride: IntPair = 1,
                 padding: IntPair = 0, bias: bool = True) -> None:
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size = _pair(kernel_size, "kernel_size")
        self.stride = _pair(stride, "stride")
        self.padding = _pair(padding, "padding")
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, *self.kernel_size))
        self.bias = nn.Parameter(torch.empty(out_channels)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Torch's default: kaiming-uniform with a=sqrt(5), which is uniform in ±1/sqrt(fan_in), bias likewise."""
        bound = 1.0 / math.sqrt(self.in_channels * self.kernel_size[0] * self.kernel_size[1])
        with torch.no_grad():
            self.weight.uniform_(-bound, bound)
            if self.bias is not None:
                self.bias.uniform_(-bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _require_4d("Conv2d", x)
        if x.shape[1] != self.in_channels:
            raise ValueError(f"Conv2d expects {self.in_channels} input channels, got {x.shape[1]} "
                             f"(input shape {tuple(x.shape)})")
        windows = _windows(_pad(x, self.padding, 0.0), self.kernel_size, self.stride)
        y = torch.einsum("nchwab,ocab->nohw", windows, self.weight)
        return y if self.bias is None else y + self.bias.view(1, -1, 1, 1)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"padding={self.padding}, bias={self.bias is not None}")


class _Pool2d(nn.Module):
    """Shared window arithmetic of the two pooling layers; ``stride`` defaults to the kernel size, as in torch."""

    pad_value = 0.0

    def __init__(self, kernel_size: IntPair, stride: IntPair | None = None, padding: IntPair = 0) -> None:
        super().__init__()
        self.kernel_size = _pair(kernel_size, "kernel_size")
        self.stride = self.kernel_size if stride is None else _pair(stride, "stride")
        self.padding = _pair(padding, "padding")
        for pad, size in zip(self.padding, self.kernel_size):
            if pad > size // 2:  # torch's own rule: a window must never lie wholly in the padding
                raise ValueError(f"{type(self).__name__}: padding {self.padding} must be at most half the kernel "
                                 f"size {self.kernel_size}")

    def windows(self, x: torch.Tensor) -> torch.Tensor:
        """Pooling windows flattened to ``(N, C, H_out, W_out, kh*kw)``."""
        _require_4d(type(self).__name__, x)
        return _windows(_pad(x, self.padding, self.pad_value), self.kernel_size, self.stride).flatten(-2)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class MaxPool2d(_Pool2d):
    """Max pooling: ``Y[n, c, i, j] = max_{a, b} X_pad[n, c, i*sh + a, j*sw + b]``, padding with -inf.

    The gradient flows to the one maximum of each window (``max`` along a dimension, not ``amax``, which would
    split it between ties), as torch's kernel does.
    """

    pad_value = -math.inf

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.windows(x).max(dim=-1).values


class AvgPool2d(_Pool2d):
    """Average pooling: ``Y[n, c, i, j] = mean_{a, b} X_pad[n, c, i*sh + a, j*sw + b]``, padding with zeros.

    Padded zeros count in the mean (every window divides by ``kh*kw``), torch's default ``count_include_pad=True``.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.windows(x).mean(dim=-1)


class Dropout(nn.Module):
    """Inverted dropout: in training, zero each element with probability ``p`` and scale the survivors by
    ``1/(1-p)``, so ``E[y] = x`` and evaluation needs no rescaling; in eval mode it is the identity.

    ``p = 1`` would zero everything and divide by zero, so only ``0 <= p < 1`` is accepted.
    """

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= p < 1.0:
            raise ValueError(f"Dropout probability p must be a number in [0, 1), got {p!r}; "
                             "p=1 would drop every element, use a smaller p")
        self.p = float(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = (torch.rand_like(x) >= self.p).to(x.dtype)
        return x * keep / (1.0 - self.p)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class Dropout2d(Dropout):
    """Channel dropout for feature maps ``(N, C, H, W)``: in training, zero each whole channel of each example with
    probability ``p`` and scale the kept channels by ``1/(1-p)``; in eval mode the identity.

    Neighbouring pixels of a feature map are strongly correlated, so dropping single pixels (``Dropout``) barely
    regularises a convolution; dropping whole channels does (Tompson et al., 2015; ``nn.Dropout2d``).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _require_4d("Dropout2d", x)
        if not self.training or self.p == 0.0:
            return x
        keep = (torch.rand(x.shape[0], x.shape[1], 1, 1, device=x.device) >= self.p).to(x.dtype)
        return x * keep / (1.0 - self.p)


class BatchNorm(nn.Module):
    """Batch normalisation for ``(N, C)`` (``num_dims=2``, fully connected) or ``(N, C, H, W)`` (``num_dims=4``,
    convolutional) inputs, the layer behind ``nn.BatchNorm1d`` / ``nn.BatchNorm2d``.

    Training: ``y = weight * (x - mean_B) / sqrt(var_B + eps) + bias`` with the batch mean and *biased* variance
    per channel (over the batch, and over height and width for images); the running estimates move by
    ``running = (1 - momentum) * running + momentum * batch_stat`` using the *unbiased* variance
    (``var_B * m / (m - 1)``, ``m`` values per channel). Eval: the same formula with the running estimates.
    Names and shapes (``weight``, ``bias``, ``running_mean``, ``running_var``, ``num_batches_tracked``) match torch's,
    so state dicts are interchangeable.
    """

    def __init__(self, num_features: int, num_dims: int, eps: float = 1e-5, momentum: float = 0.1) -> None:
        super().__init__()
        if num_dims not in (2, 4):
            raise ValueError(f"BatchNorm num_dims must be 2 (N, C) or 4 (N, C, H, W), got {num_dims!r}")
        self.num_features, self.num_dims = num_features, num_dims
        self.eps, self.momentum = eps, momentum
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))
        self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))

    def _check(self, x: torch.Tensor) -> None:
        """The input's rank and channel count must be what this layer was built for."""
        if x.ndim != self.num_dims or x.shape[1] != self.num_features:
            layout = "(N, C)" if self.num_dims == 2 else "(N, C, H, W)"
            raise ValueError(f"BatchNorm(num_features={self.num_features}, num_dims={self.num_dims}) expects "
                             f"{layout} with C={self.num_features}, got shape {tuple(x.shape)}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check(x)
        dims = (0,) if self.num_dims == 2 else (0, 2, 3)
        shape = (1, -1) if self.num_dims == 2 else (1, -1, 1, 1)
        if self.training:
            count = x.numel() // self.num_features
            if count < 2:
                raise ValueError(f"BatchNorm needs more than 1 value per channel in training, got shape "
                                 f"{tuple(x.shape)}; use a larger batch or eval mode")
            mean = x.mean(dim=dims)
            var = ((x - mean.view(shape)) ** 2).mean(dim=dims)
            self._update_running(mean.detach(), var.detach() * count / (count - 1))
        else:
            mean, var = self.running_mean, self.running_var
        x_hat = (x - mean.view(shape)) / torch.sqrt(var.view(shape) + self.eps)
        return self.weight.view(shape) * x_hat + self.bias.view(shape)

    @torch.no_grad()
    def _update_running(self, mean: torch.Tensor, unbiased_var: torch.Tensor) -> None:
        """Exponential moving averages of the batch statistics, used in eval mode."""
        self.running_mean.mul_(1.0 - self.momentum).add_(self.momentum * mean)
        self.running_var.mul_(1.0 - self.momentum).add_(self.momentum * unbiased_var)
        self.num_batches_tracked.add_(1)

    def extra_repr(self) -> str:
        return f"{self.num_features}, num_dims={self.num_dims}, eps={self.eps}, momentum={self.momentum}"
