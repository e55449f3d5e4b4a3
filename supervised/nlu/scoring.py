"""How well a tagger fills slots: span-level F1 with ``seqeval`` (the CoNLL scorer), and intent accuracy.

A slot counts as found only when its whole span and its label are right (``B-date I-date`` for
"november 2nd"), so F1 is over slot *values*, not words. ``slot_f1`` scores the inform slots only
(the values the belief is built from); ``span_f1`` also scores the "don't care" and request spans,
which are easier.
"""

from __future__ import annotations

import torch

from rlcourse.supervised.nlu.corpus import Corpus


def tag_lists(tags: torch.Tensor, lengths: torch.Tensor, names: tuple[str, ...], informs_only: bool) -> list[list[str]]:
    """Tag ids ``[N, T]`` as seqeval's lists of tag names (with ``informs_only``, other spans read as ``O``)."""
    out = []
    for row, length in zip(tags.tolist(), lengths.tolist()):
        words = [names[t] for t in row[:length]]
        if informs_only:
            words = [w if "." not in w else "O" for w in words]
        out.append(words)
    return out


@torch.no_grad()
def predict(parser, corpus: Corpus, batch_size: int = 512) -> tuple[torch.Tensor, torch.Tensor]:
    """The parser's intents ``[N]`` and tags ``[N, T]`` on a corpus."""
    intents, tags = [], []
    for start in range(0, len(corpus), batch_size):
        rows = torch.arange(start, min(start + batch_size, len(corpus)))
        tokens, lengths, _, _ = corpus.batch(rows)
        intent, tag, _ = parser.parse(tokens, lengths)
        intents.append(intent)
        tags.append(torch.nn.functional.pad(tag, (0, corpus.tokens.shape[1] - tag.shape[1])))
    return torch.cat(intents), torch.cat(tags)


def evaluate(parser, corpus: Corpus) -> dict[str, float]:
    """``slot_f1``, ``span_f1`` and ``intent_accuracy`` of ``parser`` on ``corpus``."""
    from seqeval.metrics import f1_score  # only scoring needs seqeval (and scikit-learn); loading a tagger does not

    intents, tags = predict(parser, corpus)
    names = corpus.lexicon.tags
    scores = {}
    for key, informs_only in (("slot_f1", True), ("span_f1", False)):
        gold = tag_lists(corpus.tags, corpus.lengths, names, informs_only)
        guess = tag_lists(tags, corpus.lengths, names, informs_only)
        scores[key] = float(f1_score(gold, guess, zero_division=0))
    scores["intent_accuracy"] = float((intents == corpus.intents).float().mean())
    return scores
