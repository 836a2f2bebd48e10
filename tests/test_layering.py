"""Layering of the ``trainlab`` package (the checker is in ``tests/layering_check.py``), and self-tests of the
checker on tiny synthetic packages."""

from __future__ import annotations

import textwrap
from pathlib import Path

from tests.layering_check import LayeringReport, PACKAGE, PACKAGE_ROOT, check_layering


# --------------------------------------------------------------------------------------------------------------
# The real package


def test_package_is_layered() -> None:
    report = check_layering(PACKAGE_ROOT)
    assert len(report.modules) > 1, f"no modules found under {PACKAGE_ROOT}"
    assert not report.problems, report.format()


# --------------------------------------------------------------------------------------------------------------
# Self-tests of the checker on tiny synthetic packages

CLEAN = {
    "__init__.py": "from trainlab.version import __version__\nfrom trainlab.cli import main\n",
    "__main__.py": "import trainlab\nfrom trainlab.cli import main\n",
    "version.py": '__version__ = "0"\n',
    "registry.py": "",
    "config.py": "from trainlab.registry import REGISTRIES\n",
    "data/__init__.py": "from . import bundle\nfrom .vision import load\n",
    "data/bundle.py": "from trainlab import config\n",
    "data/vision.py": "from trainlab.data.bundle import Bundle\nfrom ..config import Config\n",
    "models/__init__.py": "from trainlab.registry import REGISTRIES\n",
    "engine/__init__.py": "from .trainer import Trainer\n",
    "engine/trainer.py": "import trainlab.data.vision\nfrom trainlab.models import create\n",
    "engine/callbacks/__init__.py": "from .base import Callback\n",
    "engine/callbacks/base.py": (
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from trainlab.engine.trainer import Trainer\n"
    ),
    "cli/__init__.py": (
        "import importlib\n"
        "from trainlab.engine import trainer\n"
        "def main():\n"
        "    from trainlab.version import __version__\n"
        "    importlib.import_module('trainlab.engine.callbacks')\n"
    ),
}


def make_package(tmp_path: Path, changes: dict[str, str | None] | None = None) -> Path:
    """Write ``CLEAN`` with ``changes`` applied (``None`` deletes a file) to ``tmp_path/trainlab``."""
    files: dict[str, str | None] = {**CLEAN, **(changes or {})}
    root = tmp_path / PACKAGE
    for rel, text in files.items():
        if text is None:
            continue
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(textwrap.dedent(text), encoding="utf-8")
    return root


def targets(report: LayeringReport, source: str) -> set[str]:
    return {e.target for e in report.edges if e.source == source}


def test_clean_package_passes(tmp_path: Path) -> None:
    report = check_layering(make_package(tmp_path))
    assert report.problems == [], report.format()
    assert report.format() == "layering OK"
    # The imports were all seen (module level, function level, TYPE_CHECKING, relative, import_module).
    assert targets(report, "trainlab.cli") == {
        "trainlab.engine.trainer",
        "trainlab.version",
        "trainlab.engine.callbacks",
    }
    assert targets(report, "trainlab.engine.callbacks.base") == {"trainlab.engine.trainer"}
    assert targets(report, "trainlab.data") == {"trainlab.data.bundle", "trainlab.data.vision"}
    assert targets(report, "trainlab.data.vision") == {"trainlab.data.bundle", "trainlab.config"}
    assert targets(report, "trainlab.engine.trainer") == {"trainlab.data.vision", "trainlab.models"}
    assert targets(report, "trainlab.data.bundle") == {"trainlab.config"}
    assert targets(report, "trainlab.__main__") == {"trainlab", "trainlab.cli"}


def test_upward_import_at_module_level_is_caught(tmp_path: Path) -> None:
    root = make_package(
        tmp_path, {"config.py": "from trainlab.registry import REGISTRIES\nimport trainlab.engine.trainer\n"}
    )
    report = check_layering(root)
    assert report.violations == [
        "trainlab/config.py:2 imports trainlab.engine.trainer (layer 'engine' is above 'config'): trainlab.config "
        "is in layer 1 and may import only its own unit and layers below 1, but 'engine' is layer 3; move the "
        "shared code down to layer 1 or lower, or pass it in from above"
    ]
    # trainlab.engine.trainer -> trainlab.data.vision -> trainlab.config -> trainlab.engine.trainer
    assert report.cycles == [
        ["trainlab.config", "trainlab.engine.trainer", "trainlab.data.vision", "trainlab.config"],
        # the shortest cycle through trainlab.data.bundle, the other module of the same knot
        [
            "trainlab.config",
            "trainlab.engine.trainer",
            "trainlab.data.vision",
            "trainlab.data.bundle",
            "trainlab.config",
        ],
    ]


def test_upward_import_inside_function_is_caught(tmp_path: Path) -> None:
    root = make_package(tmp_path, {"models/__init__.py": "def create():\n    from trainlab.cli import main\n"})
    report = check_layering(root)
    assert len(report.violations) == 1
    assert report.violations[0].startswith(
        "trainlab/models/__init__.py:2 imports trainlab.cli (layer 'cli' is above 'models'): "
    )


def test_upward_import_under_type_checking_is_caught(tmp_path: Path) -> None:
    root = make_package(
        tmp_path,
        {
            "registry.py": (
                "from typing import TYPE_CHECKING\n"
                "if TYPE_CHECKING:\n"
                "    from trainlab.config import Config\n"
            )
        },
    )
    report = check_layering(root)
    assert len(report.violations) == 1
    assert report.violations[0].startswith(
        "trainlab/registry.py:3 imports trainlab.config (layer 'config' is above 'registry'): "
    )
    assert report.cycles == [["trainlab.config", "trainlab.registry", "trainlab.config"]]


def test_relative_imports_resolve_for_packages_and_modules(tmp_path: Path) -> None:
    root = make_package(
        tmp_path,
        {
            "engine/callbacks/__init__.py": (
                "from .base import Callback\nfrom .. import trainer\nfrom ...data import bundle\n"
            ),
            "engine/callbacks/base.py": (
                "from . import checkpoint\nfrom ..trainer import Trainer\nfrom ...models import create\n"
            ),
            "engine/callbacks/checkpoint.py": "from .. import *\n",
        },
    )
    report = check_layering(root)
    assert report.problems == [], report.format()
    assert targets(report, "trainlab.engine.callbacks") == {
        "trainlab.engine.callbacks.base",
        "trainlab.engine.trainer",
        "trainlab.data.bundle",
    }
    assert targets(report, "trainlab.engine.callbacks.base") == {
        "trainlab.engine.callbacks.checkpoint",
        "trainlab.engine.trainer",
        "trainlab.models",
    }
    assert targets(report, "trainlab.engine.callbacks.checkpoint") == {"trainlab.engine"}


def test_relative_upward_import_is_caught(tmp_path: Path) -> None:
    root = make_package(
        tmp_path,
        {
            "data/vision.py": "from ..engine.trainer import Trainer\n",  # plain module: '..' is trainlab
            "data/__init__.py": "from .. import rundir\n",  # __init__: '.' is trainlab.data, '..' is trainlab
            "rundir.py": "",
        },
    )
    report = check_layering(root)
    assert [v.split(": ")[0] for v in report.violations] == [
        "trainlab/data/__init__.py:1 imports trainlab.rundir (layer 'rundir' is above 'data')",
        "trainlab/data/vision.py:1 imports trainlab.engine.trainer (layer 'engine' is above 'data')",
    ]
    assert report.cycles == [["trainlab.data.vision", "trainlab.engine.trainer", "trainlab.data.vision"]]


def test_relative_import_above_the_package_is_an_error(tmp_path: Path) -> None:
    report = check_layering(make_package(tmp_path, {"config.py": "from ... import x\n"}))
    assert report.errors == [
        "trainlab/config.py:1 has a relative import (...) that goes above the top package 'trainlab': "
        "use an absolute import"
    ]


def test_version_from_top_package_is_caught(tmp_path: Path) -> None:
    root = make_package(tmp_path, {"registry.py": "def stamp():\n    from trainlab import __version__\n"})
    report = check_layering(root)
    assert report.violations == [
        "trainlab/registry.py:2 imports trainlab (layer '<package>' is above 'registry'): "
        "trainlab.registry is in layer 0 and may import only its own unit and layers below 0, but '<package>' "
        "is layer 13; move the shared code down to layer 0 or lower, or pass it in from above; import __version__ "
        "from the defining submodule instead of the top package (e.g. trainlab.version)"
    ]
    # trainlab/__init__.py imports trainlab.cli, which reaches trainlab.registry, which imports trainlab again
    assert report.cycles[0] == [
        "trainlab", "trainlab.cli", "trainlab.engine.trainer", "trainlab.models", "trainlab.registry", "trainlab"
    ]


def test_sibling_import_is_caught(tmp_path: Path) -> None:
    root = make_package(tmp_path, {"data/bundle.py": "from trainlab.models import create\n"})
    report = check_layering(root)
    assert report.violations == [
        "trainlab/data/bundle.py:1 imports trainlab.models (layer 'models' is beside 'data'): "
        "'data' and 'models' are siblings in layer 2 (data, models, optim, losses) and must not import each "
        "other; move the shared code down into a lower layer"
    ]
    assert report.cycles == []


def test_cycle_inside_one_unit_is_caught_with_its_path(tmp_path: Path) -> None:
    root = make_package(
        tmp_path,
        {
            "engine/a.py": "from trainlab.engine import b\n",
            "engine/b.py": "import trainlab.engine.c\n",
            "engine/c.py": "def late():\n    from . import a\n",
        },
    )
    report = check_layering(root)
    assert report.violations == []  # same unit: allowed by the layer rule ...
    assert report.cycles == [["trainlab.engine.a", "trainlab.engine.b", "trainlab.engine.c", "trainlab.engine.a"]]
    assert report.cycle_messages == [  # ... but not in a circle
        "import cycle: trainlab.engine.a -> trainlab.engine.b -> trainlab.engine.c -> trainlab.engine.a "
        "(trainlab/engine/a.py:1 imports trainlab.engine.b, trainlab/engine/b.py:1 imports trainlab.engine.c, "
        "trainlab/engine/c.py:2 imports trainlab.engine.a): break it by moving the shared code into a module "
        "that none of them imports, or by inverting one import"
    ]


def test_unplaced_module_is_caught(tmp_path: Path) -> None:
    root = make_package(tmp_path, {"run_summary.py": "from trainlab import config\n"})
    report = check_layering(root)
    assert report.unplaced == [
        "trainlab/run_summary.py: module trainlab.run_summary belongs to no layer (unit 'run_summary' is not in "
        "LAYERS): move it into an existing unit, or add 'run_summary' to LAYERS in tests/layering_check.py and "
        "docs/architecture.md"
    ]
    assert report.violations == []


def test_all_problems_are_listed_at_once(tmp_path: Path) -> None:
    root = make_package(
        tmp_path,
        {
            "config.py": "import trainlab.cli\n",
            "data/bundle.py": "from trainlab.models import create\n",
            "predict_table.py": "",
            "registry.py": "def f(:\n",
        },
    )
    report = check_layering(root)
    text = report.format()
    assert text.startswith(
        "6 layering problem(s): 2 upward/sideways import(s), 2 import cycle(s), 1 module(s) in no layer, "
        "1 other error(s)."
    )
    assert "trainlab/config.py:1 imports trainlab.cli (layer 'cli' is above 'config')" in text
    assert "trainlab/data/bundle.py:1 imports trainlab.models (layer 'models' is beside 'data')" in text
    assert "module trainlab.predict_table belongs to no layer" in text
    assert "trainlab/registry.py:1 cannot be parsed (SyntaxError" in text
    assert report.cycles == [
        ["trainlab.cli", "trainlab.engine.trainer", "trainlab.data.vision", "trainlab.config", "trainlab.cli"],
        # through the import_module() call in cli and the TYPE_CHECKING import in callbacks.base
        ["trainlab.cli", "trainlab.engine.callbacks", "trainlab.engine.callbacks.base", "trainlab.engine.trainer",
         "trainlab.data.vision", "trainlab.config", "trainlab.cli"],
    ]
    assert "import cycle: trainlab.cli -> trainlab.engine.trainer -> trainlab.data.vision -> trainlab.config -> " \
        "trainlab.cli (trainlab/cli/__init__.py:2 imports trainlab.engine.trainer, " in text
