"""Config arguments shared by `trainlab train` and the commands that look at a recipe without training it."""

from __future__ import annotations

import argparse
import math

from trainlab import config as config_mod
from trainlab.config import RunConfig


def batch_size_arg(text: str) -> int | str:
    """``auto`` or a positive integer."""
    if text == "auto":
        return text
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer or auto, got '{text}'") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer or auto, got {value}")
    return value


def add_config_args(parser: argparse.ArgumentParser) -> None:
    """``-c``, the common flags of ``trainlab train`` and ``--set``."""
    parser.add_argument("-c", "--config", help="YAML config file (as for `trainlab train`)")
    parser.add_argument("--model", help="model name (see `trainlab list models`), or your own nn.Module: "
                        "path/to/file.py:ClassName or package.module:ClassName (this imports the file, which RUNS "
                        "its code; its constructor's keywords are options: --set model.KEY=VALUE)")
    parser.add_argument("--data", help="dataset name (see `trainlab list datasets`)")
    parser.add_argument("--epochs", type=int, help="number of epochs")
    parser.add_argument("--batch-size", type=batch_size_arg, help="examples per batch, or auto: the largest that "
                        "fits in memory (at most train.max_batch_size)")
    parser.add_argument("--lr", type=float, help="base learning rate")
    parser.add_argument("--optimizer", help="optimizer name (see `trainlab list optimizers`)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="override any config key; VALUE is YAML (0.1, true, [64,32], null); "
                        "repeatable, e.g. --set sched.warmup_epochs=2")


def load_config(args: argparse.Namespace, extra: list[str] | None = None) -> RunConfig:
    """The validated config from the arguments added by :func:`add_config_args` (``extra`` overrides last)."""
    flags = {key: getattr(args, key) for key in ("model", "data", "epochs", "batch_size", "lr", "optimizer")}
    return config_mod.load(args.config, flags=flags, overrides=[*args.overrides, *(extra or [])])


def train_batches(cfg: RunConfig) -> int:
    """Batches per training epoch of the configured dataset (builds the dataset, not the model)."""
    from trainlab.session import build_data

    bundle = build_data(cfg)
    if cfg.train.batch_size == "auto":
        raise config_mod.ConfigError("train.batch_size=auto is resolved only when training starts; give a number "
                                     "here (the one the run printed and saved in summary.json)")
    return math.ceil(len(bundle.train) / cfg.train.batch_size)
