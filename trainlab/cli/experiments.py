"""``trainlab kfold``, ``search``, ``compare`` and ``report``: experiments made of ordinary runs."""

from __future__ import annotations

import argparse
import contextlib
import math
import signal
from pathlib import Path
from typing import Any, Iterator

import pandas as pd

from trainlab import config as config_mod
from trainlab import rundir
from trainlab.cli.common import (
    HelpFormatter,
    add_force_flag,
    check_name,
    check_output,
    check_runs_root,
    console,
    directory_output,
    print_table,
)
from trainlab.cli.evaluate import add_trust_code_flag
from trainlab.cli.recipe_args import add_config_args
from trainlab.engine.metrics import format_metric

DEFAULT_FOLDS = 5

KFOLD_HELP = """\
Cross-validate: merge the dataset's train and validation splits, split them into K folds (stratified for
classification, shuffled with the seed), and train one model per fold in its own run directory. The test split
is never trained on; the fold models' averaged predictions are scored on it.

Writes <out>/<name>/: fold-1 … fold-K (ordinary runs), folds.csv (per-fold metrics), oof.csv (out-of-fold
predictions), summary.json (mean and std of every metric), report.html. `trainlab predict` and `trainlab eval`
on that directory use the fold ensemble.

Interrupted (Ctrl-C, SIGTERM, a crash)? `--resume DIR` continues in place: finished folds are reused, the
interrupted fold continues from its last checkpoint (exactly as if never stopped), the rest train normally.
The saved config is used; changing anything but device, logging or progress settings needs --resume-force,
and a different fold split (seed, data) is always refused. A run that already finished exits 0 and says where
its results are.

examples:
  trainlab kfold --model mlp --folds 5 --epochs 10
  trainlab kfold -c configs/digits.yaml --folds 3 --seed 1 --set optim.lr=0.01
  trainlab kfold --resume runs/mlp-digits-kfold5-20261122-101500
"""

SEARCH_HELP = """\
Hyperparameter search with Optuna. Every trial is an ordinary run directory under <out>/<name>/.

The space file maps dotted config keys to choices or ranges (configs/digits-space.yaml is one):
  optim.lr: {low: 1.0e-4, high: 0.3, log: true}     # float range, log scale (not for grid)
  train.batch_size: {low: 32, high: 256, step: 32}  # int range
  model.hidden: [[64], [128, 64]]                   # a list = categorical choices
Every key must exist in the base config: optim.momentum, for instance, only with an optimizer that has it (sgd).

The study is stored in <out>/<name>/study.journal (or --storage URL): rerun the same command after an
interruption and it continues, keeping finished trials; point several processes at one --storage
(sqlite:///path.db on a shared disk, postgresql://…) to share one study. A trial that fails or ends in NaN is
recorded as failed and the search goes on. Results: trials.csv, search.png, and best.yaml (train it with
`trainlab train -c <out>/<name>/best.yaml`).

examples:
  trainlab search --model mlp --space configs/digits-space.yaml --method grid --epochs 5
  trainlab search -c configs/digits.yaml --space configs/digits-space.yaml --trials 30 --method tpe --metric val_acc --prune
"""

COMPARE_HELP = """\
Compare runs: overlaid curves (loss, accuracy or RMSE, learning rate), a table of best/final/test metrics with
time and examples/s, and the config keys whose values differ. A directory of runs (a search, a k-fold run,
runs/) stands for every run in it; a run named twice is compared once. Writes compare.png, compare.csv,
config_diff.csv and compare.html to --out: a new or empty directory, or an earlier comparison's (never one of
the runs, a directory inside a run, or another non-empty directory, unless --force). Runs with no finished
epoch are left out of the figure; classification and regression losses are drawn on separate axes.

examples:
  trainlab compare runs/mlp-digits-20261122-101500 runs/simple-cnn-digits-20261122-102000
  trainlab compare runs/search-mlp-digits --out comparisons/lr-sweep
"""

REPORT_HELP = """\
(Re)write a run's report.html: one self-contained page (no network, images embedded) with the config, the
training curves, the metrics, the confusion matrix and per-class accuracy of the best weights on the test
split (classification), and the model. `trainlab train` writes it automatically; use this for older runs.

examples:
  trainlab report runs/mlp-digits-20261122-101500
"""


def _config_args(parser: argparse.ArgumentParser) -> None:
    """The same config flags as ``trainlab train`` (``-c``, ``--model`` … ``--optimizer``, ``--set``), plus where
    the result goes and the device every run uses."""
    add_config_args(parser)
    parser.add_argument("--device", help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N or mps")
    parser.add_argument("--out", help="directory that holds the result (default: the config's train.out, runs)")
    parser.add_argument("--name", help="name of the result directory")


def register(subparsers: argparse._SubParsersAction) -> None:
    kf = subparsers.add_parser("kfold", help="k-fold cross-validation: one run per fold, mean ± std, fold ensemble",
                               description=KFOLD_HELP, formatter_class=HelpFormatter)
    _config_args(kf)
    kf.add_argument("--folds", type=int, help=f"number of folds (a new run: {DEFAULT_FOLDS}; "
                    "--resume: the saved count)")
    kf.add_argument("--seed", type=int, help="seed of the fold split and of every fold's training (train.seed)")
    kf.add_argument("--workers", type=int, default=1, help="train this many folds at once, each in its own "
                    "process (same results as one after another; docs/distributed.md)")
    kf.add_argument("--resume", metavar="KFOLD_DIR", help="continue an interrupted k-fold run: skip finished "
                    "folds, resume the interrupted one from its checkpoint, run the rest")
    add_trust_code_flag(kf)
    kf.add_argument("--resume-force", action="store_true", help="resume even though settings other than device, "
                    "logging or progress changed (the folds will then not all be trained alike)")
    kf.set_defaults(handler=run_kfold_cmd)

    se = subparsers.add_parser("search", help="hyperparameter search (Optuna: grid, random, tpe), resumable",
                               description=SEARCH_HELP, formatter_class=HelpFormatter)
    _config_args(se)
    se.add_argument("--space", required=True, help="YAML search space: config key → choices or range")
    se.add_argument("--trials", type=int, help="trials in the whole study (grid: defaults to the grid size)")
    se.add_argument("--method", choices=("grid", "random", "tpe"), default="tpe", help="sampler")
    se.add_argument("--metric", default="val_loss", help="metric to optimize: its best epoch value in each run")
    se.add_argument("--direction", choices=("minimize", "maximize"),
                    help="default: maximize for *_acc metrics, minimize otherwise")
    se.add_argument("--storage", help="Optuna storage URL (default: a journal file in the search directory)")
    se.add_argument("--prune", action="store_true", help="stop trials below the median of earlier ones, by epoch")
    se.add_argument("--seed", type=int, default=0, help="sampler seed")
    se.set_defaults(handler=run_search_cmd)

    co = subparsers.add_parser("compare", help="compare runs: overlaid curves, metrics table, config differences",
                               description=COMPARE_HELP, formatter_class=HelpFormatter)
    co.add_argument("runs", nargs="+", help="run directories or directories of runs")
    co.add_argument("--out", default="compare", help="where to write the figure, tables and page")
    add_force_flag(co)
    co.set_defaults(handler=run_compare_cmd)

    rp = subparsers.add_parser("report", help="write a run's self-contained report.html",
                               description=REPORT_HELP, formatter_class=HelpFormatter)
    rp.add_argument("run_dir", help="run directory (or k-fold directory)")
    add_trust_code_flag(rp)
    rp.set_defaults(handler=run_report_cmd)


def _check_common(args: argparse.Namespace) -> None:
    """``--name`` stays one directory and ``--out`` can hold run directories: checked before anything is built."""
    check_name(args.name)
    check_runs_root(args.out)


def _check_at_least(value: int | None, low: int, option: str, meaning: str) -> None:
    """An integer option given as ``value`` must be at least ``low`` (left out, the command's default applies)."""
    if value is not None and value < low:
        raise ValueError(f"{option} must be at least {low} ({meaning}), got {value}")


def _load_config(args: argparse.Namespace, extra_flags: dict[str, Any] | None = None) -> config_mod.RunConfig:
    flags = {**_common_flags(args), "out": args.out, **(extra_flags or {})}
    return config_mod.load(args.config, flags=flags, overrides=args.overrides)


def _quiet_by_default(cfg: config_mod.RunConfig) -> config_mod.RunConfig:
    """Many runs in a row: one summary line each instead of a progress bar, unless the config asks for one."""
    if (cfg.callbacks.get("progress") or {}).get("style", "auto") != "auto":
        return cfg
    return config_mod.load(overrides={"callbacks.progress.style": "none"}, base=cfg.to_dict())


def _cell(key: str, value: Any) -> str:
    if isinstance(value, float):
        return "-" if math.isnan(value) else format_metric(key, value)
    return "-" if value is None else str(value)


def print_frame(frame: pd.DataFrame, title: str | None = None, limit: int | None = None) -> None:
    """``frame`` (its first ``limit`` rows) as a table; see :func:`print_table` for terminal vs piped output."""
    shown = frame.head(limit) if limit else frame
    rows = [[_cell(str(k), v) for k, v in zip(shown.columns, row)] for row in shown.itertuples(index=False)]
    print_table([str(c) for c in shown.columns], rows, title=title)


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM (a job scheduler, `kill`) stops the run like Ctrl-C: the current fold saves a checkpoint."""
    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_kfold_cmd(args: argparse.Namespace) -> int:
    from trainlab.experiments.kfold import KFoldInterrupted, run_kfold
    from trainlab.experiments.kfold_resume import KFoldComplete, resume_kfold

    def progress(fold: int, folds: int, what: str) -> None:
        total["folds"] = folds
        console.print(f"fold {fold}/{folds}: {what}")

    def finished(fold: int, row: dict[str, Any]) -> None:
        console.print(f"fold {fold}/{total['folds']}: " + "  ".join(
            f"{k} {_cell(k, v)}" for k, v in row.items() if k.startswith(("val_", "test_")) or k == "status"))

    total: dict[str, int] = {}
    _check_common(args)
    _check_at_least(args.folds, 2, "--folds", "each fold validates on the part the others train on")
    _check_at_least(args.workers, 1, "--workers", "folds trained at once")
    if args.resume and args.workers != 1:
        raise ValueError("--workers applies to a new k-fold run; --resume continues the folds one after another "
                         "(drop --workers)")
    try:
        with _sigterm_as_interrupt():
            if args.resume:
                _load_fold_models(args.resume, args.trust_code)
                result = resume_kfold(args.resume, flags=_resume_flags(args), overrides=args.overrides,
                                      folds=args.folds, force=args.resume_force, on_fold=finished,
                                      on_progress=progress)
            else:
                cfg = _quiet_by_default(_load_config(args, {"seed": args.seed, "name": args.name}))
                folds = DEFAULT_FOLDS if args.folds is None else args.folds
                result = run_kfold(cfg, folds, on_fold=finished, on_progress=progress, workers=args.workers)
    except KFoldInterrupted as stop:
        console.print(f"\n[yellow]interrupted[/]: finished folds are kept and the current fold saved a checkpoint. "
                      f"Resume with:\n  trainlab kfold --resume {stop.path}")
        return 130
    except KeyboardInterrupt:
        console.print("\n[yellow]interrupted[/] before any fold started")
        return 130
    except KFoldComplete as done:
        _print_kfold(done.path, pd.read_csv(done.path / rundir.FOLDS_TABLE))
        console.print(str(done))
        return 0
    return _print_kfold(result.path, result.table)


def _load_fold_models(kfold_dir: str, trust_code: bool) -> None:
    """``kfold --resume`` of your own model: each fold's recorded model file is checked now, and imported only with
    --trust-code, so resuming the folds imports nothing else (an error names the file that would run)."""
    from trainlab.api import load_run

    for fold in sorted(Path(kfold_dir).glob(rundir.FOLD_DIR.format(fold="*"))):
        if (fold / rundir.MODEL_SOURCE_FILE).is_file():
            load_run(fold, trust_code=trust_code).model_class()


def _resume_flags(args: argparse.Namespace) -> dict[str, Any]:
    """Flags to check against the saved config; the directory and its base config come from --resume."""
    given = [flag for flag, value in (("-c", args.config), ("--name", args.name), ("--out", args.out)) if value]
    if given:
        raise config_mod.ConfigError(f"{', '.join(given)} cannot be combined with --resume: the k-fold directory "
                                     "holds its config and is continued in place (change keys with --set and "
                                     "--resume-force)")
    return {**_common_flags(args), "seed": args.seed}


def _common_flags(args: argparse.Namespace) -> dict[str, Any]:
    """The flags ``train``, ``kfold`` and ``search`` share, by their ``trainlab.train`` keyword names."""
    return {key: getattr(args, key) for key in ("model", "data", "epochs", "batch_size", "lr", "optimizer", "device")}


def _print_kfold(path: Path, table: pd.DataFrame) -> int:
    """The per-fold table, mean ± std and ensemble metrics of a finished k-fold directory; exit 1 if not all
    folds completed."""

    summary = rundir.read_summary(path)
    mean, std = summary.get("mean", {}), summary.get("std", {})
    print_frame(table, title=f"{summary['folds']}-fold cross-validation")
    console.print("mean ± std: " + "  ".join(f"{k} {_cell(k, v)} ± {_cell(k, std.get(k, 0.0))}"
                                             for k, v in mean.items() if k.startswith(("val_", "test_"))))
    if "test" in summary:
        console.print("fold ensemble on the test split: " + "  ".join(f"{k} {_cell(k, v)}"
                                                                      for k, v in summary["test"].items()))
    console.print(f"k-fold run saved in [bold]{path}[/]")
    return 0 if summary.get("status") == "completed" else 1


def run_search_cmd(args: argparse.Namespace) -> int:
    from trainlab.experiments.search import run_search
    from trainlab.experiments.space import load_space
    from trainlab.rundir import BEST_CONFIG_FILE, SEARCH_PLOT_FILE, TRIALS_FILE

    _check_common(args)
    _check_at_least(args.trials, 1, "--trials", "the number of runs the study holds when it is done")
    cfg = _quiet_by_default(_load_config(args))
    space = load_space(args.space)
    directory = Path(args.out or cfg.train.out) / (args.name or f"search-{rundir.model_label(cfg)}-{cfg.data.name}")
    try:
        result = run_search(cfg, space, directory, trials=args.trials, method=args.method, metric=args.metric,
                            direction=args.direction, storage=args.storage, prune=args.prune, seed=args.seed,
                            on_trial=lambda row: console.print(
                                f"trial {row['number']}: {row['state'].lower()}  {args.metric} "
                                f"{_cell(args.metric, row['value'])}  " + "  ".join(
                                    f"{k}={v}" for k, v in row.items() if "." in k)
                                + (f"  ({row['error']})" if row.get("error") else "")))
    except KeyboardInterrupt:
        console.print(f"\n[yellow]interrupted[/]: finished trials are kept in {directory}. "
                      "Rerun the same command to continue the study.")
        return 130
    print_frame(result.trials.drop(columns=["run_dir"]), title=f"search: {args.metric} (best first)", limit=20)
    if result.best is None:
        console.print("[red]no trial completed[/]; see the error column above")
        return 1
    console.print(f"best {args.metric} {_cell(args.metric, result.best_value)} with "
                  + "  ".join(f"{k}={v}" for k, v in result.best.items()))
    console.print(f"results in [bold]{directory}[/]: {TRIALS_FILE}, {SEARCH_PLOT_FILE}, {BEST_CONFIG_FILE} "
                  f"(train it: trainlab train -c {directory / BEST_CONFIG_FILE})")
    return 0


def run_compare_cmd(args: argparse.Namespace) -> int:
    from trainlab.experiments.compare import compare
    from trainlab.rundir import COMPARE_PAGE_FILE

    out = check_output(args.out, directory_output(COMPARE_PAGE_FILE), inputs=args.runs, force=args.force)
    result = compare(args.runs, out)
    columns = [c for c in result.table.columns if c in ("run", "status", "epochs", "params", "train_seconds",
                                                         "examples_per_s") or c.startswith(("best val_", "test_"))]
    print_frame(result.table[columns], title="runs")
    if result.diff.empty:
        console.print("the configs are identical (apart from name and output directory)")
    else:
        print_frame(result.diff, title="config differences")
    console.print(f"figure, tables and page in [bold]{result.out}[/] (open {result.out / COMPARE_PAGE_FILE})")
    return 0


def run_report_cmd(args: argparse.Namespace) -> int:
    from trainlab.api import load_run
    from trainlab.report.html import write_report

    load_run(args.run_dir, trust_code=args.trust_code).model_class()  # an own model: checked, imported if trusted
    console.print(f"report written: [bold]{write_report(Path(args.run_dir))}[/]")
    return 0
