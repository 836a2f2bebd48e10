"""The registered sequence models (rnn, gru, lstm): shapes, options, carried state, packing, summary."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import trainlab  # noqa: F401  (registers everything)
from trainlab.models import create
from trainlab.registry import MODELS

SEQUENCE = [n for n in MODELS.names() if MODELS.entry(n).meta.get("sequence") and n in ("rnn", "gru", "lstm")]
VOCAB, CLASSES = 12, 5


def build(name: str, **options) -> nn.Module:
    torch.manual_seed(0)
    return create(name, num_classes=options.pop("classes", CLASSES), in_channels=options.pop("vocab", VOCAB),
                  input_size=None, **options)


def tokens(n: int = 3, steps: int = 7, seed: int = 0) -> torch.Tensor:
    return torch.randint(1, VOCAB, (n, steps), generator=torch.Generator().manual_seed(seed))


def test_the_three_torch_recurrent_models_are_registered_as_sequence_models():
    assert SEQUENCE == ["gru", "lstm", "rnn"]


@pytest.mark.parametrize("name", SEQUENCE)
@pytest.mark.parametrize(("output", "shape"), [("steps", (3, 7, CLASSES)), ("last", (3, CLASSES)),
                                               ("mean", (3, CLASSES))])
@pytest.mark.parametrize("embedding", [None, 6], ids=["onehot", "embedding"])
def test_shapes_finite_outputs_and_gradients_everywhere(name, output, shape, embedding):
    model = build(name, hidden=8, layers=2, dropout=0.2, embedding=embedding, output=output)
    out = model.train()(tokens())
    assert out.shape == shape and torch.isfinite(out).all()
    target = torch.randint(0, CLASSES, shape[:-1])
    model.wrap_loss(nn.CrossEntropyLoss())(out, target).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing


@pytest.mark.parametrize("name", SEQUENCE)
def test_bidirectional_doubles_the_hidden_output(name):
    one, two = build(name, hidden=8), build(name, hidden=8, bidirectional=True)
    assert (one.head.in_features, two.head.in_features) == (8, 16)
    outputs, _ = two.rnn(nn.functional.one_hot(tokens(), VOCAB).float())
    assert outputs.shape == (3, 7, 16)
    assert two(tokens()).shape == (3, 7, CLASSES)


@pytest.mark.parametrize("name", SEQUENCE)
@pytest.mark.parametrize("output", ["steps", "last"])
def test_the_whole_sequence_goes_through_torchs_fused_layer_in_one_call(name, output):
    """No Python loop over time steps: one call of nn.RNN/GRU/LSTM per forward, whatever the length, so CUDA runs
    cuDNN's fused kernel over all 50 steps (the hand-written cells of trainlab.models.scratch_rnn are the loop).
    On the CPU the plain rnn runs trainlab's kernel instead (tests/test_rnn_kernel.py); cpu_kernel=false asks for
    torch's layer as on any other device."""
    model = build(name, hidden=8, layers=2, output=output, **({"cpu_kernel": False} if name == "rnn" else {}))
    calls = []
    model.rnn.register_forward_hook(lambda module, inputs, result: calls.append(inputs[0]))
    model(tokens(steps=50))
    assert type(model.rnn) in (nn.RNN, nn.GRU, nn.LSTM) and len(calls) == 1
    steps = calls[0].data.shape[0] if isinstance(calls[0], nn.utils.rnn.PackedSequence) else calls[0].shape[1]
    assert steps in (50, 150)  # batch-first (3, 50, ...) or packed: all 3 x 50 steps at once


@pytest.mark.parametrize("name", SEQUENCE)
def test_float_features_in_and_a_single_feature_without_its_axis(name):
    model = build(name, vocab=3, hidden=4, output="last")
    assert model(torch.randn(2, 9, 3)).shape == (2, CLASSES)
    single = build(name, vocab=1, hidden=4, classes=1)
    assert single(torch.randn(2, 9)).shape == (2, 9, 1)
    with pytest.raises(ValueError, match=r"float input must be \(batch, steps, 3\) features"):
        model(torch.randn(2, 9, 4))


@pytest.mark.parametrize("name", SEQUENCE)
def test_carried_state_over_sequential_batches_equals_one_full_forward(name):
    """Truncated BPTT changes the gradients, never the forward values: chunks with a carried state = one pass."""
    model = build(name, hidden=8, layers=2).eval()
    x = tokens(steps=12)
    full, _ = model.run(x)
    model.carry = True
    chunks = [model(part) for part in x.split(4, dim=1)]
    assert torch.allclose(torch.cat(chunks, dim=1), full, atol=1e-6)
    model.reset_state()
    assert not torch.allclose(model(x[:, 4:8]), full[:, 4:8], atol=1e-4)  # from zeros again


@pytest.mark.parametrize("name", SEQUENCE)
def test_carried_state_is_detached_so_each_batch_backpropagates_alone(name):
    model = build(name, hidden=8).train()
    model.carry = True
    loss = model.wrap_loss(nn.CrossEntropyLoss())
    for part in tokens(steps=12).split(4, dim=1):
        model.zero_grad()
        loss(model(part), part % CLASSES).backward()  # a second backward into the last graph would raise
    state = model.carried_state()
    assert state is not None and all(not t.requires_grad for t in state)
    assert len(state) == (2 if name == "lstm" else 1)
    other = build(name, hidden=8)
    other.load_carried_state(state)
    assert all(torch.equal(a, b) for a, b in zip(other.carried_state(), state))


@pytest.mark.parametrize("name", SEQUENCE)
@pytest.mark.parametrize("output", ["last", "mean"])
def test_packing_a_padded_batch_equals_each_sequence_alone(name, output):
    """Right padding (id 0) changes nothing: a bidirectional model on the padded batch = each sequence unpadded."""
    model = build(name, hidden=8, layers=2, bidirectional=True, output=output).eval()
    lengths = [7, 3, 5]
    x = tokens(n=3, steps=7)
    for row, length in enumerate(lengths):
        x[row, length:] = 0
    batch = model(x)
    alone = torch.cat([model(x[row:row + 1, :length]) for row, length in enumerate(lengths)])
    assert torch.allclose(batch, alone, atol=1e-6)
    naive = model.run(torch.where(x == 0, torch.ones_like(x), x))[0]
    assert not torch.allclose(naive, alone, atol=1e-4)  # the padding would matter without packing


def test_tied_weights_share_one_matrix_and_refuse_mismatched_sizes():
    model = build("lstm", vocab=VOCAB, classes=VOCAB, hidden=6, embedding=6, tie_weights=True)
    assert model.head.weight is model.embed.weight
    assert sum(p.numel() for p in model.parameters()) < sum(
        p.numel() for p in build("lstm", vocab=VOCAB, classes=VOCAB, hidden=6, embedding=6).parameters())
    with pytest.raises(ValueError, match=r"embedding == hidden output size, got embedding=6 and 12"):
        build("gru", vocab=VOCAB, classes=VOCAB, hidden=6, embedding=6, bidirectional=True, tie_weights=True)
    with pytest.raises(ValueError, match="set embedding=6"):
        build("gru", vocab=VOCAB, classes=VOCAB, hidden=6, tie_weights=True)
    with pytest.raises(ValueError, match=f"vocabulary {VOCAB} and {CLASSES} outputs"):
        build("rnn", hidden=6, embedding=6, tie_weights=True)


@pytest.mark.parametrize(("options", "message"), [
    ({"output": "first"}, "unknown output 'first'; choices: steps, last, mean"),
    ({"dropout": 1.0}, r"dropout must be in \[0, 1\)"),
    ({"hidden": 0}, "hidden and layers must be >= 1"),
    ({"embedding": 0}, "embedding must be >= 1"),
    ({"clip_grad_norm": -1.0}, "clip_grad_norm must be > 0, or 0 for no clipping"),
    ({"nonlinearity": "relu"}, "nonlinearity is an option of the plain rnn only"),
])
def test_bad_options_are_refused_naming_the_option(options, message):
    with pytest.raises(ValueError, match=message):
        build("lstm", **options)


@pytest.mark.parametrize("name", SEQUENCE)
def test_images_are_refused(name):
    with pytest.raises(ValueError, match="is a sequence model"):
        create(name, num_classes=10, in_channels=1, input_size=(28, 28))


def test_bad_model_options_in_a_config_are_one_error_line(run_cli, tmp_path):
    code, _, err = run_cli("train", "--set", "model.name=lstm", "--set", "model.output=first", "--set",
                           "data.name=austen", "--set", f"train.out={tmp_path}")
    assert code == 2 and "model.output: got 'first'" in err and "Traceback" not in err
    assert not any(tmp_path.iterdir())


def test_summary_of_an_lstm_counts_its_recurrent_work(run_cli):
    code, out, _ = run_cli("summary", "lstm")
    assert code == 0 and "input 80x35 · 80 classes" in out and "LSTM" in out and "35x80" in out
    # 35 steps × 4 gates × 256 × (80 + 256) for the LSTM, plus the output layer over the vocabulary: 35 × 256 × 80
    assert "12,759,040 MACs per example" in out
    code, out, _ = run_cli("summary", "gru", "--input", "40x10", "--classes", "40", "-o", "bidirectional=true",
                           "-o", "output=last")
    assert code == 0 and "GRU" in out and "10x512" in out
