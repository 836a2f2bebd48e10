"""Encoder-decoder (many-to-many) tasks made on the fly: ``numbers-to-digits`` and ``reverse-string``.

Interface (what the ``seq2seq`` model and the metrics rely on):

* One character vocabulary for both sides (:data:`SPECIALS`): id 0 ``<pad>``, 1 ``<unk>``, 2 ``<bos>`` (begin
  decoding), 3 ``<eos>`` (end of the output), then every source and target character, sorted.
* An example's input ``x`` is ``source_length + target_length`` ids: the source, right-padded with 0 to
  ``source_length``, then the *decoder input* — ``<bos>`` followed by the target, padded with 0.  The decoder
  input is what teacher forcing feeds the decoder in training; at evaluation the model ignores everything after
  the ``<bos>`` and decodes greedily, so the target never leaks into a prediction (``translate_ids`` builds the
  same layout with an empty decoder input).
* The label ``y`` is the target followed by ``<eos>``, padded with -100 (torch's ``ignore_index``): the loss skips
  padding, and the metrics then also report ``*_exact``, the fraction of sequences whose every real step
  (``<eos>`` included) is right — exact match.
* The test split is fixed by ``data_seed`` (numbers: distinct numbers never seen in training); validation follows
  the run seed.  The vocabulary and both lengths are saved in ``data.json`` (``preprocess.task == "seq2seq"``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from trainlab.data.bundle import DataBundle, DataMeta, stratified_split, tensor_splits
from trainlab.data.text import Vocabulary
from trainlab.data.text_classify import TokenDataset
from trainlab.registry import DATASETS

SPECIALS = ("<pad>", "<unk>", "<bos>", "<eos>")
BOS, EOS, IGNORE = 2, 3, -100
TEST_FRACTION = 0.2
_ONES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
         "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen")
_TENS = ("", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")


def spell(number: int) -> str:
    """English words for ``0 <= number < 1_000_000``: 342 → "three hundred forty-two" (no "and")."""
    if not 0 <= number < 1_000_000:
        raise ValueError(f"spell covers 0 … 999999, got {number}")
    if number < 20:
        return _ONES[number]
    if number < 100:
        tens, ones = divmod(number, 10)
        return _TENS[tens] + (f"-{_ONES[ones]}" if ones else "")
    if number < 1000:
        hundreds, rest = divmod(number, 100)
        return f"{_ONES[hundreds]} hundred" + (f" {spell(rest)}" if rest else "")
    thousands, rest = divmod(number, 1000)
    return f"{spell(thousands)} thousand" + (f" {spell(rest)}" if rest else "")


def vocabulary(pairs: Sequence[tuple[str, str]]) -> Vocabulary:
    """The specials, then every character of the sources and targets, sorted (a fixed, reproducible order)."""
    chars = sorted({c for source, target in pairs for c in source + target})
    return Vocabulary((*SPECIALS, *chars), level="char")


def encode_pairs(pairs: Sequence[tuple[str, str]], vocab: Vocabulary, source_length: int,
                 target_length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(x, y)`` in the layout of the module docstring; sources and targets longer than their room are refused."""
    x = torch.zeros(len(pairs), source_length + target_length, dtype=torch.long)
    y = torch.full((len(pairs), target_length), IGNORE, dtype=torch.long)
    for row, (source, target) in enumerate(pairs):
        if len(source) > source_length or len(target) + 1 > target_length:
            raise ValueError(f"{source!r} → {target!r} does not fit source_length={source_length} and "
                             f"target_length={target_length} (the target needs one more step for <eos>)")
        src, tgt = vocab.encode(list(source)), vocab.encode(list(target))
        x[row, :len(src)] = src
        x[row, source_length] = BOS
        x[row, source_length + 1:source_length + 1 + len(tgt)] = tgt
        y[row, :len(tgt)] = tgt
        y[row, len(tgt)] = EOS
    return x, y


def translate_ids(sources: Sequence[str], vocab: Vocabulary, source_length: int, target_length: int) -> torch.Tensor:
    """Model input for new sources: the same layout with an empty decoder input (what greedy decoding needs)."""
    return encode_pairs([(s, "") for s in sources], vocab, source_length, target_length)[0]


def decode_outputs(logits: torch.Tensor, vocab: Vocabulary) -> list[str]:
    """The strings a model's ``(N, T, V)`` outputs spell, each cut at its first ``<eos>``."""
    return decode_ids(logits.argmax(dim=-1), vocab)


def decode_ids(rows: torch.Tensor, vocab: Vocabulary) -> list[str]:
    """The strings ``(N, T)`` target ids (or greedy outputs) spell, each cut at its first ``<eos>`` (the -100
    padding of targets comes after it)."""
    texts = []
    for ids in rows.tolist():
        ids = ids[:ids.index(EOS)] if EOS in ids else ids
        texts.append(vocab.decode(ids))
    return texts


def _bundle(pairs: list[tuple[str, str]], seed: int, val_fraction: float, data_seed: int,
            task_name: str) -> DataBundle:
    """Encode, split (fixed test, seeded validation) and describe the pairs."""
    vocab = vocabulary(pairs)
    source_length = max(len(s) for s, _ in pairs)
    target_length = max(len(t) for _, t in pairs) + 1
    x, y = encode_pairs(pairs, vocab, source_length, target_length)
    rest, test = stratified_split(np.zeros(len(pairs)), TEST_FRACTION, data_seed, stratify=False)
    train, val = tensor_splits(x[rest], y[rest], val_fraction, seed, stratify=False)
    record = vocab.record(task="seq2seq", source_length=source_length, target_length=target_length,
                          dataset=task_name)
    meta = DataMeta(task="classification", input_shape=(len(vocab), source_length + target_length),
                    num_classes=len(vocab), classes=list(vocab.tokens), preprocess=record)
    return DataBundle(train=TokenDataset(*train.tensors), val=TokenDataset(*val.tensors) if val is not None else None,
                      test=TokenDataset(x[test], y[test]), meta=meta)


def _check_count(name: str, n: int, available: int) -> None:
    if not 10 <= n <= available:
        raise ValueError(f"{name}: n must be between 10 and {available} (the distinct examples these options allow), "
                         f"got {n}")


@DATASETS.register("numbers-to-digits", description="translate spelled-out numbers to digits (encoder-decoder)")
def numbers_to_digits(*, seed: int = 0, val_fraction: float = 0.1, n: int = 5000, max_number: int = 9999,
                      data_seed: int = 0) -> DataBundle:
    """``"three hundred forty-two"`` → ``"342"``, for ``n`` distinct numbers drawn from ``0 … max_number``."""
    if not 9 <= max_number < 1_000_000:
        raise ValueError(f"numbers-to-digits: max_number must be in 9 … 999999, got {max_number}")
    _check_count("numbers-to-digits", n, max_number + 1)
    numbers = np.random.default_rng(data_seed).permutation(max_number + 1)[:n]
    return _bundle([(spell(int(k)), str(int(k))) for k in numbers], seed, val_fraction, data_seed,
                   "numbers-to-digits")


@DATASETS.register("reverse-string", description="reverse a random string of letters (encoder-decoder)")
def reverse_string(*, seed: int = 0, val_fraction: float = 0.1, n: int = 5000, min_length: int = 3,
                   max_length: int = 10, letters: int = 10, data_seed: int = 0) -> DataBundle:
    """``n`` distinct random strings over the first ``letters`` lowercase letters, ``min_length … max_length``
    long (uniformly), reversed."""
    if not 1 <= min_length <= max_length:
        raise ValueError(f"reverse-string: need 1 <= min_length <= max_length, got {min_length} and {max_length}")
    if not 2 <= letters <= 26:
        raise ValueError(f"reverse-string: letters must be in 2 … 26, got {letters}")
    _check_count("reverse-string", n, sum(letters ** length for length in range(min_length, max_length + 1)))
    rng = np.random.default_rng(data_seed)
    alphabet = np.array(list("abcdefghijklmnopqrstuvwxyz"[:letters]))
    strings: dict[str, None] = {}  # distinct, in drawing order: no test string is ever a training string
    while len(strings) < n:
        strings["".join(rng.choice(alphabet, int(rng.integers(min_length, max_length + 1))))] = None
    return _bundle([(s, s[::-1]) for s in strings], seed, val_fraction, data_seed, "reverse-string")

