"""Helpers for the multi-process tests: run a function as every rank of a gloo job, in forked processes.

Forking (instead of spawning, or torchrun) reuses the parent's imported torch and trainlab, so a 2-rank job
costs seconds, not the ~15 s an import takes on a loaded machine.  Each rank gets torchrun's environment
(``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``/``MASTER_PORT`` on a free port), writes what it returned (or the error
it raised) to ``outcome-<rank>.json`` and its trainlab log to ``log-<rank>.txt`` in the job's directory, and is
killed if the job outlives its timeout.
"""

from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing
import os
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any, Callable

import torch
from safetensors.torch import load_file

from trainlab.engine.callbacks.base import Callback

MOONS = ["data.n=241", "callbacks.progress.style=none", "callbacks.plot_curves=null"]  # 174 train (even), 19 val


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_job(target: Callable[[int], Any], world: int, job_dir: Path, timeout: float = 120.0,
            dist_timeout: float = 30.0, ranks: bool = True) -> list[int | None]:
    """Run ``target(rank)`` in ``world`` forked ranks; their exit codes (None: killed at the timeout).

    ``ranks=False`` runs independent workers instead (no torchrun environment, so no process group).
    """
    job_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_rank_main, args=(target, rank, world, port, job_dir, dist_timeout, ranks))
             for rank in range(world)]
    for proc in procs:
        proc.start()
    deadline = time.monotonic() + timeout
    for proc in procs:
        proc.join(max(0.0, deadline - time.monotonic()))
    codes = [proc.exitcode for proc in procs]
    for proc in procs:
        if proc.is_alive():
            proc.kill()
            proc.join()
    return codes


def _rank_main(target: Callable[[int], Any], rank: int, world: int, port: int, job_dir: Path,
               dist_timeout: float, ranks: bool) -> None:
    if ranks:
        os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world), LOCAL_WORLD_SIZE=str(world),
                          MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), TRAINLAB_DIST_TIMEOUT=str(dist_timeout))
    handler = logging.FileHandler(job_dir / f"log-{rank}.txt")
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logger = logging.getLogger("trainlab")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    code = 0
    try:
        outcome = {"result": target(rank)}
    except BaseException as err:  # noqa: BLE001 - reported to the test, which decides
        outcome, code = {"error": f"{type(err).__name__}: {err}"}, 1
    (job_dir / f"outcome-{rank}.json").write_text(json.dumps(outcome))
    handler.flush()
    sys.stdout.flush()
    os._exit(code)  # never run the parent's (pytest's) exit handlers in a forked child


def outcome(job_dir: Path, rank: int) -> dict[str, Any]:
    return json.loads((job_dir / f"outcome-{rank}.json").read_text())


def log(job_dir: Path, rank: int) -> str:
    return (job_dir / f"log-{rank}.txt").read_text()


def digest(model: torch.nn.Module) -> str:
    """A hash of every parameter's exact bytes."""
    sha = hashlib.sha256()
    for tensor in model.state_dict().values():
        sha.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return sha.hexdigest()


class Probe(Callback):
    """Records a parameter hash after every step; at a given step it can SIGKILL or SIGTERM its own process,
    raise, or stop the run as failed (on its rank only)."""

    order = 95  # after the checkpoint callback: a step's checkpoint is on disk before the probe acts

    def __init__(self, kill_at: int = 0, term_at: int = 0, raise_at: int = 0, fail_at: int = 0) -> None:
        self.kill_at, self.term_at, self.raise_at, self.fail_at = kill_at, term_at, raise_at, fail_at
        self.hashes: list[str] = []

    def on_batch_end(self, trainer: Any, state: Any) -> None:
        self.hashes.append(digest(trainer.model))
        if state.step == self.kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        if state.step == self.term_at:
            os.kill(os.getpid(), signal.SIGTERM)
        if state.step == self.raise_at:
            raise RuntimeError(f"probe failure at step {state.step}")
        if state.step == self.fail_at:  # as the NaN guard does when its own rank's loss is not finite
            state.stop(f"probe: loss became nan at step {state.step}", failed=True)


def train_rank(overrides: list[str], out: Path, name: str, probe: Probe | None = None, **flags: Any) -> dict[str, Any]:
    """Train one run through the public API (every rank calls this); the probe's hashes and the run path."""
    from trainlab import config
    from trainlab.api import train_config

    cfg = config.load(None, flags={"model": "mlp", "data": "moons", "epochs": 2, "batch_size": 16, "seed": 3,
                                   "name": name, "out": str(out), **flags}, overrides=overrides)
    run = train_config(cfg, callbacks={"probe": probe} if probe is not None else None)
    return {"hashes": probe.hashes if probe is not None else [], "path": str(run.path)}


def last_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    """The weights of a run's newest ``last`` checkpoint."""
    newest = sorted((run_dir / "checkpoints").glob("last-*"))[-1]
    return load_file(str(newest / "model.safetensors"))
