"""``trainlab generate RUN``: sample text from a saved language-model run."""

from __future__ import annotations

import argparse

from trainlab.api import load_run
from trainlab.cli.common import HelpFormatter, console
from trainlab.inference.text import check_generation, generate, language_model_vocabulary

DESCRIPTION = """\
Continue a prompt with text sampled from a language-model run (dataset text or austen), one token at a
time from softmax(logits / temperature): a low temperature (0.5) picks the likely next character almost
always, 1.0 samples the model's own distribution, higher values are wilder.  The same run, prompt, length,
temperature and --seed always give the same text.  The prompt may use only characters (or words) of the
run's vocabulary; others are named in the error.

examples:
  trainlab generate runs/austen-char-lm --prompt "It is a truth" --length 300 --temperature 0.8
  trainlab generate runs/austen-char-lm --prompt "Mr. Darcy" --length 200 --seed 7
  trainlab generate runs/austen-styles --style emma --prompt "She" --length 300   # in the style of Emma
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("generate", help="sample text from a language-model run",
                                   description=DESCRIPTION, formatter_class=HelpFormatter)
    parser.add_argument("run_dir", help="a run trained on a language-model dataset (text, austen)")
    parser.add_argument("--prompt", required=True, help="the text to continue (characters of the run's vocabulary)")
    parser.add_argument("--length", type=int, default=300, help="tokens (characters for a char-level run) to add")
    parser.add_argument("--temperature", type=float, default=1.0, help="sampling temperature, > 0")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sampling; the same seed, the same text")
    parser.add_argument("--style", default=None, metavar="NOVEL", help="write in the style of this novel (a run of "
                        "dataset austen-styles, which knows each novel it was trained on)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or mps")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    check_generation(args.length, args.temperature)  # before the run is even opened
    saved = load_run(args.run_dir)
    vocab = language_model_vocabulary(saved.meta, f"run {saved.path}")
    if not hasattr(saved, "load_model"):
        raise ValueError(f"{saved.path} is a k-fold directory; generate with one of its fold runs")
    model = saved.load_model(args.device)
    text = generate(model, vocab, args.prompt, args.length, args.temperature, args.seed, style=args.style,
                    styles=saved.meta.preprocess.get("styles"))
    console.print(text, markup=False, highlight=False, soft_wrap=True)
    return 0
