"""``trainlab summary MODEL``: per-layer shapes, parameters, MACs and receptive fields of a registered model or of
your own ``nn.Module`` (``file.py:ClassName``)."""

from __future__ import annotations

import argparse
import fnmatch

import pandas as pd
from rich.table import Table

from trainlab import config as config_mod
from trainlab.cli.common import HelpFormatter, add_force_flag, check_output, console, csv_output, make_parent
from trainlab.inspect.summary import parse_input_size, summary
from trainlab.registry import MODELS

DESCRIPTION = """\
Build a registered model (or your own: path/to/file.py:ClassName or package.module:ClassName, which
imports that file and so RUNS its code) for an input size and show, per layer: output shape, parameters,
multiply-accumulates (MACs, per example) and — along convolutional paths — the receptive field (input
pixels one output pixel sees) and jump (product of strides so far).  Totals at the bottom.

The receptive field is blank once a layer sees the whole input (global pooling, dense layers,
squeeze-excitation).  MACs count convolutions and dense layers.

examples:
  trainlab summary lenet                                   LeNet on 1x28x28, 10 classes
  trainlab summary resnet18 --input 3x224x224 --classes 1000
  trainlab summary vgg11 --input 3x32x32 --option width_div=4
  trainlab summary mobilenet_v1 --option separable=false   standard convs instead of depthwise-separable
  trainlab summary resnet50 --layers '1.0.*'               only the first bottleneck block
  trainlab summary mlp --input 13 --classes 1              a table with 13 columns
  trainlab summary examples/my_net.py:MyNet --input 1x28x28 -o width=32   your own nn.Module
  trainlab summary lstm                                    a character LSTM: 80 symbols in and out, 35 steps
  trainlab summary gru --input 80x200 --classes 6 -o output=last   a passage classifier (6 novels)
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("summary", help="per-layer shapes, parameters, MACs and receptive fields",
                                   description=DESCRIPTION, formatter_class=HelpFormatter)
    parser.add_argument("model", help="model name (see `trainlab list models`), or path/to/file.py:ClassName or "
                        "package.module:ClassName for your own nn.Module (imports it: runs that code)")
    parser.add_argument("--input", default=None, metavar="CxHxW",
                        help="one example's shape: channels x height x width, a column count for tables, or "
                        "vocabulary x steps for sequence models (default: 1x28x28; 80x35 for sequence models)")
    parser.add_argument("--classes", type=int, default=None,
                        help="number of outputs (default: 10; for sequence models the vocabulary of --input, as a "
                        "language model predicts one of its symbols at each step)")
    parser.add_argument("-o", "--option", action="append", default=[], metavar="KEY=VALUE",
                        help="model option, as model.KEY in a config (VALUE is YAML); repeatable")
    parser.add_argument("--layers", metavar="PATTERN", help="show only layers whose name matches (shell-style)")
    parser.add_argument("--csv", metavar="FILE", help="also write the full table to a CSV file (an existing file is "
                        "replaced only if it is such a table, unless --force)")
    add_force_flag(parser)
    parser.set_defaults(handler=run)


def model_options(name: str, options: list[str]) -> dict:
    """Validate ``KEY=VALUE`` options against the model's builder, exactly as a config's model section is (an own
    model's are checked against its constructor when :func:`~trainlab.models.create` builds it)."""
    overrides = [f"model.{item}" if not item.startswith("model.") else item for item in options]
    return config_mod.load(None, flags={"model": name}, overrides=overrides).model.options()


def is_sequence_model(model: str) -> bool:
    return model in MODELS and bool(MODELS.entry(model).meta.get("sequence"))


def default_input(model: str) -> str:
    """A 28x28 gray image, or for sequence models (rnn, gru, lstm) 35 steps over an 80-symbol vocabulary."""
    return "80x35" if is_sequence_model(model) else "1x28x28"


def default_classes(model: str, input_size: tuple[int, ...]) -> int:
    """10 outputs, or for a sequence model its vocabulary: summarising an ``lstm`` most often means a language
    model, whose head scores every symbol (a classifier's 10 classes would undercount the head's work)."""
    return input_size[0] if is_sequence_model(model) and len(input_size) == 2 else 10


def run(args: argparse.Namespace) -> int:
    args.input = args.input or default_input(args.model)
    input_size = parse_input_size(args.input, is_sequence_model(args.model))
    args.classes = default_classes(args.model, input_size) if args.classes is None else args.classes
    if args.classes < 1:
        raise ValueError(f"--classes must be >= 1, got {args.classes}")
    frame = summary(args.model, input_size, num_classes=args.classes,
                    **model_options(args.model, args.option))
    if args.csv:
        out = check_output(args.csv, csv_output(frame.columns), force=args.force, option="--csv")
        frame.to_csv(make_parent(out), index=False)
    shown = frame[[fnmatch.fnmatch(n, args.layers) for n in frame["layer"]]] if args.layers else frame
    console.print(_table(shown, f"{args.model} · input {args.input} · {args.classes} classes"))
    t = frame.attrs["totals"]
    console.print(f"total: {t['params']:,} params ({t['trainable_params']:,} trainable) · "
                  f"{t['macs']:,} MACs per example · {t['size_mb']:.2f} MB", soft_wrap=True)  # one line, for grep
    return 0


def _table(frame: pd.DataFrame, title: str) -> Table:
    table = Table(title=title, show_lines=False)
    for column, justify in (("layer", "left"), ("type", "left"), ("output", "right"), ("params", "right"),
                            ("MACs", "right"), ("RF", "right"), ("jump", "right")):
        table.add_column(column, justify=justify)
    for row in frame.itertuples(index=False):
        table.add_row(row.layer, row.type, "x".join(map(str, row.output_shape)), f"{row.params:,}",
                      f"{row.macs:,}", "" if pd.isna(row.rf) else str(row.rf),
                      "" if pd.isna(row.jump) else str(row.jump))
    return table
