"""Distributed training (torch.distributed, gloo on the CPU): data shards, exact metrics, rank-0-only files.

The sharding tests call the loaders with an explicit rank and world size (pure functions, one process).  The
2-rank tests fork two processes that join one gloo group (tests/distributed_jobs.py) and train through the
public API, then compare with a single process that trains on the doubled (global) batch.
"""

from __future__ import annotations

import csv
import json
import os
import sys
from pathlib import Path

import pytest
import torch
from torch.utils.data import TensorDataset

from distributed_jobs import MOONS, Probe, last_weights, log, outcome, run_job, train_rank
from trainlab.data.loaders import BatchTransform, augment_seed, epoch_permutation, make_loader, shard_indices
from trainlab.engine import distributed

# -- shards: pure functions of (seed, epoch, rank, world) ------------------------------------------------------


@pytest.mark.parametrize("n, world", [(10, 2), (11, 2), (11, 3), (7, 4)])
def test_training_shards_partition_each_epochs_permutation(n: int, world: int) -> None:
    orders = []
    for epoch in range(3):
        shards = [shard_indices(n, 5, epoch, shuffle=True, rank=r, world=world) for r in range(world)]
        assert {len(s) for s in shards} == {n // world}  # every rank runs the same number of steps
        flat = torch.cat(shards).tolist()
        assert len(set(flat)) == len(flat)  # disjoint
        perm = epoch_permutation(n, 5, epoch)
        assert set(flat) == set(perm[: n - n % world].tolist())  # the epoch's permutation, less its tail
        orders.append(perm.tolist())
    assert orders[0] != orders[1] != orders[2]  # the order changes every epoch


def test_single_process_order_is_the_plain_permutation() -> None:
    assert torch.equal(shard_indices(11, 5, 2, shuffle=True), epoch_permutation(11, 5, 2))
    assert shard_indices(11, 5, 2, shuffle=False) is None


@pytest.mark.parametrize("n, world", [(11, 2), (19, 2), (5, 3), (1, 2)])
def test_evaluation_shards_cover_every_example_exactly_once(n: int, world: int) -> None:
    shards = [shard_indices(n, 0, 0, shuffle=False, rank=r, world=world) for r in range(world)]
    assert sorted(torch.cat(shards).tolist()) == list(range(n))  # no padding, no duplicate, nothing dropped


@pytest.mark.parametrize("rank, world", [(2, 2), (-1, 2), (0, 0)])
def test_shard_indices_refuses_a_rank_outside_the_world(rank: int, world: int) -> None:
    with pytest.raises(ValueError, match="rank must be in 0"):
        shard_indices(10, 0, 0, shuffle=True, rank=rank, world=world)


def _indexed(n: int) -> TensorDataset:
    return TensorDataset(torch.arange(n, dtype=torch.float32).unsqueeze(1), torch.arange(n))


@pytest.mark.parametrize("kind", ["device", "torch"])
@pytest.mark.parametrize("shuffle", [True, False])
def test_rank_batches_together_are_the_single_process_batch(kind: str, shuffle: bool) -> None:
    """Batch i of rank 0 and rank 1 (4 each) hold exactly the examples of a single process's batch i (8)."""
    n = 38
    common = dict(device=torch.device("cpu"), transform=BatchTransform(), kind=kind, shuffle=shuffle, seed=1)
    whole = make_loader(_indexed(n), batch_size=8, **common)
    ranks = [make_loader(_indexed(n), batch_size=4, rank=r, world=2, **common) for r in range(2)]
    assert len(ranks[0]) == len(ranks[1]) == len(whole) == 5
    for epoch in range(2):
        single = [set(y.tolist()) for _, y in whole.epoch(epoch)]
        pairs = zip(*(loader.epoch(epoch) for loader in ranks))
        for i, ((_, y0), (_, y1)) in enumerate(pairs):
            assert not set(y0.tolist()) & set(y1.tolist())
            assert set(y0.tolist()) | set(y1.tolist()) == single[i]
    assert ranks[0].num_examples == whole.num_examples == n  # throughput counts the whole job's examples


def test_device_and_dataloader_paths_give_a_rank_the_same_shard_and_resume_mid_epoch() -> None:
    common = dict(batch_size=3, device=torch.device("cpu"), transform=BatchTransform(), shuffle=True, seed=4,
                  rank=1, world=2)
    device = make_loader(_indexed(23), kind="device", **common)
    loader = make_loader(_indexed(23), kind="torch", **common)
    assert [y.tolist() for _, y in device.epoch(1)] == [y.tolist() for _, y in loader.epoch(1)]
    assert [y.tolist() for _, y in device.epoch(1, start=2)] == [y.tolist() for _, y in loader.epoch(1, start=2)]
    assert [y.tolist() for _, y in device.epoch(1, start=2)] == [y.tolist() for _, y in device.epoch(1)][2:]


@pytest.mark.parametrize("kind", ["device", "torch"])
def test_each_rank_draws_its_own_augmentation(kind: str) -> None:
    """The same image on two ranks is cropped differently (rank folded into the key), and differently per epoch."""
    image = torch.arange(64, dtype=torch.uint8).reshape(1, 1, 8, 8).repeat(16, 1, 1, 1)
    data = TensorDataset(image, torch.zeros(16, dtype=torch.long))
    common = dict(batch_size=8, device=torch.device("cpu"), transform=BatchTransform(scale=1 / 255), kind=kind,
                  shuffle=True, seed=0, augment=[{"crop": {"padding": 2}}], world=2)
    batches = [[x for x, _ in make_loader(data, rank=r, **common).epoch(e)] for r in range(2) for e in range(2)]
    rank0_e0, rank0_e1, rank1_e0, _ = batches
    assert not torch.equal(rank0_e0[0], rank1_e0[0])
    assert not torch.equal(rank0_e0[0], rank0_e1[0])
    assert augment_seed(7, 0) == 7 and augment_seed(7, 1) != augment_seed(7, 2) != 7


# -- refusals ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("batch_size, message", [
    (15, "train.batch_size=15 cannot be split evenly over 2 processes; use a multiple of 2"),
    ("auto", "train.batch_size=auto is not supported with 2 processes"),
])
def test_batch_size_must_split_evenly_over_the_ranks(monkeypatch: pytest.MonkeyPatch, batch_size, message) -> None:
    monkeypatch.setattr(distributed, "world_size", lambda: 2)
    with pytest.raises(ValueError, match=message):
        distributed.check_batch_size(batch_size)
    distributed.check_batch_size(16)
    assert distributed.per_rank_batch(16) == 8


def test_resume_with_another_process_count_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match=r"written by a run of 2 process\(es\), but this resume has 1"):
        distributed.check_world_size({"world_size": 2}, "runs/x/checkpoints/last-000000004")
    monkeypatch.setattr(distributed, "world_size", lambda: 3)
    with pytest.raises(ValueError, match=r"run of 1 process\(es\), but this resume has 3"):
        distributed.check_world_size({}, "runs/x/checkpoints/last-000000004")


@pytest.mark.parametrize("value", ["0", "-5", "ten", "nan"])
def test_bad_timeout_is_refused_naming_the_variable(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv(distributed.TIMEOUT_ENV, value)
    with pytest.raises(ValueError, match=distributed.TIMEOUT_ENV):
        distributed.timeout()


@pytest.mark.parametrize("args, env, message", [
    (["--devices", "0"], {}, "error: --devices must be at least 1, got 0"),
    (["--devices", "2"], {"WORLD_SIZE": "2"}, "error: --devices starts its own processes, but this one was already "
                                              "started by torchrun"),
])
def test_devices_bad_input(run_cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args, env, message) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    code, _, err = run_cli("train", *args, "--out", tmp_path / "runs", "--epochs", "1")
    assert code == 2
    assert message in err
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow  # a whole run or two: ~5-20 s, more on a busy machine
def test_devices_one_trains_in_this_process(run_cli, tmp_path: Path) -> None:
    code, out, _ = run_cli("train", "--devices", "1", "--model", "mlp", "--data", "moons", "--set", "data.n=241",
                           "--epochs", "1", "--out", tmp_path, "--name", "one",
                           "--set", "callbacks.progress.style=none")
    assert code == 0, out
    assert json.loads((tmp_path / "one" / "summary.json").read_text())["world_size"] == 1


# -- two ranks against one process ---------------------------------------------------------------------------------

WRITE_EVENTS = ("os.mkdir", "os.rename", "os.replace", "os.remove", "os.unlink", "os.rmdir", "shutil.rmtree",
                "os.symlink", "os.truncate")


def _watch_writes(root: Path) -> list[str]:
    """Record every file-system change this process makes under ``root`` (an audit hook, for the rest of its life)."""
    seen: list[str] = []
    prefix = str(root)

    def hook(event: str, args: tuple) -> None:
        if event == "open" and args and isinstance(args[0], (str, bytes, os.PathLike)):
            mode, flags = args[1] or "", args[2] or 0
            writes = any(c in str(mode) for c in "wax+") or flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT)
            if writes and os.fsdecode(args[0]).startswith(prefix):
                seen.append(f"open {os.fsdecode(args[0])}")
        elif event in WRITE_EVENTS and args and isinstance(args[0], (str, bytes, os.PathLike)) \
                and os.fsdecode(args[0]).startswith(prefix):
            seen.append(f"{event} {os.fsdecode(args[0])}")

    sys.addaudithook(hook)
    return seen


# 3 epochs, but early stopping (train_loss must *rise*) stops every rank after epoch 2, on the all-reduced metric
STOPPING = ["callbacks.early_stopping.monitor=train_loss", "callbacks.early_stopping.mode=max",
            "callbacks.early_stopping.patience=1"]


def _two_rank_worker(out: Path):
    def work(rank: int) -> dict:
        writes = _watch_writes(out)
        result = train_rank([*MOONS, *STOPPING], out, "two", Probe(), epochs=3)
        return {**result, "writes": writes}
    return work


@pytest.fixture(scope="module")
def two_and_one(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, list[int | None]]:
    """The same run trained by 2 ranks (global batch 16, 8 each) and by one process (batch 16)."""
    root = tmp_path_factory.mktemp("ddp")
    codes = run_job(_two_rank_worker(root / "runs"), 2, root / "job", timeout=180)
    from trainlab import config
    from trainlab.api import train_config

    train_config(config.load(None, flags={"model": "mlp", "data": "moons", "epochs": 3, "batch_size": 16, "seed": 3,
                                          "name": "one", "out": str(root / "single")}, overrides=[*MOONS, *STOPPING]))
    return root, root / "single" / "one", codes


def _rows(run_dir: Path) -> list[dict[str, float]]:
    with open(run_dir / "metrics.csv") as handle:
        return [{k: float(v) for k, v in row.items() if k not in ("seconds", "examples_per_s")}
                for row in csv.DictReader(handle)]


@pytest.mark.slow  # a whole run or two: ~5-20 s, more on a busy machine
def test_two_ranks_keep_identical_parameters_after_every_step(two_and_one) -> None:
    root, _, codes = two_and_one
    assert codes == [0, 0], [outcome(root / "job", r) for r in range(2)]
    hashes = [outcome(root / "job", r)["result"]["hashes"] for r in range(2)]
    assert len(hashes[0]) == 22  # 2 epochs of 11 steps (87 examples per rank, 8 per batch)
    assert hashes[0] == hashes[1]
    assert len(set(hashes[0])) == 22  # and they did change every step


@pytest.mark.slow  # a whole run or two: ~5-20 s, more on a busy machine
def test_two_ranks_equal_one_process_with_the_global_batch(two_and_one) -> None:
    root, single, _ = two_and_one
    two = root / "runs" / "two"
    weights, reference = last_weights(two), last_weights(single)
    assert weights.keys() == reference.keys()
    for name in weights:
        torch.testing.assert_close(weights[name], reference[name], rtol=1e-5, atol=1e-6)
    rows, expected = _rows(two), _rows(single)
    assert len(rows) == len(expected) == 2  # early stopping stopped both after epoch 2 of 3
    for row, ref in zip(rows, expected):
        assert row.keys() == ref.keys() and {"train_loss", "train_acc", "val_loss", "val_acc"} <= row.keys()
        for key in row:
            assert row[key] == pytest.approx(ref[key], rel=1e-6, abs=1e-9), key
    assert round(rows[0]["val_acc"] * 19) == pytest.approx(rows[0]["val_acc"] * 19)  # 19 examples, each counted once
    summary = json.loads((two / "summary.json").read_text())
    reference_summary = json.loads((single / "summary.json").read_text())
    assert summary["world_size"] == 2 and reference_summary["world_size"] == 1
    assert summary["status"] == "completed" and "early stopping" in summary["stop_reason"]
    for key in ("test_loss", "test_acc"):  # the test split (48 examples) sharded 24 + 24, summed back exactly
        assert summary["test"][key] == pytest.approx(reference_summary["test"][key], rel=1e-6)


@pytest.mark.slow  # a whole run or two: ~5-20 s, more on a busy machine
def test_only_rank_zero_writes_the_run_directory(two_and_one) -> None:
    root, single, _ = two_and_one
    results = [outcome(root / "job", r)["result"] for r in range(2)]
    assert results[1]["writes"] == []
    assert any("metrics.csv" in w for w in results[0]["writes"])  # the watch does see rank 0's files
    assert results[0]["path"] == results[1]["path"] == str(root / "runs" / "two")
    assert sorted(p.name for p in (root / "runs").iterdir()) == ["two"]
    files = sorted(p.name for p in (root / "runs" / "two").iterdir())
    assert files == sorted(p.name for p in single.iterdir())


def test_a_rank_that_raises_stops_the_job_with_an_error_naming_it(tmp_path: Path) -> None:
    def work(rank: int) -> dict:
        return train_rank(MOONS, tmp_path / "runs", "fails", Probe(raise_at=3 if rank == 1 else 0))

    import time

    started = time.monotonic()
    codes = run_job(work, 2, tmp_path / "job", timeout=90, dist_timeout=20)
    assert codes == [1, 1]  # neither hangs: the other rank fails too (peer gone, or the 20 s timeout)
    assert time.monotonic() - started < 80
    assert "ERROR rank 1 of 2 stopped: RuntimeError: probe failure at step 3" in log(tmp_path / "job", 1)
    assert outcome(tmp_path / "job", 1)["error"] == "RuntimeError: probe failure at step 3"
    summary = json.loads((tmp_path / "runs" / "fails" / "summary.json").read_text())
    assert summary["status"] == "crashed"  # rank 0 records how the job ended


def test_a_stop_on_one_rank_stops_every_rank_at_the_same_step_with_its_reason(tmp_path: Path) -> None:
    """The NaN guard judges its own rank's loss: when only rank 1 sees a bad one, both ranks stop together."""
    def work(rank: int) -> dict:
        return train_rank(MOONS, tmp_path / "runs", "nan", Probe(fail_at=3 if rank == 1 else 0))

    codes = run_job(work, 2, tmp_path / "job", timeout=90, dist_timeout=20)
    assert codes == [1, 1]
    for rank in range(2):
        assert outcome(tmp_path / "job", rank)["error"].startswith("TrainingFailed: ")
    summary = json.loads((tmp_path / "runs" / "nan" / "summary.json").read_text())
    assert summary["status"] == "failed" and summary["steps"] == 3
    assert summary["stop_reason"] == "rank 1: probe: loss became nan at step 3"


@pytest.mark.parametrize("env, main, device, expected", [
    ({"RANK": "3"}, True, "cuda", "cuda"),  # a stray RANK without a torchrun job changes nothing
    ({"WORLD_SIZE": "2", "RANK": "1", "LOCAL_RANK": "1"}, False, "cuda", "cuda:1"),  # one GPU per rank
    ({"WORLD_SIZE": "2", "RANK": "0", "LOCAL_RANK": "0"}, True, "cuda:3", "cuda:3"),  # an explicit index stays
    ({"WORLD_SIZE": "2", "RANK": "1", "LOCAL_RANK": "1"}, False, "cpu", "cpu"),
])
def test_rank_queries_follow_torchruns_environment(monkeypatch: pytest.MonkeyPatch, env, main, device,
                                                   expected) -> None:
    for key in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert distributed.main_process() is main
    assert distributed.device_for_rank(torch.device(device)) == torch.device(expected)
    assert (distributed.rank(), distributed.world_size(), distributed.is_main()) == (0, 1, True)  # no group is up
