"""The from-scratch teaching layers compute exactly what their torch.nn counterparts compute: the same outputs and
the same gradients (input and parameters) after copying weights through state_dict, and the same running
statistics for batch norm."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.testing import assert_close

from trainlab.models import scratch


def _compare(ours: nn.Module, theirs: nn.Module, shape: tuple[int, ...], seed: int = 0) -> None:
    """Forward values and gradients w.r.t. the input and every parameter agree (default float32 tolerances)."""
    torch.manual_seed(seed)
    x = torch.randn(shape)
    x_ours, x_theirs = x.clone().requires_grad_(), x.clone().requires_grad_()
    y_ours, y_theirs = ours(x_ours), theirs(x_theirs)
    assert_close(y_ours, y_theirs)
    upstream = torch.randn_like(y_theirs)  # a non-uniform upstream gradient, so every position counts
    (y_ours * upstream).sum().backward()
    (y_theirs * upstream).sum().backward()
    assert_close(x_ours.grad, x_theirs.grad)
    ours_params, theirs_params = dict(ours.named_parameters()), dict(theirs.named_parameters())
    assert ours_params.keys() == theirs_params.keys()
    for name, param in theirs_params.items():
        assert_close(ours_params[name].grad, param.grad, msg=f"gradient of {name}")


def test_corr2d_curriculum_example() -> None:
    x = torch.arange(9.0).reshape(3, 3)
    k = torch.tensor([[0.0, 1.0], [2.0, 3.0]])
    assert_close(scratch.corr2d(x, k), torch.tensor([[19.0, 25.0], [37.0, 43.0]]))


def test_corr2d_matches_conv2d_and_differentiates_kernel() -> None:
    torch.manual_seed(1)
    x = torch.randn(6, 8)
    k = torch.randn(3, 2, requires_grad=True)
    expected = nn.functional.conv2d(x[None, None], k[None, None])[0, 0]
    assert_close(scratch.corr2d(x, k), expected)
    scratch.corr2d(x, k).sum().backward()
    # d/dK[a, b] of sum(Y) is the sum of the image window the kernel element touches.
    assert_close(k.grad, torch.stack([torch.stack([x[a:a + 4, b:b + 7].sum() for b in range(2)]) for a in range(3)]))


def test_corr2d_refuses_kernel_larger_than_image() -> None:
    with pytest.raises(ValueError, match="kernel 4x2 is larger than the image 3x3"):
        scratch.corr2d(torch.zeros(3, 3), torch.zeros(4, 2))


@pytest.mark.parametrize(("in_ch", "out_ch", "kernel", "stride", "padding", "bias", "size"), [
    (1, 1, 3, 1, 0, True, (5, 5)),
    (3, 4, 3, 1, 1, True, (7, 6)),
    (2, 5, (3, 2), (2, 1), (1, 0), False, (9, 8)),
    (4, 2, 5, 2, 2, True, (8, 8)),
    (3, 6, 1, 1, 0, True, (4, 5)),
])
def test_conv2d_matches_torch(in_ch: int, out_ch: int, kernel, stride, padding, bias: bool, size) -> None:
    theirs = nn.Conv2d(in_ch, out_ch, kernel, stride=stride, padding=padding, bias=bias)
    ours = scratch.Conv2d(in_ch, out_ch, kernel, stride=stride, padding=padding, bias=bias)
    ours.load_state_dict(theirs.state_dict())
    _compare(ours, theirs, (2, in_ch, *size))


def test_conv2d_state_dict_moves_both_ways_and_refuses_wrong_channels() -> None:
    ours = scratch.Conv2d(3, 4, 3)
    theirs = nn.Conv2d(3, 4, 3)
    theirs.load_state_dict(ours.state_dict())
    assert_close(theirs.weight, ours.weight)
    with pytest.raises(ValueError, match=r"Conv2d expects 3 input channels, got 2 \(input shape \(1, 2, 5, 5\)\)"):
        ours(torch.zeros(1, 2, 5, 5))


@pytest.mark.parametrize(("kernel", "stride", "padding", "size"), [
    (2, None, 0, (6, 6)),
    (3, 2, 1, (7, 8)),
    ((3, 2), (1, 2), (1, 0), (5, 6)),
    (3, 1, 0, (5, 5)),
])
@pytest.mark.parametrize("kind", ["MaxPool2d", "AvgPool2d"])
def test_pooling_matches_torch(kind: str, kernel, stride, padding, size) -> None:
    ours = getattr(scratch, kind)(kernel, stride=stride, padding=padding)
    theirs = getattr(nn, kind)(kernel, stride=stride, padding=padding)
    _compare(ours, theirs, (2, 3, *size), seed=3)


def test_avg_pool_counts_padding_in_the_mean() -> None:
    y = scratch.AvgPool2d(3, stride=1, padding=1)(torch.ones(1, 1, 3, 3))
    assert y[0, 0, 0, 0].item() == pytest.approx(4 / 9)  # corner window: 4 ones and 5 padded zeros
    assert y[0, 0, 1, 1].item() == pytest.approx(1.0)


def test_pooling_refuses_padding_over_half_the_kernel() -> None:
    with pytest.raises(ValueError, match=r"MaxPool2d: padding \(2, 2\) must be at most half the kernel size"):
        scratch.MaxPool2d(3, padding=2)


def test_dropout_eval_is_identity() -> None:
    layer = scratch.Dropout(0.5).eval()
    x = torch.randn(4, 7)
    assert torch.equal(layer(x), x)


@pytest.mark.parametrize("p", [0.2, 0.5, 0.8])
def test_dropout_training_keeps_the_mean_and_drops_a_fraction_p(p: float) -> None:
    torch.manual_seed(0)
    y = scratch.Dropout(p).train()(torch.ones(100_000))
    assert abs(y.mean().item() - 1.0) < 0.02
    assert abs((y == 0).float().mean().item() - p) < 0.01
    assert_close(y[y != 0], torch.full_like(y[y != 0], 1 / (1 - p)))  # survivors scaled by 1/(1-p)


@pytest.mark.parametrize("p", [1, 1.0, 1.5, -0.1])
def test_dropout_refuses_p_outside_zero_one(p: float) -> None:
    with pytest.raises(ValueError, match=r"Dropout probability p must be a number in \[0, 1\)"):
        scratch.Dropout(p)


@pytest.mark.parametrize(("num_dims", "shape"), [(2, (8, 5)), (4, (4, 3, 5, 6))])
def test_batchnorm_matches_torch(num_dims: int, shape: tuple[int, ...]) -> None:
    channels = shape[1]
    theirs = nn.BatchNorm1d(channels) if num_dims == 2 else nn.BatchNorm2d(channels)
    with torch.no_grad():  # non-trivial affine parameters, so a mix-up of weight and bias would show
        theirs.weight.uniform_(0.5, 1.5)
        theirs.bias.uniform_(-0.5, 0.5)
    ours = scratch.BatchNorm(channels, num_dims)
    ours.load_state_dict(theirs.state_dict())
    for step in range(3):  # train mode: outputs, gradients and running statistics after each step
        ours.zero_grad()
        theirs.zero_grad()
        _compare(ours, theirs, shape, seed=10 + step)
    assert ours.state_dict().keys() == theirs.state_dict().keys()
    for name, value in theirs.state_dict().items():
        assert_close(ours.state_dict()[name], value, msg=f"buffer {name}")
    assert ours.num_batches_tracked.item() == 3
    ours.eval()
    theirs.eval()
    _compare(ours, theirs, shape, seed=20)


def test_batchnorm_refuses_wrong_layout() -> None:
    with pytest.raises(ValueError, match=r"expects \(N, C, H, W\) with C=3, got shape \(2, 3\)"):
        scratch.BatchNorm(3, 4)(torch.zeros(2, 3))
    with pytest.raises(ValueError, match="num_dims must be 2"):
        scratch.BatchNorm(3, 3)
