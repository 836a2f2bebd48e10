"""trainlab's CPU kernel for the plain rnn (trainlab.models.rnn_kernel) against torch.nn.RNN: the same outputs,
final states and gradients, used exactly where it applies, and a training run that matches torch's step for step."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import torch
from torch import nn

import trainlab
from trainlab import rundir
from trainlab.models import create, rnn_kernel

VOCAB, CLASSES, HIDDEN = 12, 5, 8
CASES = list(itertools.product([1, 2], [False, True], ["tanh", "relu"]))


def pair(**options) -> tuple[nn.Module, nn.Module]:
    """The same rnn twice, equal weights: trainlab's kernel and torch's nn.RNN."""
    torch.manual_seed(0)
    ours = create("rnn", num_classes=CLASSES, in_channels=options.pop("vocab", VOCAB), input_size=None,
                  hidden=HIDDEN, **options)
    theirs = create("rnn", num_classes=CLASSES, in_channels=ours.in_channels, input_size=None, hidden=HIDDEN,
                    cpu_kernel=False, **options)
    theirs.load_state_dict(ours.state_dict())
    return ours, theirs


def outputs_and_gradients(model: nn.Module, x: torch.Tensor, h0: torch.Tensor) -> list[torch.Tensor]:
    """Prediction, final state, and the gradients of the initial state and every parameter for one loss."""
    h0 = h0.clone().requires_grad_(True)
    prediction, state = model.train().run(x, h0)
    (prediction.square().sum() + state.sin().sum()).backward()
    return [prediction, state, h0.grad, *(p.grad for p in model.parameters())]


@pytest.mark.parametrize(("layers", "bidirectional", "nonlinearity"), CASES)
@pytest.mark.parametrize("inputs", ["onehot", "embedding", "features"])
@pytest.mark.parametrize("output", ["steps", "last", "mean"])
def test_outputs_states_and_every_gradient_equal_torchs_rnn(layers, bidirectional, nonlinearity, inputs, output):
    torch.set_default_dtype(torch.float64)  # equal to rounding: compare where rounding is ~1e-16
    try:
        ours, theirs = pair(layers=layers, bidirectional=bidirectional, nonlinearity=nonlinearity, output=output,
                            embedding=6 if inputs == "embedding" else None, vocab=3 if inputs == "features" else VOCAB)
        x = torch.randn(4, 9, 3) if inputs == "features" else torch.randint(1, VOCAB, (4, 9))
        h0 = torch.randn(layers * (2 if bidirectional else 1), 4, HIDDEN)
        for a, b in zip(outputs_and_gradients(ours, x, h0), outputs_and_gradients(theirs, x, h0), strict=True):
            torch.testing.assert_close(a, b, atol=1e-12, rtol=1e-10)
    finally:
        torch.set_default_dtype(torch.float32)


def test_float32_agrees_with_torch_to_single_precision():
    ours, theirs = pair(layers=2)
    x, h0 = torch.randint(1, VOCAB, (4, 35)), torch.randn(2, 4, HIDDEN)
    for a, b in zip(outputs_and_gradients(ours, x, h0), outputs_and_gradients(theirs, x, h0), strict=True):
        torch.testing.assert_close(a, b, atol=2e-5, rtol=1e-4)


def count_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record each run of the kernel ("kernel") and of nn.RNN's forward ("nn.RNN"), in order (no hooks: a forward
    hook on the layer makes the kernel stand aside)."""
    calls: list[str] = []
    kernel, torchs = rnn_kernel.run, nn.RNN.forward

    def run(*args, **kwargs):
        calls.append("kernel")
        return kernel(*args, **kwargs)

    def forward(self, *args, **kwargs):
        calls.append("nn.RNN")
        return torchs(self, *args, **kwargs)

    monkeypatch.setattr(rnn_kernel, "run", run)
    monkeypatch.setattr(nn.RNN, "forward", forward)
    return calls


def test_two_calls_in_one_graph_keep_their_own_buffers_and_match_torch():
    """Carried state within one graph: the second call must not reuse the first one's outputs or saved tensors."""
    torch.set_default_dtype(torch.float64)
    try:
        ours, theirs = pair(layers=2, bidirectional=True)
        first, second = torch.randint(1, VOCAB, (4, 9)), torch.randint(1, VOCAB, (4, 9))
        results = []
        for model in (ours, theirs):
            a, state = model.train().run(first)
            b, state = model.run(second, state)
            (a.square().sum() + b.sin().sum() + state.sum()).backward()
            results.append([a, b, state, *(p.grad for p in model.parameters())])
        for x, y in zip(*results, strict=True):
            torch.testing.assert_close(x, y, atol=1e-12, rtol=1e-10)
    finally:
        torch.set_default_dtype(torch.float32)


def test_the_outputs_buffer_is_reused_only_once_nobody_holds_it():
    layer = nn.RNN(VOCAB, HIDDEN)
    ids = torch.randint(0, VOCAB, (9, 4))
    kept, _ = rnn_kernel.run(layer, ids, None)
    expected = kept.clone()
    again, _ = rnn_kernel.run(layer, ids.flip(0), None)
    assert again.data_ptr() != kept.data_ptr() and torch.equal(kept, expected)  # what the caller holds is intact
    del again
    kept_buffers = rnn_kernel._WORKSPACE.buffers[layer.weight_hh_l0]
    buffers = dict(kept_buffers)
    for _ in range(2):  # a training step lets go of everything: the next step uses the same buffers
        out, _ = rnn_kernel.run(layer, ids, None)
        out.sum().backward()
        assert out.data_ptr() == buffers["outputs"].data_ptr()
        assert all(kept_buffers[name] is buffer for name, buffer in buffers.items())
        del out


def test_without_torchs_storage_use_count_every_call_allocates(monkeypatch):
    monkeypatch.delattr(torch._C, "_storage_Use_Count")
    rnn_kernel._lone_count.cache_clear()
    try:
        owner = torch.zeros(1)
        first = rnn_kernel._WORKSPACE.take(owner, "outputs", (2, 3), torch.float32)
        assert rnn_kernel._WORKSPACE.take(owner, "outputs", (2, 3), torch.float32) is not first
        layer = nn.RNN(VOCAB, HIDDEN)
        ids = torch.randint(0, VOCAB, (5, 2))
        out, _ = rnn_kernel.run(layer, ids, None)
        expected, _ = layer(nn.functional.one_hot(ids, VOCAB).float())
        torch.testing.assert_close(out, expected, atol=2e-6, rtol=1e-5)
    finally:
        rnn_kernel._lone_count.cache_clear()


def test_the_kernel_replaces_nn_rnn_on_the_cpu_in_training_and_evaluation(monkeypatch):
    ours, theirs = pair(layers=2)
    calls = count_calls(monkeypatch)
    x = torch.randint(1, VOCAB, (3, 20))
    ours.train()(x).sum().backward()
    with torch.no_grad():
        ours.eval()(x)
        theirs.eval()(x)
    assert calls == ["kernel", "kernel", "nn.RNN"]  # cpu_kernel=false always calls nn.RNN


def test_padded_sequences_are_packed_through_nn_rnn_and_give_the_same_result(monkeypatch):
    """Packing is torch's: a padded batch for a many-to-one model goes to nn.RNN, unpadded rows to the kernel."""
    ours, theirs = pair(output="last")
    padded = torch.tensor([[3, 4, 5, 0, 0], [6, 7, 8, 9, 2]])
    want_padded, want_full = theirs(padded), theirs(padded[1:])
    calls = count_calls(monkeypatch)
    torch.testing.assert_close(ours(padded), want_padded)
    torch.testing.assert_close(ours(padded[1:]), want_full, atol=1e-6, rtol=1e-5)
    assert calls == ["nn.RNN", "kernel"]


def test_a_forward_hook_on_the_layer_gets_torchs_forward_and_summary_counts_the_layer(monkeypatch, run_cli):
    """Hooks (trainlab summary, inspect, a user's) expect nn.RNN's forward to run: the kernel stands aside."""
    ours, _ = pair()
    calls = count_calls(monkeypatch)
    seen: list[tuple[int, ...]] = []
    handle = ours.rnn.register_forward_hook(lambda module, args, result: seen.append(tuple(result[0].shape)))
    ours(torch.randint(1, VOCAB, (3, 6)))
    handle.remove()
    ours(torch.randint(1, VOCAB, (3, 6)))
    assert calls == ["nn.RNN", "kernel"] and seen == [(3, 6, HIDDEN)]
    code, out, _ = run_cli("summary", "rnn")  # 35 steps × 256 × (80 + 256) for the layer, 35 × 256 × 80 for the head
    assert code == 0 and "3,010,560" in out and "3,727,360 MACs per example" in out


@pytest.mark.parametrize("situation", ["meta device", "bfloat16", "autocast", "compiling", "tracing", "gru",
                                       "padded"])
def test_where_the_kernel_does_not_apply_torchs_layer_runs(situation, monkeypatch):
    """CUDA (any non-CPU device; meta stands in), other dtypes, autocast, torch.compile, tracing and export, gated
    layers and packed input keep torch's nn.RNN (cuDNN on CUDA, one op for export)."""
    rnn, x = nn.RNN(VOCAB, HIDDEN), torch.randint(1, VOCAB, (9, 4))
    assert rnn_kernel.applies(rnn, x, padded=False)
    padded = situation == "padded"
    if situation == "meta device":
        x = x.to("meta")
    elif situation == "bfloat16":
        rnn = rnn.to(torch.bfloat16)
    elif situation == "compiling":
        monkeypatch.setattr(torch.compiler, "is_compiling", lambda: True)
    elif situation == "tracing":
        monkeypatch.setattr(torch.jit, "is_tracing", lambda: True)
    elif situation == "gru":
        rnn = nn.GRU(VOCAB, HIDDEN)
    if situation == "autocast":
        with torch.autocast("cpu", dtype=torch.bfloat16):
            assert not rnn_kernel.applies(rnn, x, padded=padded)
    else:
        assert not rnn_kernel.applies(rnn, x, padded=padded)


@pytest.mark.filterwarnings("ignore:The tensor attributes .* were assigned during export:UserWarning")  # torch's note
def test_an_exported_model_records_torchs_rnn_operation():
    """torch.export traces through dynamo: the graph gets aten.rnn_tanh, not 7 unrolled steps of the kernel."""
    ours, _ = pair()
    x = torch.randint(1, VOCAB, (2, 7))
    exported = torch.export.export(ours.eval(), (x,))
    targets = [str(node.target) for node in exported.graph.nodes]
    assert "aten.rnn_tanh.input" in targets and not any("addmm" in t for t in targets)
    torch.testing.assert_close(exported.module()(x), ours(x), atol=1e-6, rtol=1e-5)


def test_cpu_kernel_is_an_option_of_the_plain_rnn_only():
    with pytest.raises(ValueError, match="gru: cpu_kernel is an option of the plain rnn only"):
        create("gru", num_classes=3, in_channels=4, input_size=None, cpu_kernel=False)


def tiny_run(tmp_path: Path, name: str, cpu_kernel: bool) -> dict[str, float]:
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("it is a truth universally acknowledged, that a single man in possession of a good fortune "
                      "must be in want of a wife. " * 6, encoding="utf-8")
    run = trainlab.train(model="rnn", data="text", out=tmp_path / "runs", name=name, epochs=2, seed=3,
                         overrides=["data.path=" + str(corpus), "data.num_steps=10", "train.batch_size=4",
                                    "model.hidden=16", "optim.name=sgd", "optim.lr=1.0",
                                    f"model.cpu_kernel={str(cpu_kernel).lower()}", "callbacks.progress.style=none"])
    return rundir.read_summary(run.path)["final"]


def test_training_with_the_kernel_follows_torchs_run_to_float_precision(tmp_path: Path, monkeypatch):
    """Carried state across sequential batches, clipping, SGD: two epochs with the kernel and with nn.RNN."""
    calls = count_calls(monkeypatch)
    ours = tiny_run(tmp_path, "kernel", True)
    kernel_runs, calls[:] = calls.count("kernel"), []
    theirs = tiny_run(tmp_path, "torch", False)
    assert kernel_runs > 10 and "kernel" not in calls  # no hook left on the layer keeps trainlab's loop off it
    assert ours.keys() == theirs.keys() and "val_ppl" in ours
    for key in ("train_loss", "val_loss", "val_ppl", "train_ppl"):
        assert ours[key] == pytest.approx(theirs[key], rel=1e-4), key


@pytest.mark.parametrize(("model", "value", "message"), [
    ("rnn", "maybe", "config error at model.cpu_kernel: got 'maybe'; Input should be a valid boolean"),
    ("gru", "false", "gru: cpu_kernel is an option of the plain rnn only"),
])
def test_a_bad_cpu_kernel_setting_is_one_error_and_writes_nothing(run_cli, tmp_path: Path, model, value, message):
    code, out, err = run_cli("train", "--model", model, "--data", "austen", "--epochs", "1", "--out", tmp_path / "runs",
                             "--set", f"model.cpu_kernel={value}", "--set", "callbacks.progress.style=none")
    assert code == 2 and out == "" and message in err and err.count("error:") == 1 and "Traceback" not in err
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_the_per_step_loss_reads_time_major_logits_without_copying_them(reduction):
    """The kernel hands out time-major logits transposed; a summing or averaging loss reads them in memory order
    (same value and gradient as the batch-first reading), a per-example one keeps batch-first order."""
    ours, _ = pair()
    logits_tm = torch.randn(7, 3, CLASSES, dtype=torch.float64, requires_grad=True)  # (T, N, C)
    target = torch.randint(0, CLASSES, (3, 7))
    loss_fn = ours.wrap_loss(nn.CrossEntropyLoss(reduction=reduction))
    seen = []
    inner_forward = loss_fn.inner.forward
    loss_fn.inner.forward = lambda out, tgt: seen.append(out) or inner_forward(out, tgt)
    loss = loss_fn(logits_tm.transpose(0, 1), target)
    expected = nn.functional.cross_entropy(logits_tm.transpose(0, 1).reshape(-1, CLASSES), target.reshape(-1),
                                           reduction=reduction)
    if reduction == "none":
        assert torch.equal(loss, expected)  # one loss per example, in batch-first order
        return
    assert seen[0].data_ptr() == logits_tm.data_ptr() and seen[0].is_contiguous()  # a view: nothing copied
    assert torch.allclose(loss, expected, rtol=1e-12)
    grad, = torch.autograd.grad(loss, logits_tm)
    expected_grad, = torch.autograd.grad(expected, logits_tm)
    assert torch.allclose(grad, expected_grad, rtol=1e-12)


def test_training_metrics_score_transposed_logits_like_contiguous_ones():
    from trainlab.engine.metrics import MetricAccumulator

    logits_tm = torch.randn(6, 4, CLASSES)
    target = torch.randint(0, CLASSES, (4, 6))
    target[0, -2:] = -100  # padding steps are left out of accuracy
    results = []
    for logits in (logits_tm.transpose(0, 1), logits_tm.transpose(0, 1).contiguous()):
        metrics = MetricAccumulator("classification", torch.device("cpu"))
        metrics.update(torch.tensor(1.5), logits, target)
        results.append(metrics.read("train"))
    right = ((logits_tm.transpose(0, 1).argmax(-1) == target) & (target >= 0)).sum().item()
    assert results[0] == results[1]
    assert results[0]["train_acc"] == pytest.approx(right / 22) and results[0]["train_loss"] == pytest.approx(1.5)
