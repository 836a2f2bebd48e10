"""Device, precision, seeding and RNG snapshots: the environment a run executes in."""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import random
import statistics
import time
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch

from trainlab.engine import distributed

logger = logging.getLogger(__name__)

DEVICE_CHOICES = "auto, cpu, cuda, cuda:N or mps"


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` picks CUDA, then Apple MPS, then the CPU; an explicit device must exist.

    A device this machine lacks is a ``ValueError`` (a mistake in the settings, reported in one line by the CLI)
    that says what is available, never torch's own ``RuntimeError`` from deep inside the first ``.to(device)``.
    Under torchrun, plain CUDA is this rank's own GPU, ``cuda:LOCAL_RANK`` (:func:`distributed.device_for_rank`).
    """
    return distributed.device_for_rank(_resolve(name))


def _resolve(name: str) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise ValueError(f"unknown device '{name}'; use {DEVICE_CHOICES} (--device or train.device)") from None
    if device.type == "cuda":
        _check_cuda(name, device)
    elif device.type == "mps" and not _mps_available():
        raise ValueError(f"device '{name}' requested but MPS (Apple GPU) is not available on this machine; "
                         "use --device cpu or --device auto")
    return device


def _check_cuda(name: str, device: torch.device) -> None:
    """CUDA must be available, and an index must name one of the visible devices."""
    if not torch.cuda.is_available():
        raise ValueError(f"device '{name}' requested but CUDA is not available on this machine (no CUDA build of "
                         "torch, no GPU, or CUDA_VISIBLE_DEVICES hides them); use --device cpu or --device auto")
    count = torch.cuda.device_count()
    if device.index is not None and device.index >= count:
        raise ValueError(f"{name} requested but only {count} CUDA device(s) are visible (cuda:0 to cuda:{count - 1}); "
                         "use --device cuda, a smaller index, cpu or auto")


def _mps_available() -> bool:
    return bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())


def resolve_precision(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype, or None for full float32.

    ``auto`` is bf16 on CUDA (where tensor cores make it a clear win) and fp32 elsewhere.  On a CPU, bf16 is
    used only when asked: with AMX it speeds up dense conv nets 1.5–3× but slows depthwise ones (MobileNet,
    EfficientNet), and it changes the numbers a run computes, so it is the user's call (docs/speed.md).
    """
    if precision == "fp32" or (precision == "auto" and device.type != "cuda"):
        return None
    if device.type == "cpu" and precision == "bf16":
        if cpu_supports_bf16():
            return torch.bfloat16
        logger.warning("precision 'bf16' needs a CPU with AVX-512 (oneDNN bf16); training in fp32")
        return None
    if device.type != "cuda":
        logger.warning(f"precision '{precision}' is not supported on {device.type}; training in fp32 "
                       "(bf16 works on CUDA and on AVX-512 CPUs, fp16 on CUDA)")
        return None
    if precision == "fp16":
        return torch.float16
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else None


def cpu_supports_bf16() -> bool:
    """Whether oneDNN has bf16 kernels on this CPU (AVX-512; fastest with AMX)."""
    return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())


def choose_threads(requested: int | None, device: torch.device) -> tuple[int, str | None]:
    """Torch's CPU thread count for a run, and a notice when it was lowered.

    ``requested`` wins.  Otherwise torch's default (one thread per core) is kept unless other processes are
    keeping the cores busy right now: then torch's OpenMP threads spin waiting for each other and small models
    train several times slower (5x in the House Prices bench), so the count drops to the free cores (at least 1).  A
    process pinned to some of the cores (a batch scheduler's allocation) keeps its default: the other cores'
    load is not its business.
    """
    default = torch_default_threads()
    if requested is not None:
        return requested, None
    busy = other_runnable() if device.type == "cpu" and default > 1 else None
    cores = os.cpu_count() or default
    allowed = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else cores
    if busy is None or allowed < cores:
        return default, None
    free = max(1, int(cores - busy + 0.5))
    if free >= default:
        return default, None
    return free, (f"the CPU is busy ({busy:g} other runnable thread(s) on {cores} cores): training with {free} "
                  f"torch thread(s) instead of {default}; set train.threads to choose")


def other_runnable(samples: int = 9, interval: float = 0.01) -> float | None:
    """How many threads of other processes are running or waiting for a core now (the median of a few
    ``/proc/loadavg`` readings, less this process), or None where Linux's count is not available.

    Deliberately not the load average: its one-minute memory would count a run that just finished (often the
    user's previous ``trainlab train``) as current load.
    """
    readings = []
    for i in range(samples):
        try:
            runnable = Path("/proc/loadavg").read_text().split()[3].split("/")[0]
        except (OSError, IndexError):
            return None
        readings.append(max(0, int(runnable) - 1))
        if i + 1 < samples:
            time.sleep(interval)
    return float(statistics.median(readings))


@functools.cache
def torch_default_threads() -> int:
    """Torch's thread count when trainlab first asked, before any run changed it."""
    return torch.get_num_threads()


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed Python, NumPy and torch; in deterministic mode also forbid nondeterministic kernels."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False


@contextlib.contextmanager
def global_state_kept() -> Iterator[None]:
    """Put back what :func:`seed_everything` and the fast path's backend switches change: the global RNGs, torch's
    deterministic mode, cuDNN's and TF32's flags and ``CUBLAS_WORKSPACE_CONFIG``.

    Why: evaluating a saved run builds a session the way training does, and training seeds and configures the
    process; a caller who only evaluates (``Run.evaluate`` in a notebook) keeps its own random streams and flags.
    """
    rng = rng_snapshot()
    deterministic = (torch.are_deterministic_algorithms_enabled(),
                     torch.is_deterministic_algorithms_warn_only_enabled())
    flags = (torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic,
             torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    cublas = os.environ.get("CUBLAS_WORKSPACE_CONFIG")
    try:
        yield
    finally:
        rng_restore(rng)
        torch.use_deterministic_algorithms(deterministic[0], warn_only=deterministic[1])
        (torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic,
         torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) = flags
        if cublas is None:
            os.environ.pop("CUBLAS_WORKSPACE_CONFIG", None)
        else:
            os.environ["CUBLAS_WORKSPACE_CONFIG"] = cublas


def rng_snapshot() -> dict[str, Any]:
    """All global RNG states as tensors and plain values (safe for ``weights_only`` loading)."""
    np_state = np.random.get_state()
    snapshot: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {"keys": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "gauss": float(np_state[4])},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        snapshot["cuda"] = torch.cuda.get_rng_state_all()
    return snapshot


def rng_restore(snapshot: dict[str, Any]) -> None:
    """Inverse of :func:`rng_snapshot`."""
    version, internal, gauss = snapshot["python"]
    random.setstate((version, tuple(internal), gauss))
    np_state = snapshot["numpy"]
    np.random.set_state(("MT19937", np_state["keys"].numpy().astype(np.uint32), np_state["pos"],
                         np_state["has_gauss"], np_state["gauss"]))
    torch.set_rng_state(snapshot["torch"])
    if "cuda" in snapshot and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(snapshot["cuda"])
