"""Using text runs: sampling text from a language model (``generate``), classifying passages and translating
source strings with an encoder-decoder (``predict``).

Generation feeds the prompt through the model once (its final hidden state summarises it), then samples one token
at a time from ``softmax(logits / temperature)``, feeding each back with the carried state, so the cost per token
is one step, not a rerun of the whole text.  Sampling draws from its own ``torch.Generator`` seeded by ``seed``:
the same run, prompt, length, temperature and seed give the same text.  ``<pad>`` and ``<unk>`` are never drawn.
A run over several novels (``austen-styles``) generates in the style of one (one-to-many, conditioned on a class):
its style token goes before the prompt, and wherever the model starts a new paragraph (samples a style token),
the chosen novel's token is fed instead and nothing is shown, so the passage keeps that style.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from trainlab.data.bundle import DataMeta
from trainlab.data.seq2seq import EOS, SPECIALS, decode_outputs, translate_ids
from trainlab.data.text import Vocabulary, detokenize
from trainlab.data.text_classify import passage_ids
from trainlab.inference.outputs import Prediction, average_outputs

MAX_LENGTH = 100_000  # tokens one generate call may produce


def check_generation(length: int, temperature: float) -> None:
    """Refuse a length or temperature that cannot sample anything, before any model is loaded."""
    if length < 1 or length > MAX_LENGTH:
        raise ValueError(f"--length must be from 1 to {MAX_LENGTH} tokens, got {length}")
    if not temperature > 0 or temperature == float("inf"):
        raise ValueError(f"--temperature must be a number > 0 (lower: more predictable text), got {temperature}")


def language_model_vocabulary(meta: DataMeta, where: str) -> Vocabulary:
    """The vocabulary of a language-model run; any other run is a ValueError naming what it is."""
    record = meta.preprocess
    if not isinstance(record, dict) or record.get("kind") != "text":
        kind = record.get("kind") if isinstance(record, dict) else None
        raise ValueError(f"{where} was trained on {kind or 'non-text'} data; generate needs a language-model run "
                         "(dataset text or austen)")
    if record.get("task") != "lm":
        raise ValueError(f"{where} is a text classifier, not a language model; use `trainlab predict` with it, and "
                         "generate with a run of dataset text or austen")
    return Vocabulary.from_record(record)


def prompt_ids(vocab: Vocabulary, prompt: str) -> torch.Tensor:
    """The prompt's ids; a prompt with tokens the vocabulary lacks is refused, naming them."""
    if not prompt:
        raise ValueError("--prompt is empty; give at least one character to start from")
    missing = vocab.unknown(prompt)
    if missing:
        unit = "characters" if vocab.level == "char" else "words"
        shown = ", ".join(repr(t) for t in missing[:10]) + (" …" if len(missing) > 10 else "")
        raise ValueError(f"the prompt holds {unit} the run's vocabulary lacks: {shown}; the vocabulary has "
                         f"{len(vocab) - 2} {unit} from its training text")
    return vocab.encode_text(prompt)


def style_id(vocab: Vocabulary, styles: dict[str, str], style: str | None) -> list[int]:
    """The style token's id to put before the prompt (none without ``style``); unknown styles are refused."""
    if style is None:
        return []
    if not styles:
        raise ValueError(f"--style {style}: this run has no styles; train on dataset austen-styles to generate in "
                         "the style of a chosen novel")
    if style not in styles:
        raise ValueError(f"unknown --style '{style}'; this run knows: {', '.join(styles)}")
    return [vocab.index[styles[style]]]


@torch.no_grad()
def generate(model: nn.Module, vocab: Vocabulary, prompt: str, length: int, temperature: float = 1.0,
             seed: int = 0, style: str | None = None, styles: dict[str, str] | None = None) -> str:
    """The prompt followed by ``length`` sampled tokens (see the module docstring); with ``style`` (one of
    ``styles``, the run's novel → style token), in the style of that novel."""
    check_generation(length, temperature)
    if getattr(model, "directions", 1) > 1:  # trainlab refuses to train these (session.check_model_for_data)
        raise ValueError("the run's model is bidirectional: its backward direction needs the text that comes after "
                         "each step, which generation has not written yet; train a language model with "
                         "model.bidirectional=false to generate")
    styles = styles or {}
    chosen = style_id(vocab, styles, style)
    ids = torch.cat([torch.tensor(chosen, dtype=torch.long), prompt_ids(vocab, prompt)])
    markers = {vocab.index[token] for token in styles.values() if token in vocab.index}
    model.eval()
    device = next(model.parameters()).device
    generator = torch.Generator(device="cpu").manual_seed(seed)
    logits, state = model.run(ids[None].to(device))
    drawn: list[int] = []
    for _ in range(2 * length):  # style tokens are fed back but not shown; the cap bounds a run of them
        scores = logits[0, -1].float().cpu() / temperature
        scores[:2] = float("-inf")  # never <pad> or <unk>
        token = int(torch.multinomial(scores.softmax(dim=0), 1, generator=generator))
        if token in markers:  # a new paragraph: it begins in the chosen style (or the one the model picked)
            token = chosen[0] if chosen else token
        else:
            drawn.append(token)
        logits, state = model.run(torch.tensor([[token]], device=device), state)
        if len(drawn) == length:
            break
    tokens = [vocab.tokens[i] for i in drawn]
    return prompt + ("" if vocab.level == "char" else " ") + detokenize(tokens, vocab.level)


def read_passages(inputs: Sequence[str]) -> list[tuple[str, str]]:
    """``(name, text)`` per input: an existing file is read as UTF-8 text, anything else is the text itself."""
    passages = []
    for item in inputs:
        path = Path(item)
        is_file = len(item) < 4096 and "\n" not in item and path.is_file()
        text = path.read_text(encoding="utf-8") if is_file else item
        if not text.strip():
            raise ValueError(f"{'file ' + item if is_file else 'a text argument'} is empty; give a passage to classify")
        passages.append((item if is_file else _shorten(item), text))
    return passages


def predict_texts(models: Sequence[nn.Module], inputs: Sequence[str], meta: DataMeta,
                  device: str | torch.device = "cpu") -> list[Prediction]:
    """Class and probability of each passage (text or text file) with a sequence classifier run; with an
    encoder-decoder run, :func:`translate_texts`."""
    record = meta.preprocess
    if record.get("task") == "seq2seq":
        return translate_texts(models, inputs, meta, device)
    if record.get("task") != "classify":
        raise ValueError("this run is a language model: `trainlab generate` samples text from it; predict needs a "
                         "text classifier run (dataset austen-novels) or an encoder-decoder run (seq2seq)")
    vocab = Vocabulary.from_record(record)
    passages = read_passages(inputs)
    x = passage_ids([text for _, text in passages], vocab).to(device)
    output = average_outputs(models, x, meta.task)
    classes = meta.classes or [str(i) for i in range(output.shape[1])]
    top = output.max(dim=1)
    return [Prediction(name, classes[int(i)], float(p)) for (name, _), p, i in zip(passages, top.values, top.indices)]


def translate_texts(models: Sequence[nn.Module], sources: Sequence[str], meta: DataMeta,
                    device: str | torch.device = "cpu") -> list[Prediction]:
    """Each source string as an encoder-decoder run translates it (greedy decoding), with the probability of the
    whole output: the product of its steps' probabilities up to and including ``<eos>``.  Fold models (a k-fold
    directory) decode greedily each on its own and their per-step probabilities are averaged."""
    record = meta.preprocess
    vocab = Vocabulary.from_record(record)
    for source in sources:
        _check_source(source, vocab, record["source_length"])
    x = translate_ids(list(sources), vocab, record["source_length"], record["target_length"]).to(device)
    steps = average_outputs(models, x, meta.task).cpu()  # (n, target steps, vocabulary)
    best = steps.max(dim=-1)
    predictions = []
    for row, (source, text) in enumerate(zip(sources, decode_outputs(steps, vocab))):
        ids = best.indices[row].tolist()
        length = ids.index(EOS) + 1 if EOS in ids else len(ids)
        predictions.append(Prediction(_shorten(source), text, float(best.values[row, :length].prod())))
    return predictions


def _check_source(source: str, vocab: Vocabulary, source_length: int) -> None:
    """Refuse a source the run cannot read: empty, longer than its training sources, or with unknown characters."""
    if not source:
        raise ValueError("a source string is empty; give the text to translate")
    if len(source) > source_length:
        raise ValueError(f"{_shorten(source)!r} has {len(source)} characters; this run reads sources of at most "
                         f"{source_length} (the longest in its training data)")
    missing = vocab.unknown(source)
    if missing:
        known = "".join(vocab.tokens[len(SPECIALS):])
        raise ValueError(f"{_shorten(source)!r} holds characters the run's vocabulary lacks: "
                         f"{', '.join(repr(c) for c in missing)}; it knows {known!r}")


def _shorten(text: str, width: int = 40) -> str:
    line = " ".join(text.split())
    return line if len(line) <= width else line[:width - 1] + "…"
