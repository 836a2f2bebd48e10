"""``trainlab data check|stats|show``: look at a dataset before training on it."""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path
from typing import Any

import torch
from rich.table import Table

from trainlab.cli.common import PNG_OUTPUT, HelpFormatter, add_force_flag, check_output, console, make_parent

DESCRIPTION = """\
Inspect data without training.

  check DIR    read every file of an image folder (DIR/<class>/..., or DIR/train|val|test/<class>/...)
               and list every corrupt, truncated or non-image file and every structural problem
  check FILE --target COLUMN
               read a CSV table the way `--data csv` training would and say what stops it
  stats NAME   split sizes, class counts and per-channel mean/std of the training split
  show NAME    save a PNG grid of augmented training samples with their labels

Dataset options use the same --set keys as `trainlab train`.

examples:
  trainlab data check photos/
  trainlab data check train.csv --target SalePrice --id Id
  trainlab data stats fashion-mnist --set data.root=~/data/fashion-mnist
  trainlab data stats csv --set data.train=train.csv --set data.target=SalePrice
  trainlab data show cifar10 --set 'data.augment=[hflip, {crop: {padding: 4}}]' --out grid.png
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("data", help="check an image folder, print dataset statistics, show samples",
                                   description=DESCRIPTION, formatter_class=HelpFormatter)
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    check = actions.add_parser("check", help="list every problem of an image folder or a CSV table",
                               formatter_class=HelpFormatter,
                               description="Read every image of DIR, or the CSV FILE, the way training would and list "
                                           "each problem; exit 1 when there is one.")
    check.add_argument("dir", metavar="DIR|FILE", help="image folder root, or a CSV file")
    check.add_argument("--mode", choices=["L", "RGB"], default="RGB", help="image mode to convert to")
    check.add_argument("--val-fraction", type=float, default=0.1,
                       help="share of the training examples held out for validation, as data.val_fraction")
    check.add_argument("--target", help="CSV only: the column to predict, as data.target")
    check.add_argument("--id", help="CSV only: the row id column, as data.id")
    check.set_defaults(handler=run_check)
    for name, handler, text in (("stats", run_stats, "split sizes, class counts, per-channel mean/std"),
                                ("show", run_show, "PNG grid of augmented training samples with labels")):
        sub = actions.add_parser(name, help=text, description=text, formatter_class=HelpFormatter)
        sub.add_argument("name", help="dataset name (see `trainlab list datasets`)")
        sub.add_argument("--set", dest="overrides", action="append", default=[], metavar="data.KEY=VALUE",
                         help="dataset option, as in `trainlab train` (e.g. data.root=DIR); repeatable")
        if name == "show":
            sub.add_argument("--out", help="PNG file to write (default: <name>-samples.png)")
            add_force_flag(sub)
            sub.add_argument("-n", "--count", type=int, default=32, help="number of samples")
            sub.add_argument("--epoch", type=int, default=0, help="which epoch's shuffling and augmentation")
        sub.set_defaults(handler=handler)


def run_check(args: argparse.Namespace) -> int:
    from trainlab.data import imagefolder

    if not 0 <= args.val_fraction < 1:
        raise ValueError(f"--val-fraction must be in [0, 1), got {args.val_fraction}")
    if Path(args.dir).expanduser().is_file():
        return _check_csv(args, Path(args.dir).expanduser())
    report = imagefolder.scan(args.dir)
    size = imagefolder.first_size(report) if report.files.get("train") else (1, 1)
    labels = {split: imagefolder.load_split(report, split, args.mode, size)[1] for split in report.splits}
    found = imagefolder.folder_findings(report, labels, args.val_fraction)
    console.print(f"{report.root}: {len(report.classes)} classes; readable images "
                  + ", ".join(f"{split} {len(y)}" for split, y in labels.items()))
    problems = report.problems + found.problems + report.bad
    for line in problems + [f"warning: {w}" for w in found.warnings]:
        console.print(f"  {line}", markup=False, soft_wrap=True)  # one line per problem, whole paths: grep-able
    if not problems:
        console.print("no problems found")
        return 0
    console.print(f"{len(problems)} problem(s)" + ("; data.skip_bad=true skips unreadable files" if report.bad else ""))
    return 1


def _check_csv(args: argparse.Namespace, path: Path) -> int:
    """Build the table as `--data csv` would (its checks log their warnings); a refusal is the one problem listed."""
    from trainlab.data import tabular

    if not args.target:
        raise ValueError(f"data check {path}: a CSV table needs --target COLUMN (the column to predict)")
    try:
        bundle = tabular.csv(train=str(path), target=args.target, id=args.id, val_fraction=args.val_fraction)
    except ValueError as err:
        console.print(f"{path}:\n  {err}\n1 problem", markup=False, soft_wrap=True)
        return 1
    meta = bundle.meta
    sizes = ", ".join(f"{s} {len(getattr(bundle, s))}" for s in ("train", "val") if getattr(bundle, s) is not None)
    classes = f", {len(meta.classes)} classes" if meta.classes else ""
    console.print(f"{path}: {meta.task}{classes}; rows {sizes}; {meta.input_shape[0]} model input features",
                  markup=False, soft_wrap=True)
    console.print("no problems found")
    return 0


def _build(args: argparse.Namespace) -> tuple[Any, Any]:
    from trainlab import config as config_mod
    from trainlab.session import build_data

    cfg = config_mod.load(flags={"data": args.name}, overrides=args.overrides)
    bundle = build_data(cfg)
    return cfg, bundle


def run_stats(args: argparse.Namespace) -> int:
    from trainlab.data.bundle import channel_stats

    _, bundle = _build(args)
    meta = bundle.meta
    sizes = {s: len(getattr(bundle, s)) for s in ("train", "val", "test") if getattr(bundle, s) is not None}
    console.print(f"{args.name}: {meta.task}, input {tuple(meta.input_shape)}; "
                  + ", ".join(f"{s} {n}" for s, n in sizes.items()))
    if meta.preprocess.get("kind") == "text":
        return _text_stats(bundle)
    x, y = bundle.train.tensors
    if meta.task == "classification":
        counts = Counter(y.tolist())
        names = meta.classes or [str(i) for i in range(meta.num_outputs)]
        console.print("train classes: " + ", ".join(f"{names[c]} {counts[c]}" for c in sorted(counts)), markup=False)
    else:
        console.print(f"train target: mean {y.float().mean():.4g}, std {y.float().std():.4g}")
    if len(meta.input_shape) == 3:
        mean, std = channel_stats(x, meta.preprocess.get("scale", 1.0))
        table = Table(title="per-channel statistics of the training split (scaled to [0, 1])")
        for column in ("channel", "mean", "std", "stored mean", "stored std"):
            table.add_column(column)
        stored_mean, stored_std = meta.preprocess.get("mean") or [], meta.preprocess.get("std") or []
        for c in range(len(mean)):
            table.add_row(str(c), f"{mean[c]:.4f}", f"{std[c]:.4f}", _at(stored_mean, c), _at(stored_std, c))
        console.print(table)
    else:
        console.print(f"{x.shape[1]} model input features (preprocessed)")
    return 0


def _text_stats(bundle: Any) -> int:
    """The vocabulary and, for a language model, the tokens per split (windows or passages are counted above)."""
    record = bundle.meta.preprocess
    vocab = record["vocab"]
    shown = ", ".join(repr(t) for t in vocab[2:22])
    console.print(f"vocabulary: {len(vocab)} {record['level']} tokens with <pad> and <unk>, most frequent first: "
                  f"{shown}{' …' if len(vocab) > 22 else ''}", markup=False)
    for split in ("train", "val"):
        ids = getattr(getattr(bundle, split), "ids", None)
        if ids is not None:
            console.print(f"{split}: {len(ids):,} tokens")
    return 0


def _at(values: list[float], i: int) -> str:
    return f"{values[i]:.4f}" if i < len(values) else "-"


def run_show(args: argparse.Namespace) -> int:
    from trainlab.data.loaders import BatchTransform, make_loader

    out = check_output(args.out or f"{args.name}-samples.png", PNG_OUTPUT, force=args.force)
    cfg, bundle = _build(args)
    meta = bundle.meta
    if len(meta.input_shape) != 3:
        kind = "text" if meta.preprocess.get("kind") == "text" else "a table"
        raise ValueError(f"data show draws images; '{args.name}' is {kind}")
    if args.count < 1:
        raise ValueError("--count must be at least 1")
    loader = make_loader(bundle.train, batch_size=args.count, device=torch.device("cpu"),
                         transform=BatchTransform.from_preprocess(meta.preprocess), kind=cfg.data.loader,
                         shuffle=True, seed=cfg.train.seed, augment=cfg.data.augment)
    x, y = next(iter(loader.epoch(args.epoch)))
    save_grid(x, y, meta, make_parent(out))
    console.print(f"saved {len(y)} training samples to {out}")
    return 0


def save_grid(x: torch.Tensor, y: torch.Tensor, meta: Any, path: Path) -> None:
    """Undo the normalization and draw the batch with class names as titles."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mean = torch.tensor(meta.preprocess.get("mean") or [0.0] * x.shape[1]).view(1, -1, 1, 1)
    std = torch.tensor(meta.preprocess.get("std") or [1.0] * x.shape[1]).view(1, -1, 1, 1)
    images = (x.float().cpu() * std + mean).clamp(0, 1).permute(0, 2, 3, 1).numpy()
    cols = min(8, len(images))
    rows = -(-len(images) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(1.4 * cols, 1.6 * rows), squeeze=False)
    names = meta.classes or [str(i) for i in range(meta.num_outputs)]
    for ax in axes.flat:
        ax.axis("off")
    for ax, image, label in zip(axes.flat, images, y.tolist()):
        ax.imshow(image.squeeze(-1) if image.shape[-1] == 1 else image, cmap="gray", vmin=0, vmax=1)
        ax.set_title(names[label], fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
