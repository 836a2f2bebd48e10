"""Text as token ids: reading text files and the Austen novels, tokenizing, and the vocabulary saved with a run.

Interface (shared by the text datasets, ``generate`` and ``predict``):

* :func:`read_text` reads a UTF-8 file, gzip or plain (``\\r\\n`` → ``\\n``); an empty or whitespace-only text is
  a ValueError naming the file.  :func:`austen_text` reads one novel: from ``root`` (a directory with the six
  ``<novel>.txt.gz`` files) or, with ``root=None``, Pride and Prejudice as shipped inside the package
  (:data:`SHIPPED`), so the default works offline on a fresh install.
* :func:`tokenize` splits text into characters (``level="char"``) or words and punctuation (``"word"``).
* :class:`Vocabulary`: id 0 is ``<pad>`` (padding, never a real token), id 1 ``<unk>`` (a token the training
  text did not contain), then the training tokens, most frequent first (ties alphabetically).  It is built from
  the training part only and stored in ``data.json`` as the text preprocessing record
  (:meth:`Vocabulary.record`, ``preprocess.kind == "text"``); :meth:`Vocabulary.from_record` reads it back.
"""

from __future__ import annotations

import gzip
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch

from trainlab.data.preprocess import TextPreprocess

PAD, UNK = "<pad>", "<unk>"
SPECIALS = (PAD, UNK)
Level = Literal["char", "word"]
LEVELS = ("char", "word")
NOVELS = ("emma", "mansfield-park", "northanger-abbey", "persuasion", "pride-and-prejudice", "sense-and-sensibility")
SHIPPED_NOVEL = "pride-and-prejudice"
SHIPPED = Path(__file__).parent / "corpus" / f"{SHIPPED_NOVEL}.txt.gz"
WORD_PATTERN = r"\w+|[^\w\s]"  # a word-level token: a run of word characters, or one punctuation mark
_WORD = re.compile(WORD_PATTERN)


def read_text(path: str | Path) -> str:
    """The UTF-8 text of a plain or ``.gz`` file, line ends normalised; refuses a missing or empty text."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"text file {path} does not exist (data.path names a UTF-8 text file, .txt or .gz)")
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(f"{path} is not UTF-8 text ({err}); convert it to UTF-8") from None
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if not text.strip():
        raise ValueError(f"{path} holds no text (it is empty or only whitespace); give a file with text in it")
    return text


def austen_text(novel: str, root: str | Path | None) -> str:
    """One Austen novel: ``root/<novel>.txt.gz``, or the shipped Pride and Prejudice when ``root`` is None."""
    if novel not in NOVELS:
        raise ValueError(f"unknown novel '{novel}'; choices: {', '.join(NOVELS)}")
    if root is None:
        if novel != SHIPPED_NOVEL:
            raise ValueError(f"only {SHIPPED_NOVEL} ships with trainlab; for {novel} set data.root to a directory "
                             f"holding {novel}.txt.gz (e.g. the austen data directory)")
        return read_text(SHIPPED)
    directory = Path(root)
    if not directory.is_dir():
        raise FileNotFoundError(f"data.root={root} is not a directory; give the directory holding the Austen "
                                f"novels ({', '.join(f'{n}.txt.gz' for n in NOVELS)})")
    return read_text(directory / f"{novel}.txt.gz")


def tokenize(text: str, level: str, lowercase: bool = False) -> list[str]:
    """Characters, or words and punctuation marks (whitespace dropped) for ``level="word"``."""
    if level not in LEVELS:
        raise ValueError(f"unknown text level '{level}'; choices: {', '.join(LEVELS)}")
    text = text.lower() if lowercase else text
    return list(text) if level == "char" else _WORD.findall(text)


def detokenize(tokens: Sequence[str], level: str) -> str:
    """The inverse of :func:`tokenize` as far as it goes: words are joined by single spaces."""
    return "".join(tokens) if level == "char" else " ".join(tokens)


@dataclass(frozen=True)
class Vocabulary:
    """Token ↔ id.  ``tokens[0]`` is ``<pad>``, ``tokens[1]`` ``<unk>``; see the module docstring."""

    tokens: tuple[str, ...]
    level: str = "char"
    lowercase: bool = False

    @classmethod
    def build(cls, tokens: Sequence[str], level: str, lowercase: bool = False, max_size: int | None = None,
              min_count: int = 1) -> Vocabulary:
        """From the training tokens: the ``max_size`` most frequent seen at least ``min_count`` times."""
        counts = Counter(tokens)
        ranked = sorted((t for t, c in counts.items() if c >= min_count), key=lambda t: (-counts[t], t))
        if max_size is not None:
            ranked = ranked[:max(max_size - len(SPECIALS), 0)]
        return cls((*SPECIALS, *ranked), level, lowercase)

    def __len__(self) -> int:
        return len(self.tokens)

    @property
    def index(self) -> dict[str, int]:
        return {token: i for i, token in enumerate(self.tokens)}

    def encode(self, tokens: Sequence[str]) -> torch.Tensor:
        """Ids of ``tokens``; a token outside the vocabulary becomes ``<unk>`` (1)."""
        index = self.index
        return torch.tensor([index.get(t, 1) for t in tokens], dtype=torch.long)

    def encode_text(self, text: str) -> torch.Tensor:
        return self.encode(tokenize(text, self.level, self.lowercase))

    def unknown(self, text: str) -> list[str]:
        """The distinct tokens of ``text`` this vocabulary does not hold, in order of appearance."""
        index = self.index
        return list(dict.fromkeys(t for t in tokenize(text, self.level, self.lowercase) if t not in index))

    def decode(self, ids: Sequence[int] | torch.Tensor) -> str:
        values = ids.tolist() if isinstance(ids, torch.Tensor) else list(ids)
        return detokenize([self.tokens[i] for i in values if i > 1], self.level)

    def record(self, **extra: Any) -> TextPreprocess:
        """The ``preprocess`` record for ``data.json`` (``extra``: task, num_steps or max_length)."""
        return {"kind": "text", "level": self.level, "lowercase": self.lowercase, "vocab": list(self.tokens),
                **extra}  # type: ignore[typeddict-item]

    @classmethod
    def from_record(cls, record: Any) -> Vocabulary:
        """Read back :meth:`record`; anything that is not a text record is a ValueError saying so."""
        if not isinstance(record, dict) or record.get("kind") != "text":
            kind = record.get("kind") if isinstance(record, dict) else None
            raise ValueError(f"this run was trained on {kind or 'non-text'} data, not text: it has no vocabulary")
        return cls(tuple(record["vocab"]), record.get("level", "char"), bool(record.get("lowercase", False)))


def split_tail(tokens: list[str], val_fraction: float) -> tuple[list[str], list[str]]:
    """``(training head, held-out tail)``: validation is the last ``val_fraction`` of the text, never shuffled in."""
    held = round(len(tokens) * val_fraction) if val_fraction > 0 else 0
    return (tokens[:len(tokens) - held], tokens[len(tokens) - held:]) if held else (tokens, [])
