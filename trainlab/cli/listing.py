"""``trainlab list KIND``: registered components with one-line descriptions."""

from __future__ import annotations

import argparse

from rich.table import Table

from trainlab.cli.common import HelpFormatter, console
from trainlab.registry import REGISTRIES


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "list", help="list models, datasets, optimizers, schedules, losses or callbacks",
        description="List registered components by kind; a pattern filters names (shell-style, e.g. 'resnet*').",
        formatter_class=HelpFormatter)
    parser.add_argument("kind", choices=sorted(REGISTRIES), help="what to list")
    parser.add_argument("pattern", nargs="?", default=None, help="optional name filter, e.g. 'vgg*'")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    registry = REGISTRIES[args.kind]
    table = Table(title=f"{args.kind} ({len(registry.names(args.pattern))})", show_lines=False)
    table.add_column("name", style="bold")
    table.add_column("description")
    for entry in registry.entries():
        if entry.name in registry.names(args.pattern):
            table.add_row(entry.name, entry.description)
    console.print(table)
    return 0
