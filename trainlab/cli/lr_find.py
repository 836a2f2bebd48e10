"""``trainlab lr-find``: the learning-rate range test on a copy of the configured model."""

from __future__ import annotations

import argparse

from trainlab.cli.common import PNG_OUTPUT, HelpFormatter, add_force_flag, check_output, console, make_parent
from trainlab.cli.recipe_args import add_config_args, load_config
from trainlab.report.lr_plots import plot_lr_find

DESCRIPTION = """\
Find a good learning rate before training: train a copy of the model for a few hundred steps while the
LR grows exponentially from --start-lr to --end-lr, plot the smoothed loss against the LR and print a
suggestion (where the loss falls fastest, before it blows up).  The model, optimizer type and options,
data and batch size come from the config as for `trainlab train`; nothing is saved but the PNG, which never
replaces the config file, a file inside a run directory, or an existing file that is not a matplotlib figure,
unless --force is given.

examples:
  trainlab lr-find                                   default CNN on digits, default optimizer
  trainlab lr-find -c configs/recipe/sgd-momentum.yaml -o lr.png
  trainlab lr-find --model mlp --optimizer sgd --set optim.momentum=0.9 --steps 300

Then train with roughly the suggested LR, e.g. `trainlab train -c CONFIG --lr 0.03`.
"""

MIN_STEPS = 5  # what engine.lr_finder.find_lr needs


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("lr-find", help="suggest a learning rate with an LR range test (PNG + value)",
                                   description=DESCRIPTION, formatter_class=HelpFormatter)
    add_config_args(parser)
    parser.add_argument("--start-lr", type=float, default=1e-7, help="first LR of the sweep")
    parser.add_argument("--end-lr", type=float, default=10.0, help="last LR of the sweep")
    parser.add_argument("--steps", type=int, default=200, help="optimizer steps in the sweep")
    parser.add_argument("--device", help="auto, cpu, cuda, cuda:N or mps")
    parser.add_argument("-o", "--output", default="lr_find.png", help="PNG file to write")
    add_force_flag(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from trainlab.engine.lr_finder import find_lr
    from trainlab.session import apply_thread_count, build_session

    output = check_output(args.output, PNG_OUTPUT, inputs=[args.config], force=args.force, option="--output")
    _check_sweep(args)
    cfg = load_config(args, [f"train.device={args.device}"] if args.device else [])
    apply_thread_count(cfg)  # the range test trains, so it uses the thread count training would
    session = build_session(cfg, run_dir=None)
    trainer = session.trainer
    result = find_lr(session.model, trainer.optimizer, trainer.loss_fn, trainer.train_loader,
                     start_lr=args.start_lr, end_lr=args.end_lr, steps=args.steps)
    path = plot_lr_find(result.lrs, result.losses, result.smoothed, result.suggestion, make_parent(output))
    console.print(f"swept {len(result.lrs)} steps, lr {result.lrs[0]:.2g} → {result.lrs[-1]:.2g}")
    if result.suggestion is None:
        console.print("[yellow]no suggestion[/]: the loss never fell; widen the range or add --steps")
    else:
        console.print(f"suggested lr: [bold]{result.suggestion:.3g}[/]")
    console.print(f"saved [bold]{path}[/]")
    return 0


def _check_sweep(args: argparse.Namespace) -> None:
    """The sweep's own limits, named by flag and checked before the data and model are built."""
    if not 0 < args.start_lr < args.end_lr:
        raise ValueError(f"--start-lr and --end-lr must satisfy 0 < start < end, got {args.start_lr:g} and "
                         f"{args.end_lr:g}")
    if args.steps < MIN_STEPS:
        raise ValueError(f"--steps must be at least {MIN_STEPS} to fit a loss curve, got {args.steps}")
