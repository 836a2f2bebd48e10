"""Sequence classification (many-to-one): ``austen-novels``, which of Jane Austen's six novels a passage is from.

Interface:

* Each novel's text (whitespace collapsed to single spaces) is cut into consecutive passages of random length
  between ``min_length`` and ``max_length`` characters (fixed by ``data_seed``), then tokenized into
  characters or (``level="word"``) words and punctuation, the vocabulary keeping the ``max_vocab`` most
  frequent.  The test split is the passages
  of the last 10% of every novel; training and validation (``val_fraction``, stratified, following the run seed)
  share at most ``per_novel`` passages from the first 90% of each, so the six classes are balanced.
* Passages are token ids, right-padded with 0 to the longest passage in a :class:`TokenDataset` (a
  ``TensorDataset`` of ``(ids, label)`` that batches itself, keeping ids as integers).  The recurrent models
  find each passage's length from the padding and pack the batch (``output=last`` or ``mean``).
* ``meta``: ``classes`` the six novel names, ``input_shape=(vocabulary, max_length)``; the text record in
  ``data.json`` (``task: "classify"``) holds the vocabulary built from the training passages, so ``predict``
  encodes new text the same way (:func:`passage_ids`).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch.utils.data import TensorDataset

from trainlab.data.bundle import DataBundle, DataMeta, tensor_splits
from trainlab.data.loaders import DeviceLoader
from trainlab.data.text import NOVELS, Vocabulary, austen_text, tokenize
from trainlab.data.text_lm import keep_tokens
from trainlab.registry import DATASETS

TEST_FRACTION = 0.1  # the tail of every novel: fixed, so test metrics compare across runs and seeds
_SPACE = re.compile(r"\s+")


class TokenDataset(TensorDataset):
    """``(ids, label)`` pairs of padded passages; batches keep the ids as integers (no float conversion)."""

    def make_loader(self, *, batch_size: int, device: torch.device, shuffle: bool, seed: int) -> DeviceLoader:
        return DeviceLoader(self, batch_size, device, keep_tokens, shuffle=shuffle, seed=seed)  # type: ignore[arg-type]


def collapse(text: str) -> str:
    """Prose as one line: line breaks and runs of spaces become single spaces (passages ignore the layout)."""
    return _SPACE.sub(" ", text).strip()


def cut_passages(text: str, min_length: int, max_length: int, rng: np.random.Generator) -> list[str]:
    """Consecutive passages of random lengths in ``[min_length, max_length]``; a short remainder is dropped."""
    passages, start = [], 0
    while start + min_length <= len(text):
        length = int(rng.integers(min_length, max_length + 1))
        passages.append(text[start:start + length])
        start += length
    return passages


def passage_ids(passages: list[str], vocab: Vocabulary, length: int | None = None) -> torch.Tensor:
    """Ids right-padded with 0 to ``length`` (default: the longest passage); unknown characters become 1."""
    encoded = [vocab.encode(tokenize(collapse(p), vocab.level, vocab.lowercase)) for p in passages]
    width = length if length is not None else max(max((len(e) for e in encoded), default=1), 1)
    out = torch.zeros(len(encoded), width, dtype=torch.long)
    for row, ids in zip(out, encoded):
        row[:min(len(ids), width)] = ids[:width]
    return out


def _novel_passages(root: str, min_length: int, max_length: int, data_seed: int) -> tuple[list, list]:
    """Per novel: (passages of the first 90%, passages of the last 10%)."""
    rng = np.random.default_rng(data_seed)
    heads, tails = [], []
    for novel in NOVELS:
        text = collapse(austen_text(novel, root))
        cut = int(len(text) * (1 - TEST_FRACTION))
        heads.append(cut_passages(text[:cut], min_length, max_length, rng))
        tails.append(cut_passages(text[cut:], min_length, max_length, rng))
    return heads, tails


@DATASETS.register("austen-novels", description="which of Austen's six novels a passage is from (root= the novels)")
def austen_novels(*, seed: int = 0, val_fraction: float = 0.1, root: str | None = None, min_length: int = 50,
                  max_length: int = 200, per_novel: int | None = 1000, level: Literal["char", "word"] = "char",
                  lowercase: bool = False, max_vocab: int | None = 10000, min_count: int = 1,
                  data_seed: int = 0) -> DataBundle:
    """Six-way passage classification; the novels are read from ``root`` (the directory of the six .txt.gz)."""
    if root is None:
        raise ValueError("dataset 'austen-novels' needs the six novels: set data.root=DIR, the directory holding "
                         f"{', '.join(f'{n}.txt.gz' for n in NOVELS)} (only pride-and-prejudice ships with trainlab)")
    if not 1 <= min_length <= max_length:
        raise ValueError(f"austen-novels: need 1 <= min_length <= max_length, got {min_length} and {max_length}")
    if per_novel is not None and per_novel < 2:
        raise ValueError(f"austen-novels: per_novel must be >= 2 passages (or null for all), got {per_novel}")
    heads, tails = _novel_passages(str(Path(root)), min_length, max_length, data_seed)
    rng = np.random.default_rng(data_seed + 1)
    train_texts, train_labels = [], []
    for label, passages in enumerate(heads):
        keep = np.sort(rng.permutation(len(passages))[:per_novel]) if per_novel else np.arange(len(passages))
        train_texts += [passages[i] for i in keep]
        train_labels += [label] * len(keep)
    vocab = Vocabulary.build([t for p in train_texts for t in tokenize(p, level, lowercase)], level, lowercase,
                             max_size=max_vocab, min_count=min_count)
    width = max_length if level == "char" else int(passage_ids(train_texts, vocab).shape[1])  # longest, in tokens
    x, y = passage_ids(train_texts, vocab, width), torch.tensor(train_labels)
    test_texts = [p for passages in tails for p in passages]
    test_y = torch.tensor([label for label, passages in enumerate(tails) for _ in passages])
    train, val = tensor_splits(x, y, val_fraction, seed, stratify=True)
    meta = DataMeta(task="classification", input_shape=(len(vocab), width), num_classes=len(NOVELS),
                    classes=list(NOVELS), preprocess=vocab.record(task="classify", max_length=width))
    return DataBundle(train=TokenDataset(*train.tensors), val=TokenDataset(*val.tensors) if val is not None else None,
                      test=TokenDataset(passage_ids(test_texts, vocab, width), test_y), meta=meta)
