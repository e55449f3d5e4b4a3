"""Labelled sentences from the dialogue env's own NLG: user acts said in English, with BIO slot tags and intents.

The env already knows how its simulated user speaks (:mod:`rlcourse.envs.dialogue.speech`), so it
can label a corpus of any size: draw user acts, say them, and keep the gold tags of every word. The
tagger learns the slot-filling task of notes:3924-4133 [RNN] from it.

Two held-out splits measure what a tagger generalises to:

* **values**: a fixed quarter of every slot's values (at least one) is never said in training, by any
  slot (a value two slots share is held out of both), so a tagger must place a word it never heard by
  the words around it, its shape and its spelling (a held-out value has a length in words that some
  training value of its slot has: a tagger that never saw a two-word city cannot tag one);
* **templates**: the paraphrase variants ``k % 3 == 2`` of every phrase family are never said in
  training (:mod:`rlcourse.envs.dialogue.lexicon`).

The **ambiguous-context set** informs only slots that share values with another slot (a train's
departure and destination cities, its leaving and arrival times), so only the context words
tell the slot: the course's "arrive Taipei" / "leave Taipei" (notes:3939-3948 [RNN]).

Everything is drawn from one seeded ``torch.Generator``: the same arguments give the same corpus.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from rlcourse.envs.dialogue.domain import Domain, load_domain
from rlcourse.envs.dialogue.lexicon import Lexicon, tokenize
from rlcourse.envs.dialogue.nlu import ABSENT, DONTCARE
from rlcourse.envs.dialogue.speech import INTENTS, Speech

#: How often each intent is drawn (the env's user informs most, and affirms, denies and rejects often).
INTENT_WEIGHTS = {
    "inform": 0.42,
    "request": 0.12,
    "affirm": 0.08,
    "deny": 0.16,
    "reject": 0.08,
    "thanks": 0.07,
    "bye": 0.07,
}
VALUE_SPLITS = ("all", "train", "heldout")
HELDOUT_VALUE_SEED = 2015


@dataclass
class Corpus:
    """Sentences as token ids ``[N, T]`` (0 pads), their ``lengths`` ``[N]``, gold ``tags`` ``[N, T]`` and ``intents`` ``[N]``."""

    tokens: torch.Tensor
    lengths: torch.Tensor
    tags: torch.Tensor
    intents: torch.Tensor
    lexicon: Lexicon

    def __len__(self) -> int:
        return int(self.lengths.shape[0])

    def batch(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Rows ``index``, cut to their longest sentence."""
        lengths = self.lengths[index]
        width = int(lengths.max())
        return self.tokens[index, :width], lengths, self.tags[index, :width], self.intents[index]

    def sentence(self, row: int) -> str:
        return self.lexicon.words(self.tokens[row, : int(self.lengths[row])].tolist())


def heldout_values(domain: Domain) -> dict[str, list[str]]:
    """The values each informable slot holds out of training: a fixed quarter of them (at least one), drawn among
    those whose length in words some training value shares (no tagger learns ``I-city`` from one-word cities).

    A value two slots share is held out of both (drawn by the first, counted in the second's quarter): held out of
    one slot only, it would be said in training by the other, so the tagger would know the word, and only as the
    other slot's (a departure "stansted" the tagger heard only as a destination tests recall of that, not an
    unseen value; the ambiguous-context set is where shared values are scored).
    """
    rng = np.random.RandomState(HELDOUT_VALUE_SEED)
    held: dict[str, list[str]] = {}
    for slot in domain.informable:
        values = domain.values[slot]
        words = [len(tokenize(value)) for value in values]
        taken = {value for out in held.values() for value in out}
        out: list[int] = [i for i, value in enumerate(values) if value in taken]
        for i in rng.permutation(len(values)):
            rest = [n for j, n in enumerate(words) if j != i and j not in out]
            if len(out) < max(1, round(len(values) / 4)) and i not in out and words[i] in rest:
                out.append(int(i))
        held[slot] = [values[i] for i in sorted(out)]
    return held


def ambiguous_slots(domain: Domain) -> list[str]:
    """Informable slots that share a value with another informable slot."""
    found = []
    for slot in domain.informable:
        others = {v for other in domain.informable if other != slot for v in domain.values[other]}
        if others & set(domain.values[slot]):
            found.append(slot)
    return found


def _value_pool(domain: Domain, slots: list[str], split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Per slot, the value indices ``split`` may say (padded) and how many there are."""
    held = heldout_values(domain)
    pools = []
    for slot in slots:
        every = list(range(len(domain.values[slot])))
        out = [i for i in every if domain.values[slot][i] in held[slot]]
        pools.append({"all": every, "heldout": out, "train": [i for i in every if i not in out]}[split])
    width = max(map(len, pools))
    return torch.tensor([p + p[:1] * (width - len(p)) for p in pools]), torch.tensor([len(p) for p in pools])


def sample_acts(
    domain: Domain, size: int, generator: torch.Generator, values: str = "all", only_slots: list[str] | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``size`` random user acts: intents ``[N]``, inform codes ``[N, S]``, requests ``[N, R]`` (the env's encoding).

    An inform says 1-4 slots (a sixth of them "don't care") and may ask for some requests, as a first
    turn does; a request asks for 1-2 slots; a deny corrects 1-2 slots or none; a reject is mostly bare.
    ``only_slots``: inform only these slots (every act is then an inform of 1-3 of them).
    """
    if values not in VALUE_SPLITS:
        raise ValueError(f"unknown value split {values!r}; choose one of {', '.join(VALUE_SPLITS)}")
    slots, requests = domain.informable, domain.requestable
    S, R, g = len(slots), len(requests), generator
    pool, pool_size = _value_pool(domain, slots, values)
    weights = torch.tensor([INTENT_WEIGHTS[name] for name in INTENTS])
    intent = torch.multinomial(weights, size, replacement=True, generator=g)
    count = torch.randint(1, 5, (size,), generator=g)
    count = torch.where(intent == INTENTS.index("deny"), torch.randint(0, 3, (size,), generator=g), count)
    reject_informs = torch.rand(size, generator=g) < 0.2
    count = torch.where(intent == INTENTS.index("reject"), count * reject_informs, count)
    allowed = torch.ones(S, dtype=torch.bool)
    if only_slots is not None:
        intent = torch.full((size,), INTENTS.index("inform"))
        count = torch.randint(1, 4, (size,), generator=g).clamp(max=len(only_slots))
        allowed = torch.tensor([slot in only_slots for slot in slots])
    keys = torch.where(allowed, torch.rand(size, S, generator=g), torch.tensor(2.0))
    chosen = (keys.argsort(1).argsort(1) < count[:, None]) & allowed
    says_values = torch.isin(intent, torch.tensor([INTENTS.index(n) for n in ("inform", "deny", "reject")]))
    chosen &= says_values[:, None]
    pick = (torch.rand(size, S, generator=g) * pool_size).long()
    value = torch.take(pool, torch.arange(S) * pool.shape[1] + pick)
    dontcare = (torch.rand(size, S, generator=g) < 1 / 6) & (intent == INTENTS.index("inform"))[:, None]
    if only_slots is not None:
        dontcare = torch.zeros_like(dontcare)
    inform = torch.where(chosen, torch.where(dontcare, torch.tensor(DONTCARE), value), torch.tensor(ABSENT))
    asks = torch.rand(size, R, generator=g)
    request = (asks < 0.2) & (intent == INTENTS.index("inform"))[:, None] & (only_slots is None)
    n_requests = torch.randint(1, 3, (size,), generator=g)
    wanted = asks.argsort(1).argsort(1) < n_requests[:, None]
    request |= wanted & (intent == INTENTS.index("request"))[:, None]
    return intent, inform, request


def make_corpus(
    domain: str | Domain,
    size: int,
    seed: int,
    values: str = "all",
    templates: str = "all",
    typo: float = 0.0,
    drop: float = 0.0,
    ambiguous: bool = False,
) -> Corpus:
    """``size`` labelled sentences of ``domain`` (see the module docstring).

    Args:
        values: ``all``, ``train`` or ``heldout`` values; templates: ``all``, ``train``, ``heldout`` or
            ``canonical`` paraphrase variants; typo, drop: word-noise rates (a typo is ``<unk>``, keeping its tag);
        ambiguous: the ambiguous-context set (an error for a domain whose slots share no values).
    """
    domain = load_domain(domain) if isinstance(domain, str) else domain
    if isinstance(size, bool) or not isinstance(size, int) or size <= 0:
        raise ValueError(f"a corpus size must be a positive integer, got {size!r}")
    only = None
    if ambiguous:
        only = ambiguous_slots(domain)
        if not only:
            raise ValueError(
                f"the domain {domain.name!r} has no slots that share values, so it has no ambiguous-context set "
                "(the shipped 'train' domain has)"
            )
    generator = torch.Generator().manual_seed(int(seed))
    lexicon = Lexicon(domain)
    speech = Speech(lexicon, "cpu", templates)
    intent, inform, request = sample_acts(domain, size, generator, values, only)
    tokens, lengths, tags = speech.say(intent, inform, request, speech.draw(size, generator), typo, drop)
    lengths = lengths.clamp(min=1)  # a turn whose every word was dropped is one <pad> word, tagged O
    return Corpus(tokens, lengths, tags, intent, lexicon)
