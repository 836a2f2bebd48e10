"""The typed sections of a run configuration, each field validated (finite numbers, ranges, known values).

:mod:`trainlab.config` loads, merges and checks component options against registries; this module only says
what a valid config looks like.
"""

from __future__ import annotations

import dataclasses
import inspect
import typing
from types import UnionType
from typing import Any, Literal

from pydantic import (BaseModel, ConfigDict, Field, PydanticUserError, TypeAdapter, ValidationError, field_validator,
                      model_validator)

from trainlab.config.yaml_source import ConfigError
from trainlab.registry import AUGMENTATIONS

# Seeds go to numpy (unsigned 32 bit for the legacy global seed) and torch (unsigned 64 bit, after the loaders
# multiply the seed by 100003); this range is the one every consumer takes unchanged.
SEED_MAX = 2**32 - 1
# One rule for every number a config holds: inf and nan are never a sensible learning rate, probability, decay or
# strength, and a model trained with one is silently destroyed.  Used by every section and, through
# ``_finite_adapter``, by the options checked against builder signatures and augmentation fields.
_FINITE = ConfigDict(allow_inf_nan=False)


def _finite_adapter(hint: Any) -> TypeAdapter[Any]:
    """A validator for ``hint`` that refuses inf and nan wherever the type holds a float."""
    try:
        return TypeAdapter(hint, config=_FINITE)
    except PydanticUserError:  # a model or dataclass type brings its own config
        return TypeAdapter(hint)


def _admits_bool(hint: Any) -> bool:
    """Whether a type hint takes ``True``/``False`` as themselves (``bool``, ``Any``, or a union holding one)."""
    if hint is bool or hint is Any or hint is inspect.Parameter.empty:
        return True
    return any(_admits_bool(arg) for arg in typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, UnionType))


def _check_value(key: str, hint: Any, value: Any) -> Any:
    """``value`` validated against ``hint`` (the text ``"1e-3"`` becomes ``0.001``); ConfigError naming ``key``.

    A bare ``true``/``false`` is refused where a number is expected: lax validation would turn ``data.size=true``
    into a 1x1 image without a word."""
    if isinstance(value, bool) and not _admits_bool(hint):
        raise ConfigError(f"config error at {key}: got {value!r}, which is not a valid value here (expected {hint})")
    try:
        checked = _finite_adapter(hint).validate_python(value, strict=False)
    except ValidationError as err:
        raise ConfigError(f"config error at {key}: got {value!r}; {err.errors()[0]['msg']}") from None
    plain = (bool, int, float, str, list, tuple, dict, type(None))
    return checked if isinstance(checked, plain) else value  # never hand a builder a lazy validator object


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
    hints = typing.get_type_hints(cls)  # a dataclass: its fields are the class annotations
    try:
        values = {k: _check_value(f"data.augment.{name}.{k}", hints[k], v) if k in hints else v
                  for k, v in options.items()}
    except ConfigError as err:
        raise ValueError(str(err).removeprefix("config error at ")) from None
    try:
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})
    except TypeError as err:
        raise ValueError(f"data.augment: bad option value for '{name}' ({err}); options: {', '.join(allowed)}") from None


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True, **_FINITE)


class _NamedSection(_Section):
    """A section that selects a registered component by ``name`` and passes the other keys to its builder."""

    model_config = ConfigDict(extra="allow", frozen=True, validate_default=True, **_FINITE)
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
    seed: int = Field(0, description=f"random seed, 0 to {SEED_MAX}")
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
    test_each_epoch: bool = Field(False, description="also evaluate the test split after each epoch, into metrics.csv "
                                  "and the curves (test_* columns); recorded only, never used to select anything")
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

    @field_validator("seed")
    @classmethod
    def _seed_in_range(cls, value: int) -> int:
        """numpy refuses a negative seed only when the data is split, after the run directory exists."""
        if not 0 <= value <= SEED_MAX:
            raise ValueError(f"the seed must be an integer from 0 to {SEED_MAX}")
        return value

    @field_validator("device")
    @classmethod
    def _known_device(cls, value: str) -> str:
        kind = value.split(":", 1)[0]
        if kind not in ("auto", "cpu", "cuda", "mps"):
            raise ValueError("device must be auto, cpu, cuda, cuda:N or mps")
        return value


class FinetuneConfig(_Section):
    """Transfer learning after ``train.init_from``: what trains, at which LR (docs/transfer.md).

    The defaults train every parameter at the configured LR, exactly as a run without this section.  A "block" is a
    top-level child of the model that holds parameters (``nn.ModuleDict``/``nn.ModuleList`` children count item by
    item), in the order the model defines them; the "head" is the last ``nn.Linear``.
    """

    mode: Literal["all", "last", "head"] = Field("all", description="train all parameters, the last N blocks, or "
                                                 "only the head")
    last: int | None = Field(None, ge=1, description="mode=last: how many of the model's last blocks train")
    freeze: list[str] = Field(default_factory=list, description="parameter-name glob patterns to freeze as well, "
                              "e.g. '0.*'")
    bn: Literal["frozen", "train"] = Field("frozen", description="BatchNorm whose parameters are all frozen: kept in "
                                           "eval mode (running statistics unchanged), or trained as usual")
    body_lr_mult: float = Field(1.0, gt=0.0, description="LR multiplier for the trainable parameters outside the head "
                                "(optim.head_lr_mult is the head's)")
    layer_decay: float | None = Field(None, gt=0.0, le=1.0, description="LR × decay^k for the block k places "
                                      "before the last one (layer-wise LR decay)")
    unfreeze_after: int | None = Field(None, ge=1, description="make every frozen parameter trainable after this "
                                       "many epochs (gradual unfreezing)")
    new_head: bool = Field(False, description="start the head (the last Linear) from a fresh initialization even "
                           "when train.init_from has one of the right shape (the classes mean something else)")

    @model_validator(mode="after")
    def _consistent(self) -> "FinetuneConfig":
        if self.mode == "last" and self.last is None:
            raise ValueError("finetune.mode=last needs finetune.last=N, the number of last blocks to train")
        if self.mode != "last" and self.last is not None:
            raise ValueError(f"finetune.last applies to finetune.mode=last only (mode is {self.mode}); "
                             "set finetune.mode=last or drop finetune.last")
        if self.unfreeze_after is not None and self.mode == "all" and not self.freeze:
            raise ValueError("finetune.unfreeze_after needs something frozen first: set finetune.mode=last or head, "
                             "or finetune.freeze patterns")
        return self

    def active(self) -> bool:
        """Whether anything differs from plain training (the defaults leave groups and the loop unchanged)."""
        return self.mode != "all" or bool(self.freeze) or self.body_lr_mult != 1.0 or self.layer_decay is not None


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
    finetune: FinetuneConfig = FinetuneConfig()
    callbacks: dict[str, dict[str, Any] | None] = Field(default_factory=lambda: dict(DEFAULT_CALLBACKS))

    def to_dict(self) -> dict[str, Any]:
        """Plain data (JSON/YAML-safe), extras included."""
        return self.model_dump(mode="json")

    def enabled_callbacks(self) -> dict[str, dict[str, Any]]:
        """Callbacks to build, with their options; a callback set to ``null`` is switched off."""
        return {name: dict(opts) for name, opts in self.callbacks.items() if opts is not None}
