"""Slot taggers: a BiLSTM+CRF with an intent head, and the per-word MLP baseline it is measured against.

Both read the env's token ids and follow :class:`rlcourse.nlu.UtteranceParser`, so the dialogue env
can hear its user through either.

* **Words** (notes:3930-3935 [RNN]): a word is its embedding plus an embedding of its *shape* (digits,
  a time, a price, an ordinal, letters...) and, with ``char_filters > 0``, a *spelling* vector: a
  convolution over the embeddings of its characters (three at a time, between begin and end marks),
  max-pooled over the word. Shape and spelling carry over to values never seen in training, since the
  env's vocabulary spells every word it can say. A word the training corpus never said reads as
  ``<unk>`` (but keeps its shape and spelling); word dropout (a word, more often a value word, read as
  ``<unk>`` while training) teaches the tagger to place a value by its context and its spelling, and
  *spelling dropout* (a dropped word loses its spelling too, as a typo does) by its context alone.
  The spelling vectors of the whole vocabulary are one batched convolution per call, gathered by
  token id: no loop over words. On the shipped domains spelling does not pay (a slot's values share
  no spelling, and an unheard city spelt like a theatre goes to the theatre: docs/nlu.md), so the
  presets leave it off.
* **The baseline**: a feed-forward network per word (notes:3939-3948 [RNN]). It sees one word, so
  "leave Taipei" and "arrive Taipei" give it the same input: it cannot tell departure from destination.
* **BiLSTM+CRF**: an LSTM reads the sentence forwards and another backwards (notes:3991-3997 [RNN];
  the LSTM cell of notes:3999-4115 [RNN]), so each word's tag scores see the whole sentence; a CRF on
  top scores whole tag sequences and decodes with Viterbi (notes:15485-15543; :mod:`.crf`). Training
  maximises the CRF log-likelihood plus the intent head's log-likelihood; the intent head reads the
  forward LSTM's last state and the backward one's first.

The backward LSTM reads each sentence reversed within its own length (a gather), so the padding
never enters a real word's state and no packed sequence (with its lengths read on the host) is needed.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from rlcourse.supervised.nlu.crf import LinearChainCRF, bio_constraints

_SHAPES = (
    ("special", re.compile(r"<.*>")),
    ("punctuation", re.compile(r"[.,?!]")),
    ("number", re.compile(r"\d+")),
    ("time", re.compile(r"\d+:\d+")),
    ("money", re.compile(r"[$£€]\d+")),
    ("ordinal", re.compile(r"\d+(st|nd|rd|th)")),
    ("code", re.compile(r"(?=.*\d)(?=.*[a-z])[a-z0-9]+")),
    ("word", re.compile(r"[a-z][a-z'\-]*")),
)


def word_shape(word: str) -> int:
    """The shape class of a word (its index in ``_SHAPES``; ``len(_SHAPES)`` for any other)."""
    for index, (_, pattern) in enumerate(_SHAPES):
        if pattern.fullmatch(word):
            return index
    return len(_SHAPES)


#: The characters a spelling tells apart (any other is one "other" character); saved with each tagger.
ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789.,?!'-:&/$£€"
_PAD_CHAR, _OTHER_CHAR, _BEGIN, _END = range(4)


def spell(vocabulary: Sequence[str], alphabet: str) -> torch.Tensor:
    """Each word's characters as ids ``[V, W]`` between a begin and an end mark (0 pads); ``<pad>``, ``<unk>`` and
    the other ``<...>`` words have no spelling (a row of 0)."""
    index = {c: i + 4 for i, c in enumerate(alphabet)}
    rows = [[] if word_shape(w) == 0 else [_BEGIN, *(index.get(c, _OTHER_CHAR) for c in w), _END] for w in vocabulary]
    width = max(3, *map(len, rows))
    return torch.tensor([row + [_PAD_CHAR] * (width - len(row)) for row in rows])


@dataclass(frozen=True)
class TaggerSpec:
    """What a tagger reads and writes, and its sizes (saved with it)."""

    vocabulary: tuple[str, ...]
    tags: tuple[str, ...]
    intents: tuple[str, ...]
    domain: str
    model: str = "bilstm_crf"
    embedding_dim: int = 48
    shape_dim: int = 8
    hidden_dim: int = 64
    char_dim: int = 16
    char_filters: int = 0
    alphabet: str = ALPHABET


class Spelling(nn.Module):
    """The spelling vector of every vocabulary word ``[V, F]``: character embeddings, a width-3 convolution, the max
    over the word's positions and a tanh; a word with no spelling (``<unk>``, ``<pad>``) gets zeros."""

    def __init__(self, spec: TaggerSpec):
        super().__init__()
        self.register_buffer("letters", spell(spec.vocabulary, spec.alphabet))
        self.chars = nn.Embedding(len(spec.alphabet) + 4, spec.char_dim, padding_idx=_PAD_CHAR)
        self.conv = nn.Conv1d(spec.char_dim, spec.char_filters, kernel_size=3, padding=1)

    def forward(self) -> torch.Tensor:
        spelt = self.letters != _PAD_CHAR  # [V, W]
        grams = self.conv(self.chars(self.letters).transpose(1, 2))  # [V, F, W]
        best = torch.where(spelt[:, None, :], grams, torch.finfo(grams.dtype).min).amax(-1)
        return torch.where(spelt.any(1, keepdim=True), torch.tanh(best), 0.0)


class WordFeatures(nn.Module):
    """Token ids -> word, shape and (with ``char_filters``) spelling features ``[B, T, E]``; words never seen in
    training read as ``<unk>`` but keep their shape and spelling."""

    def __init__(self, spec: TaggerSpec, known: torch.Tensor):
        super().__init__()
        unk = spec.vocabulary.index("<unk>")
        self.register_buffer("word_map", torch.where(known, torch.arange(len(known)), torch.tensor(unk)))
        self.register_buffer("shape", torch.tensor([word_shape(w) for w in spec.vocabulary]))
        self.unk = unk
        self.words = nn.Embedding(len(spec.vocabulary), spec.embedding_dim, padding_idx=0)
        self.shapes = nn.Embedding(len(_SHAPES) + 1, spec.shape_dim)
        self.spelling = Spelling(spec) if spec.char_filters > 0 else None
        self.size = spec.embedding_dim + spec.shape_dim + spec.char_filters

    def forward(
        self, tokens: torch.Tensor, unknown: torch.Tensor | None = None, unspelt: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``unknown``: a ``[B, T]`` bool mask of words to read as ``<unk>`` (word dropout while training);
        ``unspelt``: words that lose their spelling too (spelling dropout; read only with char features)."""
        words = self.word_map[tokens]
        if unknown is not None:
            words = torch.where(unknown, self.unk, words)
        parts = [self.words(words), self.shapes(self.shape[tokens])]
        if self.spelling is not None:
            spelt = tokens if unspelt is None else torch.where(unspelt, self.unk, tokens)
            parts.append(self.spelling()[spelt])
        return torch.cat(parts, -1)


class _Tagger(nn.Module):
    """What both taggers share: the spec, the feature layer and the :class:`UtteranceParser` attributes."""

    def __init__(self, spec: TaggerSpec, known: torch.Tensor):
        super().__init__()
        self.spec = spec
        self.vocabulary, self.tags, self.intents, self.domain = spec.vocabulary, spec.tags, spec.intents, spec.domain
        self.features = WordFeatures(spec, known)

    @staticmethod
    def mask(tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return torch.arange(tokens.shape[1], device=tokens.device) < lengths.clamp(min=1)[:, None]


class BiLstmCrfTagger(_Tagger):
    """A BiLSTM+CRF slot tagger with an intent head (see the module docstring)."""

    def __init__(self, spec: TaggerSpec, known: torch.Tensor):
        super().__init__(spec, known)
        size, hidden = self.features.size, spec.hidden_dim
        self.forward_lstm = nn.LSTM(size, hidden, batch_first=True)
        self.backward_lstm = nn.LSTM(size, hidden, batch_first=True)
        self.emit = nn.Linear(2 * hidden, len(spec.tags))
        self.intent_head = nn.Linear(2 * hidden, len(spec.intents))
        self.crf = LinearChainCRF(len(spec.tags), bio_constraints(spec.tags))

    def encode(self, tokens, lengths, unknown=None, unspelt=None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Tag scores ``[B, T, K]``, intent scores ``[B, I]`` and the word mask ``[B, T]``."""
        mask = self.mask(tokens, lengths)
        x = self.features(tokens, unknown, unspelt)
        positions = torch.arange(tokens.shape[1], device=tokens.device)
        last = (lengths.clamp(min=1) - 1)[:, None]
        reverse = torch.where(mask, last - positions, positions)[..., None]  # its own inverse
        ahead, _ = self.forward_lstm(x)
        behind, _ = self.backward_lstm(x.gather(1, reverse.expand_as(x)))
        behind = behind.gather(1, reverse.expand_as(behind))
        states = torch.cat([ahead, behind], -1)
        summary = torch.cat(
            [ahead.gather(1, last[..., None].expand(-1, 1, ahead.shape[2])).squeeze(1), behind[:, 0]], -1
        )
        return self.emit(states), self.intent_head(summary), mask

    def loss(self, tokens, lengths, tags, intents, unknown=None, unspelt=None) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean negative log-likelihoods of the tag sequences (CRF) and of the intents."""
        emissions, intent_scores, mask = self.encode(tokens, lengths, unknown, unspelt)
        tag_loss = -self.crf.log_likelihood(emissions, tags, mask).mean()
        return tag_loss, nn.functional.cross_entropy(intent_scores, intents)

    @torch.no_grad()
    def parse(self, tokens: torch.Tensor, lengths: torch.Tensor):
        """:meth:`rlcourse.nlu.UtteranceParser.parse`. The confidence is the geometric mean over the words of each
        decoded tag's softmax probability under the tag scores: cheap, where P(path | words) would need the
        forward recursion (:meth:`.crf.LinearChainCRF.log_partition`) on top of Viterbi, in every env step."""
        emissions, intent_scores, mask = self.encode(tokens, lengths)
        tags, _ = self.crf.viterbi(emissions, mask)
        return intent_scores.argmax(-1), tags, _mean_tag_probability(emissions, tags, mask)


class WordMlpTagger(_Tagger):
    """The per-word feed-forward baseline (see the module docstring); its intent reads the mean of its word states."""

    def __init__(self, spec: TaggerSpec, known: torch.Tensor):
        super().__init__(spec, known)
        hidden = spec.hidden_dim
        self.body = nn.Sequential(
            nn.Linear(self.features.size, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh()
        )
        self.emit = nn.Linear(hidden, len(spec.tags))
        self.intent_head = nn.Linear(hidden, len(spec.intents))

    def encode(self, tokens, lengths, unknown=None, unspelt=None):
        mask = self.mask(tokens, lengths)
        states = self.body(self.features(tokens, unknown, unspelt))
        pooled = (states * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
        return self.emit(states), self.intent_head(pooled), mask

    def loss(self, tokens, lengths, tags, intents, unknown=None, unspelt=None):
        emissions, intent_scores, mask = self.encode(tokens, lengths, unknown, unspelt)
        tag_loss = nn.functional.cross_entropy(emissions[mask], tags[mask])
        return tag_loss, nn.functional.cross_entropy(intent_scores, intents)

    @torch.no_grad()
    def parse(self, tokens: torch.Tensor, lengths: torch.Tensor):
        """Each word's most likely tag; the confidence as the BiLSTM+CRF's."""
        emissions, intent_scores, mask = self.encode(tokens, lengths)
        tags = torch.where(mask, emissions.argmax(-1), torch.zeros_like(mask, dtype=torch.int64))
        return intent_scores.argmax(-1), tags, _mean_tag_probability(emissions, tags, mask)


def _mean_tag_probability(emissions: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """exp(mean over the words of log softmax(emissions)[tag]): a confidence in [0, 1] per sentence ``[B]``."""
    chosen = emissions.log_softmax(-1).gather(2, tags[..., None]).squeeze(2)
    return torch.exp((chosen * mask).sum(1) / mask.sum(1))


MODELS: dict[str, type[_Tagger]] = {"bilstm_crf": BiLstmCrfTagger, "word_mlp": WordMlpTagger}


def build_tagger(spec: TaggerSpec, known: Sequence[bool] | torch.Tensor) -> _Tagger:
    """A fresh tagger of ``spec.model``; ``known[i]``: whether word ``i`` was said in training."""
    if spec.model not in MODELS:
        raise ValueError(f"unknown tagger model {spec.model!r}; choose one of {', '.join(MODELS)}")
    return MODELS[spec.model](spec, torch.as_tensor(known, dtype=torch.bool))
