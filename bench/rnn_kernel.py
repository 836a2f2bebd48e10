"""The plain rnn's forward and backward on the CPU: trainlab's kernel (``trainlab.models.rnn_kernel``) against
``torch.nn.RNN`` on the same weights and batches, alternating in one process.

The d2l model's shapes by default: one-hot characters (vocabulary 77), hidden 256, batch 32 × 35 steps, a linear
output layer and cross-entropy on every step — what one training step computes before the optimizer.  Each round
times ``--steps`` steps of each variant; the line per thread count gives every variant's fastest and median round
and the ratio of the medians (``nn.RNN`` / kernel: how many times faster the kernel is), and the speed of the one
product both must repeat every step (state 32×256 times ``W_hh`` 256×256) in GFLOP/s: what bounds either.

Run: ``python bench/rnn_kernel.py [--threads 1 2] [--rounds 8] [--steps 40]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from trainlab.models import rnn_kernel

VOCAB, HIDDEN, BATCH, STEPS = 77, 256, 32, 35


def steps(layer: nn.RNN, head: nn.Linear) -> dict[str, Callable[[torch.Tensor, torch.Tensor], None]]:
    """One forward-and-backward per variant, from time-major ids ``(T, N)`` and targets ``(T·N,)``."""

    def kernel(ids: torch.Tensor, target: torch.Tensor) -> None:
        outputs, _ = rnn_kernel.run(layer, ids, None)
        F.cross_entropy(head(outputs).reshape(-1, VOCAB), target).backward()

    def torch_rnn(ids: torch.Tensor, target: torch.Tensor) -> None:
        outputs, _ = layer(F.one_hot(ids, VOCAB).to(torch.float32))
        F.cross_entropy(head(outputs).reshape(-1, VOCAB), target).backward()

    return {"kernel": kernel, "nn.RNN": torch_rnn}


def time_round(step: Callable[[torch.Tensor, torch.Tensor], None], batches: list[tuple[torch.Tensor, torch.Tensor]],
               params: list[nn.Parameter]) -> float:
    """Milliseconds per step over ``batches`` (after two warm-up steps)."""
    for ids, target in batches[:2]:
        step(ids, target)
    started = time.perf_counter()
    for ids, target in batches:
        for p in params:
            p.grad = None
        step(ids, target)
    return (time.perf_counter() - started) / len(batches) * 1e3


def recurrent_product_gflops(repeats: int = 2000) -> float:
    """GFLOP/s of one step's ``h @ W_hh^T`` (32×256 by 256×256), the product no implementation can avoid."""
    h, weight, out = torch.randn(BATCH, HIDDEN), torch.randn(HIDDEN, HIDDEN), torch.empty(BATCH, HIDDEN)
    for _ in range(50):
        torch.mm(h, weight.t(), out=out)
    started = time.perf_counter()
    for _ in range(repeats):
        torch.mm(h, weight.t(), out=out)
    return 2 * BATCH * HIDDEN * HIDDEN * repeats / (time.perf_counter() - started) / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    layer, head = nn.RNN(VOCAB, HIDDEN), nn.Linear(HIDDEN, VOCAB)
    params = [*layer.parameters(), *head.parameters()]
    batches = [(torch.randint(0, VOCAB, (STEPS, BATCH)), torch.randint(0, VOCAB, (STEPS * BATCH,)))
               for _ in range(args.steps)]
    variants = steps(layer, head)
    for threads in args.threads:
        torch.set_num_threads(threads)
        times: dict[str, list[float]] = {name: [] for name in variants}
        for _ in range(args.rounds):
            for name, step in variants.items():
                times[name].append(time_round(step, batches, params))
        median = {name: statistics.median(values) for name, values in times.items()}
        print(json.dumps({"bench": "rnn_kernel", "threads": threads, "rounds": args.rounds, "steps": args.steps,
                          "shape": f"{BATCH}x{STEPS} one-hot {VOCAB}, hidden {HIDDEN}",
                          "fastest_ms": {k: round(min(v), 3) for k, v in times.items()},
                          "median_ms": {k: round(v, 3) for k, v in median.items()},
                          "speedup_median": round(median["nn.RNN"] / median["kernel"], 3),
                          "recurrent_product_gflops": round(recurrent_product_gflops(), 1),
                          "load_avg_1min": round(os.getloadavg()[0], 2), "torch": torch.__version__,
                          "python": platform.python_version()}), flush=True)


if __name__ == "__main__":
    main()
