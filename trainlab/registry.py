"""Named registries for every pluggable component.

Models, datasets, optimizers, schedules, losses and callbacks are all looked up by name from config and
CLI.  One small class gives every lookup the same behaviour: duplicate names fail at registration, unknown
names fail with a "did you mean" hint and the full list of choices, and each entry carries a one-line
description for ``trainlab list``.
"""

from __future__ import annotations

import difflib
import fnmatch
import inspect
from dataclasses import dataclass, field
from typing import Any, Callable, Generic, Iterator, TypeVar

T = TypeVar("T")


class UnknownNameError(KeyError):
    """Raised when a registry lookup fails; the message lists close matches and all choices."""

    def __str__(self) -> str:  # KeyError would otherwise quote the whole message
        return str(self.args[0])


@dataclass(frozen=True)
class Entry(Generic[T]):
    """One registered component: the object, its one-line description and free-form metadata."""

    name: str
    obj: T
    description: str
    meta: dict[str, Any] = field(default_factory=dict)


class Registry(Generic[T]):
    """A name → component table for one kind of component (``kind`` is used in messages)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Entry[T]] = {}

    def register(self, name: str, *, description: str | None = None, **meta: Any) -> Callable[[T], T]:
        """Decorator form of :meth:`add`."""

        def decorate(obj: T) -> T:
            self.add(name, obj, description=description, **meta)
            return obj

        return decorate

    def add(self, name: str, obj: T, *, description: str | None = None, **meta: Any) -> None:
        """Register ``obj`` under ``name``; the description defaults to the first docstring line."""
        if name in self._entries:
            raise ValueError(f"duplicate {self.kind} name '{name}': it is already registered")
        if description is None:
            description = (inspect.getdoc(obj) or "").split("\n", 1)[0]
        self._entries[name] = Entry(name, obj, description, dict(meta))

    def entry(self, name: str) -> Entry[T]:
        """Return the full entry for ``name`` or raise :class:`UnknownNameError`."""
        try:
            return self._entries[name]
        except KeyError:
            raise UnknownNameError(self.unknown_message(name)) from None

    def get(self, name: str) -> T:
        """Return the component registered as ``name``."""
        return self.entry(name).obj

    def unknown_message(self, name: str) -> str:
        """The error text for an unknown name: a close match when there is one, then every choice."""
        message = f"unknown {self.kind} '{name}'"
        close = difflib.get_close_matches(str(name), list(self._entries), n=1, cutoff=0.6)
        if close:
            message += f"; did you mean '{close[0]}'?"
        return f"{message}\nchoices: {', '.join(self.names())}"

    def names(self, pattern: str | None = None) -> list[str]:
        """Sorted registered names, optionally filtered by a shell-style pattern such as ``resnet*``."""
        names = sorted(self._entries)
        return [n for n in names if pattern is None or fnmatch.fnmatch(n, pattern)]

    def entries(self) -> list[Entry[T]]:
        """All entries sorted by name."""
        return [self._entries[n] for n in self.names()]

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)


MODELS: Registry[Callable[..., Any]] = Registry("model")
DATASETS: Registry[Callable[..., Any]] = Registry("dataset")
OPTIMIZERS: Registry[Callable[..., Any]] = Registry("optimizer")
SCHEDULES: Registry[Callable[..., Any]] = Registry("schedule")
LOSSES: Registry[Callable[..., Any]] = Registry("loss")
CALLBACKS: Registry[Callable[..., Any]] = Registry("callback")
AUGMENTATIONS: Registry[Callable[..., Any]] = Registry("transform")  # data.augment entries (trainlab.data.transforms)

REGISTRIES: dict[str, Registry[Any]] = {
    "models": MODELS,
    "datasets": DATASETS,
    "optimizers": OPTIMIZERS,
    "schedules": SCHEDULES,
    "losses": LOSSES,
    "callbacks": CALLBACKS,
    "augmentations": AUGMENTATIONS,
}


def builder_params(fn: Callable[..., Any]) -> dict[str, inspect.Parameter]:
    """Keyword parameters a builder accepts; used to validate config keys against the chosen component."""
    return {
        name: p
        for name, p in inspect.signature(fn).parameters.items()
        if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
    }
