"""Which memory format and precision train the zoo's models fastest on this CPU (fp32 NCHW as the baseline).

For each model: the same model, batch and SGD step in four variants (NCHW fp32, channels-last fp32, NCHW bf16
autocast, channels-last bf16), measured in interleaved rounds of CPU time (``time.process_time``), which a busy
machine disturbs far less than wall time.  Prints one JSON line per model with examples per CPU-second and the
ratios to the baseline.  This is the evidence behind ``train.channels_last=auto`` being on for conv nets on the CPU
and ``train.precision=bf16`` being left to the user there (docs/speed.md).

Examples:
  python bench/cpu_formats.py                       # every conv model below, one thread
  python bench/cpu_formats.py --models lenet,resnet18 --threads 2 --rounds 10
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import trainlab.models  # noqa: E402,F401  (registers the zoo)
from trainlab.engine.runtime import cpu_supports_bf16  # noqa: E402
from trainlab.registry import MODELS  # noqa: E402

CASES: dict[str, tuple[int, int, int]] = {  # model → (channels, image size, batch)
    "lenet": (1, 28, 256), "lenet-modern": (1, 28, 256), "simple-cnn": (1, 28, 256),
    "speedrun-net-xs": (1, 28, 256), "speedrun-net": (1, 28, 64), "resnet18": (1, 28, 32),
    "densenet-small": (1, 28, 32), "nin": (1, 28, 32), "alexnet": (1, 28, 16), "mobilenet_v2": (1, 28, 32),
    "shufflenet_v2": (3, 32, 32), "efficientnet_b0": (3, 32, 16), "vgg11": (3, 32, 16),
}
VARIANTS = {"nchw_fp32": (False, False), "channels_last_fp32": (True, False),
            "nchw_bf16": (False, True), "channels_last_bf16": (True, True)}


def make_step(name: str, channels_last: bool, bf16: bool) -> tuple[Callable[[], None], int]:
    """One SGD training step of the model on a fixed random batch, in the given format and precision."""
    channels, size, batch = CASES[name]
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    torch.manual_seed(0)
    model = MODELS.get(name)(num_classes=10, in_channels=channels, input_size=(size, size)).to(memory_format=fmt)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(batch, channels, size, size).contiguous(memory_format=fmt)
    y = torch.randint(0, 10, (batch,))

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = model(x)
            loss = F.cross_entropy((out[0] if isinstance(out, tuple) else out).float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    step()
    step()
    return step, batch


def measure(name: str, variants: list[str], rounds: int, seconds: float) -> dict[str, float]:
    """Examples per CPU-second of each variant, over interleaved rounds."""
    steps = {v: make_step(name, *VARIANTS[v]) for v in variants}
    cpu = dict.fromkeys(variants, 0.0)
    examples = dict.fromkeys(variants, 0)
    for _ in range(rounds):
        for variant, (step, batch) in steps.items():
            started = time.process_time()
            while time.process_time() - started < seconds:
                step()
                examples[variant] += batch
            cpu[variant] += time.process_time() - started
    return {v: examples[v] / cpu[v] for v in variants}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default=",".join(CASES), help="comma list of " + ", ".join(CASES))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=0.5, help="CPU seconds per variant per round")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    variants = list(VARIANTS) if cpu_supports_bf16() else ["nchw_fp32", "channels_last_fp32"]
    for name in args.models.split(","):
        if name not in CASES:
            parser.error(f"unknown model {name!r}; choose from {', '.join(CASES)}")
        rates = measure(name, variants, args.rounds, args.seconds)
        base = rates["nchw_fp32"]
        print(json.dumps({"bench": "cpu_formats", "model": name, "batch_size": CASES[name][2],
                          "threads": args.threads, "torch": torch.__version__, "machine": platform.machine(),
                          "cpu_capability": torch.backends.cpu.get_cpu_capability(),
                          "examples_per_cpu_s": {v: round(r, 1) for v, r in rates.items()},
                          "ratio_to_nchw_fp32": {v: round(r / base, 2) for v, r in rates.items() if v != "nchw_fp32"}}),
              flush=True)


if __name__ == "__main__":
    main()
