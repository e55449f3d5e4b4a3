"""The user's turn as token ids, built on the device, and the acts read back from BIO tags.

This is the path a learned NLU hears the user through: user act -> words -> tagger -> act. Both
directions are batched tensor code with fixed shapes: no Python strings, no host reads, nothing
that branches on a tensor's value, so it runs inside a captured CUDA graph.

**Saying** (:meth:`Speech.say`). A turn is a fixed list of *segments* (the opener's prefix, the opener
with its want, one inform phrase per slot, the closing ``.``, one "don't care" sentence per slot, one
request per requestable slot; see :mod:`~rlcourse.envs.dialogue.lexicon`). Each segment picks a phrase
with one gather from precompiled tables (by intent, value and a drawn paraphrase variant), absent
segments pick the empty phrase, and the word noise applies per token: a *typo* turns a word into
``<unk>`` (a misspelt word is out of the vocabulary), a *drop* removes it. A cumulative sum then
packs the kept tokens to the left (one scatter). With paraphrases off and no noise, the words are
exactly :meth:`~rlcourse.envs.dialogue.nlg.Phrasebook.user_turn`'s.

**Hearing** (:meth:`Speech.read`). A tagger's tags become an act: the tokens of each label form its
span; a span's words are hashed (a random 64-bit code per (word, position in the span), summed) and
the hash is looked up among the slot's values. A span that is no value of its slot (a typo, a word
dropped, a wrong tag) is not heard. A ``dontcare.<slot>`` span is "any value", a ``request.<slot>``
span a request.
"""

from __future__ import annotations

import numpy as np
import torch

from rlcourse.envs.dialogue.lexicon import SPLITS, Lexicon
from rlcourse.envs.dialogue.nlu import ABSENT, DONTCARE, _arange

#: Intents in the env's order (slot_filling.INTENTS; repeated to keep this module below the env).
INTENTS = ("inform", "request", "affirm", "deny", "reject", "thanks", "bye")
_WANTS_A_SENTENCE = ("inform", "request", "deny", "reject")


class Speech:
    """A domain's user turns as tensors on ``device`` (see the module docstring).

    Args:
        lexicon: the domain's words.
        templates: which paraphrase variants turns use: ``all``, ``train``, ``heldout`` or ``canonical``
            (only the domain's own wording).
    """

    def __init__(self, lexicon: Lexicon, device: torch.device | str = "cpu", templates: str = "all"):
        if templates not in SPLITS:
            raise ValueError(f"unknown template split {templates!r}; choose one of {', '.join(SPLITS)}")
        self.lexicon, self.device, self.templates = lexicon, torch.device(device), templates
        lex, dev = lexicon, self.device
        long = dict(dtype=torch.int64, device=dev)
        width = max(len(p.tokens) for p in lex.phrases)
        tokens = np.zeros((len(lex.phrases), width), dtype=np.int64)
        tags = np.zeros((len(lex.phrases), width), dtype=np.int64)
        for i, phrase in enumerate(lex.phrases):
            tokens[i, : len(phrase.tokens)] = [lex.word_id[t] for t in phrase.tokens]
            tags[i, : len(phrase.tags)] = [lex.tag_id(t) for t in phrase.tags]
        self.phrase_tokens = torch.tensor(tokens, **long)
        self.phrase_tags = torch.tensor(tags, **long)
        self.phrase_length = torch.tensor([len(p.tokens) for p in lex.phrases], **long)
        # Per segment: its family's variant pool (padded by repeating) and its flat phrase table.
        segments = lex.segments
        pools = [family.pool(templates) for family in segments]
        self.pool_size = torch.tensor([len(pool) for pool in pools], **long)
        self.pool = torch.tensor([pool + pool[:1] * (max(map(len, pools)) - len(pool)) for pool in pools], **long)
        self.pool_base = torch.arange(len(segments), **long) * self.pool.shape[1]
        choices = [len(family.ids[0]) for family in segments]
        self.choices = torch.tensor(choices, **long)
        flat, offsets = [], []
        for family in segments:
            offsets.append(len(flat))
            flat.extend(phrase for variant in family.ids for phrase in variant)
        self.segment_phrases = torch.tensor(flat, **long)
        self.segment_offset = torch.tensor(offsets, **long)
        #: the longest turn there can be: per slot the longer of its inform and "don't care" phrases
        longest = [int(self.phrase_length[torch.tensor(sum(f.ids, []))].max()) for f in segments]
        S = len(lex.slots)
        informs, dontcares = longest[2 : 2 + S], longest[3 + S : 3 + 2 * S]
        self.max_tokens = (
            sum(longest[:2]) + sum(map(max, informs, dontcares)) + longest[2 + S] + sum(longest[3 + 2 * S :])
        )
        self.segment_width = width
        self.prefix_kind = {name: i for i, name in enumerate(lex.prefix_kinds)}
        self.intent_prefix = torch.tensor([self._prefix_choice(i) for i in INTENTS], **long)  # [intents, with?]
        self.wants_sentence = torch.tensor([name in _WANTS_A_SENTENCE for name in INTENTS], device=dev)
        self.inform_intent = torch.tensor(INTENTS.index("inform"), **long)
        self.request_intent = torch.tensor(INTENTS.index("request"), **long)
        self.want_slot = lex.slots.index(lex.want_slot) if lex.want_slot is not None else None
        self._build_hashes()
        self.positions = torch.arange(self.max_tokens, device=dev)
        self.zero, self.one, self.unk = (torch.tensor(v, **long) for v in (0, 1, lex.word_id["<unk>"]))
        # 0-d operands made once: a tensor made from a Python number in a step would be a host-to-device copy
        self.trash = torch.tensor(self.max_tokens, **long)  # where packing puts the words it does not keep
        self.no_label = torch.tensor(len(lex.labels), **long)
        self.absent, self.dontcare = torch.tensor(ABSENT, **long), torch.tensor(DONTCARE, **long)

    def _prefix_choice(self, intent: str) -> list[int]:
        """The prefix kind of ``intent`` without and with informed values."""
        kind = self.prefix_kind
        if intent in ("deny", "reject"):
            return [kind[f"{intent}_without"], kind[f"{intent}_with"]]
        if intent in ("affirm", "thanks", "bye"):
            return [kind[intent]] * 2
        return [kind["plain"]] * 2

    def _build_hashes(self) -> None:
        lex, dev = self.lexicon, self.device
        self.span_limit = max(len(tokens) for values in lex.value_tokens for tokens in values)
        rng = np.random.RandomState(15)
        codes = rng.randint(-(2**62), 2**62, size=(len(lex.vocabulary), self.span_limit + 1), dtype=np.int64)
        self.word_code = torch.tensor(codes, device=dev)  # column span_limit: a span too long for any value
        width = max(len(values) for values in lex.value_tokens)
        value_hash = torch.full((len(lex.slots), width), 0, dtype=torch.int64)
        self.value_exists = torch.zeros(len(lex.slots), width, dtype=torch.bool, device=dev)
        for s, values in enumerate(lex.value_tokens):
            for v, tokens in enumerate(values):
                ids = torch.tensor([lex.word_id[t] for t in tokens])
                value_hash[s, v] = torch.tensor(codes)[ids, torch.arange(len(ids))].sum()
                self.value_exists[s, v] = True
        self.value_hash = value_hash.to(dev)
        self.value_index = torch.arange(width, device=dev)

    # ----------------------------------------------------------------- saying
    def draw(self, batch: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """The random numbers one :meth:`say` uses: a variant draw per segment, and two noise draws per token."""
        segments = len(self.lexicon.segments)
        variant = torch.rand(batch, segments, generator=generator, device=self.device)
        noise = torch.rand(batch, segments, self.segment_width, 2, generator=generator, device=self.device)
        return variant, noise

    def say(
        self,
        intent: torch.Tensor,
        inform: torch.Tensor,
        request: torch.Tensor,
        draws: tuple[torch.Tensor, torch.Tensor],
        typo: torch.Tensor | float = 0.0,
        drop: torch.Tensor | float = 0.0,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """A batch of user acts as words: ``(tokens [B, T], lengths [B], gold tags [B, T])``, T = :attr:`max_tokens`.

        Args:
            intent: ``[B]`` intent codes; inform: ``[B, S]`` value codes (``ABSENT``, ``DONTCARE`` or a value);
            request: ``[B, R]`` bool; draws: :meth:`draw`'s numbers; typo, drop: per-word noise rates.
        """
        B, S = inform.shape
        variant_draw, noise = draws
        valued = inform >= self.zero
        has_values = valued.any(1)
        says_sentence = self.wants_sentence.index_select(0, intent) & has_values
        quiet = ~has_values & ~(inform == self.dontcare).any(1) & ~request.any(1)
        fallback = quiet & ((intent == self.inform_intent) | (intent == self.request_intent))
        opens = says_sentence | fallback
        prefix = self.intent_prefix.index_select(0, intent).gather(1, has_values.long()[:, None]).squeeze(1)
        if self.want_slot is None:
            want = torch.zeros_like(intent)
        else:
            want = torch.where(
                says_sentence & valued[:, self.want_slot], inform[:, self.want_slot] + self.one, self.zero
            )
        choice = torch.cat(
            [
                prefix[:, None],
                want[:, None],
                inform.clamp(min=0),
                torch.zeros(B, 1 + S + request.shape[1], dtype=torch.int64, device=self.device),
            ],
            1,
        )
        present = torch.cat([torch.ones_like(opens)[:, None], opens[:, None], says_sentence[:, None] & valued,
                             opens[:, None], inform == self.dontcare, request], 1)  # fmt: skip
        variant = torch.take(self.pool, self.pool_base + (variant_draw * self.pool_size).long())
        phrase = self.segment_phrases[self.segment_offset + variant * self.choices + choice]
        phrase = torch.where(present, phrase, self.zero)
        tokens = self.phrase_tokens[phrase]  # [B, G, W]
        tags = self.phrase_tags[phrase]
        kept = _arange(self.segment_width, self.device) < self.phrase_length[phrase][..., None]
        tokens = torch.where(kept & (noise[..., 0] < typo), self.unk, tokens)
        kept = kept & ~(noise[..., 1] < drop)
        return self._pack(tokens.flatten(1), tags.flatten(1), kept.flatten(1))

    def _pack(self, tokens: torch.Tensor, tags: torch.Tensor, kept: torch.Tensor):
        """Move the kept tokens to the left, in order (positions from a cumulative sum; one scatter)."""
        T = self.max_tokens
        position = kept.long().cumsum(1) - self.one
        target = torch.where(kept & (position < self.trash), position, self.trash)
        out_tokens = torch.zeros(tokens.shape[0], T + 1, dtype=torch.int64, device=self.device)
        out_tags = torch.zeros_like(out_tokens)
        out_tokens.scatter_(1, target, torch.where(kept, tokens, self.zero))
        out_tags.scatter_(1, target, torch.where(kept, tags, self.zero))
        lengths = kept.sum(1).clamp(max=T)
        return out_tokens[:, :T], lengths, out_tags[:, :T]

    # ----------------------------------------------------------------- hearing
    def read(
        self, tokens: torch.Tensor, lengths: torch.Tensor, tags: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The act that tags say: inform values ``[B, S]`` (``ABSENT``/``DONTCARE``/value) and requests ``[B, R]``."""
        S, R, L = len(self.lexicon.slots), len(self.lexicon.requests), len(self.lexicon.labels)
        B, T = tokens.shape
        positions = _arange(T, self.device)
        valid = positions < lengths[:, None]
        tagged = valid & (tags > self.zero)
        label = torch.where(tagged, (tags - self.one) // 2, self.no_label)
        begins = tagged & (tags % 2 == 1)
        previous = torch.cat([torch.full_like(label[:, :1], L + 1), label[:, :-1]], 1)
        starts = torch.where(begins | (label != previous), positions, self.zero).cummax(1).values
        rank = (positions - starts).clamp(max=self.span_limit)
        code = self.word_code[tokens, rank]
        hashes = torch.zeros(B, L + 1, dtype=torch.int64, device=self.device).scatter_add_(1, label, code)
        counts = torch.zeros(B, L + 1, dtype=torch.int64, device=self.device).scatter_add_(1, label, tagged.long())
        said = counts[:, :L] > self.zero
        match = (hashes[:, :S, None] == self.value_hash) & self.value_exists  # [B, S, values]
        value = torch.where(match, self.value_index, self.absent).amax(2)
        heard = said[:, :S] & (value >= self.zero)
        inform = torch.where(heard, value, torch.where(said[:, S : 2 * S], self.dontcare, self.absent))
        return inform, said[:, 2 * S : 2 * S + R]
