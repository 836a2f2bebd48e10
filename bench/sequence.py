"""Sequence bench: the seeds' d2l character-RNN recipe as a hand-written loop, against trainlab training the same
model on the same data, and trainlab's own recipe — each for the same wall-clock training budget, in one process.

Data: Pride and Prejudice as trainlab ships it (``austen`` dataset, characters; ``--root`` reads the novel from a
directory instead), the last 10% held out for validation.  All three variants use the same ids and vocabulary.

* ``d2l``: d2l's ``RNNModel`` (``nn.RNN`` 256 on one-hot characters, linear output), sequential partitioning with a
  random offset each epoch (``seq_data_iter_sequential``), batch 32 × 35 steps, the state carried across batches
  and detached (re-initialised at each epoch start), SGD lr 1, d2l's ``grad_clipping`` at θ=1 — d2l's
  ``train_epoch_ch8``, written out here.
* ``trainlab-d2l``: ``trainlab.train`` with the same model and recipe (``rnn`` hidden 256, one-hot input,
  ``austen`` sequential 35 steps, batch 32, SGD lr 1, clip 1), through the public API; on the CPU its ``rnn``
  trains with trainlab's kernel (:mod:`trainlab.models.rnn_kernel`).
* ``trainlab-d2l-torch`` (on request): the same with ``model.cpu_kernel=false``, so ``torch.nn.RNN`` computes the
  layer and its backward as in the d2l loop: what trainlab's loop costs or saves by itself.
* ``trainlab-recipe``: trainlab's recipe for this budget (see ``RECIPE``).

Every variant trains until ``--seconds`` of training have passed (checked after each batch; trainlab's time
includes what it does during training: its epoch-end validation and checkpoints).  Then one evaluator, the same for
all, computes the validation perplexity of the final weights: the held-out tail read as 32 parallel streams, 35
steps at a time, the state carried (as d2l's ``predict``-style evaluation would).  ``chars_per_s`` counts training
characters (target tokens) per second of training.

Prints one JSON line per variant.  ``--rounds N`` runs the variants N times, alternating (d2l, trainlab, d2l, …),
and ends with a summary line: each variant's median characters/s and the median of the per-round ratios against
``d2l``.  On a shared machine, whose speed drifts over minutes, alternating short runs compare the loops under the
same conditions; one long run each compares them under whatever the machine did at the time.

``--interleave K`` goes further: the d2l loop trains K batches after every K of trainlab's, inside trainlab's run,
timed apart (each loop's ``train_seconds`` is its own time; trainlab's still includes its epoch-end validation and
checkpoints).  Both see the same machine within a fraction of a second: three such runs moved by 3% where the medians
of two sets of rounds moved by 15% (``bench/RESULTS.md``).  Each loop then runs with the caches the other left, which
a loop running alone does not.

Every line also gives ``batch_chars_per_s``, characters per second of the batches alone: trainlab's time less what
it does between epochs (``epoch_end_seconds``: validation, checkpoint), which the d2l loop does not do.

Run: ``python bench/sequence.py [--seconds 150] [--threads N] [--variants ...] [--rounds N] [--interleave K]``
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from trainlab import config as config_mod
from trainlab.api import train_config
from trainlab.data import build
from trainlab.engine.callbacks import Callback

BATCH, STEPS, HIDDEN = 32, 35, 256
D2L_OVERRIDES = ["model.hidden=256", "model.layers=1", "model.embedding=null", "model.clip_grad_norm=1.0",
                 "data.num_steps=35", "data.partition=sequential", "data.val_fraction=0.1", "train.batch_size=32",
                 "optim.name=sgd", "optim.lr=1.0", "optim.momentum=0.0", "optim.weight_decay=0.0",
                 "sched.name=constant"]
RECIPE = {"model": "gru", "overrides": ["model.hidden=256", "model.layers=1", "model.embedding=64",
                                        "model.clip_grad_norm=1.0", "data.num_steps=64",
                                        "data.partition=sequential", "data.val_fraction=0.1",
                                        "train.batch_size=32", "optim.name=adam", "optim.lr=0.004",
                                        "sched.name=constant"]}
TRAINLAB = {"trainlab-d2l": ("rnn", D2L_OVERRIDES),
            "trainlab-d2l-torch": ("rnn", [*D2L_OVERRIDES, "model.cpu_kernel=false"]),
            "trainlab-recipe": (RECIPE["model"], RECIPE["overrides"])}
D2L_RECIPE = "d2l: nn.RNN 256 one-hot, 32x35, SGD lr 1, clip 1, carried"
Step = Callable[[torch.Tensor, Any], tuple[torch.Tensor, Any]]


class D2LRNNModel(nn.Module):
    """d2l's ``RNNModel`` around ``nn.RNN``: one-hot inputs (time-major), a linear layer on every step."""

    def __init__(self, vocab_size: int, hidden: int = HIDDEN) -> None:
        super().__init__()
        self.vocab_size = vocab_size
        self.rnn = nn.RNN(vocab_size, hidden)
        self.linear = nn.Linear(hidden, vocab_size)

    def forward(self, inputs: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = F.one_hot(inputs.T.long(), self.vocab_size).to(torch.float32)
        y, state = self.rnn(x, state)
        return self.linear(y.reshape((-1, y.shape[-1]))), state

    def begin_state(self, batch_size: int) -> torch.Tensor:
        return torch.zeros((1, batch_size, self.rnn.hidden_size))


def seq_data_iter_sequential(corpus: torch.Tensor, batch_size: int, num_steps: int):
    """d2l: a random offset, then ``batch_size`` parallel streams read ``num_steps`` at a time."""
    offset = random.randint(0, num_steps)
    num_tokens = ((len(corpus) - offset - 1) // batch_size) * batch_size
    xs = corpus[offset:offset + num_tokens].reshape(batch_size, -1)
    ys = corpus[offset + 1:offset + 1 + num_tokens].reshape(batch_size, -1)
    for i in range(0, num_steps * (xs.shape[1] // num_steps), num_steps):
        yield xs[:, i:i + num_steps], ys[:, i:i + num_steps]


def grad_clipping(net: nn.Module, theta: float) -> None:
    """d2l: rescale all gradients together when their global norm exceeds ``theta``."""
    params = [p for p in net.parameters() if p.requires_grad]
    norm = torch.sqrt(sum(torch.sum(p.grad ** 2) for p in params))
    if norm > theta:
        for param in params:
            param.grad[:] *= theta / norm


class D2LLoop:
    """d2l's ``train_epoch_ch8`` with sequential partitioning, one batch per :meth:`step`: run alone until a budget
    (:func:`train_d2l`) or in turns with trainlab's batches (``--interleave``, :class:`TimeBudget`)."""

    def __init__(self, train_ids: torch.Tensor, vocab_size: int) -> None:
        self.train_ids = train_ids
        self.net = D2LRNNModel(vocab_size)
        self.loss = nn.CrossEntropyLoss()
        self.updater = torch.optim.SGD(self.net.parameters(), lr=1.0)
        self.batches_left: Any = iter(())
        self.state: torch.Tensor | None = None
        self.chars = self.batches = self.epochs = 0
        self.seconds = 0.0  # spent in step()

    def step(self) -> None:
        started = time.perf_counter()
        self._train_batch()
        self.seconds += time.perf_counter() - started

    def _train_batch(self) -> None:
        batch = next(self.batches_left, None)
        if batch is None:  # a new epoch: a new random offset, and the state starts again from zeros
            self.batches_left, self.state = seq_data_iter_sequential(self.train_ids, BATCH, STEPS), None
            self.epochs += 1
            batch = next(self.batches_left)
        x, y_steps = batch
        if self.state is None:
            self.state = self.net.begin_state(BATCH)
        else:
            self.state.detach_()
        y = y_steps.T.reshape(-1)
        y_hat, self.state = self.net(x, self.state)
        loss_value = self.loss(y_hat, y.long()).mean()
        self.updater.zero_grad()
        loss_value.backward()
        grad_clipping(self.net, 1)
        self.updater.step()
        self.chars, self.batches = self.chars + y.numel(), self.batches + 1

    def report(self, seconds: float | None = None) -> dict[str, Any]:
        """What it trained in ``seconds`` (default: the time spent in :meth:`step`)."""
        return {"train_seconds": self.seconds if seconds is None else seconds, "chars": self.chars,
                "batches": self.batches, "epochs_started": self.epochs}


def train_d2l(train_ids: torch.Tensor, vocab_size: int, seconds: float) -> tuple[nn.Module, dict[str, Any]]:
    """d2l's ``train_ch8`` with sequential partitioning, stopped after ``seconds`` of training."""
    loop = D2LLoop(train_ids, vocab_size)
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        loop.step()
    return loop.net, loop.report(time.perf_counter() - started)


class TimeBudget(Callback):
    """Stop a trainlab run once it has trained for ``seconds``; count what it trained.  With ``alternate``, that d2l
    loop trains ``turn`` batches after every ``turn`` of trainlab's, timed apart: that time is the d2l loop's, not
    trainlab's.

    Also timed: what trainlab does between epochs (validation, checkpoint), which the d2l loop does not do; it counts
    in ``train_seconds`` and is reported as ``epoch_end_seconds``."""

    order = 95

    def __init__(self, seconds: float, chars_per_batch: int, alternate: D2LLoop | None = None, turn: int = 1) -> None:
        self.seconds, self.chars_per_batch, self.alternate, self.turn = seconds, chars_per_batch, alternate, turn
        self.started = self.stopped = self.epoch_end_seconds = 0.0
        self.last_batch_end: float | None = None
        self.batches = 0

    def on_fit_start(self, trainer: Any, state: Any) -> None:
        self.started = time.perf_counter()

    def on_epoch_start(self, trainer: Any, state: Any) -> None:
        if self.last_batch_end is not None:
            self.epoch_end_seconds += time.perf_counter() - self.last_batch_end

    def on_batch_end(self, trainer: Any, state: Any) -> None:
        self.batches += 1
        if self.alternate is not None and self.batches % self.turn == 0:
            for _ in range(self.turn):
                self.alternate.step()
        if self.own_seconds() >= self.seconds:
            self.stopped = time.perf_counter()
            state.stop(f"time budget of {self.seconds:g} s")
        self.last_batch_end = time.perf_counter()

    def own_seconds(self) -> float:
        """Seconds trainlab has trained: since the start, less the alternating d2l loop's batches."""
        alternated = self.alternate.seconds if self.alternate is not None else 0.0
        return (self.stopped or time.perf_counter()) - self.started - alternated

    def report(self) -> dict[str, Any]:
        return {"train_seconds": self.own_seconds(), "chars": self.batches * self.chars_per_batch,
                "batches": self.batches, "epoch_end_seconds": self.epoch_end_seconds}


def train_trainlab(model: str, overrides: list[str], seconds: float, threads: int | None, root: str | None,
                   out: Path, name: str, alternate: D2LLoop | None = None,
                   turn: int = 1) -> tuple[nn.Module, dict[str, Any]]:
    """One ``trainlab`` run of ``model`` on ``austen`` for ``seconds`` of training; the final weights.
    ``alternate``: a d2l loop that trains ``turn`` batches after every ``turn`` of trainlab's (see
    :class:`TimeBudget`)."""
    steps = next(int(o.split("=")[1]) for o in overrides if o.startswith("data.num_steps="))
    batch = next(int(o.split("=")[1]) for o in overrides if o.startswith("train.batch_size="))
    budget = TimeBudget(seconds, batch * steps, alternate, turn)
    extra = ["train.epochs=1000", "callbacks.progress.style=none", "callbacks.checkpoint.save_best=false"]
    extra += [f"train.threads={threads}"] if threads else []  # no "best": the run's weights are its final ones
    extra += [f"data.root={root}"] if root else []
    cfg = config_mod.load(None, flags={"model": model, "data": "austen", "out": str(out), "name": name},
                          overrides=[*overrides, *extra])
    run = train_config(cfg, callbacks={"time_budget": budget})
    stats = budget.report()
    net = run.load_model().eval()  # the last checkpoint, written when the budget stopped the run
    stats["trainlab_val"] = {k: v for k, v in run.evaluate("val", device="cpu").items()}
    return net, stats


@torch.no_grad()
def validation_perplexity(step: Step, val_ids: torch.Tensor, batch: int = BATCH, steps: int = STEPS) -> float:
    """exp(mean cross-entropy) over the held-out tail read as ``batch`` streams, ``steps`` at a time, state carried."""
    width = (len(val_ids) - 1) // batch
    xs, ys = val_ids[:batch * width].view(batch, width), val_ids[1:1 + batch * width].view(batch, width)
    total, count, state = 0.0, 0, None
    for i in range(0, width, steps):
        logits, state = step(xs[:, i:i + steps], state)
        target = ys[:, i:i + steps]
        total += float(F.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1), reduction="sum"))
        count += target.numel()
    return math.exp(total / count)


def d2l_step(net: D2LRNNModel) -> Step:
    def step(x: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]:
        state = net.begin_state(x.shape[0]) if state is None else state
        logits, state = net(x, state)  # (T*N, V) time-major
        return logits.view(x.shape[1], x.shape[0], -1).transpose(0, 1), state
    return step


def trainlab_step(net: nn.Module) -> Step:
    return lambda x, state: net.run(x, state)  # the recurrent models' explicit (prediction, state) form


def environment(threads: int | None) -> dict[str, Any]:
    return {"threads": threads or "default", "cpus": os.cpu_count(), "load_avg_1min": round(os.getloadavg()[0], 2),
            "torch": torch.__version__, "python": platform.python_version(), "machine": platform.machine()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=150.0, help="training budget of each variant")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads for every variant (default: each its own default — torch's one "
                             "thread per core for the d2l loop, trainlab's automatic train.threads)")
    parser.add_argument("--root", default=None, help="directory with pride-and-prejudice.txt.gz (default: shipped)")
    parser.add_argument("--variants", nargs="+", default=["d2l", "trainlab-d2l", "trainlab-recipe"],
                        choices=["d2l", *TRAINLAB])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rounds", type=int, default=1, help="run the variants this many times, alternating")
    parser.add_argument("--interleave", type=int, default=0, metavar="K",
                        help="alternate d2l and one trainlab variant every K batches in one run: --variants d2l X")
    args = parser.parse_args()
    if args.interleave < 0:
        parser.error(f"--interleave K takes K >= 1 batches per turn (0, the default: no interleaving), "
                     f"got {args.interleave}")
    if args.interleave and (len(args.variants) != 2 or args.variants[0] != "d2l"):
        parser.error("--interleave alternates the d2l loop with one trainlab variant: --variants d2l VARIANT")
    default_threads = torch.get_num_threads()
    bundle = build("austen", val_fraction=0.1, num_steps=STEPS, **({"root": args.root} if args.root else {}))
    train_ids, val_ids, vocab = bundle.train.ids, bundle.val.ids, bundle.meta.num_classes
    common = {"bench": "sequence", "text": "pride-and-prejudice", "train_chars": len(train_ids),
              "val_chars": len(val_ids), "vocab": vocab, "budget_s": args.seconds, "seed": args.seed,
              "interleaved": args.interleave}
    speeds: dict[str, dict[str, list[float]]] = {"chars_per_s": {}, "batch_chars_per_s": {}}
    with tempfile.TemporaryDirectory() as out:
        for round_index, variant in [(r, v) for r in range(args.rounds) for v in args.variants]:
            if variant == "d2l" and args.interleave:
                continue  # it trains inside the trainlab variant's run, between its batches
            random.seed(args.seed)
            torch.manual_seed(args.seed)
            torch.set_num_threads(args.threads or default_threads)  # a trainlab run may have changed it
            env = environment(args.threads)
            results = train_variant(variant, args, train_ids, vocab, Path(out) / f"{variant}-{round_index}")
            threads_used = torch.get_num_threads()  # trainlab sets its own for training
            for name, step, recipe, stats in results:
                line = {**common, "variant": name, "round": round_index, "recipe": recipe,
                        "val_ppl": validation_perplexity(step, val_ids), **speed(stats), **stats, **env,
                        "threads_used": threads_used, "load_avg_1min_after": os.getloadavg()[0]}
                for key, per_variant in speeds.items():
                    per_variant.setdefault(name, []).append(line[key])
                print(json.dumps(_rounded(line)), flush=True)
    if args.rounds > 1 or args.interleave:
        print(json.dumps(_rounded(summary(speeds, common, args.rounds))), flush=True)


def train_variant(variant: str, args: argparse.Namespace, train_ids: torch.Tensor, vocab: int,
                  out: Path) -> list[tuple[str, Step, str, dict[str, Any]]]:
    """Train ``variant`` (with ``--interleave``, the d2l loop alongside) → ``(name, evaluator step, recipe, stats)``
    for each loop that trained."""
    if variant == "d2l":
        net, stats = train_d2l(train_ids, vocab, args.seconds)
        return [(variant, d2l_step(net.eval()), D2L_RECIPE, stats)]
    alternate = D2LLoop(train_ids, vocab) if args.interleave else None
    model, overrides = TRAINLAB[variant]
    overrides = [*overrides, f"train.seed={args.seed}"]
    net, stats = train_trainlab(model, overrides, args.seconds, args.threads, args.root, out.parent, out.name,
                                alternate, args.interleave)
    results = [(variant, trainlab_step(net), f"{model} " + " ".join(overrides), stats)]
    if alternate is not None:
        results.insert(0, ("d2l", d2l_step(alternate.net.eval()), D2L_RECIPE, alternate.report()))
    return results


def speed(stats: dict[str, Any]) -> dict[str, float]:
    """Characters/s over all training time, and over the batches only (less trainlab's epoch-end validation and
    checkpoints; the d2l loop has none)."""
    batch_seconds = stats["train_seconds"] - stats.get("epoch_end_seconds", 0.0)
    return {"chars_per_s": stats["chars"] / stats["train_seconds"], "batch_chars_per_s": stats["chars"] / batch_seconds}


def summary(speeds: dict[str, dict[str, list[float]]], common: dict[str, Any], rounds: int) -> dict[str, Any]:
    """Median characters/s of each variant, and the median over rounds of each variant's ratio to ``d2l``: over all
    training time (``median_ratio_to_d2l``) and over the batches only (``median_batch_ratio_to_d2l``)."""
    line: dict[str, Any] = {**common, "variant": "summary", "rounds": rounds}
    per_s = speeds["chars_per_s"]
    line["median_chars_per_s"] = {name: statistics.median(values) for name, values in per_s.items()}
    for key, label in (("chars_per_s", "median_ratio_to_d2l"), ("batch_chars_per_s", "median_batch_ratio_to_d2l")):
        values = speeds[key]
        if "d2l" in values:
            line[label] = {name: statistics.median(v / d for v, d in zip(mine, values["d2l"]))
                           for name, mine in values.items() if name != "d2l"}
    return line


def _rounded(value: Any) -> Any:
    """Floats to 4 significant decimals, recursively: the JSON line stays readable."""
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    return round(value, 4) if isinstance(value, float) else value


if __name__ == "__main__":
    main()
