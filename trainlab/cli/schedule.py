"""``trainlab schedule plot``: draw the learning rate of every optimizer update of a run, without training."""

from __future__ import annotations

import argparse

from trainlab.cli.common import PNG_OUTPUT, HelpFormatter, add_force_flag, check_output, console, make_parent
from trainlab.cli.recipe_args import add_config_args, load_config, train_batches
from trainlab.optim import lr_curve, updates_per_epoch
from trainlab.report.lr_plots import plot_lr_curve

DESCRIPTION = """\
Save the learning-rate curve of a config as a PNG: warmup and schedule, one point per optimizer update,
with the exact step count of the run (batches per epoch come from the dataset unless --steps-per-epoch
is given).  Nothing is trained.

examples:
  trainlab schedule plot -c configs/recipe/cosine-warmup.yaml
  trainlab schedule plot --sched cosine --epochs 30 --lr 0.1 --warmup-epochs 2
  trainlab schedule plot --sched multistep --set sched.milestones=[10,20] --epochs 30 --steps-per-epoch 100
  trainlab schedule plot --sched one_cycle --lr 0.01 --epochs 10 -o one_cycle.png
  trainlab schedule plot --sched torch.CosineAnnealingLR --set sched.T_max=10 --epochs 30 --lr 0.1

`plateau` depends on validation metrics, so without training its curve is flat after warmup.
torch's own schedulers (`torch.StepLR`, `torch.CosineAnnealingLR`, …) take their torch arguments and step once
per epoch (`torch.OneCycleLR`: per update) unless `--set sched.interval=update` (or `epoch`) says otherwise.
The PNG never replaces the config file, a file inside a run directory, or an existing file that is not a
matplotlib figure, unless --force is given.
"""

MAX_STEPS = 2_000_000  # optimizer updates the curve is computed for, one scheduler step each (~25 µs per step)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("schedule", help="look at learning-rate schedules (plot)",
                                   description="Learning-rate schedule tools.", formatter_class=HelpFormatter)
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    plot = actions.add_parser("plot", help="save the LR curve of a config as a PNG, without training",
                              description=DESCRIPTION, formatter_class=HelpFormatter)
    add_config_args(plot)
    plot.add_argument("--sched", help="schedule name (see `trainlab list schedules`)")
    plot.add_argument("--warmup", type=int, help="linear warmup, in optimizer steps")
    plot.add_argument("--warmup-epochs", type=float, help="linear warmup, in epochs")
    plot.add_argument("--steps-per-epoch", type=int, help="batches per epoch (default: from the dataset)")
    plot.add_argument("-o", "--output", default="lr_schedule.png", help="PNG file to write")
    add_force_flag(plot)
    plot.set_defaults(handler=run_plot)


def run_plot(args: argparse.Namespace) -> int:
    output = check_output(args.output, PNG_OUTPUT, inputs=[args.config], force=args.force, option="--output")
    extra = [f"sched.{key}={value}" for key, value in
             (("name", args.sched), ("warmup", args.warmup), ("warmup_epochs", args.warmup_epochs)) if value is not None]
    cfg = load_config(args, extra)
    if args.steps_per_epoch is not None and args.steps_per_epoch < 1:
        raise ValueError(f"--steps-per-epoch must be >= 1, got {args.steps_per_epoch}")
    batches = args.steps_per_epoch or train_batches(cfg)
    per_epoch = updates_per_epoch(batches, cfg.train.accumulate)
    total = per_epoch * cfg.train.epochs
    if total > MAX_STEPS:
        raise ValueError(f"{cfg.train.epochs:,} epochs × {per_epoch:,} updates per epoch is {total:,} optimizer "
                         f"updates, more than the {MAX_STEPS:,} schedule plot computes; plot fewer --epochs or "
                         "--steps-per-epoch")
    lrs = lr_curve(cfg.sched, cfg.optim.lr, total, per_epoch)
    title = f"{cfg.sched.name} · {cfg.train.epochs} epochs × {per_epoch} steps · lr {cfg.optim.lr:g}"
    path = plot_lr_curve(lrs, per_epoch, title, make_parent(output))
    console.print(f"{total} steps ({per_epoch} per epoch): first lr {lrs[0]:.4g}, max {max(lrs):.4g}, "
                  f"last {lrs[-1]:.4g}")
    console.print(f"saved [bold]{path}[/]")
    return 0
