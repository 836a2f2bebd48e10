"""``trainlab export RUN``: a saved run as a file other programs run, checked against the run before it is kept."""

from __future__ import annotations

import argparse

from trainlab import rundir
from trainlab.api import load_run
from trainlab.cli.common import HelpFormatter, OutputKind, add_force_flag, check_output, console
from trainlab.cli.evaluate import add_trust_code_flag
from trainlab.export import FORMATS, export_run
from trainlab.export.formats import require_packages

DESCRIPTION = """\
Export a saved run's best weights as one file that runs without trainlab, with a metadata JSON beside it
(<file>.json: class names, task, input shape, preprocessing, versions, the check's result).

The graph takes raw pixels 0-255 (float32, N x C x H x W, at the run's stored image size; any batch size) and
returns predict's answer: class probabilities (or values for regression). The run's value scale, resize,
mean/std normalisation, flip averaging (train.tta_flip) and softmax are inside it; reading the file, its mode,
the resize to the stored size and inverting a light background stay outside, described in the metadata.
A k-fold directory exports one graph averaging its fold models, as predict does. A run of your own model
(--model file.py:Class) needs --trust-code, as predict does; the exported file then runs without that code.
A language model's graph takes windows of exactly data.num_steps token ids (int64, N x num_steps; the vocabulary
is in the metadata) and returns the next token's probabilities at every step. A passage classifier's takes
passages as token ids right-padded with 0 to its longest training passage (N x max_length) and returns class
probabilities, as predict does; an encoder-decoder's takes sources right-padded to its longest training source
(N x source_length) and returns each output step's probabilities under greedy decoding.

formats:
  torch-export   torch.export program (.pt2), the main path: torch.export.load(path).module()(x)
  onnx           ONNX for onnxruntime (needs pip install "trainlab[onnx]")
  torchscript    legacy TorchScript (torch.jit.trace): torch.jit.load(path)(x)

--check (the default) loads the written file back and compares it with the run's model on raw batches of 1, 2
and 7: torch-export and torchscript within atol 1e-5 + rtol 1e-4, onnx within atol 1e-4 + rtol 1e-3 (of
|output|). It prints the largest absolute difference; on a mismatch the command fails and writes nothing.

The default output is RUN/export/model.pt2 (model.onnx, model.torchscript.pt). An existing output is never
overwritten without --force.

examples:
  trainlab export runs/simple-cnn-digits-20261122-101500 --out digits.pt2
  trainlab export runs/simple-cnn-digits-20261122-101500 --format onnx --out digits.onnx
"""

# An export is a binary file: no earlier one is recognised as replaceable, so any existing file needs --force.
EXPORT_OUTPUT = OutputKind("replaceable without --force (an export is never overwritten silently)", lambda path: False)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("export", help="export a run as torch.export (.pt2), ONNX or TorchScript, checked",
                                   description=DESCRIPTION, formatter_class=HelpFormatter)
    parser.add_argument("run_dir", help="run directory (a k-fold directory exports its fold ensemble)")
    parser.add_argument("--format", default="torch-export", metavar="FORMAT",
                        help=f"one of {', '.join(FORMATS.names())}")
    parser.add_argument("--out", default=None, help="file to write (default: RUN/export/<format's file name>); "
                        "the metadata goes to the same name plus .json")
    parser.add_argument("--check", action=argparse.BooleanOptionalAction, default=True,
                        help="compare the written file with the run at batch sizes 1, 2 and 7 and fail on a "
                        "mismatch (default: on)")
    add_force_flag(parser)
    add_trust_code_flag(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    FORMATS.get(args.format)  # an unknown format is named before anything is opened
    require_packages(args.format)
    rundir.require_run(args.run_dir)
    if args.out is not None:
        out = check_output(args.out, EXPORT_OUTPUT, inputs=[args.run_dir], force=args.force)
        check_output(rundir.export_meta_path(out), EXPORT_OUTPUT, inputs=[args.run_dir], force=args.force)
    opened = load_run(args.run_dir, trust_code=args.trust_code)
    result = export_run(opened, args.format, args.out, check=args.check, overwrite=args.force)
    console.print(f"exported {args.run_dir} as {result.format} to {result.path}", soft_wrap=True)
    console.print(f"metadata: {result.metadata_path}", soft_wrap=True)
    if result.check is None:
        console.print("check: skipped (--no-check)")
    else:
        tol = result.check.tolerance
        sizes = ", ".join(map(str, result.check.batch_sizes))
        console.print(f"check: batch sizes {sizes}: largest absolute difference {result.check.max_abs_diff:.3g} "
                      f"(tolerance atol {tol.atol:g} + rtol {tol.rtol:g} x |output|)", soft_wrap=True)
    return 0
