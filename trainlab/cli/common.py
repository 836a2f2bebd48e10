"""Helpers shared by the subcommands: error reporting, the console, and how library log messages are shown."""

from __future__ import annotations

import argparse
import logging
import sys

from rich.console import Console

from trainlab.config import ConfigError
from trainlab.data.images import InputError
from trainlab.engine.checkpoint import CheckpointError
from trainlab.registry import UnknownNameError
from trainlab.rundir import RunDirError

# Problems caused by user input: reported as one clear message with exit code 2, no traceback.
EXPECTED_ERRORS: tuple[type[BaseException], ...] = (
    ConfigError, UnknownNameError, RunDirError, CheckpointError, InputError, FileNotFoundError, ValueError,
)

console = Console(highlight=False)


class NoticeHandler(logging.Handler):
    """Shows the library's log records on stderr as ``notice: …`` (info) or ``warning: …`` (warnings and worse),
    writing to whatever ``sys.stderr`` is at that moment, so redirected or captured stderr gets them too."""

    PREFIXES = {logging.INFO: "notice", logging.WARNING: "warning", logging.ERROR: "error", logging.CRITICAL: "error"}

    def emit(self, record: logging.LogRecord) -> None:
        prefix = self.PREFIXES.get(record.levelno, "debug")
        print(f"{prefix}: {record.getMessage()}", file=sys.stderr, flush=True)


def show_library_messages(level: int = logging.INFO) -> None:
    """Route the ``trainlab`` loggers to stderr (once per process): the CLI's choice, never the library's."""
    logger = logging.getLogger("trainlab")
    if not any(isinstance(h, NoticeHandler) for h in logger.handlers):
        logger.addHandler(NoticeHandler())
    logger.setLevel(level)


def fail(err: BaseException, code: int = 2) -> int:
    """Print ``error: …`` on stderr and return the exit code."""
    print(f"error: {err}", file=sys.stderr)
    return code


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Keep hand-written line breaks in descriptions and show defaults."""
