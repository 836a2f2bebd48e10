"""Several processes training one model: ``torch.distributed`` with DistributedDataParallel, started by torchrun.

This module owns every question a multi-process run asks — which rank am I, how many are there, who writes
files — and the few collective operations the loop needs.  Outside a torchrun job (no ``WORLD_SIZE`` > 1 in the
environment) every function here is a cheap no-op for a single process, so the rest of the code calls them
unconditionally.

What it decides, and why:

* **Backend and device.**  NCCL with one GPU per rank (``cuda:LOCAL_RANK``) on CUDA, gloo on the CPU.  The
  process group has a timeout (:data:`TIMEOUT_ENV`, default 600 s), so a rank that dies or hangs makes the
  others fail with an error instead of waiting forever.
* **Batch size.**  ``train.batch_size`` is the *global* batch: each rank takes ``batch_size / world_size``, and
  a batch size the ranks cannot share evenly is refused.  The learning rate is never rescaled.
* **Stopping together.**  After every step the ranks agree (one small all-reduce) on whether anyone was
  interrupted (Ctrl-C, SIGTERM) or asked to stop, so all of them stop at the same step, checkpoint once, and no
  rank is left waiting in a collective the others never reach.
* **Per-rank state.**  A checkpoint holds every rank's RNG state and running metric sums (gathered to every
  rank, written by rank 0); on resume each rank takes its own part, and a different world size is refused.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import math
import os
import signal
from typing import Any, Callable, Iterator, TypeVar

import torch
import torch.distributed as dist
from torch import nn

logger = logging.getLogger(__name__)

TIMEOUT_ENV = "TRAINLAB_DIST_TIMEOUT"  # seconds a collective may wait for the other ranks
DEFAULT_TIMEOUT_S = 600.0
T = TypeVar("T")

_interrupted = False  # set by the signal handler of a distributed run; acted on at the next step, by every rank


def launched() -> bool:
    """Whether this process is one of several started by torchrun (``WORLD_SIZE`` > 1 in its environment)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def active() -> bool:
    """Whether a process group is up (this process trains together with others)."""
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    """This process's rank, 0 … world_size − 1 (0 for a single process)."""
    return dist.get_rank() if active() else 0


def world_size() -> int:
    """How many processes train together (1 for a single process)."""
    return dist.get_world_size() if active() else 1


def is_main() -> bool:
    """Rank 0: the one process that writes the run directory and prints results."""
    return rank() == 0


def main_process() -> bool:
    """Rank 0 of a torchrun job (by its ``RANK``), or a single process — also before or after the group is up."""
    return not launched() or int(os.environ.get("RANK", "0")) == 0


def local_rank() -> int:
    """This process's index on its machine, which picks its GPU (torchrun's ``LOCAL_RANK``)."""
    return int(os.environ.get("LOCAL_RANK", "0"))


def device_for_rank(device: torch.device) -> torch.device:
    """Under torchrun, plain ``cuda`` means this rank's own GPU, ``cuda:LOCAL_RANK``; anything else is kept."""
    if launched() and device.type == "cuda" and device.index is None:
        return torch.device("cuda", local_rank())
    return device


def timeout() -> datetime.timedelta:
    """How long a collective waits for the other ranks before failing (``TRAINLAB_DIST_TIMEOUT`` seconds)."""
    raw = os.environ.get(TIMEOUT_ENV, str(DEFAULT_TIMEOUT_S))
    try:
        seconds = float(raw)
    except ValueError:
        raise ValueError(f"{TIMEOUT_ENV}={raw!r} is not a number of seconds; set it to e.g. 600") from None
    if not (math.isfinite(seconds) and seconds > 0):
        raise ValueError(f"{TIMEOUT_ENV} must be a finite number of seconds > 0, got {raw}")
    return datetime.timedelta(seconds=seconds)


@contextlib.contextmanager
def process_group(device: torch.device, quiet: tuple[type[BaseException], ...] = ()) -> Iterator[None]:
    """Join the torchrun job for the duration of the block (NCCL on CUDA, gloo otherwise), then leave it.

    A no-op for a single process, or when a group is already up (a nested call: ``train_config`` starts the group
    before the run directory exists, ``_start`` inside it finds it up).  Inside the block, SIGINT and SIGTERM only flag an interrupt that every rank acts on at the
    same step (:func:`sync_step`).  An exception leaving the block is logged once as an error naming the rank,
    unless it is one of ``quiet`` (an interrupt the caller reports itself).
    """
    if not launched() or active():
        yield
        return
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if cuda else "gloo", timeout=timeout(), device_id=device if cuda else None)
    previous = _flag_signals()
    try:
        yield
    except Exception as err:
        if not isinstance(err, quiet):
            logger.error("rank %d of %d stopped: %s: %s", rank(), world_size(), type(err).__name__, err)
        raise
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        dist.destroy_process_group()


def _flag_signals() -> dict[int, Any]:
    """Route SIGINT and SIGTERM to a flag (the main thread only may install handlers; elsewhere nothing changes)."""
    global _interrupted
    _interrupted = False

    def flag(signum: int, frame: Any) -> None:
        global _interrupted
        _interrupted = True

    previous: dict[int, Any] = {}
    with contextlib.suppress(ValueError):  # not the main thread
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.signal(signum, flag)
    return previous


def check_batch_size(batch_size: int | str) -> None:
    """Refuse a global batch size the ranks cannot share, and ``auto`` (each rank would probe its own)."""
    world = world_size()
    if world == 1:
        return
    if batch_size == "auto":
        raise ValueError(f"train.batch_size=auto is not supported with {world} processes (each would probe a "
                         "different size); give the global batch size as a number, a multiple of the process count")
    if int(batch_size) % world:
        raise ValueError(f"train.batch_size={batch_size} cannot be split evenly over {world} processes; use a "
                         f"multiple of {world} (it is the global batch: each process takes batch_size / {world})")


def per_rank_batch(batch_size: int) -> int:
    """Each rank's share of the global batch (checked by :func:`check_batch_size`)."""
    return batch_size // world_size()


def wrap_model(model: nn.Module, device: torch.device) -> nn.Module:
    """The module to train with: DistributedDataParallel around ``model`` in a job, ``model`` itself otherwise."""
    if not active():
        return model
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


def rank_seed(seed: int) -> int | None:
    """A seed for this rank's own random stream (dropout, mixing) in a job; None for a single process."""
    return None if world_size() == 1 else seed * 1_000_003 + 7919 * rank() + 1


def sum_over_ranks(values: torch.Tensor) -> torch.Tensor:
    """The element-wise sum of ``values`` over all ranks (a copy; ``values`` itself is left alone)."""
    if not active():
        return values
    total = values.detach().clone()
    dist.all_reduce(total, op=dist.ReduceOp.SUM)
    return total


def sync_step(state: Any) -> None:
    """After each step: agree across ranks on an interrupt and on stopping, so every rank acts at the same step.

    A rank that stopped (its callbacks called ``state.stop``, e.g. the NaN guard on its own loss) stops everyone
    with its reason, prefixed by its rank; a run one rank marked failed is failed on all of them; an interrupt on
    any rank raises ``KeyboardInterrupt`` on every rank.
    """
    if not active():
        return
    flags = torch.tensor([float(_interrupted), float(state.should_stop), float(state.failed)],
                         device=_collective_device())
    dist.all_reduce(flags, op=dist.ReduceOp.MAX)
    interrupted, stop, failed = (bool(v) for v in flags.tolist())
    if stop:  # rare, and the same verdict on every rank: all of them take part in gathering the reasons
        reasons: list[Any] = [None] * world_size()
        dist.all_gather_object(reasons, state.stop_reason if state.should_stop else None)
        if not state.should_stop:
            said = [f"rank {r}: {why}" for r, why in enumerate(reasons) if why is not None]
            state.stop(said[0] if said else f"another process stopped the run at step {state.step}", failed=failed)
    state.failed = state.failed or failed
    if interrupted:
        raise KeyboardInterrupt


def _collective_device() -> torch.device:
    return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")


def barrier() -> None:
    """Wait until every rank gets here (e.g. all have read a checkpoint before rank 0 replaces it)."""
    if active():
        dist.barrier()


def from_main(make: Callable[[], T]) -> T:
    """``make()`` on rank 0 only, its result (or its exception) handed to every rank."""
    if not active():
        return make()
    box: list[Any] = [None]
    if is_main():
        try:
            box[0] = ("ok", make())
        except Exception as err:  # noqa: BLE001 - every rank must raise it, or the others wait for it forever
            box[0] = ("error", err)
    dist.broadcast_object_list(box, src=0)
    outcome, value = box[0]
    if outcome == "error":
        raise value
    return value


def rank_states(local: dict[str, Any]) -> dict[str, Any]:
    """What a checkpoint adds in a job: the world size and every rank's ``local`` state, gathered on all ranks
    (the checkpoint is written by rank 0; gathering everywhere keeps the ranks in step).  Empty otherwise."""
    if not active():
        return {}
    gathered: list[Any] = [None] * world_size()
    dist.all_gather_object(gathered, _on_cpu(local))
    return {"world_size": world_size(), "ranks": gathered}


def _on_cpu(value: Any) -> Any:
    """``value`` with every tensor moved to the CPU: a GPU tensor pickled on rank 0 would unpickle onto rank 0's
    GPU on every rank."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, dict):
        return {key: _on_cpu(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_on_cpu(item) for item in value)
    return value


def own_rank_state(saved: dict[str, Any]) -> dict[str, Any] | None:
    """This rank's part of a checkpoint's per-rank state (None for a single-process checkpoint)."""
    ranks = saved.get("ranks")
    return None if ranks is None else ranks[rank()]


def check_world_size(saved: dict[str, Any], where: Any) -> None:
    """Refuse to resume with another process count: the data shards, the per-rank random streams and the
    per-rank batch would all differ, so the continuation could not match the interrupted run."""
    before, now = int(saved.get("world_size", 1)), world_size()
    if before != now:
        raise ValueError(f"checkpoint {where} was written by a run of {before} process(es), but this resume has "
                         f"{now}; resume with the same count (torchrun --nproc_per_node / trainlab train --devices "
                         f"{before}), or start a new run with --init-from to reuse its weights")
