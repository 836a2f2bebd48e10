"""Hostile config input: each is refused before anything is written, with one ``error:`` line (exit 2) that names the
file and line or the key, or, for a subtle one, loads as its builder will read it."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.reliability.helpers import QUIET_ARGS, trainlab_cli
from trainlab.config import ConfigError, load


def train_args(out: Path, *extra: str | Path) -> list[str | Path]:
    return ["train", "--epochs", "1", "--out", out, "--name", "x", *QUIET_ARGS, *extra]


def assert_refused(result: tuple[int, str, str], out: Path, *fragments: str) -> str:
    """Exit 2, exactly one ``error:`` line holding every fragment, no traceback, no run directory."""
    code, _, err = result
    assert code == 2, err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, err
    for fragment in fragments:
        assert fragment in errors[0], f"{fragment!r} not in: {err}"
    assert "Traceback" not in err
    assert not out.exists(), "a refused config must leave no output directory"
    return errors[0]


def write(path: Path, text: str | bytes) -> Path:
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


def alias_bomb(levels: int = 9) -> str:
    """A "billion laughs": each level is a list of nine aliases of the level below, 9**9 strings in all, hidden under
    a key the config does not know."""
    lines = ["model:", "  junk:", '    l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for level in range(1, levels):
        lines.append(f"    l{level}: &l{level} [{', '.join([f'*l{level - 1}'] * 9)}]")
    return "\n".join(lines) + "\n"


# ---- 1. YAML alias bomb ---------------------------------------------------------------------------------------

def test_alias_bomb_is_refused_at_once_in_a_fresh_process(tmp_path: Path) -> None:
    """A subprocess with a timeout: the old code expanded the bomb for minutes at 10 GB."""
    config = write(tmp_path / "bomb.yaml", alias_bomb())
    start = time.monotonic()
    result = trainlab_cli(*train_args(tmp_path / "runs", "-c", config), cwd=tmp_path, timeout=60)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: {config}, line 4: YAML aliases (*l0) are not supported in trainlab configs; write the value out")
    assert time.monotonic() - start < 30  # interpreter start and imports included; parsing itself is milliseconds
    assert not (tmp_path / "runs").exists()


def test_alias_bomb_is_refused_by_the_loader_in_well_under_a_second(tmp_path: Path) -> None:
    config = write(tmp_path / "bomb.yaml", alias_bomb())
    start = time.monotonic()
    with pytest.raises(ConfigError, match=r"bomb.yaml, line 4: YAML aliases \(\*l0\) are not supported"):
        load(config)
    assert time.monotonic() - start < 1.0


@pytest.mark.parametrize("override, fragment", [
    ("model.junk=[&a [1, 1, 1], [*a, *a, *a]]", "--set model.junk, line 1: YAML aliases (*a) are not supported"),
    ("model.junk={<<: &b {x: 1}, y: *b}", "--set model.junk, line 1: YAML aliases (*b) are not supported"),
])
def test_aliases_in_set_values_are_refused(tmp_path: Path, run_cli, override: str, fragment: str) -> None:
    assert_refused(run_cli(*train_args(tmp_path / "runs", "--set", override)), tmp_path / "runs", fragment)


def test_an_alias_that_would_override_a_section_is_refused(tmp_path: Path, run_cli) -> None:
    config = write(tmp_path / "c.yaml", "optim: &o {lr: 0.1}\nsched:\n  name: constant\nmodel: *o\n")
    assert_refused(run_cli(*train_args(tmp_path / "runs", "-c", config)), tmp_path / "runs",
                   f"{config}, line 4: YAML aliases (*o) are not supported")


# ---- 2. non-finite floats -------------------------------------------------------------------------------------

@pytest.mark.parametrize("args, fragment", [
    (["--lr", "inf"], "config error at optim.lr: got inf; Input should be a finite number"),
    (["--lr", "nan"], "config error at optim.lr: got nan; Input should be a finite number"),
    (["--set", "optim.lr=inf"], "config error at optim.lr: got 'inf'; Input should be a finite number"),
    (["--set", "optim.lr=1e309"], "config error at optim.lr: got '1e309'; Input should be a finite number"),
    (["--set", "optim.weight_decay=.inf"], "config error at optim.weight_decay: got inf; Input should be a finite"),
    (["--set", "train.clip_grad_norm=.inf"], "config error at train.clip_grad_norm: got inf; Input should be a finite"),
    (["--set", "train.mixup=.inf"], "config error at train.mixup: got inf; Input should be a finite number"),
    (["--set", "sched.warmup_epochs=-.inf"], "config error at sched.warmup_epochs: got -inf; Input should be a finite"),
    # options checked against builder signatures: the optimizer's, the model's, a callback's, an augmentation's
    (["--optimizer", "sgd", "--set", "optim.momentum=.nan"], "config error at optim.momentum: got nan; Input should"),
    (["--set", "model.dropout=-.inf"], "config error at model.dropout: got -inf; Input should be a finite number"),
    (["--set", "callbacks.early_stopping.min_delta=.inf"],
     "config error at callbacks.early_stopping.min_delta: got inf; Input should be a finite number"),
    (["--set", "data.augment=[{rotation: {degrees: .nan}}]"],
     "data.augment.rotation.degrees: got nan; Input should be a finite number"),
])
def test_non_finite_numbers_are_refused_naming_the_key(tmp_path: Path, run_cli, args: list[str],
                                                       fragment: str) -> None:
    assert_refused(run_cli(*train_args(tmp_path / "runs", *args)), tmp_path / "runs", fragment)


def test_non_finite_numbers_in_a_config_file_are_refused(tmp_path: Path) -> None:
    config = write(tmp_path / "c.yaml", "optim:\n  lr: .inf\n")
    with pytest.raises(ConfigError, match=r"config error at optim.lr: got inf; Input should be a finite number"):
        load(config)


def test_option_values_reach_the_builder_as_their_checked_type() -> None:
    """YAML 1.1 reads ``1e-1`` as text; it was checked as a float but handed to SGD as a string (a traceback)."""
    cfg = load(overrides=["optim.name=sgd", "optim.momentum=1e-1", "callbacks.early_stopping.patience='3'"])
    assert cfg.optim.options() == {"momentum": 0.1} and type(cfg.optim.options()["momentum"]) is float
    assert cfg.enabled_callbacks()["early_stopping"] == {"patience": 3}


def test_a_callback_option_of_the_wrong_type_is_refused(tmp_path: Path, run_cli) -> None:
    """Callback options used to be checked against the class annotations instead of ``__init__``'s."""
    assert_refused(run_cli(*train_args(tmp_path / "runs", "--set", "callbacks.early_stopping.patience=many")),
                   tmp_path / "runs", "config error at callbacks.early_stopping.patience: got 'many'")


# ---- 3. the seed ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("args, got", [
    (["--seed", "-5"], "-5"),
    (["--set", "train.seed=4294967296"], "4294967296"),
    (["--set", "train.seed=99999999999999999999"], "99999999999999999999"),
])
def test_a_seed_out_of_range_is_refused_naming_the_key_and_the_range(tmp_path: Path, run_cli, args: list[str],
                                                                     got: str) -> None:
    assert_refused(run_cli(*train_args(tmp_path / "runs", *args)), tmp_path / "runs",
                   f"config error at train.seed: got {got}", "the seed must be an integer from 0 to 4294967295")


def test_the_largest_seed_is_accepted() -> None:
    assert load(flags={"seed": 2**32 - 1}).train.seed == 2**32 - 1


# ---- 4. empty files and files that are not a mapping ---------------------------------------------------------

@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n# and another\n", "---\n...\n"])
def test_an_empty_config_file_is_refused(tmp_path: Path, run_cli, text: str) -> None:
    config = write(tmp_path / "empty.yaml", text)
    assert_refused(run_cli(*train_args(tmp_path / "runs", "-c", config)), tmp_path / "runs",
                   f"error: {config} is empty (or holds only comments); it must hold a mapping of settings")


@pytest.mark.parametrize("text, kind", [("0\n", "int"), ("false\n", "bool"), ("just text\n", "str"),
                                        ("- a\n- b\n", "list")])
def test_a_config_file_that_is_not_a_mapping_is_refused(tmp_path: Path, run_cli, text: str, kind: str) -> None:
    config = write(tmp_path / "c.yaml", text)
    assert_refused(run_cli(*train_args(tmp_path / "runs", "-c", config)), tmp_path / "runs",
                   f"{config} must hold a mapping of sections", f"got {kind}")


# ---- 5. more hostile files ------------------------------------------------------------------------------------

def test_a_directory_as_config_is_refused(tmp_path: Path, run_cli) -> None:
    config = tmp_path / "configs.yaml"
    config.mkdir()
    assert_refused(run_cli(*train_args(tmp_path / "runs", "-c", config)), tmp_path / "runs",
                   f"{config} is a directory, not a config file")


def test_a_config_that_is_not_utf8_is_refused_naming_the_line(tmp_path: Path, run_cli) -> None:
    config = write(tmp_path / "latin1.yaml", "train:\n  name: caf\xe9\n".encode("latin-1"))
    assert_refused(run_cli(*train_args(tmp_path / "runs", "-c", config)), tmp_path / "runs",
                   f"{config} is not UTF-8 text (byte 0xe9 at line 2); save it as UTF-8")


def test_a_control_character_is_refused_naming_the_file(tmp_path: Path, run_cli) -> None:
    config = write(tmp_path / "nul.yaml", "train:\n  name: a\x00b\n")
    assert_refused(run_cli(*train_args(tmp_path / "runs", "-c", config)), tmp_path / "runs",
                   f"{config} is not valid YAML: unacceptable character #x0000", f'in "{config}"')


@pytest.mark.parametrize("text, fragment", [
    ("train:\n  epochs: 3\n  seed: 1\n  epochs: 5\n", "line 4: duplicate key 'epochs' (first given at line 2)"),
    ("optim:\n  lr: 0.1\noptim:\n  name: sgd\n", "line 3: duplicate key 'optim' (first given at line 1)"),
    ("train: {epochs: 3, epochs: 4}\n", "line 1: duplicate key 'epochs' (first given at line 1)"),
])
def test_duplicate_keys_are_refused_naming_the_key_and_lines(tmp_path: Path, run_cli, text: str,
                                                             fragment: str) -> None:
    """Plain YAML keeps the last value silently: ``epochs: 3`` above would train 5 epochs."""
    config = write(tmp_path / "dup.yaml", text)
    assert_refused(run_cli(*train_args(tmp_path / "runs", "-c", config)), tmp_path / "runs",
                   f"{config}, {fragment}; keep one of them")


def test_a_python_object_tag_is_refused_and_runs_nothing(tmp_path: Path, run_cli) -> None:
    marker = tmp_path / "pwned"
    config = write(tmp_path / "tag.yaml", f"train: !!python/object/apply:os.system ['touch {marker}']\n")
    assert_refused(run_cli(*train_args(tmp_path / "runs", "-c", config)), tmp_path / "runs",
                   f"{config} is not valid YAML: could not determine a constructor for the tag "
                   "'tag:yaml.org,2002:python/object/apply:os.system' at line 1, column 8")
    assert not marker.exists()


def test_extremely_deep_nesting_is_refused(tmp_path: Path, run_cli) -> None:
    """The YAML composer recurses per level; 5000 levels ended in a RecursionError traceback."""
    config = write(tmp_path / "deep.yaml", "model:\n  junk: " + "[" * 5000 + "]" * 5000 + "\n")
    assert_refused(run_cli(*train_args(tmp_path / "runs", "-c", config)), tmp_path / "runs",
                   f"{config}, line 2: values nested more than 64 levels deep")


def test_a_huge_config_file_is_refused_without_parsing_it(tmp_path: Path, run_cli) -> None:
    config = write(tmp_path / "huge.yaml", "model:\n  junk:\n" + "    - 0123456789abcdef\n" * 500_000)
    start = time.monotonic()
    assert_refused(run_cli(*train_args(tmp_path / "runs", "-c", config)), tmp_path / "runs",
                   f"{config} is larger than 1 MiB, too large for a config file")
    assert time.monotonic() - start < 5


def test_a_config_file_without_end_is_refused(tmp_path: Path, run_cli) -> None:
    dev_zero = Path("/dev/zero")
    if not dev_zero.exists():
        pytest.skip("no /dev/zero")
    assert_refused(run_cli(*train_args(tmp_path / "runs", "-c", dev_zero)), tmp_path / "runs",
                   "/dev/zero is larger than 1 MiB")


# ---- 5. more hostile --set values -----------------------------------------------------------------------------

@pytest.mark.parametrize("override", ["=3", "optim.=3", ".lr=3", "train..epochs=3", " . =3"])
def test_set_with_an_empty_key_part_is_refused(tmp_path: Path, run_cli, override: str) -> None:
    assert_refused(run_cli(*train_args(tmp_path / "runs", "--set", override)), tmp_path / "runs",
                   f"bad override '{override}': expected section.key=value")


@pytest.mark.parametrize("override, fragment", [
    ("model.width=[1,", "while parsing a flow node, expected the node content, but found '<stream end>' at line 1"),
    ("model.width=!!python/name:os.system", "could not determine a constructor for the tag"),
    ("model.width=@4", "found character '@' that cannot start any token"),
])
def test_set_values_that_are_not_yaml_are_refused(tmp_path: Path, run_cli, override: str, fragment: str) -> None:
    assert_refused(run_cli(*train_args(tmp_path / "runs", "--set", override)), tmp_path / "runs",
                   f"bad override '{override}': the value is not valid YAML", fragment)


@pytest.mark.parametrize("override, fragment", [
    ("train.epochs=1e309", "config error at train.epochs: got '1e309'; Input should be a valid integer"),
    ("train.epochs=1.0e+309", "config error at train.epochs: got inf; Input should be a finite number"),
])
def test_set_epochs_beyond_float_range_is_refused(tmp_path: Path, run_cli, override: str, fragment: str) -> None:
    assert_refused(run_cli(*train_args(tmp_path / "runs", "--set", override)), tmp_path / "runs", fragment)
