"""The hand-written recurrent cells compute exactly what torch.nn computes: the same outputs, final states and
gradients (input, initial state and every weight) after copying torch's weights in through ``state_dict``."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.testing import assert_close

from trainlab.models import scratch_rnn

TOL = {"atol": 1e-5, "rtol": 1e-4}  # a 9-step unrolled loop sums in another order than torch's kernels


def _flat(state) -> list[torch.Tensor]:
    return list(state) if isinstance(state, tuple) else [state]


def _check_grads(ours: nn.Module, theirs: nn.Module) -> None:
    ours_params, theirs_params = dict(ours.named_parameters()), dict(theirs.named_parameters())
    assert ours_params.keys() == theirs_params.keys()
    for name, param in theirs_params.items():
        assert_close(ours_params[name].grad, param.grad, **TOL, msg=f"gradient of {name}")


def _run_both(ours: nn.Module, theirs: nn.Module, x: torch.Tensor, state: list[torch.Tensor]) -> None:
    """Forward both on the same input and initial state, backpropagate one random upstream gradient through the
    outputs and every final state, and compare values and gradients."""
    inputs = [t.clone().requires_grad_() for t in (x, *state)]
    others = [t.clone().requires_grad_() for t in (x, *state)]

    def call(module: nn.Module, args: list[torch.Tensor]) -> list[torch.Tensor]:
        init = None if not state else (tuple(args[1:]) if len(args) == 3 else args[1])
        result = module(args[0], init)
        return [result] if isinstance(result, torch.Tensor) else [t for part in result for t in _flat(part)]

    out_ours, out_theirs = call(ours, inputs), call(theirs, others)
    assert len(out_ours) == len(out_theirs)
    torch.manual_seed(99)
    upstream = [torch.randn_like(t) for t in out_theirs]
    for a, b in zip(out_ours, out_theirs):
        assert_close(a, b, **TOL)
    sum((a * u).sum() for a, u in zip(out_ours, upstream)).backward()
    sum((b * u).sum() for b, u in zip(out_theirs, upstream)).backward()
    for a, b in zip(inputs, others):
        assert_close(a.grad, b.grad, **TOL)
    _check_grads(ours, theirs)


CELLS = [
    (lambda: scratch_rnn.RNNCell(5, 7), lambda: nn.RNNCell(5, 7), 1),
    (lambda: scratch_rnn.RNNCell(5, 7, nonlinearity="relu", bias=False),
     lambda: nn.RNNCell(5, 7, nonlinearity="relu", bias=False), 1),
    (lambda: scratch_rnn.LSTMCell(5, 7), lambda: nn.LSTMCell(5, 7), 2),
    (lambda: scratch_rnn.GRUCell(5, 7), lambda: nn.GRUCell(5, 7), 1),
]


@pytest.mark.parametrize(("make_ours", "make_theirs", "parts"), CELLS, ids=["rnn", "rnn-relu-nobias", "lstm", "gru"])
@pytest.mark.parametrize("given_state", [True, False], ids=["state", "zero-state"])
def test_cell_equals_torch_cell(make_ours, make_theirs, parts, given_state) -> None:
    torch.manual_seed(0)
    theirs = make_theirs()
    ours = make_ours()
    ours.load_state_dict(theirs.state_dict())  # names and shapes are torch's
    x = torch.randn(4, 5)
    state = [torch.randn(4, 7) for _ in range(parts)] if given_state else []
    _run_both(ours, theirs, x, state)


LAYERS = [
    ("rnn_tanh", lambda **kw: nn.RNN(nonlinearity="tanh", **kw)),
    ("rnn_relu", lambda **kw: nn.RNN(nonlinearity="relu", **kw)),
    ("lstm", nn.LSTM),
    ("gru", nn.GRU),
]


@pytest.mark.parametrize(("mode", "make_theirs"), LAYERS, ids=[m for m, _ in LAYERS])
@pytest.mark.parametrize(("layers", "batch_first", "bias"), [(1, False, True), (2, True, True), (2, False, False)])
def test_unrolled_layers_equal_torch_rnn(mode, make_theirs, layers, batch_first, bias) -> None:
    torch.manual_seed(1)
    theirs = make_theirs(input_size=6, hidden_size=8, num_layers=layers, batch_first=batch_first, bias=bias)
    ours = scratch_rnn.Recurrent(mode, 6, 8, num_layers=layers, bias=bias, batch_first=batch_first)
    ours.load_state_dict(theirs.state_dict())
    x = torch.randn((3, 9, 6) if batch_first else (9, 3, 6))
    state = [torch.randn(layers, 3, 8) for _ in range(2 if mode == "lstm" else 1)]
    _run_both(ours, theirs, x, state)


def test_state_dicts_move_both_ways() -> None:
    ours = scratch_rnn.Recurrent("lstm", 4, 5, num_layers=2)
    theirs = nn.LSTM(4, 5, num_layers=2)
    theirs.load_state_dict(ours.state_dict())
    x = torch.randn(6, 2, 4)
    assert_close(theirs(x)[0], ours(x)[0], **TOL)


def test_carrying_the_state_across_chunks_equals_one_pass() -> None:
    """Truncated BPTT's forward: feeding the returned state back in continues the sequence exactly."""
    torch.manual_seed(2)
    model = scratch_rnn.Recurrent("lstm", 3, 4, num_layers=2)
    x = torch.randn(10, 2, 3)
    whole, _ = model(x)
    first, state = model(x[:6])
    second, _ = model(x[6:], state)
    assert_close(torch.cat([first, second]), whole)


def test_initialisation_matches_torch_bounds() -> None:
    torch.manual_seed(3)
    cell = scratch_rnn.LSTMCell(10, 25)
    bound = 1 / 25 ** 0.5
    for name, param in cell.named_parameters():
        assert param.abs().max() <= bound, name
        assert param.abs().max() > 0.8 * bound, f"{name} should fill ±1/sqrt(hidden)"


@pytest.mark.parametrize(("build", "x", "message"), [
    (lambda: scratch_rnn.RNNCell(3, 4), torch.zeros(2, 5), r"RNNCell expects \(batch, 3\) input, got \(2, 5\)"),
    (lambda: scratch_rnn.Recurrent("gru", 3, 4), torch.zeros(2, 3),
     r"Recurrent\(gru\) expects \(time, batch, features\) input with 3 features, got \(2, 3\)"),
    (lambda: scratch_rnn.Recurrent("lstm", 3, 4, batch_first=True), torch.zeros(2, 5, 4),
     r"\(batch, time, features\) input with 3 features"),
])
def test_bad_input_shapes_say_what_was_expected(build, x, message) -> None:
    with pytest.raises(ValueError, match=message):
        build()(x)


@pytest.mark.parametrize(("build", "message"), [
    (lambda: scratch_rnn.Recurrent("elman", 3, 4), "unknown recurrent mode 'elman'; choose one of rnn_tanh"),
    (lambda: scratch_rnn.Recurrent("gru", 3, 4, num_layers=0), "num_layers must be >= 1, got 0"),
    (lambda: scratch_rnn.RNNCell(3, 4, nonlinearity="sigmoid"), "must be 'tanh' or 'relu', got 'sigmoid'"),
])
def test_bad_options_are_refused(build, message) -> None:
    with pytest.raises(ValueError, match=message):
        build()
