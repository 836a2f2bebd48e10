"""The ``trainlab`` command line: parses and validates arguments, calls the Python API, prints results.

Each subcommand group lives in its own module exposing ``register(subparsers)``; the module list below is
the only place that knows them all.  Errors trainlab can explain exit with code 2 and one ``error:`` line (the
traceback too with ``--debug``); any other exception is a bug and exits 1 with its traceback; Ctrl-C during
training exits with 130 after saving a checkpoint.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
import traceback
from typing import Iterator, Sequence

from trainlab.cli.common import EXPECTED_ERRORS, fail, show_library_messages

COMMAND_MODULES = ("train", "evaluate", "listing", "summary", "data", "schedule", "lr_find", "experiments", "text",
                   "export")

DESCRIPTION = """\
train, compare and understand deep-learning models with PyTorch.

quick start:
  trainlab train                          train the default CNN on the built-in digits (offline, < 1 min)
  trainlab train --model mlp --epochs 5   another model
  trainlab list models                    what is available
  trainlab eval runs/NAME                 test metrics of a saved run
  trainlab predict runs/NAME img.png      classify image files

--debug (before or after the command) shows the traceback of an error trainlab explains in one line.
"""

DEBUG_HELP = "show the full traceback of errors that are otherwise reported in one line, and debug messages"
BUG_NOTE = "error: an unexpected {name} (a bug in trainlab); please report it with the traceback above"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="trainlab", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    from trainlab.version import __version__

    parser.add_argument("--version", action="version", version=f"trainlab {__version__}")
    parser.add_argument("--debug", action="store_true", help=DEBUG_HELP)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"trainlab.cli.{name}").register(subparsers)
    for command in _subcommand_parsers(parser):
        # SUPPRESS: a subcommand's own default must not reset a --debug given before the command
        command.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=DEBUG_HELP)
    return parser


def _subcommand_parsers(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    """Every (nested) subcommand parser once, e.g. ``train`` and ``schedule plot``, so ``--debug`` works after the
    command as well as before it."""
    seen: set[int] = set()
    stack = [parser]
    while stack:
        for action in stack.pop()._actions:
            if isinstance(action, argparse._SubParsersAction):
                for child in action.choices.values():
                    if id(child) not in seen:
                        seen.add(id(child))
                        stack.append(child)
                        yield child


def main(argv: Sequence[str] | None = None) -> int:
    show_library_messages()
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # as typed: `train --devices` relaunches with it
    if args.debug:
        show_library_messages(logging.DEBUG)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 0
    try:
        return int(args.handler(args) or 0)
    except EXPECTED_ERRORS as err:
        return fail(err, debug=args.debug)
    except Exception as err:  # noqa: BLE001 - not a mistake in the input but a bug: show its traceback
        traceback.print_exc(file=sys.stderr)
        print(BUG_NOTE.format(name=type(err).__name__), file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
