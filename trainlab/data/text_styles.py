"""``austen-styles``: one language model over several novels, conditioned on the novel (one-to-many generation).

Interface:

* Every paragraph of novel ``n`` is preceded by the style token ``<n>`` (e.g. ``<emma>``), so the hidden state
  learns which novel it is writing; the streams are the novels' heads one after another, and validation is
  the last ``val_fraction`` of every novel (each tail preceded by its style token).
* The text record (``task: "lm"``) adds ``styles``: novel name → style token.  ``trainlab generate RUN
  --style emma`` starts the prompt with ``<emma>`` and never samples a style token, so the whole passage
  stays in the chosen novel's style.  Everything else is :mod:`trainlab.data.text_lm`'s language model.
"""

from __future__ import annotations

from typing import Literal

from trainlab.data.bundle import DataBundle
from trainlab.data.text import NOVELS, Vocabulary, austen_text, split_tail, tokenize
from trainlab.data.text_lm import stream_bundle
from trainlab.registry import DATASETS


def style_token(novel: str) -> str:
    return f"<{novel}>"


def styled_tokens(text: str, novel: str, level: str, lowercase: bool) -> list[str]:
    """The novel's tokens with its style token before every paragraph (paragraphs end at a blank line)."""
    marker, tokens = style_token(novel), []
    for paragraph in text.split("\n\n"):
        if paragraph.strip():
            tokens += [marker, *tokenize(paragraph + "\n\n", level, lowercase)]
    return tokens


@DATASETS.register("austen-styles", description="language model over several Austen novels, conditioned on the "
                                                "novel (generate --style); root= the novels")
def austen_styles(*, seed: int = 0, val_fraction: float = 0.1, root: str | None = None,
                  novels: list[str] | None = None, level: Literal["char", "word"] = "char", num_steps: int = 35,
                  partition: Literal["sequential", "random"] = "sequential", lowercase: bool = False,
                  max_vocab: int | None = None, min_count: int = 1) -> DataBundle:
    """Next-token prediction over ``novels`` (default all six), each paragraph tagged with its novel."""
    chosen = list(novels) if novels is not None else list(NOVELS)
    if len(chosen) < 2 or len(set(chosen)) != len(chosen):
        raise ValueError(f"austen-styles needs at least two different novels, got {chosen}; choices: "
                         f"{', '.join(NOVELS)}")
    if root is None and chosen != ["pride-and-prejudice"]:
        raise ValueError("dataset 'austen-styles' needs the novels: set data.root=DIR, the directory holding "
                         f"{', '.join(f'{n}.txt.gz' for n in chosen)}")
    head: list[str] = []
    tail: list[str] = []
    for novel in chosen:
        part_head, part_tail = split_tail(styled_tokens(austen_text(novel, root), novel, level, lowercase),
                                          val_fraction)
        head += part_head
        tail += ([style_token(novel)] if part_tail and part_tail[0] != style_token(novel) else []) + part_tail
    vocab = Vocabulary.build(head, level, lowercase, max_size=max_vocab, min_count=min_count)
    styles = {novel: style_token(novel) for novel in chosen}
    return stream_bundle(head, tail, vocab, where="austen-styles", val_fraction=val_fraction, num_steps=num_steps,
                         partition=partition, styles=styles)
