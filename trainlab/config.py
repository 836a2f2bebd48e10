"""Run configuration: typed sections, layered sources, strict validation.

Sources are applied in order: defaults < YAML file < CLI flags < ``--set section.key=value`` overrides.
Each named section (data, model, optim, sched, loss) carries a registry ``name`` plus the keyword options of
that component; those options are checked against the component's builder signature so that a typo such as
``model.dropuot`` fails before any data is loaded, naming the key, the value and what is allowed.
"""

from __future__ import annotations

import dataclasses
import difflib
import typing
from pathlib import Path
from typing import Any, Literal, Mapping

import yaml
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator

from trainlab.registry import (
    AUGMENTATIONS,
    CALLBACKS,
    DATASETS,
    LOSSES,
    MODELS,
    OPTIMIZERS,
    SCHEDULES,
    Registry,
    builder_params,
)


class ConfigError(ValueError):
    """A configuration problem, reported before training starts."""


def build_augmentation(spec: Any) -> Any:
    """One ``data.augment`` spec (``"hflip"`` or ``{"crop": {"padding": 4}}``) → its validated transform.

    The transform classes live in :mod:`trainlab.data.transforms` and register in ``AUGMENTATIONS``; building them
    here lets the config reject a bad spec before any data is loaded, without the config importing the data layer.
    """
    if isinstance(spec, str):
        name, options = spec, {}
    elif isinstance(spec, dict) and len(spec) == 1:
        name, options = next(iter(spec.items()))
        options = options or {}
    else:
        raise ValueError(f"data.augment: each entry is a name or {{name: {{options}}}}, got {spec!r}")
    if name not in AUGMENTATIONS:
        raise ValueError(f"data.augment: unknown transform '{name}'; choices: {', '.join(AUGMENTATIONS.names())}")
    cls = AUGMENTATIONS.get(name)
    allowed = [f.name for f in dataclasses.fields(cls)]
    if not isinstance(options, dict) or set(options) - set(allowed):
        raise ValueError(f"data.augment: bad options {options!r} for '{name}'; options: {', '.join(allowed) or 'none'}")
    try:
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in options.items()})
    except TypeError as err:
        raise ValueError(f"data.augment: bad option value for '{name}' ({err}); options: {', '.join(allowed)}") from None


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


class _NamedSection(_Section):
    """A section that selects a registered component by ``name`` and passes the other keys to its builder."""

    model_config = ConfigDict(extra="allow", frozen=True, validate_default=True)
    name: str

    def options(self) -> dict[str, Any]:
        """The component-specific keyword options (everything but ``name``)."""
        return dict(self.model_extra or {})


class DataConfig(_NamedSection):
    name: str = "digits"
    val_fraction: float = Field(0.1, ge=0.0, lt=1.0)
    loader: Literal["auto", "device", "torch"] = "auto"
    num_workers: int = Field(0, ge=0)
    augment: list[str | dict[str, Any]] = Field(default_factory=list, description="training augmentation specs")

    @field_validator("augment")
    @classmethod
    def _known_transforms(cls, value: list[Any]) -> list[Any]:
        for spec in value:
            build_augmentation(spec)
        return value


class ModelConfig(_NamedSection):
    name: str = "simple-cnn"


class OptimConfig(_NamedSection):
    name: str = "adam"
    lr: float = Field(1e-3, gt=0.0)
    weight_decay: float = Field(0.0, ge=0.0)
    l1: float = Field(0.0, ge=0.0, description="L1 penalty strength on the weights (not biases/norm), added to the loss")
    no_decay_norm_bias: bool = Field(False, description="exclude biases and normalization parameters from decay")
    head_lr_mult: float = Field(1.0, gt=0.0, description="LR multiplier for the last Linear layer (fine-tuning)")


class SchedConfig(_NamedSection):
    name: str = "constant"
    warmup: int = Field(0, ge=0, description="linear warmup optimizer steps before the schedule")
    warmup_epochs: float = Field(0.0, ge=0.0, description="linear warmup in epochs (instead of warmup)")


class LossConfig(_NamedSection):
    name: str = "auto"


class TrainConfig(_Section):
    epochs: int = Field(10, ge=1)
    batch_size: int | Literal["auto"] = Field(64, description="examples per batch, or auto: the largest that fits "
                                              "in memory (probed before training, at most max_batch_size)")
    max_batch_size: int = Field(1024, ge=1, description="upper bound for batch_size=auto")
    device: str = "auto"
    precision: Literal["auto", "fp32", "bf16", "fp16"] = Field("auto", description="autocast dtype (auto: bf16 on "
                                                               "CUDA, fp32 elsewhere; bf16 also on AVX-512 CPUs)")
    seed: int = 0
    deterministic: bool = False
    name: str | None = None
    out: str = "runs"
    log_every: int = Field(20, ge=1, description="steps between metric reads (each read syncs the device)")
    threads: int | None = Field(None, ge=1, description="CPU threads for torch (None: one per core, fewer when other "
                                "processes already keep the cores busy, where idle threads would spin and stall)")
    clip_grad_norm: float | None = Field(None, gt=0.0, description="rescale gradients to this global L2 norm at most")
    clip_grad_value: float | None = Field(None, gt=0.0, description="clamp every gradient entry to ±this value")
    accumulate: int = Field(1, ge=1, description="batches whose gradients are summed per optimizer step")
    ema: float | None = Field(None, gt=0.0, lt=1.0, description="decay of an exponential moving average of weights")
    mixup: float = Field(0.0, ge=0.0, description="mixup Beta(alpha, alpha) parameter; 0 disables")
    cutmix: float = Field(0.0, ge=0.0, description="cutmix Beta(alpha, alpha) parameter; 0 disables")
    mix_prob: float = Field(1.0, ge=0.0, le=1.0, description="probability that a batch is mixed (mixup/cutmix)")
    compile: bool | Literal["auto"] = Field("auto", description="torch.compile the model (auto: CUDA, long runs)")
    channels_last: bool | Literal["auto"] = Field("auto", description="channels-last weights (auto: conv nets on CUDA and CPU)")
    fused: bool | Literal["auto"] = Field("auto", description="fused optimizer kernels for sgd/adam/adamw (auto: CUDA)")
    tta_flip: bool = Field(False, description="evaluate on the average logits of each image and its left-right mirror")
    init_from: str | None = Field(None, description="start from these weights: a run or checkpoint directory, "
                                  ".safetensors, or a .pth/.pt state dict (fine-tuning)")
    trust_pickle: bool = Field(False, description="allow init_from to unpickle a full .pth (runs code from the file)")

    @field_validator("batch_size", mode="before")
    @classmethod
    def _positive_batch(cls, value: Any) -> int | str:
        """One clear message for every bad value (a union type would report each alternative separately)."""
        if value == "auto":
            return value
        try:
            number = int(value)
        except (TypeError, ValueError):
            number = 0
        if isinstance(value, bool) or number < 1 or number != value and str(number) != str(value).strip():
            raise ValueError("batch_size must be a positive integer or auto")
        return number

    @field_validator("device")
    @classmethod
    def _known_device(cls, value: str) -> str:
        kind = value.split(":", 1)[0]
        if kind not in ("auto", "cpu", "cuda", "mps"):
            raise ValueError("device must be auto, cpu, cuda, cuda:N or mps")
        return value


DEFAULT_CALLBACKS: dict[str, dict[str, Any]] = {
    "progress": {},
    "csv_logger": {},
    "checkpoint": {},
    "nan_guard": {},
    "plot_curves": {},
}


class RunConfig(_Section):
    """The whole run: one frozen, validated object saved as ``config.yaml`` in the run directory."""

    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    optim: OptimConfig = OptimConfig()
    sched: SchedConfig = SchedConfig()
    loss: LossConfig = LossConfig()
    train: TrainConfig = TrainConfig()
    callbacks: dict[str, dict[str, Any] | None] = Field(default_factory=lambda: dict(DEFAULT_CALLBACKS))

    def to_dict(self) -> dict[str, Any]:
        """Plain data (JSON/YAML-safe), extras included."""
        return self.model_dump(mode="json")

    def enabled_callbacks(self) -> dict[str, dict[str, Any]]:
        """Callbacks to build, with their options; a callback set to ``null`` is switched off."""
        return {name: dict(opts) for name, opts in self.callbacks.items() if opts is not None}


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


def parse_override(text: str) -> tuple[str, Any]:
    """Split ``section.key=value``; the value is read as YAML so numbers, lists and booleans keep their type."""
    key, sep, raw = text.partition("=")
    if not sep or "." not in key:
        raise ConfigError(f"bad override '{text}': expected section.key=value, e.g. optim.lr=0.05")
    return key.strip(), yaml.safe_load(raw) if raw.strip() else ""


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


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a config file; it must hold a mapping of sections."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        content = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{path} is not valid YAML: {err}") from None
    if not isinstance(content, dict):
        raise ConfigError(f"{path} must hold a mapping of sections (data, model, optim, ...), got {type(content).__name__}")
    return content


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
        set_dotted(tree, FLAG_KEYS[flag], str(value) if isinstance(value, Path) else value)
    items = overrides.items() if isinstance(overrides, Mapping) else map(parse_override, overrides or [])
    for key, value in items:
        set_dotted(tree, key, value)
    return validate(tree)


def validate(tree: Mapping[str, Any]) -> RunConfig:
    """Validate a nested mapping into a RunConfig, then check component names and their options."""
    try:
        cfg = RunConfig.model_validate(tree)
    except ValidationError as err:
        raise ConfigError(_format_validation_error(err)) from None
    for section, registry in _REGISTRY_OF.items():
        _check_component(section, getattr(cfg, section), registry)
    for name, opts in cfg.enabled_callbacks().items():
        _check_options(f"callbacks.{name}", f"callback '{name}'", _lookup(f"callbacks.{name}", CALLBACKS, name), opts, set())
    return cfg


def _lookup(key: str, registry: Registry[Any], name: str) -> Any:
    if name == "auto" and registry is LOSSES:
        return None
    if name not in registry:
        raise ConfigError(f"config error at {key}: {registry.unknown_message(name)}")
    return registry.get(name)


def _check_component(section: str, value: _NamedSection, registry: Registry[Any]) -> None:
    builder = _lookup(f"{section}.name", registry, value.name)
    if builder is not None:
        label = f"{registry.kind} '{value.name}'"
        _check_options(section, label, builder, value.options(), _SUPPLIED.get(section, set()))


def _check_options(section: str, label: str, builder: Any, options: dict[str, Any], supplied: set[str]) -> None:
    """Every option must be a keyword of the builder and match its annotation."""
    params = builder_params(builder)
    allowed = sorted(set(params) - supplied)
    hints = _type_hints(builder)
    for key, value in options.items():
        if key not in allowed:
            close = difflib.get_close_matches(key, allowed, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            choices = ", ".join(allowed) or "none"
            raise ConfigError(f"config error at {section}.{key}: not an option of {label}{hint}\noptions: {choices}")
        if key in hints and value is not None:
            try:
                TypeAdapter(hints[key]).validate_python(value, strict=False)
            except ValidationError as err:
                reason = err.errors()[0]["msg"]
                raise ConfigError(f"config error at {section}.{key}: got {value!r}; {reason}") from None


def _type_hints(fn: Any) -> dict[str, Any]:
    try:
        return typing.get_type_hints(fn)
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
                    force: bool, advice: str) -> RunConfig:
    """The config saved at ``path`` with ``flags``/``overrides`` applied, for continuing a run in place.

    Changes to keys outside ``safe`` (prefixes of settings that cannot make the continuation differ) are refused,
    listed one per line and followed by ``advice``, unless ``force``.
    """
    saved = load(path)
    cfg = load(path, flags=flags, overrides=overrides)
    changed = [line for line in differences(saved, cfg) if not line.startswith(safe)]
    if changed and not force:
        raise ConfigError(f"cannot resume {Path(path).parent} with a different configuration:\n  "
                          + "\n  ".join(changed) + f"\n{advice}")
    return cfg
