"""Slot taggers: a BiLSTM+CRF with an intent head, and the per-word MLP baseline it is measured against.

Both read the env's token ids and follow :class:`rlcourse.nlu.UtteranceParser`, so the dialogue env
can hear its user through either.

* **Words** (notes:3930-3935 [RNN]): a word is its embedding plus an embedding of its *shape* (digits,
  a time, a price, an ordinal, letters...), which carries over to values never seen in training. A
  word the training corpus never said is ``<unk>``; word dropout (a word, more often a value word,
  turned to ``<unk>`` while training) teaches the tagger to place a value by its context.
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


class WordFeatures(nn.Module):
    """Token ids -> word and shape embeddings ``[B, T, E]``; words never seen in training read as ``<unk>``."""

    def __init__(self, spec: TaggerSpec, known: torch.Tensor):
        super().__init__()
        unk = spec.vocabulary.index("<unk>")
        self.register_buffer("word_map", torch.where(known, torch.arange(len(known)), torch.tensor(unk)))
        self.register_buffer("shape", torch.tensor([word_shape(w) for w in spec.vocabulary]))
        self.unk = unk
        self.words = nn.Embedding(len(spec.vocabulary), spec.embedding_dim, padding_idx=0)
        self.shapes = nn.Embedding(len(_SHAPES) + 1, spec.shape_dim)
        self.size = spec.embedding_dim + spec.shape_dim

    def forward(self, tokens: torch.Tensor, unknown: torch.Tensor | None = None) -> torch.Tensor:
        """``unknown``: a ``[B, T]`` bool mask of words to read as ``<unk>`` (word dropout while training)."""
        words = self.word_map[tokens]
        if unknown is not None:
            words = torch.where(unknown, self.unk, words)
        return torch.cat([self.words(words), self.shapes(self.shape[tokens])], -1)


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

    def encode(self, tokens, lengths, unknown=None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Tag scores ``[B, T, K]``, intent scores ``[B, I]`` and the word mask ``[B, T]``."""
        mask = self.mask(tokens, lengths)
        x = self.features(tokens, unknown)
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

    def loss(self, tokens, lengths, tags, intents, unknown=None) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean negative log-likelihoods of the tag sequences (CRF) and of the intents."""
        emissions, intent_scores, mask = self.encode(tokens, lengths, unknown)
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

    def encode(self, tokens, lengths, unknown=None):
        mask = self.mask(tokens, lengths)
        states = self.body(self.features(tokens, unknown))
        pooled = (states * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
        return self.emit(states), self.intent_head(pooled), mask

    def loss(self, tokens, lengths, tags, intents, unknown=None):
        emissions, intent_scores, mask = self.encode(tokens, lengths, unknown)
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
