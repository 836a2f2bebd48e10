"""Reading config YAML strictly: files, ``--set`` values and saved run configs.

Plain ``yaml.safe_load`` accepts what a config never needs and a hostile file uses: aliases that expand to
billions of nodes, nesting that exhausts the stack, duplicate keys that silently keep the last value, files of any
size or encoding.  Everything here refuses those with the file and line, before anything is built from the text.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


class ConfigError(ValueError):
    """A configuration problem, reported before training starts."""


# A config is a few kilobytes of settings; anything far larger is a mistake (a data file given to -c, /dev/zero),
# and pure-Python YAML parsing needs about two seconds per megabyte.
MAX_CONFIG_BYTES = 1 << 20
# Sections, options and a few nested lists or mappings: real configs stay under 6 levels.  The YAML composer recurses
# once per level, so an unbounded ``[[[[...]]]]`` would end in a RecursionError instead of a message.
MAX_NESTING = 64
class _StrictLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` without the YAML features a config never needs and a hostile file uses.

    * aliases (``*name``): a few hundred bytes of nested aliases (a "billion laughs" bomb) stand for billions of
      nodes, which merging and validating the config would expand, for minutes and gigabytes;
    * nesting deeper than :data:`MAX_NESTING`, which would exhaust the stack;
    * duplicate keys in one mapping, where plain YAML silently keeps the last value.

    Each is refused while the document is composed, before anything is built from it, with the file and line.
    """

    def __init__(self, text: str, source: str) -> None:
        try:
            super().__init__(text)  # refuses control characters such as NUL right away
        except yaml.reader.ReaderError as err:
            err.name = source
            raise
        self.name = source  # PyYAML's own error marks name the source instead of "<unicode string>"
        self._depth = 0

    def _where(self, mark: yaml.Mark) -> str:
        return f"{self.name}, line {mark.line + 1}"

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            raise ConfigError(f"{self._where(event.start_mark)}: YAML aliases (*{event.anchor}) are not supported in "
                              "trainlab configs; write the value out")
        if self._depth >= MAX_NESTING:
            raise ConfigError(f"{self._where(event.start_mark)}: values nested more than {MAX_NESTING} levels deep; "
                              "a trainlab config needs only a few")
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, yaml.MappingNode):
            self._refuse_duplicate_keys(node)
        return super().construct_mapping(node, deep=deep)

    def _refuse_duplicate_keys(self, node: yaml.MappingNode) -> None:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
                continue  # a complex key is refused by SafeLoader itself; merge keys may repeat what they merge
            key = self.construct_object(key_node)
            line = key_node.start_mark.line + 1
            if key in seen:
                raise ConfigError(f"{self._where(key_node.start_mark)}: duplicate key '{key}' (first given at line "
                                  f"{seen[key]}); keep one of them")
            seen[key] = line


def parse_yaml(text: str, source: str) -> Any:
    """``text`` read as one YAML document by :class:`_StrictLoader`; ``source`` names it in messages.

    Raises ``ConfigError`` for what the strict loader refuses and ``yaml.YAMLError`` for invalid YAML.
    """
    loader = _StrictLoader(text, source)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def parse_override(text: str) -> tuple[str, Any]:
    """Split ``section.key=value``; the value is read as YAML so numbers, lists and booleans keep their type."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or "." not in key or not all(part.strip() for part in key.split(".")):
        raise ConfigError(f"bad override '{text}': expected section.key=value, e.g. optim.lr=0.05")
    if not raw.strip():
        return key, ""
    try:
        return key, parse_yaml(raw, f"--set {key}")
    except yaml.YAMLError as err:
        raise ConfigError(f"bad override '{text}': the value is not valid YAML ({yaml_problem(err)}); quote text "
                          "values, e.g. --set \"train.name='a: b'\"") from None


def yaml_problem(err: yaml.YAMLError) -> str:
    """PyYAML's message on one line: what went wrong and where (its own spans several, with a source excerpt)."""
    if not isinstance(err, yaml.MarkedYAMLError) or err.problem is None:
        return " ".join(str(err).split())
    mark = err.problem_mark or err.context_mark
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    return ", ".join(filter(None, (err.context, err.problem))) + where


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a config file; it must hold a non-empty mapping of sections.

    An empty file is refused rather than read as "all defaults": given with ``-c``, it is almost always the wrong
    file or one that was truncated, and training the defaults instead would hide that.
    """
    path = Path(path)
    try:
        content = parse_yaml(read_text(path), str(path))
    except yaml.YAMLError as err:
        raise ConfigError(f"{path} is not valid YAML: {yaml_problem(err)}") from None
    if content is None:
        raise ConfigError(f"{path} is empty (or holds only comments); it must hold a mapping of settings")
    if not isinstance(content, dict):
        raise ConfigError(f"{path} must hold a mapping of sections (data, model, optim, ...), got {type(content).__name__}")
    return content


def read_text(path: Path) -> str:
    """The file's text, refusing a directory, a file too large to be a config, and text that is not UTF-8."""
    if path.is_dir():
        raise ConfigError(f"{path} is a directory, not a config file; give the YAML file inside it")
    if not path.exists():
        raise ConfigError(f"config file not found: {path}")
    try:
        with path.open("rb") as file:  # not read_bytes: a device or pipe may never end
            data = file.read(MAX_CONFIG_BYTES + 1)
    except OSError as err:
        raise ConfigError(f"cannot read config file {path}: {err.strerror}") from None
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{path} is larger than {MAX_CONFIG_BYTES // 2**20} MiB, too large for a config file; "
                          "is it the right file?")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data[:err.start].count(b"\n") + 1
        raise ConfigError(f"{path} is not UTF-8 text (byte {data[err.start]:#04x} at line {line}); save it as "
                          "UTF-8") from None
