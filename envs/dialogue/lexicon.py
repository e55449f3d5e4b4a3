"""The words of a domain: its vocabulary, the BIO tag set of its slots, and every user phrase as tokens.

The slot-filling task (notes:3928-3937 [RNN]) puts the values a user says into slots: "to see
zootopia on november 2nd" tags ``zootopia`` as ``B-moviename`` and ``november 2nd`` as
``B-date I-date``. A learned NLU reads the user's turn as token ids and writes such tags; this module
fixes what both sides agree on, from the domain file alone:

* **the vocabulary**: ``<pad>`` (id 0), ``<unk>`` (id 1, also what a typo becomes), then every word
  the user can say, sorted; words are lower-case, with ``.``, ``,``, ``?``, ``!`` split off;
* **the tag set**: ``O``, then ``B-``/``I-`` of every *label*: each informable slot (its value), each
  ``dontcare.<slot>`` ("any genre is fine") and each ``request.<slot>`` ("how much is it?");
* **the phrases**: every piece a user turn is built from, each with its tokens and gold tags, in
  *families* (the opener by intent, the inform phrase of a slot by value, ...). A family has
  *variants*: variant 0 is the domain's own template (so a turn of variants 0 only is exactly what
  :meth:`~rlcourse.envs.dialogue.nlg.Phrasebook.user_turn` says), the others are paraphrases. The
  variants ``k % 3 == 2`` are *held out* (a learned NLU can be scored on templates it never saw).

:mod:`~rlcourse.envs.dialogue.speech` turns these tables into tensors and builds turns from them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from rlcourse.envs.dialogue.domain import Domain
from rlcourse.envs.dialogue.nlg import Template

PAD, UNK = "<pad>", "<unk>"
_WORD = re.compile(r"[^\s.,?!]+|[.,?!]")
#: Paraphrases every domain gets, after its own template ({name}: the slot's name in a sentence).
INFORM_VARIANTS = (
    "with the {name} {value}",
    "{name} {value}",
    "where the {name} is {value}",
    "with {value} as the {name}",
)
DONTCARE_VARIANTS = ("Any {name} will do.", "I don't mind the {name}.", "The {name} doesn't matter.")
REQUEST_VARIANTS = ("What is the {name}?", "Can you tell me the {name}?", "I'd like to know the {name}.")
OPENER_VARIANTS = ("I'd like", "I want", "I would like", "Can I get", "I need", "Please book")
#: What comes before the opener (or stands alone), by intent; the first of each is the phrasebook's wording.
PREFIX_VARIANTS = {
    "plain": ("",),
    "deny_with": ("No,", "No, actually", "That's not right,"),
    "deny_without": ("No, that's wrong.", "No.", "That's not right."),
    "reject_with": ("That doesn't work for me.", "That one doesn't suit me.", "Not that one."),
    "reject_without": ("That doesn't work for me.", "That one doesn't suit me.", "Not that one."),
    "affirm": ("Yes, that's right.", "Yes.", "Correct.", "That's right."),
    "thanks": ("Great, thank you!", "Thanks!", "Thank you very much."),
    "bye": ("Bye.", "Goodbye.", "See you."),
}
#: Template splits: which variants of a family a rendering may use.
SPLITS = ("all", "train", "heldout", "canonical")


def tokenize(text: str) -> list[str]:
    """Lower-case words with ``.``, ``,``, ``?``, ``!`` as tokens of their own."""
    return _WORD.findall(text.lower())


@dataclass(frozen=True)
class Phrase:
    tokens: tuple[str, ...]
    tags: tuple[str, ...]


@dataclass
class Family:
    """The variants of one phrase, each by a choice (a value, or the opener's want): ``ids[variant][choice]``."""

    name: str
    ids: list[list[int]] = field(default_factory=list)

    def pool(self, split: str) -> list[int]:
        """The variants ``split`` may use (see the module docstring)."""
        every = list(range(len(self.ids)))
        if split == "canonical":
            return [0]
        if split == "all":
            return every
        held = [k for k in every if k % 3 == 2]
        return held if split == "heldout" and held else [k for k in every if k % 3 != 2]


class Lexicon:
    """A domain's vocabulary, tag set and phrase families (see the module docstring)."""

    def __init__(self, domain: Domain):
        self.domain = domain
        words = domain.phrasebook
        self.slots, self.requests = list(domain.informable), list(domain.requestable)
        self.labels = (
            self.slots + [f"dontcare.{slot}" for slot in self.slots] + [f"request.{slot}" for slot in self.requests]
        )
        self.tags = ("O", *(f"{side}-{label}" for label in self.labels for side in "BI"))
        self.phrases: list[Phrase] = [Phrase((), ())]  # id 0: the empty phrase
        self._index: dict[Phrase, int] = {self.phrases[0]: 0}
        want_slots = sorted(words.want.slots())
        #: the slot whose value changes the opener ("a ticket" / "tickets"), if exactly one does
        self.want_slot = want_slots[0] if len(want_slots) == 1 else None
        self.prefix = Family("prefix")
        kinds = list(PREFIX_VARIANTS)
        width = max(len(v) for v in PREFIX_VARIANTS.values())
        for k in range(width):  # variant k of every prefix kind (a kind with fewer variants repeats its first)
            self.prefix.ids.append(
                [self._add_plain(PREFIX_VARIANTS[kind][k if k < len(PREFIX_VARIANTS[kind]) else 0]) for kind in kinds]
            )
        self.prefix_kinds = kinds
        self.opener = Family("opener")
        for opener in OPENER_VARIANTS:
            choices = [self._add_plain(f"{opener} {words.want.say({})}")]
            if self.want_slot is not None:
                for value in domain.values[self.want_slot]:
                    choices.append(self._add_plain(f"{opener} {words.want.say({self.want_slot: value})}"))
            self.opener.ids.append(choices)
        self.informs = [self._inform_family(slot) for slot in self.slots]
        self.close = Family("close", [[self._add_plain(".")]])
        self.dontcares = [
            self._sentence_family(f"dontcare.{slot}", words.dontcares[slot].text, DONTCARE_VARIANTS, slot)
            for slot in self.slots
        ]
        self.asks = [
            self._sentence_family(f"request.{slot}", words.user_requests[slot].text, REQUEST_VARIANTS, slot)
            for slot in self.requests
        ]
        #: the families of a turn's segments, in the order they are said
        self.segments = [self.prefix, self.opener, *self.informs, self.close, *self.dontcares, *self.asks]
        vocabulary = sorted({token for phrase in self.phrases for token in phrase.tokens})
        self.vocabulary: tuple[str, ...] = (PAD, UNK, *vocabulary)
        self.word_id = {word: i for i, word in enumerate(self.vocabulary)}
        self.value_tokens = [[tuple(tokenize(value)) for value in domain.values[slot]] for slot in self.slots]

    # ----------------------------------------------------------------- building phrases
    def _add(self, phrase: Phrase) -> int:
        if phrase not in self._index:
            self._index[phrase] = len(self.phrases)
            self.phrases.append(phrase)
        return self._index[phrase]

    def _add_plain(self, text: str) -> int:
        tokens = tuple(tokenize(text))
        return self._add(Phrase(tokens, ("O",) * len(tokens)))

    def _inform_family(self, slot: str) -> Family:
        name = self.domain.phrasebook.names[slot]
        texts = _unique(
            [self.domain.phrasebook.informs[slot].text, *(v.replace("{name}", name) for v in INFORM_VARIANTS)]
        )
        family = Family(slot)
        for text in texts:
            template = Template.parse(text)
            family.ids.append(
                [self._add(_tagged(template.say({"value": v}), v, slot)) for v in self.domain.values[slot]]
            )
        return family

    def _sentence_family(self, label: str, own: str, variants: tuple[str, ...], slot: str) -> Family:
        name = self.domain.phrasebook.names[slot]
        family = Family(label)
        for text in _unique([own, *(v.replace("{name}", name) for v in variants)]):
            tokens = tuple(tokenize(text))
            inside = [token not in ".,?!" for token in tokens]
            first = inside.index(True)
            tags = tuple("O" if not inside[i] else ("B-" if i == first else "I-") + label for i in range(len(tokens)))
            family.ids.append([self._add(Phrase(tokens, tags))])
        return family

    # ----------------------------------------------------------------- reading
    def tag_id(self, tag: str) -> int:
        return self.tags.index(tag)

    def words(self, ids: list[int]) -> str:
        """Token ids as text (for transcripts and tests)."""
        return " ".join(self.vocabulary[i] for i in ids)


def _unique(texts: list[str]) -> list[str]:
    seen: list[str] = []
    for text in texts:
        if text not in seen:
            seen.append(text)
    return seen


def _tagged(text: str, value: str, slot: str) -> Phrase:
    """``text`` as tokens, with the first occurrence of ``value``'s tokens tagged ``B-slot I-slot ...``."""
    tokens, wanted = tuple(tokenize(text)), tuple(tokenize(value))
    tags = ["O"] * len(tokens)
    for start in range(len(tokens) - len(wanted) + 1):
        if tokens[start : start + len(wanted)] == wanted:
            tags[start : start + len(wanted)] = [f"B-{slot}"] + [f"I-{slot}"] * (len(wanted) - 1)
            break
    else:
        raise ValueError(f"the phrase {text!r} does not say the value {value!r} of {slot!r} word for word")
    return Phrase(tokens, tuple(tags))
