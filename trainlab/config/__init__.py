"""Run configuration: typed sections, layered sources, strict validation.

Sources are applied in order: defaults < YAML file < CLI flags < ``--set section.key=value`` overrides.
Each named section (data, model, optim, sched, loss) carries a registry ``name`` plus the keyword options of
that component; those options are checked against the component's builder signature so that a typo such as
``model.dropuot`` fails before any data is loaded, naming the key, the value and what is allowed.
"""

from __future__ import annotations

import difflib
import logging
import typing
from pathlib import Path
from typing import Any, Callable, Mapping

import yaml
from pydantic import BaseModel, ValidationError

from trainlab.config.sections import (
    DEFAULT_CALLBACKS,
    DataConfig,
    FinetuneConfig,
    LossConfig,
    ModelConfig,
    OptimConfig,
    RunConfig,
    SchedConfig,
    TrainConfig,
    _check_value,
    _NamedSection,
    build_augmentation,
)
from trainlab.config.yaml_source import ConfigError, parse_override, read_yaml
from trainlab.registry import (
    CALLBACKS,
    DATASETS,
    LOSSES,
    MODELS,
    OPTIMIZERS,
    SCHEDULES,
    Registry,
    builder_params,
)

# Flags of `trainlab train` and keyword arguments of `trainlab.train` map onto dotted keys.
FLAG_KEYS: dict[str, str] = {
    "model": "model.name",
    "data": "data.name",
    "epochs": "train.epochs",
    "batch_size": "train.batch_size",
    "lr": "optim.lr",
    "optimizer": "optim.name",
    "device": "train.device",
    "seed": "train.seed",
    "name": "train.name",
    "out": "train.out",
    "init_from": "train.init_from",
    "trust_pickle": "train.trust_pickle",
}

# Keys a builder receives from trainlab itself, never from the config.
_SUPPLIED: dict[str, set[str]] = {
    "model": {"num_classes", "in_channels", "input_size", "num_features"},
    "optim": {"params", "lr", "weight_decay"},
    "sched": {"optimizer", "total_steps", "steps_per_epoch", "base_lr", "warmup"},
    "data": {"seed", "val_fraction"},
    "loss": {"task"},
}
_REGISTRY_OF: dict[str, Registry[Any]] = {
    "data": DATASETS,
    "model": MODELS,
    "optim": OPTIMIZERS,
    "sched": SCHEDULES,
    "loss": LOSSES,
}

logger = logging.getLogger(__name__)


def set_dotted(tree: dict[str, Any], key: str, value: Any) -> None:
    """Set ``tree['a']['b'] = value`` for key ``a.b``, creating intermediate mappings."""
    *parents, leaf = key.split(".")
    node = tree
    for part in parents:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[leaf] = value


def load(
    path: str | Path | None = None,
    flags: Mapping[str, Any] | None = None,
    overrides: list[str] | Mapping[str, Any] | None = None,
    base: Mapping[str, Any] | None = None,
) -> RunConfig:
    """Build a validated RunConfig from (lowest to highest precedence) base, file, flags and overrides."""
    tree: dict[str, Any] = {"callbacks": _deep_copy(DEFAULT_CALLBACKS)}
    _merge(tree, base or {})
    if path is not None:
        _merge(tree, read_yaml(path))
    for flag, value in (flags or {}).items():
        if value is None:
            continue
        if flag not in FLAG_KEYS:
            raise ConfigError(f"unknown flag '{flag}'; flags are: {', '.join(FLAG_KEYS)}")
        _switch_component(tree, FLAG_KEYS[flag], value)
        set_dotted(tree, FLAG_KEYS[flag], str(value) if isinstance(value, Path) else value)
    items = overrides.items() if isinstance(overrides, Mapping) else map(parse_override, overrides or [])
    for key, value in items:
        if value is None and _is_component_option(key):
            _unset(tree, key)
        else:
            set_dotted(tree, key, value)
    return validate(tree)


def _is_component_option(key: str) -> bool:
    """``model.hidden``-like keys: options of the selected component, not fields of the section itself."""
    section, _, option = key.partition(".")
    return section in _REGISTRY_OF and "." not in option and option not in _section_keys(section)


def _unset(tree: dict[str, Any], key: str) -> None:
    """``--set model.hidden=null``: remove the option, so the component's own default applies."""
    section, _, option = key.partition(".")
    if isinstance(tree.get(section), dict):
        tree[section].pop(option, None)


def _switch_component(tree: dict[str, Any], key: str, name: Any) -> None:
    """A flag that picks another component (``--model linear`` over a config for ``mlp``) drops the options the
    new one does not take, with a notice naming them, instead of failing on an option of the old one."""
    section, _, field = key.partition(".")
    options = tree.get(section)
    registry = _REGISTRY_OF.get(section)
    if field != "name" or registry is None or not isinstance(options, dict) or options.get("name") in (None, name):
        return
    own_model = section == "model" and ":" in str(name)  # file.py:Class: none of the old model's options apply
    if name not in registry and not own_model:
        return  # validation names the unknown component
    accepted = set(_section_keys(section)) | (set() if own_model else set(builder_params(registry.get(name))))
    dropped = sorted(option for option in options if option not in accepted)
    for option in dropped:
        del options[option]
    if dropped and own_model:
        logger.info("%s dropped from the config: it was for model '%s'; give %s's own options with "
                    "--set model.KEY=VALUE", ", ".join(f"model.{option}" for option in dropped), options.get("name"),
                    name)
    elif dropped:
        logger.info("%s %s takes no %s; dropped from the config (it was for %s '%s')", section, name,
                    ", ".join(f"{section}.{option}" for option in dropped), section, options.get("name"))


def validate(tree: Mapping[str, Any]) -> RunConfig:
    """Validate a nested mapping into a RunConfig, then check component names and their options.

    Options are returned as their builders' annotations read them (``momentum: 1e-1``, a string in YAML 1.1,
    becomes the float 0.1), so a builder never receives a value of another type than the one that was checked.
    """
    cfg = _model(tree)
    components = {section: _check_component(section, getattr(cfg, section), registry)
                  for section, registry in _REGISTRY_OF.items()}
    callbacks = {name: _check_options(f"callbacks.{name}", f"callback '{name}'",
                                      _lookup(f"callbacks.{name}", CALLBACKS, name), opts, set())
                 for name, opts in cfg.enabled_callbacks().items()}
    if _changed(components, {section: getattr(cfg, section).options() for section in components}) or \
            _changed(callbacks, cfg.enabled_callbacks()):
        data = cfg.model_dump()
        for section, options in components.items():
            data[section].update(options)
        data["callbacks"].update(callbacks)
        cfg = _model(data)
    return cfg


def _model(tree: Mapping[str, Any]) -> RunConfig:
    try:
        return RunConfig.model_validate(tree)
    except ValidationError as err:
        raise ConfigError(_format_validation_error(err)) from None


def _changed(checked: Mapping[str, dict[str, Any]], given: Mapping[str, dict[str, Any]]) -> bool:
    """Whether validation changed any option's value or type (``1`` and ``1.0`` compare equal, so types count)."""
    return any(type(value) is not type(given[group][key]) or value != given[group][key]
               for group, options in checked.items() for key, value in options.items())


def _lookup(key: str, registry: Registry[Any], name: str) -> Any:
    if name == "auto" and registry is LOSSES:
        return None
    if name not in registry:
        raise ConfigError(f"config error at {key}: {registry.unknown_message(name)}")
    return registry.get(name)


def _check_component(section: str, value: _NamedSection, registry: Registry[Any]) -> dict[str, Any]:
    if section == "model" and ":" in value.name:  # an own model, file.py:Class or module:Class (models.custom):
        return value.options()  # its options are checked once the class is loaded, and loading runs its code
    builder = _lookup(f"{section}.name", registry, value.name)
    if builder is None:
        return value.options()
    label = f"{registry.kind} '{value.name}'"
    return _check_options(section, label, builder, value.options(), _SUPPLIED.get(section, set()))


def _check_options(section: str, label: str, builder: Any, options: dict[str, Any],
                   supplied: set[str]) -> dict[str, Any]:
    """Every option must be a keyword of the builder and match its annotation; returns the validated options."""
    params = builder_params(builder)
    allowed = sorted(set(params) - supplied)
    hints = _type_hints(builder)
    checked: dict[str, Any] = {}
    for key, value in options.items():
        if key not in allowed:
            close = difflib.get_close_matches(key, allowed, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            choices = ", ".join(allowed) or "none"
            raise ConfigError(f"config error at {section}.{key}: not an option of {label}{hint}\noptions: {choices}")
        checked[key] = _check_value(f"{section}.{key}", hints[key], value) if key in hints and value is not None \
            else value
    return checked


def check_model_class_options(name: str, model_class: Any, options: dict[str, Any],
                              supplied: tuple[str, ...]) -> dict[str, Any]:
    """An own model's options (``--set model.width=64``) checked against its class's constructor, as a zoo model's
    are against its builder: an unknown key names itself and the allowed ones; values are read as annotated."""
    return _check_options("model", f"model '{name}'", model_class, options, set(supplied))


def _type_hints(fn: Any) -> dict[str, Any]:
    """The annotations of a builder's keywords: a class (a callback) is built by its ``__init__``, whose keywords
    are not the class's own annotations."""
    try:
        return typing.get_type_hints(fn.__init__ if isinstance(fn, type) else fn)
    except (NameError, TypeError):
        return {}


def _format_validation_error(err: ValidationError) -> str:
    lines = []
    for problem in err.errors():
        key = ".".join(str(p) for p in problem["loc"])
        if problem["type"] == "extra_forbidden":
            section = str(problem["loc"][0]) if problem["loc"] else ""
            allowed = _section_keys(section)
            close = difflib.get_close_matches(str(problem["loc"][-1]), allowed, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            lines.append(f"config error at {key}: unknown key{hint}\nallowed keys: {', '.join(allowed)}")
        else:
            lines.append(f"config error at {key}: got {problem.get('input')!r}; {problem['msg']}")
    return "\n".join(lines)


def _section_keys(section: str) -> list[str]:
    field = RunConfig.model_fields.get(section)
    if field is None:
        return list(RunConfig.model_fields)
    annotation = field.annotation
    return list(annotation.model_fields) if isinstance(annotation, type) and issubclass(annotation, BaseModel) else []


def _merge(into: dict[str, Any], new: Mapping[str, Any]) -> None:
    for key, value in new.items():
        if isinstance(value, Mapping) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = _deep_copy(value)


def _deep_copy(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _deep_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_deep_copy(v) for v in value]
    return value


def dump_yaml(cfg: RunConfig, path: str | Path) -> None:
    """Write the resolved config as YAML (sections in declaration order)."""
    Path(path).write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))



def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` → ``{"a.b": 1}``; lists stay values."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, dotted + "."))
        else:
            flat[dotted] = value
    return flat


def differences(old: RunConfig, new: RunConfig) -> list[str]:
    """Human-readable ``key: old → new`` lines for every setting that differs."""
    before, after = flatten(old.to_dict()), flatten(new.to_dict())
    missing = "(unset)"
    return [f"{key}: {before.get(key, missing)!r} → {after.get(key, missing)!r}"
            for key in sorted(set(before) | set(after)) if before.get(key, missing) != after.get(key, missing)]



def load_for_resume(path: str | Path, flags: Mapping[str, Any] | None, overrides: Any, *, safe: tuple[str, ...],
                    force: bool, advice: str,
                    normalize: Callable[[RunConfig], RunConfig] = lambda cfg: cfg) -> RunConfig:
    """The config saved at ``path`` with ``flags``/``overrides`` applied, for continuing a run in place.

    Changes to keys outside ``safe`` (prefixes of settings that cannot make the continuation differ) are refused,
    listed one per line and followed by ``advice``, unless ``force``.  Both configs pass through ``normalize``
    first, so spellings of the same setting (a relative and an absolute path to one folder) are not a change.
    """
    saved = normalize(load(path))
    cfg = normalize(load(path, flags=flags, overrides=overrides))
    changed = [line for line in differences(saved, cfg) if not line.startswith(safe)]
    if changed and not force:
        raise ConfigError(f"cannot resume {Path(path).parent} with a different configuration:\n  "
                          + "\n  ".join(changed) + f"\n{advice}")
    return cfg


__all__ = [
    "ConfigError",
    "DEFAULT_CALLBACKS",
    "DataConfig",
    "FLAG_KEYS",
    "FinetuneConfig",
    "LossConfig",
    "ModelConfig",
    "OptimConfig",
    "RunConfig",
    "SchedConfig",
    "TrainConfig",
    "build_augmentation",
    "check_model_class_options",
    "differences",
    "dump_yaml",
    "flatten",
    "load",
    "load_for_resume",
    "parse_override",
    "read_yaml",
    "set_dotted",
    "validate",
]
