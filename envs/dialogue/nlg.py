"""Template NLG for the slot-filling dialogues: how the user's and the system's acts are said in English.

A domain file's ``nlg`` section holds templates; :class:`Phrasebook` compiles them once, at load
time, so a domain with a broken template fails when it is loaded, not in the middle of a transcript.

**The template language.** Text is copied as it is, except for:

* ``{slot}``: the value of ``slot`` (in a per-slot template, ``{value}`` is that slot's value);
* ``{slot:a}``: the value after its indefinite article ("a sports", "an animation", "a european");
* ``{slot:one/other}``: ``one`` when the value is the number 1, else ``other`` ("ticket" / "tickets");
* ``[text]``: text said only when every slot in it has a value, and ``[text|instead]`` says
  ``instead`` otherwise. A value is missing when the system has not heard it or the user does not
  care, so ``"I booked [{people} {people:ticket/tickets}|tickets]"`` never says "any tickets" or
  "? tickets".

**The ``nlg`` section** (every key is optional; the defaults are plain English):

==================  ====================================================================================
key                 what it says
==================  ====================================================================================
``slot_name``       per slot: its name in a sentence ("start time"); the slot's own name by default
``want``            what the user asks for, e.g. ``"[{people:a ticket/tickets}|a ticket]"``; the slots
                    the same turn informs fill it ("a {entity}" by default)
``user_inform``     per informable slot: how the user gives a value, with ``{value}``: ``"on {value}"``
``user_dontcare``   per informable slot: how the user says any value will do ("Any {name} is fine.")
``user_request``    per requestable slot: how the user asks for it ("What is the {name}?")
``system_request``  per informable slot: how the system asks for it ("Which {name} would you like?")
``system_confirm``  per informable slot, with ``{value}``: how the system checks a value it heard
                    ("Did you say {value} for the {name}?")
``system_inform``   per requestable slot, with ``{value}``: how the system gives it ("The {name} is {value}.")
``no_match``        what the system says when nothing in the KB fits ("Sorry, nothing matches that.")
``booking``         what the system says when it books; any slot may be used, and a booking
                    parameter (``in_kb: false``) only inside ``[...]``, as it may be missing
==================  ====================================================================================

Sentences start with a capital letter and end with ``.``, ``?`` or ``!``; :class:`Phrasebook` checks that too.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

#: The user's "any value will do" in :meth:`Phrasebook.user_turn` and :meth:`Phrasebook.confirm`.
DONT_CARE = "<dontcare>"
NLG_KEYS = (
    "slot_name",
    "want",
    "user_inform",
    "user_dontcare",
    "user_request",
    "system_request",
    "system_confirm",
    "system_inform",
    "no_match",
    "booking",
)
_METACHARACTERS = "{}[]|"
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_TOKEN = re.compile(r"\{[^{}]*\}|[\[\]|{}]|[^\[\]|{}]+")


class TemplateError(ValueError):
    """A template that cannot be parsed or does not fit where it is used."""


# ----------------------------------------------------------------------------- English words
def indefinite_article(phrase: str) -> str:
    """``a`` or ``an`` before ``phrase``, by how its first word sounds (a small set of spelling rules).

    Vowel letters take "an", except where they sound like a consonant ("a european", "a unique",
    "a one-way"); a silent h takes "an" ("an hour"); numbers take "an" when said with a vowel first
    ("an 8", "an 11", "an 18:00").
    """
    word = phrase.strip().lower()
    digits = re.match(r"\d+", word)
    if digits:
        number = digits.group()
        return "an" if number.startswith("8") or number in ("11", "18") else "a"
    if word.startswith(("eu", "uni", "use", "usu", "uti", "one", "once")):
        return "a"
    if word.startswith(("hour", "honest", "honour", "honor", "heir")):
        return "an"
    return "an" if word[:1] in ("a", "e", "i", "o", "u") else "a"


def is_singular(value: str) -> bool:
    """Whether ``value`` counts one thing ("1", "one"), so that the noun after it stays singular."""
    return value.strip().lower() in ("1", "one")


# ----------------------------------------------------------------------------- the template language
@dataclass(frozen=True)
class _Placeholder:
    slot: str
    article: bool = False
    forms: tuple[str, str] | None = None  # (one, other)

    def say(self, value: str) -> str:
        if self.forms is not None:
            return self.forms[0] if is_singular(value) else self.forms[1]
        return f"{indefinite_article(value)} {value}" if self.article else value


@dataclass(frozen=True)
class _Optional:
    present: tuple[Part, ...]
    absent: tuple[Part, ...]


Part = str | _Placeholder | _Optional


@dataclass(frozen=True)
class Template:
    """A parsed template (see the module docstring); :meth:`say` fills it in."""

    text: str
    parts: tuple[Part, ...]

    @classmethod
    def parse(cls, text: str) -> Template:
        if not isinstance(text, str):
            raise TemplateError(f"a template must be a string, got {text!r}")
        parts: list[Part] = []
        branches: list[list[Part]] | None = None  # inside [...]: the parts of each branch
        for token in _TOKEN.findall(text):
            if token == "[":
                if branches is not None:
                    raise TemplateError(f"{text!r}: an optional [...] cannot hold another one")
                branches = [[]]
            elif token in ("|", "]"):
                if branches is None:
                    raise TemplateError(f"{text!r}: {token!r} outside an optional [...]")
                if token == "|":
                    if len(branches) == 2:
                        raise TemplateError(f"{text!r}: an optional [...] has at most one '|'")
                    branches.append([])
                else:
                    parts.append(_Optional(tuple(branches[0]), tuple(branches[1]) if len(branches) == 2 else ()))
                    branches = None
            elif token[0] == "{":
                (branches[-1] if branches is not None else parts).append(_placeholder(text, token))
            elif token == "}":
                raise TemplateError(f"{text!r}: '}}' without '{{'")
            else:
                (branches[-1] if branches is not None else parts).append(token)
        if branches is not None:
            raise TemplateError(f"{text!r}: an optional [...] is not closed")
        return cls(text, tuple(parts))

    def slots(self, required_only: bool = False) -> set[str]:
        """The slots the template names (``required_only``: those outside an optional ``[...]``)."""
        return {p.slot for p in _placeholders(self.parts, not required_only)}

    def say(self, values: Mapping[str, str]) -> str:
        """The template filled in with ``values`` (slot -> value text; a missing slot has no value)."""
        return _say(self.parts, values)


def _placeholder(text: str, token: str) -> _Placeholder:
    slot, _, form = token[1:-1].partition(":")
    slot = slot.strip()
    if not _NAME.fullmatch(slot):
        raise TemplateError(f"{text!r}: {token!r} does not name a slot")
    if not form:
        return _Placeholder(slot)
    if form == "a":
        return _Placeholder(slot, article=True)
    one, slash, other = form.partition("/")
    if not slash or "/" in other or not one or not other:
        raise TemplateError(f"{text!r}: {token!r} needs the form {{slot}}, {{slot:a}} or {{slot:one/other}}")
    return _Placeholder(slot, forms=(one, other))


def _placeholders(parts: Sequence[Part], with_optional: bool = True) -> Iterator[_Placeholder]:
    for part in parts:
        if isinstance(part, _Placeholder):
            yield part
        elif isinstance(part, _Optional) and with_optional:
            yield from _placeholders(part.present)
            yield from _placeholders(part.absent)


def _say(parts: Sequence[Part], values: Mapping[str, str]) -> str:
    words = []
    for part in parts:
        if isinstance(part, str):
            words.append(part)
        elif isinstance(part, _Placeholder):
            words.append(part.say(values[part.slot]))
        else:
            known = all(p.slot in values for p in _placeholders(part.present))
            words.append(_say(part.present if known else part.absent, values))
    return "".join(words)


# ----------------------------------------------------------------------------- a domain's phrasebook
class Phrasebook:
    """A domain's English, compiled from its ``nlg`` section (see the module docstring).

    Args:
        spec: the ``nlg`` section of a domain file.
        slots: every slot of the domain -> whether it is an attribute of the KB entity (``in_kb``).
        informable, requestable: the domain's informable and requestable slots.
        entity: what the domain books ("ticket"), for the default ``want``.
    """

    def __init__(
        self,
        spec: Mapping[str, Any],
        slots: Mapping[str, bool],
        informable: Sequence[str],
        requestable: Sequence[str],
        entity: str = "booking",
    ):
        unknown = sorted(set(spec) - set(NLG_KEYS))
        if unknown:
            raise TemplateError(f"nlg has no key {unknown[0]!r}; its keys: {', '.join(NLG_KEYS)}")
        self.slots = dict(slots)
        names = _per_slot(spec, "slot_name", self.slots)
        for slot, name in names.items():
            if not isinstance(name, str) or not name or any(c in name for c in _METACHARACTERS):
                raise TemplateError(
                    f"nlg.slot_name.{slot} must be plain text (without {_METACHARACTERS}), got {name!r}"
                )
        self.names = {slot: names.get(slot, slot.replace("_", " ")) for slot in self.slots}
        self.want = _template(spec.get("want", f"a {entity}"), "nlg.want", allowed=set(informable))
        if self.want.slots(required_only=True):
            raise TemplateError(
                f"nlg.want: {self.want.text!r} may name slots only inside [...] (a turn may not inform them)"
            )
        given = spec.get("user_inform", {})
        self.informs = {
            slot: _template(
                given.get(slot, f"with the {self.names[slot]} {{value}}"), f"nlg.user_inform.{slot}", {"value"}
            )
            for slot in _check_keys(spec, "user_inform", informable)
        }
        self.dontcares = self._sentences(spec, "user_dontcare", informable, "Any {name} is fine.")
        self.user_requests = self._sentences(spec, "user_request", requestable, "What is the {name}?")
        self.system_requests = self._sentences(spec, "system_request", informable, "Which {name} would you like?")
        self.confirms = self._sentences(
            spec, "system_confirm", informable, "Did you say {{value}} for the {name}?", {"value"}
        )
        self.system_informs = self._sentences(spec, "system_inform", requestable, "The {name} is {{value}}.", {"value"})
        self.no_match = _sentence(
            _template(spec.get("no_match", "Sorry, nothing matches that."), "nlg.no_match"), "nlg.no_match"
        )
        booking = _template(spec.get("booking", "Booked."), "nlg.booking", allowed=set(self.slots))
        parameters = sorted(s for s in booking.slots(required_only=True) if not self.slots[s])
        if parameters:
            raise TemplateError(
                f"nlg.booking says {{{parameters[0]}}} outside [...], but a booking parameter may be unknown "
                "or left to the system: put it in an optional [...] (with an '|' alternative if needed)"
            )
        self.booking = _sentence(booking, "nlg.booking")

    def _sentences(
        self, spec: Mapping[str, Any], key: str, slots: Sequence[str], default: str, allowed: set[str] = frozenset()
    ) -> dict[str, Template]:
        given = spec.get(key, {})
        return {
            slot: _sentence(
                _template(given.get(slot, default.format(name=self.names[slot])), f"nlg.{key}.{slot}", allowed),
                f"nlg.{key}.{slot}",
            )
            for slot in _check_keys(spec, key, slots)
        }

    # ----------------------------------------------------------------- the user
    def user_turn(self, intent: str, informs: Mapping[str, str], requests: Sequence[str] = ()) -> str:
        """What the user says: ``intent`` (an intent name), ``informs`` (slot -> value text, or :data:`DONT_CARE`)
        and the slots it asks for, in the domain's slot order."""
        values = {slot: value for slot, value in informs.items() if value != DONT_CARE}
        wanted = " ".join(self.informs[slot].say({"value": value}) for slot, value in values.items())
        want = self.want.say(values)
        if intent == "affirm":
            sentence = "Yes, that's right."
        elif intent == "deny":
            sentence = f"No, I'd like {want} {wanted}." if wanted else "No, that's wrong."
        elif intent == "reject":
            sentence = f"That doesn't work for me. I'd like {want} {wanted}." if wanted else "That doesn't work for me."
        elif intent == "thanks":
            sentence = "Great, thank you!"
        elif intent == "bye":
            sentence = "Bye."
        else:  # inform and request
            sentence = f"I'd like {want} {wanted}." if wanted else ""
        free = [self.dontcares[slot].say({}) for slot, value in informs.items() if value == DONT_CARE]
        asks = [self.user_requests[slot].say({}) for slot in requests]
        return " ".join(part for part in (sentence, *free, *asks) if part) or f"I'd like {want}."

    # ----------------------------------------------------------------- the system
    def greeting(self) -> str:
        return "Hello! How can I help you?"

    def request(self, slot: str) -> str:
        """The system asks for an informable slot."""
        return self.system_requests[slot].say({})

    def confirm(self, slot: str, value: str | None) -> str:
        """The system checks the value it heard for ``slot`` (:data:`DONT_CARE`; None: it heard none)."""
        if value is None:
            return f"Sorry, I didn't catch that. {self.request(slot)}"
        if value == DONT_CARE:
            return f"So any {self.names[slot]} will do?"
        return self.confirms[slot].say({"value": value})

    def inform(self, slot: str, value: str | None) -> str:
        """The system gives a requestable slot of its booking (None: it has booked nothing yet)."""
        if value is None:
            return f"I can't tell you the {self.names[slot]} before booking."
        return self.system_informs[slot].say({"value": value})

    def booked(self, values: Mapping[str, str] | None) -> str:
        """The system books: ``values`` are the booked entity's slots plus the booking parameters it knows
        (slot -> value text); None: no KB entity fits."""
        return self.no_match.say({}) if values is None else self.booking.say(values)

    def goodbye(self) -> str:
        return "Goodbye."

    def templates(self) -> dict[str, Template]:
        """Every compiled template, by its place in the ``nlg`` section (``user_inform.city``, ``booking``, ...)."""
        found = {"want": self.want, "no_match": self.no_match, "booking": self.booking}
        for key, table in (
            ("user_inform", self.informs),
            ("user_dontcare", self.dontcares),
            ("user_request", self.user_requests),
            ("system_request", self.system_requests),
            ("system_confirm", self.confirms),
            ("system_inform", self.system_informs),
        ):
            found.update({f"{key}.{slot}": template for slot, template in table.items()})
        return found


def _check_keys(spec: Mapping[str, Any], key: str, slots: Sequence[str]) -> Sequence[str]:
    given = spec.get(key, {})
    if not isinstance(given, Mapping):
        raise TemplateError(f"nlg.{key} must map slots to templates, got {type(given).__name__}")
    unknown = sorted(set(given) - set(slots))
    if unknown:
        raise TemplateError(f"nlg.{key} names {unknown[0]!r}, which is not one of its slots: {', '.join(slots)}")
    return slots


def _per_slot(spec: Mapping[str, Any], key: str, slots: Mapping[str, bool]) -> Mapping[str, Any]:
    _check_keys(spec, key, list(slots))
    return spec.get(key, {})


def _template(text: str, where: str, allowed: set[str] = frozenset()) -> Template:
    try:
        template = Template.parse(text)
    except TemplateError as error:
        raise TemplateError(f"{where}: {error}") from None
    strangers = sorted(template.slots() - set(allowed))
    if strangers:
        can = f"only {', '.join('{' + s + '}' for s in sorted(allowed))}" if allowed else "no slot"
        raise TemplateError(f"{where}: {{{strangers[0]}}} is not a slot it can say ({can})")
    return template


def _sentence(template: Template, where: str) -> Template:
    text = template.text.strip()
    if not (text[:1].isupper() and text[-1:] in ".?!"):
        raise TemplateError(f"{where}: {template.text!r} must start with a capital letter and end with '.', '?' or '!'")
    return template
