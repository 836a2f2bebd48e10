"""The fast path: the switches that make a run faster without changing what it computes.

Each switch is a ``train`` setting that is ``auto`` by default and can be forced on or off:

* ``compile`` — ``torch.compile`` of the model (in place, so checkpoints keep their plain parameter names).
  Compilation happens in a warm-up before the training clock starts: ``train_seconds`` excludes it,
  ``wall_seconds`` includes it, and ``summary.json`` reports it as ``fastpath.compile_seconds``.  ``auto``
  compiles on CUDA for runs of at least :data:`AUTO_COMPILE_MIN_STEPS` updates, where it pays for its warm-up.
  Compiled graphs are cached on disk (:func:`use_persistent_compile_cache`), so a second run of the same model
  and shapes, in a new process, skips most of the compilation; ``fastpath.compile_cache`` counts the hits.
* ``channels_last`` — NHWC weights for convolutional nets (``auto``: on CUDA, where tensor cores want it, and on
  the CPU, where oneDNN's NHWC kernels were faster for 10 of 13 zoo models, LeNet included; see docs/speed.md).
* ``fused`` — the single-kernel update of SGD, Adam and AdamW (``auto``: on CUDA).
* cuDNN autotuning and TF32 matmuls switch on by themselves on CUDA unless ``train.deterministic`` is set.

It also measures the model's training FLOPs per example (forward + backward ≈ 3 × forward, convolutions and
linear layers counted on two examples), from which the summary reports achieved TFLOP/s and, on a GPU
whose peak is in :data:`PEAK_TFLOPS`, the model-FLOP utilization (MFU).
"""

from __future__ import annotations

import inspect
import logging
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable

import torch
from torch import nn

from trainlab.engine.runtime import rng_restore, rng_snapshot
from trainlab.models.macs import COUNTED, layer_macs

logger = logging.getLogger(__name__)

AUTO_COMPILE_MIN_STEPS = 2000
FUSABLE = (torch.optim.SGD, torch.optim.Adam, torch.optim.AdamW)

# Dense tensor-core peak TFLOP/s by (GPU name fragment, compute dtype); first match wins, so specific names
# come first.  fp32 runs use TF32 (enabled on the fast path).  Vendor data sheets, SXM parts unless named.
PEAK_TFLOPS: tuple[tuple[str, str, float], ...] = (
    ("H100 PCIe", "bf16", 756.0), ("H100 PCIe", "fp32", 378.0),
    ("H100", "bf16", 989.0), ("H100", "fp32", 494.7),
    ("H200", "bf16", 989.0), ("H200", "fp32", 494.7),
    ("A100", "bf16", 312.0), ("A100", "fp32", 156.0),
    ("L40S", "bf16", 362.1), ("L40S", "fp32", 183.0),
    ("L4", "bf16", 121.0), ("L4", "fp32", 60.0),
)


@dataclass
class FastPath:
    """What the fast path decided for one run (saved under ``fastpath`` in ``summary.json``)."""

    compile: bool = False
    channels_last: bool = False
    fused: bool = False
    cudnn_benchmark: bool = False
    flops_per_example: float | None = None
    compile_seconds: float = 0.0
    compile_cache: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _choose(setting: bool | str, auto: bool) -> bool:
    return auto if setting == "auto" else bool(setting)


def configure_backends(device: torch.device, deterministic: bool) -> bool:
    """cuDNN autotuning and TF32 on CUDA; deterministic runs keep the reproducible defaults."""
    if device.type != "cuda" or deterministic:
        return False
    torch.backends.cudnn.benchmark = True
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    return True


def has_conv(model: nn.Module) -> bool:
    return any(isinstance(m, nn.Conv2d) for m in model.modules())


def apply_channels_last(model: nn.Module, setting: bool | str, device: torch.device) -> bool:
    """Convert a conv net's weights to channels-last; cuDNN and oneDNN then keep activations NHWC throughout."""
    if not _choose(setting, device.type in ("cuda", "cpu")) or not has_conv(model):
        return False
    model.to(memory_format=torch.channels_last)
    return True


def fuse_optimizer(optimizer: torch.optim.Optimizer, setting: bool | str,
                   device: torch.device) -> tuple[torch.optim.Optimizer, bool]:
    """The same optimizer (groups, options) rebuilt with ``fused=True`` when asked and supported."""
    if not _choose(setting, device.type == "cuda"):
        return optimizer, False
    if type(optimizer) not in FUSABLE:
        if setting is True:
            logger.warning(f"train.fused: {type(optimizer).__name__} has no fused kernel (sgd, adam and adamw do); "
                           "using its default implementation")
        return optimizer, False
    if optimizer.state:
        raise RuntimeError("fuse_optimizer must run before the first optimizer step")
    groups = [{**group, "fused": True, "foreach": None} for group in optimizer.param_groups]
    accepted = inspect.signature(type(optimizer)).parameters  # defaults may hold keys the constructor fixes
    defaults = {k: v for k, v in optimizer.defaults.items() if k in accepted and k not in ("fused", "foreach")}
    return type(optimizer)(groups, **defaults, fused=True), True


def wants_compile(setting: bool | str, device: torch.device, total_steps: int) -> bool:
    """``auto`` compiles on CUDA only, and only runs long enough to repay the compilation."""
    return _choose(setting, device.type == "cuda" and total_steps >= AUTO_COMPILE_MIN_STEPS)


def training_flops_per_example(model: nn.Module, sample: torch.Tensor) -> float | None:
    """FLOPs of convolutions and linear layers in one forward on ``sample`` × 3 (the backward is about twice the
    forward), per example; None when the model does not run on the sample.

    Counted with forward hooks (2 × multiply-adds), which is instant; those layers carry nearly all the work of the
    models trainlab trains.  ``torch.utils.flop_counter`` counts more ops but costs seconds on first use per run.
    """
    total = [0]

    def count(module: nn.Module, _: Any, output: Any) -> None:
        if isinstance(output, torch.Tensor):
            total[0] += 2 * layer_macs(module, output)

    hooks = [m.register_forward_hook(count) for m in model.modules() if isinstance(m, COUNTED)]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(sample)
    except (RuntimeError, TypeError, ValueError, IndexError):
        return None
    finally:
        model.train(was_training)
        for hook in hooks:
            hook.remove()
    return 3.0 * total[0] / len(sample) if total[0] else None


def sample_input(dataset: Any, transform: Any, device: torch.device) -> torch.Tensor | None:
    """Two model-ready training examples (for the FLOP count), or None for datasets too small."""
    if len(dataset) < 2:
        return None
    raw = torch.stack([torch.as_tensor(dataset[i][0]) for i in range(2)]).to(device)
    return transform(raw)


def compile_model(trainer: Any, fast: FastPath, eval_sizes: Iterable[int] = ()) -> None:
    """``torch.compile`` the trainer's model in place and compile its graphs now, recording the seconds spent
    and how many graphs came from the on-disk cache in ``fast``."""
    use_persistent_compile_cache()
    before = compile_cache_counts()
    trainer.model.compile()
    fast.compile_seconds = warm_up(trainer, eval_sizes)
    after = compile_cache_counts()
    fast.compile_cache = {key: after[key] - before[key] for key in after}


def use_persistent_compile_cache() -> Path:
    """Keep torch's compile caches (Inductor graphs, AOTAutograd, Triton kernels) in
    ``~/.cache/trainlab/compile`` unless ``TORCHINDUCTOR_CACHE_DIR`` is set.

    torch already reuses compiled graphs across processes from its cache directory, but its default lives in
    the temporary directory, which many systems empty on reboot; a user's next run would then compile from
    scratch.  Once torch has picked a directory in this process, that choice stands.
    """
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(Path.home() / ".cache" / "trainlab" / "compile"))
    return Path(os.environ["TORCHINDUCTOR_CACHE_DIR"])


def compile_cache_counts() -> dict[str, int]:
    """torch's running totals of compiled-graph cache hits and misses in this process."""
    from torch._dynamo.utils import counters

    return {"graph_hits": counters["inductor"]["fxgraph_cache_hit"],
            "graph_misses": counters["inductor"]["fxgraph_cache_miss"],
            "autograd_hits": counters["aot_autograd"]["autograd_cache_hit"],
            "autograd_misses": counters["aot_autograd"]["autograd_cache_miss"]}


def warm_up(trainer: Any, eval_sizes: Iterable[int] = ()) -> float:
    """Compile the model's training and evaluation graphs on real batches before the clock starts.

    One forward/backward per training batch shape (the full batch and the epoch's short last one) and one
    no-grad eval forward per evaluation batch shape; weights, buffers, gradients and RNG states are restored,
    so the run continues exactly as without the warm-up.  Returns the seconds spent.
    """
    started = time.perf_counter()
    model = trainer.model
    saved = {k: v.detach().clone() for k, v in model.state_dict().items()}
    grads = [None if p.grad is None else p.grad.detach().clone() for p in model.parameters()]
    rng = rng_snapshot()
    x, y = next(iter(trainer.train_loader.epoch(0)))
    batch = trainer.train_loader.batch_size
    train_sizes = _shapes(batch, [trainer.train_loader.num_examples])
    model.train()
    for n in train_sizes:
        with trainer.autocast():
            loss = trainer.loss_fn(model(x[:n]), y[:n])
        loss.backward()
    model.zero_grad(set_to_none=True)
    model.eval()
    with torch.no_grad():
        for n in _shapes(batch, eval_sizes):
            trainer.eval_logits(model, x[:n])
    model.train()
    model.load_state_dict(saved)
    for param, grad in zip(model.parameters(), grads):
        param.grad = grad
    rng_restore(rng)
    synchronize(trainer.device)
    return time.perf_counter() - started


def _shapes(batch: int, sizes: Iterable[int]) -> list[int]:
    """Batch sizes a pass will see: the full batch plus each split's remainder (if any)."""
    return sorted({batch} | {n % batch for n in sizes if n % batch > 1}, reverse=True)


def synchronize(device: torch.device) -> None:
    """Wait for queued device work (so a timer measures it); free on the CPU."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_tflops(device: torch.device, precision: str) -> float | None:
    """The device's dense peak for ``precision`` (bf16, fp16 or fp32), or None when unknown (CPUs included)."""
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    dtype = "bf16" if precision in ("bf16", "bfloat16", "fp16", "float16") else "fp32"
    return next((peak for fragment, kind, peak in PEAK_TFLOPS if fragment in name and kind == dtype), None)


def performance(fast: FastPath, examples: int, seconds: float, device: torch.device,
                precision: str) -> dict[str, float]:
    """Achieved training TFLOP/s over ``examples`` in ``seconds``, and MFU when the device's peak is known."""
    if fast.flops_per_example is None or seconds <= 0 or examples <= 0:
        return {}
    tflops = fast.flops_per_example * examples / seconds / 1e12
    out = {"train_tflops": round(tflops, 4)}
    peak = peak_tflops(device, precision)
    if peak:
        out["mfu"] = round(tflops / peak, 4)
    return out
