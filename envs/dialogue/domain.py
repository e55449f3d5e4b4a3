"""Dialogue domains: an ontology file, plus the knowledge base our own code generates from it.

A domain is one JSON file (``domains/movie.json``, ``domains/restaurant.json``); a second domain is
just another file. It names:

* ``slots``: every slot with its values. ``in_kb: false`` marks a booking parameter (the number of
  people) that the entity itself does not have. ``depends_on`` makes a slot a fixed function of
  other slots (a movie has one genre, a theater is in one city);
* ``informable`` slots, which a user goal constrains and the system may request or confirm;
* ``requestable`` slots, whose value the user may ask for (they must be entity attributes);
* ``kb``: the size and seed of the knowledge base;
* ``goal``: the distributions of the number of constraints and requests, and of the first turn;
* ``nlg``: English templates for transcripts (the template language is in :mod:`~rlcourse.envs.dialogue.nlg`;
  they are compiled and checked when the domain loads).

The knowledge base is generated deterministically (numpy's legacy ``RandomState``, whose stream is
fixed by numpy's compatibility policy): ``size`` distinct combinations of the independent slots,
then each dependent slot read from a random table indexed by its parents' values.
"""

from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rlcourse.envs.dialogue.nlg import Phrasebook, TemplateError

DOMAIN_DIR = Path(__file__).parent / "domains"


def builtin_domains() -> list[str]:
    """Names of the domains shipped with rlcourse."""
    return sorted(path.stem for path in DOMAIN_DIR.glob("*.json"))


class DomainError(ValueError):
    """A domain file that cannot be used, with the reason."""


@dataclass(frozen=True)
class Domain:
    """A loaded ontology and its generated knowledge base (see the module docstring)."""

    name: str
    entity: str
    values: dict[str, list[str]]
    in_kb: dict[str, bool]
    informable: list[str]
    requestable: list[str]
    kb_slots: list[str]
    kb: np.ndarray = field(repr=False)  # [entities, len(kb_slots)] value indices
    constraint_count_probs: list[float] = field(repr=False)
    request_count_probs: list[float] = field(repr=False)
    first_turn_inform_prob: float = 0.5
    first_turn_request_prob: float = 0.5
    nlg: dict[str, Any] = field(default_factory=dict, repr=False)
    #: The ``nlg`` templates, compiled: what transcripts say.
    phrasebook: Phrasebook | None = field(default=None, repr=False, compare=False)

    def kb_column(self, slot: str) -> int:
        return self.kb_slots.index(slot)

    def entity_text(self, entity: int, extra: dict[str, str] | None = None) -> dict[str, str]:
        """Slot -> value text of one KB entity (plus booking parameters given in ``extra``)."""
        row = {slot: self.values[slot][int(self.kb[entity, col])] for col, slot in enumerate(self.kb_slots)}
        return {**row, **(extra or {})}


def load_domain(domain: str) -> Domain:
    """Load a shipped domain by name (``movie``, ``restaurant``) or a domain file by path."""
    path = Path(domain)
    if path.suffix != ".json":
        path = DOMAIN_DIR / f"{domain}.json"
        if not path.is_file():
            raise DomainError(
                f"unknown dialogue domain {domain!r}; shipped domains: {', '.join(builtin_domains())}, or give a path to a .json file"
            )
    return _load(str(path.resolve()))


@functools.lru_cache(maxsize=16)
def _load(path: str) -> Domain:
    try:
        spec = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise DomainError(f"cannot read the dialogue domain {path!r}: {error}") from None
    try:
        return _build(spec, path)
    except (KeyError, TypeError) as error:
        raise DomainError(f"dialogue domain {path!r} is malformed ({type(error).__name__}: {error})") from None


def _build(spec: dict[str, Any], path: str) -> Domain:
    slots: dict[str, dict[str, Any]] = spec["slots"]
    values = {slot: [str(v) for v in entry["values"]] for slot, entry in slots.items()}
    in_kb = {slot: bool(entry.get("in_kb", True)) for slot, entry in slots.items()}
    for slot, slot_values in values.items():
        if len(slot_values) < 2 or len(set(slot_values)) != len(slot_values):
            raise DomainError(f"{path}: slot {slot!r} needs at least two distinct values")
    informable, requestable = list(spec["informable"]), list(spec["requestable"])
    for slot in informable + requestable:
        if slot not in slots:
            raise DomainError(f"{path}: {slot!r} is listed as informable/requestable but is not a slot")
    for slot in requestable:
        if not in_kb[slot]:
            raise DomainError(f"{path}: requestable slot {slot!r} must be an attribute of the KB entity")
    goal = spec["goal"]
    constraint_probs, request_probs = list(goal["constraint_count_probs"]), list(goal["request_count_probs"])
    for name, probs in (("constraint_count_probs", constraint_probs), ("request_count_probs", request_probs)):
        if not math.isclose(sum(probs), 1.0, abs_tol=1e-6) or min(probs) < 0:
            raise DomainError(f"{path}: goal.{name} must be probabilities summing to 1")
    if len(constraint_probs) > len(informable):
        raise DomainError(
            f"{path}: goal.constraint_count_probs allows more constraints than there are informable slots"
        )
    if len(request_probs) > len(requestable) + 1:
        raise DomainError(f"{path}: goal.request_count_probs allows more requests than there are requestable slots")
    askable = len([slot for slot in requestable if slot in informable])
    if len(informable) - min(askable, len(request_probs) - 1) < len(constraint_probs):
        raise DomainError(
            f"{path}: a goal with the most requests leaves fewer informable slots than the most constraints"
        )
    kb_slots = [slot for slot in slots if in_kb[slot]]
    kb = _generate_kb(slots, values, kb_slots, int(spec["kb"]["size"]), int(spec["kb"]["seed"]), path)
    entity = str(spec.get("entity", "booking"))
    try:
        phrasebook = Phrasebook(spec.get("nlg", {}), in_kb, informable, requestable, entity)
    except TemplateError as error:
        raise DomainError(f"{path}: {error}") from None
    return Domain(
        name=str(spec["name"]),
        entity=entity,
        values=values,
        in_kb=in_kb,
        informable=informable,
        requestable=requestable,
        kb_slots=kb_slots,
        kb=kb,
        constraint_count_probs=constraint_probs,
        request_count_probs=request_probs,
        first_turn_inform_prob=float(goal.get("first_turn_inform_prob", 0.5)),
        first_turn_request_prob=float(goal.get("first_turn_request_prob", 0.5)),
        nlg=dict(spec.get("nlg", {})),
        phrasebook=phrasebook,
    )


def _generate_kb(
    slots: dict[str, dict[str, Any]], values: dict[str, list[str]], kb_slots: list[str], size: int, seed: int, path: str
) -> np.ndarray:
    """``size`` distinct combinations of the independent slots; dependent slots from fixed random tables."""
    rng = np.random.RandomState(seed)
    independent = [slot for slot in kb_slots if not slots[slot].get("depends_on")]
    radices = [len(values[slot]) for slot in independent]
    combinations = math.prod(radices)
    if not 0 < size <= combinations:
        raise DomainError(
            f"{path}: kb.size must be between 1 and {combinations} (the distinct combinations of {', '.join(independent)})"
        )
    codes = np.sort(rng.choice(combinations, size=size, replace=False))
    kb = np.zeros((size, len(kb_slots)), dtype=np.int64)
    for slot, radix in zip(reversed(independent), reversed(radices)):  # mixed-radix decode, last slot fastest
        kb[:, kb_slots.index(slot)] = codes % radix
        codes = codes // radix
    for slot in kb_slots:
        parents = slots[slot].get("depends_on") or []
        if not parents:
            continue
        for parent in parents:
            if parent not in kb_slots or kb_slots.index(parent) >= kb_slots.index(slot):
                raise DomainError(f"{path}: slot {slot!r} depends on {parent!r}, which must be an earlier KB slot")
        table = rng.randint(len(values[slot]), size=math.prod(len(values[p]) for p in parents))
        index = np.zeros(size, dtype=np.int64)
        for parent in parents:
            index = index * len(values[parent]) + kb[:, kb_slots.index(parent)]
        kb[:, kb_slots.index(slot)] = table[index]
    return kb
