"""``trainlab train``: train from defaults, a YAML config, flags and ``--set`` overrides."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from pathlib import Path
from typing import Any

import torch

from trainlab import config as config_mod
from trainlab import rundir
from trainlab.api import TrainingFailed, TrainingInterrupted, train
from trainlab.cli.common import HelpFormatter, check_name, check_runs_root, console
from trainlab.cli.evaluate import add_trust_code_flag, print_metrics
from trainlab.cli.recipe_args import add_config_args
from trainlab.engine import distributed

DESCRIPTION = """\
Train a model and save everything about the run in runs/<name>/.

Settings come from (lowest to highest precedence): built-in defaults < the YAML file (-c) < flags
(--model, --epochs, ...) < --set overrides.  Every key is validated before any data is loaded.

examples:
  trainlab train                                      default CNN on the built-in digits
  trainlab train --model mlp --set model.hidden=[128,64] --set model.dropout=0.2
  trainlab train -c configs/digits.yaml --lr 0.01 --optimizer sgd --set optim.momentum=0.9
  trainlab train --set callbacks.early_stopping.patience=3
  trainlab train --resume runs/simple-cnn-digits-20261122-101500
  trainlab train --init-from runs/pretrained --lr 1e-4     fine-tune from another run's best weights
  trainlab train --batch-size auto                        the largest batch that fits in memory
  trainlab train --model examples/my_net.py:MyNet --set model.width=32   your own nn.Module (runs that file)
  trainlab train --devices 2 --batch-size 128             2 processes (GPUs, or CPU with gloo), global batch 128
  torchrun --nproc_per_node=4 -m trainlab train ...      the same through torchrun (multi-node: docs/distributed.md)
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("train", help="train a model (default: a small CNN on built-in digits)",
                                   description=DESCRIPTION, formatter_class=HelpFormatter)
    add_config_args(parser)
    parser.add_argument("--device", help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N or mps")
    parser.add_argument("--seed", type=int, help="random seed (data split, init, shuffling, dropout)")
    parser.add_argument("--name", help="run name (default: <model>-<data>-<date>-<time>)")
    parser.add_argument("--out", help="directory that holds run directories (default: runs)")
    parser.add_argument("--init-from", metavar="WEIGHTS", help="start from these weights (fine-tuning): a run or "
                        "checkpoint directory, .safetensors, or a .pth/.pt state dict; tensors whose name and shape "
                        "match are copied, the rest (e.g. a new head) keep their fresh initialization")
    parser.add_argument("--trust-pickle", action="store_true", default=None, help="allow --init-from to fully "
                        "unpickle a .pth that holds more than tensors; this RUNS CODE from the file, so only for "
                        "files you trust")
    parser.add_argument("--resume", metavar="RUN_DIR", help="continue a run from its last checkpoint; only "
                        "--epochs, --device and progress settings may change")
    parser.add_argument("--devices", type=int, metavar="N", help="train with N processes on this machine (one per "
                        "GPU, or N CPU processes) through torch.distributed.run; --batch-size is the global batch, "
                        "split evenly between them (docs/distributed.md)")
    add_trust_code_flag(parser)
    parser.add_argument("--resume-force", action="store_true", help="resume even though other settings changed "
                        "(the continuation will not match an uninterrupted run)")
    parser.set_defaults(handler=run)


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def run(args: argparse.Namespace) -> int:
    """Train; SIGTERM (from a job scheduler or `kill`) is handled like Ctrl-C: checkpoint, then exit 130."""
    if args.devices is not None and _devices(args.devices, args.device) > 1:
        return launch(args.devices, args.argv)
    if not distributed.main_process():
        logging.getLogger("trainlab").setLevel(logging.WARNING)  # one set of notices per job: rank 0's
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        return _train(args)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _train(args: argparse.Namespace) -> int:
    check_name(args.name)
    check_runs_root(args.out)
    flags = {key: getattr(args, key) for key in ("lr", "batch_size", "optimizer", "device", "seed", "name", "out",
                                                   "init_from", "trust_pickle")}
    saved = _saved_config(args.resume)
    try:
        result = train(args.model, args.data, args.epochs, config=args.config, overrides=args.overrides,
                       resume=args.resume, resume_force=args.resume_force, trust_code=args.trust_code, **flags)
    except TrainingInterrupted as stop:
        if distributed.main_process():  # one message per job
            console.print(f"\n[yellow]interrupted[/]: checkpoint saved. Resume with:\n"
                          f"  trainlab train --resume {stop.run_dir}")
        return 130
    except TrainingFailed as failure:
        if distributed.main_process():
            console.print(f"[red]training failed[/]: {failure}")
        return 1
    finally:
        _say_what_resume_changed(args.resume, saved)
    if not distributed.main_process():
        return 0  # rank 0 prints the result
    summary = result.summary
    if summary.get("stop_reason"):
        console.print(summary["stop_reason"])
    if "test" in summary:
        print_metrics("test", summary["test"])
    console.print(f"run saved in [bold]{result.path}[/]  ({summary['train_seconds']:.1f} s training)")
    return 0


def _saved_config(resume: str | None) -> config_mod.RunConfig | None:
    """The config a resumed run was saved with, to tell afterwards what the resume changed in it (None when not
    resuming, or when it cannot be read: then ``train`` reports the problem)."""
    if resume is None:
        return None
    try:
        return config_mod.load(Path(resume) / rundir.CONFIG_FILE)
    except (OSError, ValueError, config_mod.ConfigError):
        return None


def _say_what_resume_changed(resume: str | None, before: config_mod.RunConfig | None) -> None:
    """``notice: train.epochs: 3 → 5 saved in RUN/config.yaml`` for each setting the resume rewrote: the saved
    config is the run's record, so changing it must not go unnoticed."""
    if resume is None or before is None:
        return
    path = Path(resume) / rundir.CONFIG_FILE
    try:
        after = config_mod.load(path)
    except (OSError, ValueError, config_mod.ConfigError):
        return
    for change in config_mod.differences(before, after):
        print(f"notice: {change} saved in {path}", file=sys.stderr)


def _devices(count: int, device: str | None) -> int:
    """``--devices N``: at least 1, not inside a job torchrun already started, at most the GPUs there are (unless
    ``--device cpu`` asks for CPU processes)."""
    if count < 1:
        raise ValueError(f"--devices must be at least 1, got {count}")
    if count > 1 and distributed.launched():
        raise ValueError("--devices starts its own processes, but this one was already started by torchrun; "
                         "drop --devices (torchrun's --nproc_per_node sets the count)")
    gpus = torch.cuda.device_count() if torch.cuda.is_available() and device != "cpu" else 0
    if gpus and count > gpus:
        raise ValueError(f"--devices {count}: this machine has {gpus} GPU(s); use at most {gpus}")
    return count


def launch(count: int, argv: list[str]) -> int:
    """Run this same command in ``count`` processes through ``torch.distributed.run`` (torchrun) on this machine.

    torchrun watches the processes: when one fails it stops the others and prints which rank failed; its
    summary is the error, so a failed job exits 1 here without a second message.  Ctrl-C or SIGTERM reaches
    torchrun, which passes it on (the processes checkpoint and stop together): exit 130, as for a single run.
    """
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import main as torchrun

    command = ["--standalone", f"--nproc-per-node={count}", "-m", "trainlab", *_without_devices(argv)]
    try:
        torchrun(command)
    except ChildFailedError:
        return 1
    except (SignalException, KeyboardInterrupt):
        return 130
    return 0


def _without_devices(argv: list[str]) -> list[str]:
    """``argv`` less ``--devices N`` / ``--devices=N``, so the processes it starts train instead of launching."""
    kept, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--devices":
            skip = True
        elif not arg.startswith("--devices="):
            kept.append(arg)
    return kept
