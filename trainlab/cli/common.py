"""Helpers shared by the subcommands: error reporting and the console."""

from __future__ import annotations

import argparse
import sys

from rich.console import Console

from trainlab.config import ConfigError
from trainlab.engine.checkpoint import CheckpointError
from trainlab.predict_input import InputError
from trainlab.registry import UnknownNameError
from trainlab.rundir import RunDirError

# Problems caused by user input: reported as one clear message with exit code 2, no traceback.
EXPECTED_ERRORS: tuple[type[BaseException], ...] = (
    ConfigError, UnknownNameError, RunDirError, CheckpointError, InputError, FileNotFoundError, ValueError,
)

console = Console(highlight=False)


def fail(err: BaseException, code: int = 2) -> int:
    """Print ``error: …`` on stderr and return the exit code."""
    print(f"error: {err}", file=sys.stderr)
    return code


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Keep hand-written line breaks in descriptions and show defaults."""
