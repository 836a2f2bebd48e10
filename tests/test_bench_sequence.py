"""``bench/sequence.py --interleave K``: the d2l loop trains K batches after every K of trainlab's, in trainlab's
run, and each loop is timed on its own batches only."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench" / "sequence.py"


def _bench(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(BENCH), *args], capture_output=True, text=True, timeout=600, cwd=cwd)


@pytest.mark.slow
def test_interleave_times_each_loop_on_its_own_batches(tmp_path: Path) -> None:
    result = _bench("--seconds", "1", "--interleave", "2", "--threads", "1", "--variants", "d2l", "trainlab-d2l",
                    cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    d2l, trainlab, summary = (json.loads(line) for line in result.stdout.splitlines())
    assert (d2l["variant"], trainlab["variant"], summary["variant"]) == ("d2l", "trainlab-d2l", "summary")
    assert d2l["interleaved"] == trainlab["interleaved"] == 2
    assert trainlab["batches"] >= 2
    assert d2l["batches"] == trainlab["batches"] // 2 * 2  # two d2l batches after every second trainlab batch
    assert d2l["chars"] == d2l["batches"] * 32 * 35
    assert trainlab["train_seconds"] >= 1.0  # it stopped once its own time reached the budget
    assert d2l["train_seconds"] > 0
    assert summary["median_ratio_to_d2l"]["trainlab-d2l"] == pytest.approx(
        trainlab["chars_per_s"] / d2l["chars_per_s"], rel=1e-3)
    # over the batches only: trainlab's epoch-end work (none within one second) left out; the d2l loop has none
    assert trainlab["epoch_end_seconds"] >= 0 and "epoch_end_seconds" not in d2l
    assert trainlab["batch_chars_per_s"] == pytest.approx(
        trainlab["chars"] / (trainlab["train_seconds"] - trainlab["epoch_end_seconds"]), rel=1e-3)
    assert d2l["batch_chars_per_s"] == d2l["chars_per_s"]
    assert summary["median_batch_ratio_to_d2l"]["trainlab-d2l"] == pytest.approx(
        trainlab["batch_chars_per_s"] / d2l["batch_chars_per_s"], rel=1e-3)
    assert d2l["val_ppl"] > 1 and trainlab["val_ppl"] > 1
    assert not list(tmp_path.iterdir())  # the runs went to a temporary directory that is gone


def test_interleave_needs_the_d2l_loop_and_one_trainlab_variant(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """In-process (argparse refuses before any work): one subprocess per case cost 10 s of the default suite."""
    bench = _bench_module()
    monkeypatch.chdir(tmp_path)
    cases = [(["--interleave", "2", "--variants", *variants],
              "--interleave alternates the d2l loop with one trainlab variant: --variants d2l VARIANT")
             for variants in (["trainlab-d2l"], ["d2l", "trainlab-d2l", "trainlab-recipe"], ["trainlab-d2l", "d2l"])]
    cases.append((["--interleave", "-3", "--variants", "d2l", "trainlab-d2l"],
                  "--interleave K takes K >= 1 batches per turn (0, the default: no interleaving), got -3"))
    for args, message in cases:
        monkeypatch.setattr(sys, "argv", [str(BENCH), "--seconds", "1", *args])
        with pytest.raises(SystemExit) as exited:
            bench.main()
        assert exited.value.code == 2
        out, err = capsys.readouterr()
        assert message in err and out == ""
    assert not list(tmp_path.iterdir())


def _bench_module():
    spec = importlib.util.spec_from_file_location("bench_sequence", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class _State:
    def __init__(self) -> None:
        self.reason: str | None = None

    def stop(self, reason: str) -> None:
        self.reason = reason


def test_time_budget_leaves_out_the_alternating_loop_and_times_the_epoch_ends(monkeypatch: pytest.MonkeyPatch) -> None:
    bench = _bench_module()
    clock = iter([0.0, 1.0, 1.5, 2.0, 5.0, 5.0, 9.0, 9.0, 9.5, 15.0, 15.0, 15.0])  # perf_counter, in call order
    monkeypatch.setattr(bench, "time", SimpleNamespace(perf_counter=lambda: next(clock)))

    class Loop:
        seconds, steps = 0.0, 0

        def step(self) -> None:
            self.steps += 1
            self.seconds += 2.0  # each d2l batch "takes" 2 s, not on trainlab's clock

    loop, state = Loop(), _State()
    budget = bench.TimeBudget(6.0, chars_per_batch=10, alternate=loop, turn=2)
    budget.on_fit_start(None, state)        # started at 0.0
    budget.on_batch_end(None, state)        # batch 1 at 1.0: no turn yet, own 1.0; ends at 1.5
    budget.on_epoch_start(None, state)      # 2.0: 0.5 s since the last batch ended (validation, checkpoint)
    budget.on_batch_end(None, state)        # batch 2: two d2l batches (4 s), own 5.0 - 4.0 = 1.0; ends at 5.0
    assert (loop.steps, state.reason) == (2, None)
    assert budget.epoch_end_seconds == pytest.approx(0.5)
    budget.on_batch_end(None, state)        # batch 3 at 9.0: own 9.0 - 4.0 = 5.0 < 6; then 9.0
    assert state.reason is None
    report = budget.report()                # at 9.5: own 5.5
    assert report == {"train_seconds": pytest.approx(5.5), "chars": 30, "batches": 3,
                      "epoch_end_seconds": pytest.approx(0.5)}
    budget.on_batch_end(None, state)        # batch 4 at 15.0: two more d2l batches (8 s in all), own 7.0 >= 6
    assert state.reason == "time budget of 6 s" and loop.steps == 4
    assert budget.report()["train_seconds"] == pytest.approx(7.0)  # frozen at the stop
