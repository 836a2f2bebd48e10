"""Training throughput (examples/s) of four ways to train the same model on Fashion-MNIST, in one process.

(a) d2l: a torchvision-style dataset of PIL images + ``ToTensor`` (+ ``Resize``) + ``DataLoader`` and the d2l
    book's training loop (which reads the accuracy back every step); (b) PyTorch Lightning with the same
    DataLoader, only if ``lightning`` is importable; (c) a hand-written loop over device-resident tensors;
    (d) trainlab's Trainer with its default callbacks (metrics, NaN guard, CSV, checkpoint, plot) and the
    device loader.  Same model, initialization, batch size, optimizer (SGD, lr 0.9 as in d2l) and examples.

Prints one JSON line per approach and one line of ratios per model.

Examples:
  python bench/throughput.py --data-root /work/shared/data/fashion-mnist
  python bench/throughput.py --examples 60000 --epochs 2 --num-workers 4 --device cuda
  python bench/throughput.py --models lenet,resnet18-28,resnet18-96      # ResNet-18 is very slow on a CPU
  python bench/throughput.py --trainlab-set train.precision=bf16         # adds an opt-in trainlab variant
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from trainlab import config as config_mod  # noqa: E402
from trainlab.session import build_session  # noqa: E402
from trainlab.data.bundle import DataBundle, DataMeta  # noqa: E402
from trainlab.data.vision import IDX_SPECS, load_idx_dataset  # noqa: E402
from trainlab.engine.fastpath import synchronize  # noqa: E402
from trainlab.engine.runtime import resolve_device  # noqa: E402
from trainlab.registry import MODELS  # noqa: E402

LR, MEAN, STD = 0.9, IDX_SPECS["fashion-mnist"].mean, IDX_SPECS["fashion-mnist"].std


def d2l_lenet() -> nn.Module:
    """The d2l book's LeNet: sigmoid activations and average pooling, 28x28 gray input."""
    return nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2), nn.Sigmoid(), nn.AvgPool2d(2, 2),
        nn.Conv2d(6, 16, 5), nn.Sigmoid(), nn.AvgPool2d(2, 2), nn.Flatten(),
        nn.Linear(400, 120), nn.Sigmoid(), nn.Linear(120, 84), nn.Sigmoid(), nn.Linear(84, 10))


def resnet18(small_input: bool) -> nn.Module:
    """torchvision's ResNet-18 for one gray channel; ``small_input`` uses a 3x3 stem without max pooling (28x28)."""
    from torchvision.models import resnet18 as tv_resnet18

    net = tv_resnet18(num_classes=10)
    net.conv1 = nn.Conv2d(1, 64, 3 if small_input else 7, stride=1 if small_input else 2,
                          padding=1 if small_input else 3, bias=False)
    if small_input:
        net.maxpool = nn.Identity()
    return net


MODEL_SPECS: dict[str, tuple[Callable[[], nn.Module], int]] = {  # name → (builder, image size)
    "lenet": (d2l_lenet, 28),
    "resnet18-96": (lambda: resnet18(small_input=False), 96),
    "resnet18-28": (lambda: resnet18(small_input=True), 28),
}


def make_model(name: str, device: torch.device) -> nn.Module:
    """The model with d2l's Xavier initialization, seeded so every approach starts from the same weights."""
    torch.manual_seed(0)
    net = MODEL_SPECS[name][0]()
    for module in net.modules():
        if isinstance(module, (nn.Linear, nn.Conv2d)):
            nn.init.xavier_uniform_(module.weight)
    return net.to(device)


class PILFashionMNIST(Dataset):
    """What ``torchvision.datasets.FashionMNIST`` does per item: a PIL image from the array, then the transform."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, size: int) -> None:
        from torchvision import transforms

        self.images, self.labels = images, labels
        steps = [transforms.Resize(size)] if size != 28 else []
        self.transform = transforms.Compose(steps + [transforms.ToTensor()])

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        from PIL import Image

        return self.transform(Image.fromarray(self.images[index], mode="L")), int(self.labels[index])


def d2l_epochs(net: nn.Module, loader: DataLoader, device: torch.device, epochs: int) -> None:
    """d2l's ``train_ch6`` inner loop, accuracy summed on the host each step as the book does."""
    optimizer = torch.optim.SGD(net.parameters(), lr=LR)
    loss_fn = nn.CrossEntropyLoss()
    for _ in range(epochs):
        net.train()
        totals = [0.0, 0.0, 0]
        for x, y in loader:
            optimizer.zero_grad()
            x, y = x.to(device), y.to(device)
            y_hat = net(x)
            loss = loss_fn(y_hat, y)
            loss.backward()
            optimizer.step()
            with torch.no_grad():
                totals[0] += float(loss) * x.shape[0]
                totals[1] += float((y_hat.argmax(dim=1) == y).sum())
                totals[2] += x.shape[0]


def hand_epochs(net: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int, epochs: int, size: int) -> None:
    """A hand-written loop over device-resident uint8 tensors: permute, slice, scale, forward, step."""
    optimizer = torch.optim.SGD(net.parameters(), lr=LR)
    loss_fn = nn.CrossEntropyLoss()
    for _ in range(epochs):
        order = torch.randperm(len(y), device=x.device)
        for i in range(0, len(y), batch):
            idx = order[i:i + batch]
            xb = x[idx].float() / 255
            if size != xb.shape[-1]:
                xb = F.interpolate(xb, size=(size, size), mode="bilinear", align_corners=False)
            loss = loss_fn(net(xb), y[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()


def lightning_epochs(net: nn.Module, loader: DataLoader, device: torch.device, epochs: int) -> None:
    import lightning as L

    class Module(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.net = net

        def training_step(self, batch: Any, _: int) -> torch.Tensor:
            x, y = batch
            return F.cross_entropy(self.net(x), y)

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return torch.optim.SGD(self.parameters(), lr=LR)

    trainer = L.Trainer(max_epochs=epochs, accelerator="gpu" if device.type == "cuda" else "cpu", devices=1,
                        logger=False, enable_checkpointing=False, enable_progress_bar=False)
    trainer.fit(Module(), loader)


def trainlab_epochs(model_name: str, bundle: DataBundle, batch: int, epochs: int, device: torch.device,
                    extra: dict[str, Any] | None = None) -> None:
    """trainlab's Trainer with the default callbacks (progress off), built as ``trainlab train`` builds it;
    ``extra`` holds opt-in settings (``--trainlab-set``), measured as a separate approach."""
    with tempfile.TemporaryDirectory() as out:
        cfg = config_mod.load(overrides={
            "data.name": "fashion-mnist", "data.val_fraction": 0.0, "model.name": f"bench-{model_name}",
            "optim.name": "sgd", "optim.lr": LR, "train.batch_size": batch, "train.epochs": epochs,
            "train.device": str(device), "callbacks.progress.style": "none",
            "train.threads": torch.get_num_threads(),  # the other approaches' count, never lowered mid-bench
            **(extra or {})})
        session = build_session(cfg, run_dir=Path(out), bundle=bundle)
        session.trainer.fit()


def register_bench_models() -> None:
    """Expose the bench models to trainlab's registry under bench-only names (this script only)."""
    for name in MODEL_SPECS:
        if f"bench-{name}" not in MODELS:
            MODELS.add(f"bench-{name}", lambda *, num_classes, in_channels, input_size, _n=name: make_model(
                _n, torch.device("cpu")), description=f"bench copy of {name}")


def timed(fn: Callable[[], None], device: torch.device) -> float:
    synchronize(device)
    started = time.perf_counter()
    fn()
    synchronize(device)
    return time.perf_counter() - started


def bench_model(name: str, images: np.ndarray, labels: np.ndarray, args: argparse.Namespace,
                device: torch.device) -> list[dict[str, Any]]:
    size = MODEL_SPECS[name][1]
    n, epochs, batch = len(labels), args.epochs, args.batch_size
    base = {"bench": "throughput", "model": name, "device": str(device), "examples": n, "epochs": epochs,
            "batch_size": batch, "threads": torch.get_num_threads(), "torch": torch.__version__}
    rows = []

    def record(approach: str, seconds: float, **extra: Any) -> None:
        rows.append({**base, "approach": approach, "seconds": round(seconds, 3),
                     "examples_per_s": round(n * epochs / seconds, 1), **extra})
        print(json.dumps(rows[-1]), flush=True)

    pil = PILFashionMNIST(images, labels, size)
    loader = DataLoader(pil, batch_size=batch, shuffle=True, num_workers=args.num_workers,
                        pin_memory=device.type == "cuda", persistent_workers=False)
    net = make_model(name, device)
    record("d2l", timed(lambda: d2l_epochs(net, loader, device, epochs), device), num_workers=args.num_workers)
    try:
        import lightning  # noqa: F401

        net = make_model(name, device)
        record("lightning", timed(lambda: lightning_epochs(net, loader, device, epochs), device))
    except ImportError:
        print(json.dumps({**base, "approach": "lightning", "skipped": "lightning is not installed"}), flush=True)
    x = torch.from_numpy(images[:, None].copy()).to(device)
    y = torch.from_numpy(labels.astype(np.int64)).to(device)
    net = make_model(name, device)
    record("hand_written", timed(lambda: hand_epochs(net, x, y, batch, epochs, size), device))
    bundle = _bundle(images, labels, size)
    record("trainlab", timed(lambda: trainlab_epochs(name, bundle, batch, epochs, device), device))
    if args.trainlab_set:
        extra = dict(item.split("=", 1) for item in args.trainlab_set)
        record("trainlab_opt_in", timed(lambda: trainlab_epochs(name, bundle, batch, epochs, device, extra), device),
               settings=extra)
    by = {r["approach"]: r["examples_per_s"] for r in rows}
    ratios = {**base, "ratios": True, "trainlab_over_d2l": round(by["trainlab"] / by["d2l"], 3),
              "trainlab_over_hand_written": round(by["trainlab"] / by["hand_written"], 3)}
    if "trainlab_opt_in" in by:
        ratios["trainlab_opt_in_over_d2l"] = round(by["trainlab_opt_in"] / by["d2l"], 3)
    if "lightning" in by:
        ratios["trainlab_over_lightning"] = round(by["trainlab"] / by["lightning"], 3)
    print(json.dumps(ratios), flush=True)
    return rows + [ratios]


def _bundle(images: np.ndarray, labels: np.ndarray, size: int) -> DataBundle:
    """The same examples as trainlab tensors, resized once up front (trainlab keeps them on the device)."""
    x = torch.from_numpy(images[:, None].copy())
    if size != 28:
        x = F.interpolate(x.float(), size=(size, size), mode="bilinear", align_corners=False).round().to(torch.uint8)
    y = torch.from_numpy(labels.astype(np.int64))
    meta = DataMeta(task="classification", input_shape=(1, size, size), num_classes=10,
                    classes=list(IDX_SPECS["fashion-mnist"].classes), preprocess={"kind": "image", "scale": 1 / 255})
    return DataBundle(train=TensorDataset(x, y), val=None, test=None, meta=meta)


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", default=str(REPO.parent / "shared" / "data" / "fashion-mnist"))
    parser.add_argument("--device", default="auto")
    parser.add_argument("--examples", type=int, default=12_800, help="training examples per epoch (max 60000)")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--num-workers", type=int, default=4, help="DataLoader workers of the d2l recipe")
    parser.add_argument("--trainlab-set", action="append", default=[], metavar="KEY=VALUE",
                        help="also time trainlab with these settings (e.g. train.precision=bf16), as trainlab_opt_in")
    parser.add_argument("--models", default="lenet", help=f"comma list of {', '.join(MODEL_SPECS)}")
    args = parser.parse_args(argv)
    device = resolve_device(args.device)
    unknown = [m for m in args.models.split(",") if m not in MODEL_SPECS]
    if unknown:
        parser.error(f"unknown model(s) {unknown}; choose from {', '.join(MODEL_SPECS)}")
    images, labels = load_idx_dataset("fashion-mnist", Path(args.data_root), download=False)["train"]
    images, labels = images[:args.examples, 0], labels[:args.examples]
    register_bench_models()
    torch.optim.SGD([torch.zeros(1, requires_grad=True)])  # torch's lazy import of its compiler (~3 s), paid by none
    print(json.dumps({"bench": "throughput", "machine": platform.machine(), "python": platform.python_version(),
                      "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"}))
    rows = []
    for name in args.models.split(","):
        rows += bench_model(name, images, labels, args, device)
    return rows


if __name__ == "__main__":
    main()
