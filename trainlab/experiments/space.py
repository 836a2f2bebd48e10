"""Search spaces: a YAML file mapping dotted config keys to choices or ranges.

::

    optim.lr: {low: 1.0e-4, high: 0.3, log: true}   # float range (log scale)
    train.batch_size: {low: 32, high: 256, step: 32} # int range: both bounds are integers
    model.hidden: {choices: [[32], [64], [64, 32]]}  # categorical, any YAML values
    optim.name: [sgd, adam]                          # a plain list is shorthand for choices

Grid search needs every parameter finite: choices, int ranges, or float ranges with ``step``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trainlab.config import ConfigError, read_yaml

_SCALARS = (str, int, float, bool, type(None))


@dataclass(frozen=True)
class Param:
    """One searched config key: categorical ``choices``, or an int/float range ``[low, high]``."""

    key: str
    choices: tuple[Any, ...] | None = None
    low: float | None = None
    high: float | None = None
    step: float | None = None
    log: bool = False

    @property
    def is_int(self) -> bool:
        return self.choices is None and all(isinstance(v, int) and not isinstance(v, bool)
                                            for v in (self.low, self.high, self.step or 1))

    @property
    def encoded(self) -> bool:
        """Optuna stores only scalars; lists and mappings travel as JSON text."""
        return self.choices is not None and not all(isinstance(c, _SCALARS) for c in self.choices)

    def suggest(self, trial: Any) -> Any:
        """The value Optuna's sampler picks for this trial, decoded back into config form."""
        if self.choices is not None:
            raw = trial.suggest_categorical(self.key, self.grid())
            return json.loads(raw) if self.encoded else raw
        if self.is_int:
            return trial.suggest_int(self.key, int(self.low), int(self.high), step=int(self.step or 1), log=self.log)
        return trial.suggest_float(self.key, float(self.low), float(self.high), step=self.step, log=self.log)

    def grid(self) -> list[Any]:
        """Every value of a finite parameter (in Optuna's scalar form); raises for a continuous range."""
        if self.choices is not None:
            return [json.dumps(c) if self.encoded else c for c in self.choices]
        if self.step is None and not self.is_int:
            raise ConfigError(f"grid search needs finite values: give {self.key} 'choices' or a 'step'")
        step = self.step or 1
        count = int(math.floor((self.high - self.low) / step + 1e-9)) + 1
        values = [self.low + i * step for i in range(count)]
        return [int(v) for v in values] if self.is_int else [round(v, 12) for v in values]

    def decode(self, value: Any) -> Any:
        return json.loads(value) if self.encoded and isinstance(value, str) else value

    def example(self) -> Any:
        """A value from the space, used to check the key against the config before any trial runs."""
        return self.choices[0] if self.choices is not None else (int(self.low) if self.is_int else float(self.low))


def parse_param(key: str, spec: Any) -> Param:
    """One entry of the space file, validated with messages that name the key."""
    if "." not in key:
        raise ConfigError(f"search space key '{key}' must be a dotted config key such as optim.lr")
    if isinstance(spec, list):
        spec = {"choices": spec}
    if not isinstance(spec, dict):
        raise ConfigError(f"search space {key}: expected a list of choices or a mapping with low/high, got {spec!r}")
    unknown = set(spec) - {"choices", "low", "high", "step", "log"}
    if unknown:
        raise ConfigError(f"search space {key}: unknown field(s) {sorted(unknown)}; use choices, low, high, step, log")
    if "choices" in spec:
        if not isinstance(spec["choices"], list) or not spec["choices"]:
            raise ConfigError(f"search space {key}: choices must be a non-empty list")
        return Param(key, choices=tuple(spec["choices"]))
    low, high = spec.get("low"), spec.get("high")
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (low, high)) or low >= high:
        raise ConfigError(f"search space {key}: needs numbers low < high, got low={low!r} high={high!r}")
    log = bool(spec.get("log", False))
    if log and low <= 0:
        raise ConfigError(f"search space {key}: a log range needs low > 0, got {low}")
    step = spec.get("step")
    if step is not None and (not isinstance(step, (int, float)) or step <= 0 or log):
        raise ConfigError(f"search space {key}: step must be a positive number and cannot be combined with log")
    return Param(key, low=low, high=high, step=step, log=log)


def load_space(source: str | Path | dict[str, Any]) -> list[Param]:
    """Parameters of a space file (or an already-read mapping), in file order."""
    raw = read_yaml(source) if isinstance(source, (str, Path)) else source
    if not raw:
        raise ConfigError("the search space is empty: name at least one config key to search")
    return [parse_param(key, spec) for key, spec in raw.items()]


def grid_size(space: list[Param]) -> int:
    return math.prod(len(p.grid()) for p in space)


def signature(space: list[Param]) -> dict[str, Any]:
    """The space as plain JSON-safe data, to recognise the same search when a command is rerun."""
    return {p.key: {"choices": list(p.choices)} if p.choices is not None else
            {"low": p.low, "high": p.high, "step": p.step, "log": p.log} for p in space}
