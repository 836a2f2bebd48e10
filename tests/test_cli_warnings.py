"""Library problems reach a CLI user as the CLI's own ``warning: …`` lines, never as Python's ``UserWarning`` display."""

from __future__ import annotations

import warnings
from pathlib import Path

FP16_ON_CPU = ("precision 'fp16' is not supported on cpu; training in fp32 "
               "(bf16 works on CUDA and on AVX-512 CPUs, fp16 on CUDA)")


def test_a_library_warning_is_a_warning_line_on_stderr_not_a_python_warning(tmp_path: Path, run_cli) -> None:
    with warnings.catch_warnings(record=True) as caught:  # pytest would otherwise swallow a Python warning silently
        warnings.simplefilter("always")
        code, out, err = run_cli("train", "--model", "softmax", "--epochs", "1", "--device", "cpu", "--out", tmp_path,
                                 "--name", "fp16", "--set", "train.precision=fp16",
                                 "--set", "callbacks.progress.style=none", "--set", "callbacks.plot_curves=null")
    assert code == 0, err
    assert f"warning: {FP16_ON_CPU}" in err.splitlines()
    assert FP16_ON_CPU not in out  # stdout stays data
    assert "UserWarning" not in err
    assert not [w for w in caught if "precision" in str(w.message)], "reported through logging, not warnings.warn"
