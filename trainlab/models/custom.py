"""Your own ``nn.Module``: a model named by reference instead of by registry name.

A reference is ``path/to/file.py:ClassName`` or ``package.module:ClassName``; a class (or an instance) handed in
from Python is remembered under ``module:ClassName``.  Loading a reference **imports the file or module, which
runs its code**, so this happens only where a user asked for it: a reference typed on the command line or in a
config, or a run directory opened with ``trust_code`` (``--trust-code``).

Every run of an own model records a :class:`ModelSource` (stored by ``rundir`` as ``model_source.json``): what
kind of reference it was, the absolute file path, the module, the class and the file's SHA-256.  Reopening the
run checks the file against that hash before anything is imported, so a changed or missing file is a clear error,
never a model silently different from the one the weights were trained as.

Classes loaded in this process are kept in one table keyed by location, class and hash: a file is executed once
per content, and a run trained in this process reopens without importing again.
"""

from __future__ import annotations

import copy
import hashlib
import importlib
import importlib.util
import inspect
import re
import sys
import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from torch import nn

from trainlab.config import ConfigError, check_model_class_options
from trainlab.models.options import InputSize, normalize_input_size

FILE, MODULE, UNIMPORTABLE = "file", "module", "unimportable"
SUPPLIED = ("num_classes", "in_channels", "input_size")  # passed by trainlab when the constructor accepts them
_DOTTED = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")


class UntrustedCodeError(ValueError):
    """Opening a run would import model code the caller has not said to trust."""


class ModelFileChanged(ValueError):
    """A run's model file is missing or differs from the one it was trained with."""


@dataclass(frozen=True)
class ModelSource:
    """Where an own model's class comes from: enough to find it again and to tell whether it changed."""

    kind: str  # FILE, MODULE or UNIMPORTABLE (a class defined in __main__ or inside a function)
    reference: str  # as in config.yaml's model.name
    class_name: str  # the class's qualified name inside its file or module
    module: str | None = None  # the import path (MODULE, UNIMPORTABLE)
    path: str | None = None  # the absolute file the class is defined in, when there is one
    sha256: str | None = None  # of that file, when it can be imported again
    instance: str | None = None  # trained from an instance handed in: a token for it in the process that trained

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelSource:
        return cls(**{key: data.get(key) for key in
                      ("kind", "reference", "class_name", "module", "path", "sha256", "instance")})

    @property
    def code(self) -> str:
        """What loading it would run, for messages: the file, or the module and its file."""
        if self.kind == FILE:
            return f"the file {self.path}"
        return f"the module {self.module}" + (f" ({self.path})" if self.path else "")

    def key(self) -> tuple[Any, ...]:
        return self.kind, self.path if self.kind == FILE else self.module, self.class_name, self.sha256, self.instance


# ModelSource.key() → the class loaded in this process, or a copy of the instance a run was trained from (an
# instance's constructor arguments are unknown, so only its own architecture fits that run's weights)
_LOADED: dict[tuple[Any, ...], type | nn.Module] = {}


def is_reference(name: str) -> bool:
    """``file.py:Class`` or ``module:Class`` rather than a registry name (registry names have no colon)."""
    return ":" in name


def split_reference(reference: str) -> tuple[str, str, str]:
    """``(kind, file path or module, class name)``; a malformed reference is a ConfigError saying the two forms."""
    target, _, class_name = reference.rpartition(":")
    kind = FILE if target.endswith(".py") or "/" in target or "\\" in target else MODULE
    if not target or not _DOTTED.fullmatch(class_name) or (kind == MODULE and not _DOTTED.fullmatch(target)):
        raise ConfigError(f"model '{reference}' is not a model reference: expected path/to/file.py:ClassName or "
                          "package.module:ClassName (or a registered name, see `trainlab list models`)")
    return kind, target, class_name


def file_sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def resolve(reference: str) -> tuple[type, ModelSource]:
    """The class a reference the user typed names, importing its file or module (which runs that code)."""
    remembered = next((cls for (kind, module, name, _, instance), cls in _LOADED.items()
                       if kind == UNIMPORTABLE and instance is None and f"{module}:{name}" == reference), None)
    if isinstance(remembered, type):
        return remembered, remember(remembered)
    kind, target, class_name = split_reference(reference)
    if kind == FILE:
        path = Path(target).expanduser().resolve()
        if not path.is_file():
            raise FileNotFoundError(f"model file {path} not found (from --model/model.name '{reference}')")
        source = ModelSource(FILE, reference, class_name, path=str(path), sha256=file_sha256(path))
        return _load(source), source
    try:
        module = importlib.import_module(target)
    except ImportError as err:
        raise ConfigError(f"model '{reference}': cannot import module {target} ({err}); is it installed or on "
                          "PYTHONPATH? For a file, write path/to/file.py:ClassName") from None
    path = getattr(module, "__file__", None)
    source = ModelSource(MODULE, reference, class_name, module=target, path=path,
                         sha256=file_sha256(path) if path else None)
    return _load(source), source


def remember(cls: type, instance: nn.Module | None = None) -> ModelSource:
    """The source of a class (or of an instance of it) handed in from Python, kept so runs trained with it reopen
    in this process.

    A class defined in ``__main__`` (a script, a notebook) or inside a function cannot be imported again by
    another process: its source says so, and reopening such a run elsewhere needs the class passed again.  An
    instance is kept as a copy (its constructor arguments are unknown): elsewhere, pass one built the same way.
    """
    _check_module_class(cls, f"model {cls!r}")
    module_name, class_name = cls.__module__, cls.__qualname__
    module = sys.modules.get(module_name)
    path = getattr(module, "__file__", None)
    loaded_from_file = next((key for key, known in _LOADED.items() if known is cls and key[0] == FILE), None)
    if loaded_from_file is not None:
        source = ModelSource(FILE, f"{loaded_from_file[1]}:{class_name}", class_name, path=loaded_from_file[1],
                             sha256=loaded_from_file[3])
    elif module_name == "__main__" or "<locals>" in class_name or _attribute(module, class_name) is not cls:
        source = ModelSource(UNIMPORTABLE, f"{module_name}:{class_name}", class_name, module=module_name, path=path)
    else:
        source = ModelSource(MODULE, f"{module_name}:{class_name}", class_name, module=module_name, path=path,
                             sha256=file_sha256(path) if path else None)
    if instance is not None:
        source = replace(source, instance=uuid.uuid4().hex[:12])
    _LOADED[source.key()] = cls if instance is None else copy.deepcopy(instance)
    return source


def adopt(source: ModelSource, model: type | nn.Module) -> None:
    """Use ``model`` (a class, or an instance to copy) for runs recorded with ``source`` in this process: the
    caller handed it in for such a run, which then reopens here without importing anything."""
    _check_module_class(model if isinstance(model, type) else type(model), f"model {model!r}")
    _LOADED[source.key()] = copy.deepcopy(model) if isinstance(model, nn.Module) else model


def load_recorded(source: ModelSource, *, trust: bool, run: str | Path) -> type | nn.Module:
    """The class a run was trained with (or a copy of the instance it was trained from, in the process that did):
    its file checked against the recorded hash first; imported only when ``trust`` (a class already loaded in this
    process with the same hash is used without importing again)."""
    short = source.class_name.split(".")[-1]
    if source.instance is not None:
        return copy.deepcopy(_loaded_in_this_process(source, (
            f"run {run} was trained with an instance of {source.class_name} handed in from Python, whose "
            "constructor arguments trainlab cannot know; pass one built the same way: "
            f"trainlab.load_run('{run}', model={short}(...))")))
    if source.kind == UNIMPORTABLE:
        return _loaded_in_this_process(source, (
            f"run {run} was trained with {source.class_name}, a class defined in {source.module} (a script, a "
            "notebook or a function), which cannot be imported again; from Python, pass the class: "
            f"trainlab.load_run('{run}', model={short})"))
    if source.path is None:
        raise UntrustedCodeError(f"run {run} records module {source.module} without a file to check; "
                                 f"pass the class from Python: trainlab.load_run('{run}', model=...)")
    path = Path(source.path)
    if not path.is_file():
        raise ModelFileChanged(f"model file {path} of run {run} is missing (trained with SHA-256 {source.sha256}); "
                               "put the file back, or pass the class from Python: trainlab.load_run(..., model=...)")
    now = file_sha256(path)
    if now != source.sha256:
        raise ModelFileChanged(f"model file {path} changed since run {run} was trained: SHA-256 was "
                               f"{source.sha256}, is now {now}; restore that version of the file (or train again)")
    known = _LOADED.get(source.key())
    if known is not None:
        return known
    if not trust:
        raise UntrustedCodeError(f"run {run} uses its own model {source.class_name}: opening it would run "
                                 f"{source.code}. Only if you trust that code, add --trust-code "
                                 "(Python: trust_code=True)")
    return _load(source)


def _loaded_in_this_process(source: ModelSource, unavailable: str) -> type | nn.Module:
    """What this process loaded or was handed for ``source``; ``unavailable`` is the error when it has nothing."""
    known = _LOADED.get(source.key())
    if known is None:
        raise UntrustedCodeError(unavailable)
    return known


def _load(source: ModelSource) -> type:
    """Import the class a source names (running its code) and keep it under the source's key."""
    known = _LOADED.get(source.key())
    if isinstance(known, type):
        return known
    if source.kind == FILE:
        module = _import_file(Path(str(source.path)), str(source.sha256))
    else:
        module = importlib.import_module(str(source.module))
        if source.path and getattr(module, "__file__", None) != source.path:
            raise ModelFileChanged(f"module {source.module} now imports from {module.__file__}, not from "
                                   f"{source.path} the run was trained with")
    cls = _attribute(module, source.class_name)
    if cls is None:
        names = sorted(n for n, v in vars(module).items() if isinstance(v, type) and issubclass(v, nn.Module)
                       and v.__module__ == module.__name__)
        raise ConfigError(f"model '{source.reference}': {source.code} defines no class {source.class_name}; "
                          f"nn.Module classes there: {', '.join(names) or 'none'}")
    _check_module_class(cls, f"model '{source.reference}'")
    _LOADED[source.key()] = cls
    return cls


def _import_file(path: Path, sha256: str) -> Any:
    """Execute a Python file as a module of its own (named after its hash, so two versions never collide)."""
    name = f"trainlab_own_model_{path.stem}_{sha256[:12]}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ConfigError(f"cannot load model file {path}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickling look the module up by name
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def _attribute(module: Any, qualname: str) -> Any:
    value = module
    for part in qualname.split("."):
        value = getattr(value, part, None)
    return value


def _check_module_class(cls: Any, label: str) -> None:
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise ConfigError(f"{label} is not an nn.Module subclass (got {type(cls).__name__} {cls!r})")


def check_options(cls: type, name: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """The options read as the constructor annotates them; an unknown one, or a constructor keyword without a
    default that neither trainlab nor the options supply, is a ConfigError naming it."""
    checked = check_model_class_options(name, cls, dict(options), SUPPLIED)
    missing = [key for key, p in inspect.signature(cls).parameters.items()
               if p.default is p.empty and key not in checked and key not in SUPPLIED
               and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    if missing:
        raise ConfigError(f"model '{name}' needs {', '.join(f'model.{key}' for key in missing)} (its constructor "
                          f"has no default); add e.g. --set model.{missing[0]}=VALUE")
    return checked


def build(cls: type, name: str, *, num_classes: int, in_channels: int, input_size: InputSize = None,
          options: Mapping[str, Any] | None = None) -> nn.Module:
    """``cls(**options)`` plus ``num_classes``/``in_channels``/``input_size`` where its constructor takes them;
    options are checked against the constructor as a zoo model's are against its builder."""
    checked = check_options(cls, name, options or {})
    params = inspect.signature(cls).parameters
    supplied = {"num_classes": num_classes, "in_channels": in_channels,
                "input_size": normalize_input_size(input_size)}
    model = cls(**{key: value for key, value in supplied.items() if key in params}, **checked)
    _check_module_class(type(model), f"model '{name}'")
    return model


def create(reference: str, *, num_classes: int, in_channels: int, input_size: InputSize = None,
           **options: Any) -> nn.Module:
    """Build the model a typed reference names (importing its file or module: this runs its code)."""
    cls, _ = resolve(reference)
    return build(cls, reference, num_classes=num_classes, in_channels=in_channels, input_size=input_size,
                 options=options)
