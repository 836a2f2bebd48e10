"""The speedrun recipe end to end on a 2,000-image Fashion-MNIST subset (CPU), its model and configs."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

from trainlab import config as config_mod
from trainlab import models
from trainlab.models.speedrun import VARIANTS

REPO = Path(__file__).resolve().parents[2]
CONFIGS = [REPO / "configs" / "fashion-mnist-speedrun.yaml", REPO / "configs" / "fashion-mnist-95.yaml"]


def load_bench(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", REPO / "bench" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", sorted(VARIANTS))
@pytest.mark.parametrize("size", [(28, 28), (6, 6), (32, 32)])
def test_speedrun_variants_give_class_logits_for_any_small_image(name: str, size: tuple[int, int]) -> None:
    net = models.create(name, num_classes=7, in_channels=3, input_size=size)
    assert net(torch.randn(2, 3, *size)).shape == (2, 7)


def test_speedrun_net_refuses_tables_and_bad_head_scale() -> None:
    with pytest.raises(ValueError, match="needs image input"):
        models.create("speedrun-net", num_classes=2, in_channels=5, input_size=None)
    with pytest.raises(ValueError, match="head_scale of speedrun-net must be > 0"):
        models.create("speedrun-net", num_classes=2, in_channels=1, input_size=(28, 28), head_scale=0.0)


def test_convs_start_as_identity_on_their_first_channels() -> None:
    net = models.create("speedrun-net-xs", num_classes=10, in_channels=1, input_size=(28, 28))
    conv = net.groups[1].conv2
    x = torch.randn(1, conv.in_channels, 5, 5)
    assert torch.allclose(conv(x)[:, :conv.in_channels], x)


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_speedrun_configs_validate(path: Path) -> None:
    cfg = config_mod.load(path)
    assert cfg.data.name == "fashion-mnist" and cfg.data.val_fraction == 0.0
    assert cfg.train.tta_flip and cfg.train.compile is True


def test_speedrun_recipe_on_a_2000_image_subset_runs_end_to_end(shared_data, tmp_path, capsys) -> None:
    bench = load_bench("speedrun")
    rows = bench.main(["--subset", "2000", "--seeds", "1", "--device", "cpu", "--out", str(tmp_path),
                       "--set", f"data.root={shared_data / 'fashion-mnist'}", "--set", "model.name=speedrun-net-xs",
                       "--set", "train.epochs=1", "--set", "train.batch_size=200"])
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert lines[0] == rows[0] and lines[-1]["summary"] == "mean" and lines[-1]["seeds"] == 1
    row = rows[0]
    # 10 steps already learn something (test_acc 0.32 with seed 0); chance on 10 classes is 0.1
    assert row["subset"] == 2000 and row["epochs"] == 1 and row["test_acc"] > 0.2
    assert row["wall_seconds"] >= row["train_seconds"] > 0 and row["train_tflops"] > 0 and row["mfu"] is None
    summary = json.loads((Path(row["run"]) / "summary.json").read_text())
    assert summary["fastpath"]["compile"] is False  # the CPU run turns the config's compile off
    history = (Path(row["run"]) / "metrics.csv").read_text().splitlines()
    assert len(history) == 2  # header + one epoch; 2,000 images / batch 200


def test_subset_is_seeded_and_sized() -> None:
    from torch.utils.data import TensorDataset

    from trainlab.data.bundle import DataBundle, DataMeta

    bench = load_bench("speedrun")
    data = TensorDataset(torch.arange(50), torch.arange(50))
    bundle = DataBundle(train=data, val=None, test=data, meta=DataMeta(task="classification", input_shape=(1,)))
    a, b = bench.subset_bundle(bundle, 10), bench.subset_bundle(bundle, 10)
    assert len(a.train) == len(a.test) == 10 and torch.equal(a.train.tensors[0], b.train.tensors[0])
    assert len(set(a.train.tensors[0].tolist())) == 10


@pytest.mark.slow
def test_gpu_suite_runs_every_stage_in_smoke_mode_on_the_cpu(shared_data: Path, tmp_path: Path) -> None:
    """bench/gpu_suite.sh is what a session with a GPU runs; its CPU smoke mode checks the script end to end."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "SMOKE": "1", "OUT": str(tmp_path), "OMP_NUM_THREADS": "1", "PYTHON": sys.executable,
           "DATA": str(shared_data / "fashion-mnist"), "TORCHINDUCTOR_CACHE_DIR": str(tmp_path / "cache")}
    subprocess.run(["bash", str(REPO / "bench" / "gpu_suite.sh"), "all"], env=env, check=True, capture_output=True,
                   timeout=600)
    for stage, key in [("speedrun", "test_acc"), ("speedrun95", "test_acc"), ("throughput", "examples_per_s"),
                       ("e2e", "command_seconds")]:
        rows = [json.loads(line) for line in (tmp_path / f"{stage}.jsonl").read_text().splitlines()]
        assert any(key in row for row in rows), stage
    e2e = [json.loads(line) for line in (tmp_path / "e2e.jsonl").read_text().splitlines()]
    assert [row["cache"] for row in e2e] == ["cold", "warm"] and all(row["command_seconds"] > 0 for row in e2e)
