"""The dialogue NLG (``envs/dialogue/nlg.py`` and the domains' ``nlg`` sections): grammatical English.

Every template of every shipped domain is rendered with every value of its slots (singular and plural
counts included), with "don't care" and with unknown values, and every sentence goes through
:func:`sentence_problems`, a set of checks written independently of the NLG's own rules (its article
table is spelled out by hand below). Hand-chosen cases pin exact sentences, and
``test_the_checks_catch_the_old_mistakes`` shows the checks fail on the sentences the old NLG wrote.
"""

from __future__ import annotations

import itertools
import json
import re

import pytest
import torch

from rlcourse.envs.dialogue import SlotFillingVecEnv, builtin_domains, load_domain
from rlcourse.envs.dialogue.domain import DOMAIN_DIR, DomainError
from rlcourse.envs.dialogue.nlg import DONT_CARE, Template, TemplateError, indefinite_article
from rlcourse.envs.dialogue.nlu import DONTCARE
from rlcourse.envs.dialogue.transcript import system_text, user_text

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py

DOMAINS = builtin_domains()
#: The article each value that follows "a"/"an" in a shipped template takes, by hand (a new such value must be added).
ARTICLES = {
    **dict.fromkeys(["comedy", "drama", "horror", "thriller", "sci-fi", "sports"], "a"),
    **dict.fromkeys(["action", "animation"], "an"),
    **dict.fromkeys(["chinese", "spanish", "british", "vietnamese", "turkish", "seafood", "european"], "a"),
    **dict.fromkeys(["indian", "italian", "african"], "an"),
}
PREPOSITIONS = {"to", "at", "in", "on", "for", "with", "from", "near", "by", "somewhere"}
NOUNS = ("person", "people", "ticket", "tickets", "table", "tables")


def sentence_problems(text: str) -> list[str]:
    """What is wrong with one utterance (one or more sentences), as readable reasons; [] when nothing is."""
    problems = []
    if text != text.strip() or "  " in text:
        problems.append("stray or doubled spaces")
    if re.search(r"[{}\[\]|<>]", text):
        problems.append("template syntax or a placeholder left in")
    if re.search(r"\s[.,?!)]|\(\s", text):
        problems.append("a space before punctuation")
    sentences = re.split(r"(?<=[.?!])\s+", text)
    for sentence in sentences:
        if not (sentence[:1].isupper() and sentence[-1:] in ".?!"):
            problems.append(f"not a sentence: {sentence!r}")
        if "?" in sentence[:-1]:
            problems.append(f"a '?' inside a sentence (a placeholder value?): {sentence!r}")
        if re.search(r"\bany\b", sentence, re.IGNORECASE) and not re.fullmatch(
            r"Any [a-z ]+ is fine\.|So any [a-z ]+ will do\?", sentence
        ):
            problems.append(f"'any' said as if it were a value: {sentence!r}")
    if re.search(r"\b(?:ticket|tickets|table|tables) (?:a|an|the)\b", text):
        problems.append("a noun phrase straight after what the user wants: a preposition is missing")
    for number, noun in re.findall(r"\b(\d+) (\w+)", text):
        if noun in NOUNS and (number == "1") != (noun in ("person", "ticket", "table")):
            problems.append(f"'{number} {noun}': the noun does not agree with the number")
    for article, word in re.findall(r"\b(a|an) ([a-z][a-z-]*)", text, re.IGNORECASE):
        if word in ARTICLES and ARTICLES[word] != article.lower():
            problems.append(f"'{article} {word}' should be '{ARTICLES[word]} {word}'")
    for word in re.findall(r"\b(?:a|an) ([a-z-]+) (?:movie|restaurant)\b", text):
        if word not in ARTICLES:
            problems.append(f"no article expected for {word!r} in this test's table: add it to ARTICLES")
    return problems


def assert_fine(text: str, where: str) -> None:
    problems = sentence_problems(text)
    assert not problems, f"{where}: {text!r}: {problems}"


def value_texts(domain, slot: str) -> list[str]:
    return list(domain.values[slot])


def count_values(domain, slot: str) -> bool:
    return all(value.isdigit() for value in domain.values[slot])


# ----------------------------------------------------------------------------- the checks themselves
OLD_MISTAKES = [
    "I'd like a ticket for 1 people.",
    "I booked 1 tickets for zootopia (imax) at amc pacific place 11 in seattle on november 5th at 10:00 am.",
    "I booked any tickets for zootopia (imax) at amc pacific place 11 in seattle on november 5th at 10:00 am.",
    "I booked ? tickets for zootopia (imax) at amc pacific place 11 in seattle on november 5th at 10:00 am.",
    "I'd like a ticket a sports movie.",
    "I'd like a ticket for a animation movie.",
    "I booked a table for any at galleria (vietnamese, north, cheap) on friday at any.",
    "Which {numberofpeople} would you like?",
    "I'd like a ticket  in seattle.",
    "Did you say any for the date?",
]


@pytest.mark.parametrize("text", OLD_MISTAKES)
def test_the_checks_catch_the_old_mistakes(text):
    assert sentence_problems(text), f"the checks let {text!r} through"


def test_the_checks_pass_plain_sentences():
    for text in (
        "I'd like tickets for 2 people. Which theater is it at?",
        "Any number of people is fine.",
        "So any date will do?",
        "I booked 1 ticket for risen (3d) at emagine in houston on november 1st at 10:00 am.",
        "Do you want an italian restaurant?",
    ):
        assert sentence_problems(text) == [], text


# ----------------------------------------------------------------------------- hand-chosen sentences
def test_movie_sentences():
    words = load_domain("movie").phrasebook
    assert words.user_turn("inform", {"moviename": "zootopia", "numberofpeople": "1"}) == (
        "I'd like a ticket to see zootopia for 1 person."
    )
    assert (
        words.user_turn("inform", {"numberofpeople": "3"}, ["price"])
        == "I'd like tickets for 3 people. How much is it?"
    )
    assert words.user_turn("inform", {"genre": "sports"}) == "I'd like a ticket for a sports movie."
    assert words.user_turn("inform", {"genre": "animation"}) == "I'd like a ticket for an animation movie."
    assert words.user_turn("inform", {"video_format": "imax"}) == "I'd like a ticket in imax format."
    assert words.user_turn("inform", {"numberofpeople": DONT_CARE}) == "Any number of people is fine."
    assert words.user_turn("deny", {"city": "seattle"}) == "No, I'd like a ticket in seattle."
    assert words.user_turn("deny", {}) == "No, that's wrong."
    assert (
        words.user_turn("request", {}, ["theater", "starttime"]) == "Which theater is it at? What time does it start?"
    )
    assert words.user_turn("inform", {}) == "I'd like a ticket."
    assert words.request("numberofpeople") == "How many tickets would you like?"
    assert words.request("starttime") == "Which start time would you like?"
    assert words.confirm("numberofpeople", "1") == "Is that for 1 person?"
    assert words.confirm("numberofpeople", "5") == "Is that for 5 people?"
    assert words.confirm("numberofpeople", DONT_CARE) == "So any number of people will do?"
    assert words.confirm("numberofpeople", None) == "Sorry, I didn't catch that. How many tickets would you like?"
    assert words.confirm("moviename", "the witch") == "Did you say the witch for the movie?"
    assert words.inform("price", "$13") == "The price is $13."
    assert words.inform("price", None) == "I can't tell you the price before booking."
    assert words.booked(None) == "Sorry, no showing matches that."
    showing = {
        "moviename": "zootopia",
        "video_format": "imax",
        "theater": "emagine",
        "city": "seattle",
        "date": "november 5th",
        "starttime": "7:00 pm",
    }
    tail = "for zootopia (imax) at emagine in seattle on november 5th at 7:00 pm."
    assert words.booked({**showing, "numberofpeople": "1"}) == f"I booked 1 ticket {tail}"
    assert words.booked({**showing, "numberofpeople": "4"}) == f"I booked 4 tickets {tail}"
    assert words.booked(showing) == f"I booked tickets {tail}"  # unknown or "don't care": no count, no "?"


def test_restaurant_sentences():
    words = load_domain("restaurant").phrasebook
    assert words.user_turn("inform", {"food": "indian", "people": "1"}) == (
        "I'd like a table at an indian restaurant for 1 person."
    )
    assert words.user_turn("inform", {"food": "european", "area": "north"}) == (
        "I'd like a table at a european restaurant in the north."
    )
    assert words.user_turn("inform", {"pricerange": "cheap", "day": "monday"}) == (
        "I'd like a table in the cheap price range on monday."
    )
    assert (
        words.user_turn("inform", {"food": DONT_CARE}, ["phone"])
        == "Any type of food is fine. What is the phone number?"
    )
    assert words.request("food") == "What kind of food would you like?"
    assert words.request("people") == "How many people is the table for?"
    assert words.confirm("food", "african") == "Do you want an african restaurant?"
    assert words.confirm("area", "west") == "Did you say west for the area?"
    place = {"name": "cotto", "food": "british", "area": "centre", "pricerange": "expensive"}
    assert words.booked({**place, "people": "1", "day": "friday", "time": "19:00"}) == (
        "I booked a table for 1 person at cotto (british, centre, expensive) on friday at 19:00."
    )
    assert words.booked({**place, "people": "6", "time": "12:00"}) == (
        "I booked a table for 6 people at cotto (british, centre, expensive) at 12:00."
    )
    assert words.booked(place) == "I booked a table at cotto (british, centre, expensive)."


def test_the_env_says_a_dontcare_or_unknown_count_as_no_count():
    env = SlotFillingVecEnv(1)
    people = env.slots.index("numberofpeople")
    book = env.action_names.index("book")
    for code in (DONTCARE, -1):
        belief = [-1] * len(env.slots)
        belief[people] = code
        text = system_text(env, book, 7, belief)
        assert text.startswith("I booked tickets for "), text
        assert_fine(text, "book")
    belief = [-1] * len(env.slots)
    belief[people] = env.domain.values["numberofpeople"].index("1")
    assert system_text(env, book, 7, belief).startswith("I booked 1 ticket for ")
    confirm = env.action_names.index("confirm(numberofpeople)")
    belief[people] = DONTCARE
    assert system_text(env, confirm, -1, belief) == "So any number of people will do?"
    inform = [-1] * len(env.slots)
    inform[people] = DONTCARE
    assert user_text(env, 0, inform, [False] * len(env.requests)) == "Any number of people is fine."


# ----------------------------------------------------------------------------- every template of every domain
def every_user_turn(domain):
    """(where, text) for every user template with every value, "don't care", and combined turns."""
    words, slots = domain.phrasebook, domain.informable
    for slot in slots:
        for value in [*value_texts(domain, slot), DONT_CARE]:
            for intent in ("inform", "deny", "reject"):
                yield f"user {intent}({slot}={value})", words.user_turn(intent, {slot: value})
    for request in domain.requestable:
        yield f"user request({request})", words.user_turn("request", {}, [request])
    for intent in ("affirm", "deny", "reject", "thanks", "bye", "inform", "request"):
        yield f"user {intent}()", words.user_turn(intent, {})
    # a first turn telling several constraints at once, with every count value, and asking everything
    for count_slot in [s for s in slots if count_values(domain, s)]:
        for value in value_texts(domain, count_slot):
            informs = {s: value_texts(domain, s)[-1] for s in slots}
            informs[count_slot] = value
            yield f"user first turn ({count_slot}={value})", words.user_turn("inform", informs, domain.requestable)


def every_system_turn(domain):
    """(where, text) for every system template with every value, "don't care" and unknown values."""
    words = domain.phrasebook
    yield "greeting", words.greeting()
    yield "bye", words.goodbye()
    yield "no match", words.booked(None)
    for slot in domain.informable:
        yield f"request({slot})", words.request(slot)
        for value in [*value_texts(domain, slot), DONT_CARE, None]:
            yield f"confirm({slot}={value})", words.confirm(slot, value)
    for slot in domain.requestable:
        yield f"inform({slot}) before booking", words.inform(slot, None)
        for value in value_texts(domain, slot):
            yield f"inform({slot}={value})", words.inform(slot, value)
    parameters = [slot for slot in domain.values if not domain.in_kb[slot]]
    for entity in range(len(domain.kb)):
        yield f"book entity {entity}, no parameters known", words.booked(domain.entity_text(entity))
        for slot in parameters:
            for value in value_texts(domain, slot):
                yield f"book entity {entity}, {slot}={value}", words.booked(domain.entity_text(entity, {slot: value}))
    # every combination of known / unknown parameters, with singular and plural counts
    for known in itertools.product([False, True], repeat=len(parameters)):
        for pick in (0, -1):
            extra = {s: value_texts(domain, s)[pick] for s, k in zip(parameters, known) if k}
            yield f"book {extra}", words.booked(domain.entity_text(0, extra))


@pytest.mark.parametrize("domain_name", DOMAINS)
def test_every_template_is_grammatical_with_every_value(domain_name):
    domain = load_domain(domain_name)
    checked = 0
    for where, text in itertools.chain(every_user_turn(domain), every_system_turn(domain)):
        assert_fine(text, f"{domain_name}: {where}")
        checked += 1
    assert checked > 500, checked  # the walk really covers the templates


@pytest.mark.parametrize("domain_name", DOMAINS)
def test_each_user_phrase_starts_with_a_preposition_and_says_its_value(domain_name):
    domain = load_domain(domain_name)
    for slot in domain.informable:
        for value in value_texts(domain, slot):
            phrase = domain.phrasebook.informs[slot].say({"value": value})
            assert phrase.split()[0] in PREPOSITIONS, f"{slot}: {phrase!r}"
            assert value in phrase, f"{slot}: {phrase!r}"


@pytest.mark.parametrize("domain_name", DOMAINS)
def test_counts_agree_and_a_missing_count_is_never_said(domain_name):
    domain = load_domain(domain_name)
    words = domain.phrasebook
    for slot in [s for s in domain.informable if count_values(domain, s)]:
        assert {"1", "2"} <= set(domain.values[slot]), "the walk needs a singular and a plural count"
        singular, plural = words.user_turn("inform", {slot: "1"}), words.user_turn("inform", {slot: "2"})
        assert singular != plural.replace("2", "1"), "singular and plural sentences must differ beyond the digit"
        if not domain.in_kb[slot]:
            base = domain.entity_text(0)
            unsaid = words.booked(base)
            assert words.booked({**base, slot: "2"}) != unsaid
            assert " any " not in unsaid and "?" not in unsaid


@pytest.mark.parametrize("domain_name", DOMAINS)
def test_booking_says_every_attribute_of_the_entity(domain_name):
    domain = load_domain(domain_name)
    booking = domain.phrasebook.booking
    for entity in range(len(domain.kb)):
        row = domain.entity_text(entity)
        text = booking.say(row)
        for slot in booking.slots():
            if slot in row:
                assert row[slot] in text, f"entity {entity}: {slot}={row[slot]!r} missing from {text!r}"


@pytest.mark.parametrize("domain_name", DOMAINS)
def test_transcripts_of_noisy_random_dialogues_are_grammatical(domain_name):
    env = SlotFillingVecEnv(1, domain=domain_name, nlu="pydial30")
    generator = torch.Generator().manual_seed(3)
    texts = env.play_transcripts(
        lambda obs, masks: torch.multinomial(masks.float(), 1, generator=generator)[:, 0], 48, seed=4
    )
    said = 0
    for text in texts:
        for line in text.splitlines():
            if line.startswith(("System: ", "User:   ")):
                assert_fine(line[8:], f"{domain_name} transcript")
                said += 1
    assert said > 400


# ----------------------------------------------------------------------------- the template language
@pytest.mark.parametrize(
    ("word", "article"),
    [
        ("animation", "an"),
        ("sports", "a"),
        ("european", "a"),
        ("unique", "a"),
        ("umbrella", "an"),
        ("hour", "an"),
        ("horror", "a"),
        ("8 pm", "an"),
        ("11:00", "an"),
        ("3d", "a"),
        ("imax", "an"),
        ("one-way", "a"),
    ],
)
def test_indefinite_article(word, article):
    assert indefinite_article(word) == article


def test_template_forms_and_optional_parts():
    template = Template.parse("I booked [{n} {n:seat/seats}|seats] for {film:a} film[ on {day}].")
    assert template.slots() == {"n", "film", "day"} and template.slots(required_only=True) == {"film"}
    assert template.say({"film": "epic", "n": "1"}) == "I booked 1 seat for an epic film."
    assert template.say({"film": "drama", "n": "2", "day": "monday"}) == "I booked 2 seats for a drama film on monday."
    assert template.say({"film": "drama"}) == "I booked seats for a drama film."


@pytest.mark.parametrize(
    ("text", "mentions"),
    [
        ("I booked [{n} seats", "not closed"),
        ("I booked [{n} [on {day}]]", "cannot hold another"),
        ("a | b", "outside an optional"),
        ("[a|b|c]", "at most one '|'"),
        ("{n:seat}", "{slot:one/other}"),
        ("{two words}", "does not name a slot"),
        ("stray }", "without"),
    ],
)
def test_bad_templates_are_clear_errors(text, mentions):
    with pytest.raises(TemplateError, match=re.escape(mentions)):
        Template.parse(text)


def write_domain(tmp_path, change):
    spec = json.loads((DOMAIN_DIR / "restaurant.json").read_text())
    change(spec["nlg"])
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(spec))
    return path


NLG_ERRORS = [
    (
        "parameter-outside-brackets",
        lambda n: n.update(booking="I booked a table for {people} at {name}."),
        "outside [...]",
    ),
    ("unknown-key", lambda n: n.update(greeting="Hi."), "no key 'greeting'"),
    ("unknown-slot", lambda n: n["user_inform"].update(colour="in {value}"), "'colour'"),
    ("value-in-a-question", lambda n: n["system_request"].update(food="Which {value}?"), "{value} is not a slot"),
    ("not-a-sentence", lambda n: n.update(no_match="nothing fits"), "capital letter"),
    ("want-needs-a-slot", lambda n: n.update(want="{people:a table/tables}"), "only inside [...]"),
    ("unclosed", lambda n: n.update(booking="I booked [a table."), "not closed"),
]


@pytest.mark.parametrize(("name", "change", "mentions"), NLG_ERRORS, ids=[case[0] for case in NLG_ERRORS])
def test_nlg_errors_in_a_domain_file_are_clear(tmp_path, name, change, mentions):
    path = write_domain(tmp_path, change)
    with pytest.raises(DomainError) as error:
        load_domain(str(path))
    assert str(path) in str(error.value) and mentions in str(error.value), str(error.value)
