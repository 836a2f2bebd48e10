"""The library reports through ``logging`` and leaves process-wide settings alone; only the CLI prints."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch

import trainlab
from trainlab.cli.common import NoticeHandler, show_library_messages

QUIET = {"callbacks.progress.style": "none", "callbacks.plot_curves": None}


def test_training_through_the_library_prints_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    trainlab.train(model="softmax", epochs=1, out=tmp_path, batch_size="auto", overrides=QUIET)
    out, err = capsys.readouterr()
    assert out == "" and err == ""


def test_the_cli_shows_library_records_as_notice_and_warning_lines(capsys: pytest.CaptureFixture[str]) -> None:
    show_library_messages()
    show_library_messages()  # idempotent: one handler, one line per record
    logger = logging.getLogger("trainlab.somewhere")
    logger.info("batch_size=auto: using %d", 128)
    logger.warning("report.html not written: %s", "boom")
    logger.debug("not shown at the default level")
    assert capsys.readouterr().err == "notice: batch_size=auto: using 128\nwarning: report.html not written: boom\n"
    assert sum(isinstance(h, NoticeHandler) for h in logging.getLogger("trainlab").handlers) == 1


def test_the_cli_prints_the_auto_batch_size_notice(tmp_path: Path, run_cli) -> None:
    code, _, err = run_cli("train", "--model", "softmax", "--epochs", "1", "--out", tmp_path, "--batch-size", "auto",
                           "--set", "callbacks.progress.style=none")
    assert code == 0, err
    assert [line for line in err.splitlines() if line.startswith("notice: batch_size=auto: using ")]


def test_evaluating_and_predicting_a_saved_run_leave_the_thread_count_alone(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from trainlab import session

    run = trainlab.train(model="softmax", epochs=1, out=tmp_path, overrides=QUIET)
    before = torch.get_num_threads()
    chosen = before + 1  # what training would pick now; evaluation must not apply it
    monkeypatch.setattr(session, "choose_threads", lambda *args: (chosen, "the CPU is busy"))
    try:
        saved = trainlab.load_run(run.path)
        saved.evaluate(device="cpu")
        saved.test_predictions()
        assert torch.get_num_threads() == before
        trainlab.train(resume=run.path, epochs=2)
        assert torch.get_num_threads() == chosen  # training is asked to choose, and does
    finally:
        torch.set_num_threads(before)
