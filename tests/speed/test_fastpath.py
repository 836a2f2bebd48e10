"""The fast-path switches on the CPU: each one can be forced, falls back cleanly, and changes nothing it must not."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from trainlab import config as config_mod
from trainlab.config import ConfigError
from trainlab.engine import fastpath
from trainlab.engine.callbacks.nan_guard import NanGuard
from trainlab.engine.state import TrainState
from trainlab.engine.trainer import LoopSettings, Trainer
from trainlab.session import build_session

TINY = {"data.name": "digits", "model.name": "speedrun-net-xs", "train.epochs": 1, "train.device": "cpu",
        "train.batch_size": 128, "callbacks.progress.style": "none"}


def session(tmp_path, **overrides):
    return build_session(config_mod.load(overrides={**TINY, **overrides}), run_dir=tmp_path)


def test_auto_switches_on_cpu_only_channels_last_for_conv_nets(tmp_path) -> None:
    fast = session(tmp_path).fast
    assert (fast.compile, fast.channels_last, fast.fused, fast.cudnn_benchmark) == (False, True, False, False)
    assert fast.flops_per_example and fast.flops_per_example > 0
    mlp = session(tmp_path / "mlp", **{"model.name": "mlp"}).fast
    assert not mlp.channels_last


def test_channels_last_can_be_switched_off_on_cpu(tmp_path) -> None:
    s = session(tmp_path, **{"train.channels_last": False})
    conv = next(m for m in s.model.modules() if isinstance(m, nn.Conv2d) and m.weight.shape[1] > 1)
    assert not s.fast.channels_last and conv.weight.is_contiguous()


@pytest.mark.parametrize("key,bad", [("train.compile", "maybe"), ("train.channels_last", "yes please"),
                                     ("train.fused", 3)])
def test_bad_switch_values_name_the_key(key: str, bad) -> None:
    with pytest.raises(ConfigError, match=key):
        config_mod.load(overrides={key: bad})


def test_channels_last_on_cpu_converts_conv_weights_and_trains(tmp_path) -> None:
    s = session(tmp_path, **{"train.channels_last": True})
    conv = next(m for m in s.model.modules() if isinstance(m, nn.Conv2d) and m.weight.shape[1] > 1)
    assert s.fast.channels_last and conv.weight.is_contiguous(memory_format=torch.channels_last)
    state = s.trainer.fit()
    assert state.epoch == 1 and torch.isfinite(torch.tensor(state.history[-1]["train_loss"]))


@pytest.mark.parametrize("name", ["sgd", "adam", "adamw"])
def test_fused_optimizer_on_cpu_keeps_groups_and_steps(name: str) -> None:
    model = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3))
    cfg = config_mod.OptimConfig(name=name, lr=0.01, weight_decay=0.1, no_decay_norm_bias=True)
    from trainlab.optim import build_optimizer

    optimizer, fused = fastpath.fuse_optimizer(build_optimizer(cfg, model), True, torch.device("cpu"))
    assert fused and all(g["fused"] for g in optimizer.param_groups)
    assert [g["weight_decay"] for g in optimizer.param_groups] == [0.1, 0.0]
    before = model[0].weight.detach().clone()
    model(torch.randn(8, 4)).sum().backward()
    optimizer.step()
    assert not torch.equal(before, model[0].weight)


def test_fused_run_trains_end_to_end(tmp_path) -> None:
    s = session(tmp_path, **{"train.fused": True, "optim.name": "sgd", "optim.lr": 0.05})
    assert s.fast.fused and s.trainer.fit().epoch == 1


def test_fused_falls_back_with_a_warning_for_optimizers_without_a_fused_kernel(tmp_path, caplog) -> None:
    with caplog.at_level("WARNING", logger="trainlab"):
        s = session(tmp_path, **{"train.fused": True, "optim.name": "rmsprop"})
    assert ("train.fused: RMSprop has no fused kernel (sgd, adam and adamw do); using its default implementation"
            in [r.getMessage() for r in caplog.records])
    assert not s.fast.fused


def test_compile_auto_only_for_long_cuda_runs() -> None:
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert not fastpath.wants_compile("auto", cpu, 10**6)
    assert not fastpath.wants_compile("auto", cuda, 10)
    assert fastpath.wants_compile("auto", cuda, fastpath.AUTO_COMPILE_MIN_STEPS)
    assert fastpath.wants_compile(True, cpu, 1) and not fastpath.wants_compile(False, cuda, 10**6)


def test_warm_up_leaves_weights_buffers_grads_and_rng_unchanged(tmp_path) -> None:
    s = session(tmp_path)
    before = {k: v.clone() for k, v in s.model.state_dict().items()}
    rng = torch.get_rng_state()
    seconds = fastpath.warm_up(s.trainer, eval_sizes=[100])
    assert seconds > 0 and torch.equal(rng, torch.get_rng_state())
    assert all(torch.equal(before[k], v) for k, v in s.model.state_dict().items())
    assert all(p.grad is None for p in s.model.parameters())


def test_flops_are_three_times_the_forward_of_convs_and_linears() -> None:
    assert fastpath.training_flops_per_example(nn.Linear(10, 5), torch.randn(2, 10)) == 3 * 2 * 10 * 5
    net = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1, groups=2), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 5 * 5, 3))
    conv = 2 * (4 * 5 * 5) * (1 * 3 * 3)
    assert fastpath.training_flops_per_example(net, torch.randn(2, 2, 5, 5)) == 3 * (conv + 2 * 100 * 3)
    assert fastpath.training_flops_per_example(net, torch.randn(2, 7)) is None


def test_performance_reports_mfu_only_for_a_known_gpu(monkeypatch) -> None:
    fast = fastpath.FastPath(flops_per_example=1e9)
    assert fastpath.performance(fast, 1, 1.0, torch.device("cpu"), "fp32") == {"train_tflops": 0.001}
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA H100 80GB HBM3")
    out = fastpath.performance(fast, 10**5, 1.0, torch.device("cuda"), "bf16")
    assert out == {"train_tflops": 100.0, "mfu": round(100.0 / 989.0, 4)}
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Some Future GPU")
    assert "mfu" not in fastpath.performance(fast, 10**6, 1.0, torch.device("cuda"), "bf16")


def test_tta_flip_averages_the_logits_of_image_and_mirror() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 3))
    x = torch.randn(4, 1, 3, 4)
    trainer = Trainer(model, [], None, torch.optim.SGD(model.parameters(), lr=0.1), None, nn.CrossEntropyLoss(),
                      LoopSettings(task="classification", epochs=1, device=torch.device("cpu"), tta_flip=True))
    expected = (model(x) + model(x.flip(-1))) / 2
    assert torch.allclose(trainer.eval_logits(model, x), expected)
    trainer.tta_flip = False
    assert torch.allclose(trainer.eval_logits(model, x), model(x))


def test_tta_flip_changes_the_reported_test_metrics(tmp_path) -> None:
    s = session(tmp_path, **{"train.tta_flip": True})
    flipped = s.trainer.evaluate(s.loader("test"))
    s.trainer.tta_flip = False
    assert flipped["test_loss"] != s.trainer.evaluate(s.loader("test"))["test_loss"]


def test_nan_guard_device_record_finds_the_first_bad_step_without_reading_each_step() -> None:
    """The accelerator path (exercised here on CPU tensors): record on the device, read at an interval."""
    guard = NanGuard()
    state = TrainState(epochs=2, steps_per_epoch=10)
    for step, loss in enumerate([0.5, float("nan"), 0.4, float("inf")], start=1):
        guard._record(torch.tensor(loss), step)
    assert not state.should_stop
    guard._read_record(state)
    assert state.failed and "loss became nan at epoch 1, step 2 (batch 2 of the epoch)" in state.stop_reason


def test_nan_guard_explicit_every_still_reads_on_that_interval() -> None:
    guard = NanGuard(every=3)
    state = TrainState(epochs=1, steps_per_epoch=10, step=2, batch_in_epoch=2)
    state.last_loss = torch.tensor(float("nan"))
    guard.on_batch_end(None, state)
    assert not state.should_stop
    state.step = state.batch_in_epoch = 3
    guard.on_batch_end(None, state)
    assert state.failed and "step 3" in state.stop_reason


def test_precision_auto_is_fp32_on_cpu_and_bf16_is_honoured_where_onednn_has_it(monkeypatch, caplog) -> None:
    from trainlab.engine import runtime

    cpu = torch.device("cpu")
    assert runtime.resolve_precision("auto", cpu) is None and runtime.resolve_precision("fp32", cpu) is None
    monkeypatch.setattr(runtime, "cpu_supports_bf16", lambda: True)
    assert runtime.resolve_precision("bf16", cpu) is torch.bfloat16
    monkeypatch.setattr(runtime, "cpu_supports_bf16", lambda: False)
    with caplog.at_level("WARNING", logger="trainlab"):
        assert runtime.resolve_precision("bf16", cpu) is None
        assert runtime.resolve_precision("fp16", cpu) is None
    assert [r.getMessage() for r in caplog.records] == [
        "precision 'bf16' needs a CPU with AVX-512 (oneDNN bf16); training in fp32",
        "precision 'fp16' is not supported on cpu; training in fp32 (bf16 works on CUDA and on AVX-512 CPUs, fp16 on CUDA)"]


@pytest.mark.skipif(not torch.backends.mkldnn.is_available() or not torch.ops.mkldnn._is_mkldnn_bf16_supported(),
                    reason="this CPU has no oneDNN bf16 kernels")
def test_bf16_run_on_cpu_trains_under_autocast(tmp_path) -> None:
    s = session(tmp_path, **{"train.precision": "bf16"})
    assert s.trainer.autocast_dtype is torch.bfloat16
    with s.trainer.autocast():
        out = s.model(torch.zeros(2, 1, 28, 28).contiguous(memory_format=torch.channels_last))
    assert out.dtype is torch.bfloat16
    state = s.trainer.fit()
    assert state.epoch == 1 and state.history[-1]["train_acc"] > 0.2


def test_compile_cache_defaults_to_the_users_cache_and_respects_torchs_variable(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert fastpath.use_persistent_compile_cache() == tmp_path / ".cache" / "trainlab" / "compile"
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "mine"))
    assert fastpath.use_persistent_compile_cache() == tmp_path / "mine"


@pytest.mark.slow
def test_compile_on_cpu_trains_and_a_second_process_reuses_the_graphs_from_disk(tmp_path) -> None:
    """Two ``trainlab train`` processes compiling the same model and shapes on the CPU: both train, their
    checkpoints keep plain parameter names, and the second compiles nothing new.  The MLP compiles the same five
    graphs as a convolutional net in a third of the time (28 s against 69 s for ``speedrun-net-xs`` on 2 cores)."""
    import json
    import os
    import subprocess
    import sys

    from trainlab.engine import checkpoint

    env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    caches = []
    for name in ("first", "second"):
        subprocess.run([sys.executable, "-m", "trainlab", "train", "--data", "digits", "--model", "mlp",
                        "--epochs", "1", "--device", "cpu", "--out", str(tmp_path), "--name", name,
                        "--set", "train.compile=true", "--set", "callbacks.progress.style=none"],
                       env=env, check=True, capture_output=True, timeout=600)
        summary = json.loads((tmp_path / name / "summary.json").read_text())
        assert summary["status"] == "completed" and summary["fastpath"]["compile_seconds"] > 0
        weights = checkpoint.load(checkpoint.latest(tmp_path / name / "checkpoints", "last")).model
        assert weights and not any("_orig_mod" in key for key in weights)
        caches.append(summary["fastpath"]["compile_cache"])
    assert caches[0]["graph_misses"] > 0 and caches[0]["graph_hits"] == 0
    assert caches[1]["graph_hits"] > 0 and caches[1]["graph_misses"] == 0
