"""The ``trainlab`` command line: parses and validates arguments, calls the Python API, prints results.

Each subcommand group lives in its own module exposing ``register(subparsers)``; the module list below is
the only place that knows them all.  Errors trainlab can explain exit with code 2 and a message, never a
traceback; Ctrl-C during training exits with 130 after saving a checkpoint.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Sequence

from trainlab.cli.common import EXPECTED_ERRORS, fail, show_library_messages

COMMAND_MODULES = ("train", "evaluate", "listing", "summary", "data", "schedule", "lr_find", "experiments")

DESCRIPTION = """\
train, compare and understand deep-learning models with PyTorch.

quick start:
  trainlab train                          train the default CNN on the built-in digits (offline, < 1 min)
  trainlab train --model mlp --epochs 5   another model
  trainlab list models                    what is available
  trainlab eval runs/NAME                 test metrics of a saved run
  trainlab predict runs/NAME img.png      classify image files
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="trainlab", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    from trainlab.version import __version__

    parser.add_argument("--version", action="version", version=f"trainlab {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"trainlab.cli.{name}").register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    show_library_messages()
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 0
    try:
        return int(args.handler(args) or 0)
    except EXPECTED_ERRORS as err:
        return fail(err)


if __name__ == "__main__":
    sys.exit(main())
