"""Language modelling datasets ``text`` (any UTF-8 file) and ``austen`` (a novel): predict the next token, every step.

Interface:

* The bundle's ``train`` and ``val`` are :class:`TokenStream` s: one long id sequence each, the validation split
  being the last ``val_fraction`` of the text (a held-out tail; no test split).  The vocabulary comes from the
  training head only and is saved as ``data.json``'s text record (``task: "lm"``, ``num_steps``); ``meta``:
  ``task="classification"``, ``input_shape=(vocabulary, num_steps)``, ``num_classes=vocabulary``.
* A stream batches itself (:meth:`TokenStream.make_loader`, picked up by ``data.loaders.make_loader``): batches
  are ``x`` ``(batch, num_steps)`` ids and ``y`` the same shifted by one token.  ``partition="sequential"``
  cuts the text into ``batch`` parallel streams read left to right, so row ``b`` of batch ``i + 1`` continues
  row ``b`` of batch ``i`` and the loader says ``carries_state = True`` (the trainer then carries the hidden
  state across batches, detached, reset each epoch).  ``partition="random"`` draws windows in a shuffled order,
  each from a zero state.  Training shifts the cut by a random offset below ``num_steps`` each epoch (d2l's
  recipe); the offset and the order are functions of ``(seed, epoch)`` only, so a resume continues exactly.
* ``num_examples`` counts target tokens, so the trainer's examples/s is tokens (characters) per second.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Literal

import torch
from torch.utils.data import Dataset

from trainlab.data.bundle import DataBundle, DataMeta
from trainlab.data.loaders import epoch_permutation
from trainlab.data.text import Vocabulary, austen_text, read_text, split_tail, tokenize
from trainlab.registry import DATASETS

Partition = Literal["sequential", "random"]
PARTITIONS = ("sequential", "random")


def keep_tokens(x: torch.Tensor) -> torch.Tensor:
    """The loaders' input transform for token ids: they stay integers (the model encodes them)."""
    return x


class TokenStream(Dataset):
    """One split of a text as ids; item ``i`` is window ``i`` (``num_steps`` ids) and its next-token targets."""

    def __init__(self, ids: torch.Tensor, num_steps: int, partition: str) -> None:
        self.ids, self.num_steps, self.partition = ids, num_steps, partition

    def __len__(self) -> int:
        return max((len(self.ids) - 1) // self.num_steps, 0)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        lo = i * self.num_steps
        return self.ids[lo:lo + self.num_steps], self.ids[lo + 1:lo + 1 + self.num_steps]

    def make_loader(self, *, batch_size: int, device: torch.device, shuffle: bool, seed: int) -> StreamLoader:
        return StreamLoader(self, batch_size, device, shuffle=shuffle, seed=seed)


class StreamLoader:
    """Batches of one :class:`TokenStream` (see the module docstring); same interface as the other loaders."""

    transform = staticmethod(keep_tokens)

    def __init__(self, stream: TokenStream, batch_size: int, device: torch.device, shuffle: bool, seed: int) -> None:
        self.ids, self.steps = stream.ids.to(device), stream.num_steps
        self.sequential, self.shuffle, self.seed, self.device = stream.partition == "sequential", shuffle, seed, device
        usable = len(self.ids) - 1 - (self.steps - 1 if shuffle else 0)  # room for the largest random offset
        windows = usable // self.steps
        # evaluation may read a short text with fewer streams; training needs every batch full
        self.batch_size = batch_size if shuffle else max(min(batch_size, windows), 1)
        if self.sequential:
            self.batches = usable // (self.batch_size * self.steps)
        else:
            self.windows = windows
            self.batches = windows // self.batch_size if shuffle else -(-windows // self.batch_size)
        if self.batches < 1:
            raise ValueError(f"the {'training' if shuffle else 'held-out'} text has {len(self.ids)} tokens, too few "
                             f"for a batch of {self.batch_size} × data.num_steps={self.steps} (it needs at least "
                             f"{self.batch_size * self.steps + self.steps} tokens); lower train.batch_size or "
                             "data.num_steps, or use a longer text")

    @property
    def carries_state(self) -> bool:
        """Row b of each batch continues row b of the one before: the model should carry its hidden state."""
        return self.sequential

    def __len__(self) -> int:
        return self.batches

    @property
    def num_examples(self) -> int:
        """Target tokens per epoch (examples/s becomes tokens per second)."""
        return self.batches * self.batch_size * self.steps

    def offset(self, epoch: int) -> int:
        if not self.shuffle:
            return 0
        generator = torch.Generator().manual_seed(self.seed * 100_003 + epoch + 7919)
        return int(torch.randint(self.steps, (1,), generator=generator))

    def epoch(self, epoch: int, start: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        offset = self.offset(epoch)
        if self.sequential:
            yield from self._sequential(offset, start)
        else:
            yield from self._random(offset, epoch, start)

    def _sequential(self, offset: int, start: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        span = self.batches * self.steps
        x = self.ids[offset:offset + self.batch_size * span].view(self.batch_size, span)
        y = self.ids[offset + 1:offset + 1 + self.batch_size * span].view(self.batch_size, span)
        for i in range(start, self.batches):
            cut = slice(i * self.steps, (i + 1) * self.steps)
            yield x[:, cut], y[:, cut]

    def _random(self, offset: int, epoch: int, start: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = epoch_permutation(self.windows, self.seed, epoch) if self.shuffle else torch.arange(self.windows)
        steps = torch.arange(self.steps, device=self.device)
        for i in range(start, self.batches):
            starts = order[i * self.batch_size:(i + 1) * self.batch_size].to(self.device) * self.steps + offset
            index = starts[:, None] + steps[None, :]
            yield self.ids[index], self.ids[index + 1]


def language_model_bundle(text: str, *, where: str, val_fraction: float, level: str, num_steps: int,
                          partition: str, lowercase: bool, max_vocab: int | None, min_count: int,
                          max_tokens: int | None) -> DataBundle:
    """Tokenize, hold out the tail, build the vocabulary on the head, and wrap both as streams."""
    if num_steps < 1:
        raise ValueError(f"{where}: data.num_steps must be >= 1, got {num_steps}")
    if partition not in PARTITIONS:
        raise ValueError(f"{where}: unknown data.partition '{partition}'; choices: {', '.join(PARTITIONS)}")
    tokens = tokenize(text, level, lowercase)
    if max_tokens is not None:
        if max_tokens < 2:
            raise ValueError(f"{where}: data.max_tokens must be >= 2, got {max_tokens}")
        tokens = tokens[:max_tokens]
    if not tokens:
        raise ValueError(f"{where}: the text holds no {level} tokens; give a text with words in it")
    head, tail = split_tail(tokens, val_fraction)
    vocab = Vocabulary.build(head, level, lowercase, max_size=max_vocab, min_count=min_count)
    return stream_bundle(head, tail, vocab, where=where, val_fraction=val_fraction, num_steps=num_steps,
                         partition=partition)


def stream_bundle(head: list[str], tail: list[str], vocab: Vocabulary, *, where: str, val_fraction: float,
                  num_steps: int, partition: str, **record: Any) -> DataBundle:
    """Training and held-out tokens as streams, with the language-model text record (plus ``record``)."""
    if val_fraction > 0 and len(tail) < num_steps + 1:
        raise ValueError(f"{where}: the held-out tail (data.val_fraction={val_fraction}) has {len(tail)} tokens, "
                         f"fewer than data.num_steps + 1 = {num_steps + 1}; raise data.val_fraction or lower "
                         "data.num_steps")
    meta = DataMeta(task="classification", input_shape=(len(vocab), num_steps), num_classes=len(vocab),
                    preprocess=vocab.record(task="lm", num_steps=num_steps, **record))
    val = TokenStream(vocab.encode(tail), num_steps, partition) if tail else None
    return DataBundle(train=TokenStream(vocab.encode(head), num_steps, partition), val=val, test=None, meta=meta)


@DATASETS.register("text", description="language model on a UTF-8 text file (path=): next character or word")
def text_dataset(*, seed: int = 0, val_fraction: float = 0.1, path: str | None = None,
                 level: Literal["char", "word"] = "char", num_steps: int = 35,
                 partition: Literal["sequential", "random"] = "sequential", lowercase: bool = False,
                 max_vocab: int | None = None, min_count: int = 1, max_tokens: int | None = None) -> DataBundle:
    """Next-token prediction on ``path`` (plain or gzip UTF-8); the last ``val_fraction`` validates."""
    if path is None:
        raise ValueError("dataset 'text' needs a file: set data.path=FILE (a UTF-8 text file, plain or .gz)")
    return language_model_bundle(read_text(path), where=f"text {path}", val_fraction=val_fraction, level=level,
                                 num_steps=num_steps, partition=partition, lowercase=lowercase, max_vocab=max_vocab,
                                 min_count=min_count, max_tokens=max_tokens)


@DATASETS.register("austen", description="language model on a Jane Austen novel (Pride and Prejudice ships offline)")
def austen_dataset(*, seed: int = 0, val_fraction: float = 0.1, novel: str = "pride-and-prejudice",
                   root: str | None = None, level: Literal["char", "word"] = "char", num_steps: int = 35,
                   partition: Literal["sequential", "random"] = "sequential", lowercase: bool = False,
                   max_vocab: int | None = None, min_count: int = 1, max_tokens: int | None = None) -> DataBundle:
    """Next-token prediction on ``novel``; other novels than the shipped one are read from ``root``."""
    return language_model_bundle(austen_text(novel, root), where=f"austen {novel}", val_fraction=val_fraction,
                                 level=level, num_steps=num_steps, partition=partition, lowercase=lowercase,
                                 max_vocab=max_vocab, min_count=min_count, max_tokens=max_tokens)
