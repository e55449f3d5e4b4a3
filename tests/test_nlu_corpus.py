"""The dialogue env's words: the batched NLG says exactly the phrasebook's English, the tags read back into the act,
word noise has its rates, and the labelled corpus is seeded and keeps its held-out values and templates out."""

from __future__ import annotations

import pytest
import torch

from rlcourse.envs.dialogue import load_domain
from rlcourse.envs.dialogue.lexicon import Lexicon, tokenize
from rlcourse.envs.dialogue.nlg import DONT_CARE
from rlcourse.envs.dialogue.nlu import ABSENT, DONTCARE
from rlcourse.envs.dialogue.speech import INTENTS, Speech
from rlcourse.supervised.nlu.corpus import ambiguous_slots, heldout_values, make_corpus, sample_acts

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def random_acts(domain, size: int, seed: int):
    """Acts of every shape, including ones the env's user never makes (informs with an affirm, say)."""
    g = torch.Generator().manual_seed(seed)
    S, R = len(domain.informable), len(domain.requestable)
    counts = torch.tensor([len(domain.values[s]) for s in domain.informable])
    value = (torch.rand(size, S, generator=g) * counts).long()
    draw = torch.rand(size, S, generator=g)
    inform = torch.where(draw < 0.3, value, torch.where(draw < 0.4, torch.tensor(DONTCARE), torch.tensor(ABSENT)))
    return torch.randint(len(INTENTS), (size,), generator=g), inform, torch.rand(size, R, generator=g) < 0.2


@pytest.mark.parametrize("domain_name", ["movie", "restaurant", "train"])
def test_canonical_turns_are_the_phrasebooks_words_and_the_tags_read_back_the_act(domain_name):
    domain = load_domain(domain_name)
    lexicon = Lexicon(domain)
    speech = Speech(lexicon, templates="canonical")
    intent, inform, request = random_acts(domain, 400, seed=1)
    tokens, lengths, tags = speech.say(intent, inform, request, speech.draw(400, torch.Generator().manual_seed(2)))
    for row in range(400):
        informs = {
            slot: DONT_CARE if v == DONTCARE else domain.values[slot][v]
            for slot, v in zip(domain.informable, inform[row].tolist())
            if v != ABSENT
        }
        asks = [slot for slot, asked in zip(domain.requestable, request[row].tolist()) if asked]
        said = domain.phrasebook.user_turn(INTENTS[int(intent[row])], informs, asks)
        assert lexicon.words(tokens[row, : lengths[row]].tolist()) == " ".join(tokenize(said))
    # the values said are exactly the informs of the intents that say them (an affirm says no values)
    says = torch.tensor([name in ("inform", "request", "deny", "reject") for name in INTENTS])[intent]
    expected = torch.where((inform >= 0) & says[:, None], inform, torch.where(inform == DONTCARE, inform, ABSENT))
    heard_inform, heard_request = speech.read(tokens, lengths, tags)
    assert torch.equal(heard_inform, expected) and torch.equal(heard_request, request)


def test_paraphrases_read_back_too_and_a_typo_in_a_value_loses_the_slot():
    domain = load_domain("movie")
    speech = Speech(Lexicon(domain))
    intent, inform, request = random_acts(domain, 2000, seed=3)
    g = torch.Generator().manual_seed(4)
    tokens, lengths, tags = speech.say(intent, inform, request, speech.draw(2000, g))
    clean, asked = speech.read(tokens, lengths, tags)
    assert torch.equal(asked, request) and (clean >= 0).sum() > 1000
    noisy_tokens, noisy_lengths, noisy_tags = speech.say(intent, inform, request, speech.draw(2000, g), typo=0.3)
    noisy, _ = speech.read(noisy_tokens, noisy_lengths, noisy_tags)
    assert ((noisy >= 0) & (noisy != clean)).sum() == 0  # a misspelt value is not heard as another value
    assert 0.2 < ((clean >= 0) & (noisy == ABSENT)).sum() / (clean >= 0).sum() < 0.6


def test_word_noise_rates():
    domain = load_domain("movie")
    speech = Speech(Lexicon(domain))
    intent, inform, request = random_acts(domain, 3000, seed=5)
    g = torch.Generator().manual_seed(6)
    draws = speech.draw(3000, g)
    _, clean_lengths, _ = speech.say(intent, inform, request, draws)
    tokens, lengths, _ = speech.say(intent, inform, request, draws, typo=0.1, drop=0.2)
    words = clean_lengths.sum().item()
    assert lengths.sum().item() / words == pytest.approx(0.8, abs=0.01)
    unknown = (tokens == speech.lexicon.word_id["<unk>"]).sum().item()
    assert unknown / lengths.sum().item() == pytest.approx(0.1, abs=0.01)
    assert lengths.max() <= speech.max_tokens


def test_corpus_is_seeded():
    first, again, other = (make_corpus("movie", 300, seed) for seed in (1, 1, 2))
    for name in ("tokens", "lengths", "tags", "intents"):
        assert torch.equal(getattr(first, name), getattr(again, name))
    assert not torch.equal(first.tokens, other.tokens)
    assert first.sentence(0) == again.sentence(0)


def test_held_out_values_and_templates_stay_out_of_training():
    domain = load_domain("movie")
    held = heldout_values(domain)
    assert all(1 <= len(values) <= len(domain.values[slot]) / 3 for slot, values in held.items())
    g = torch.Generator().manual_seed(7)
    _, train_inform, _ = sample_acts(domain, 4000, g, values="train")
    _, test_inform, _ = sample_acts(domain, 4000, g, values="heldout")
    for s, slot in enumerate(domain.informable):
        out = {domain.values[slot].index(v) for v in held[slot]}
        said_in_training = set(train_inform[:, s][train_inform[:, s] >= 0].tolist())
        said_in_test = set(test_inform[:, s][test_inform[:, s] >= 0].tolist())
        assert not said_in_training & out and said_in_test == out, slot
    lexicon = Lexicon(domain)
    for family in lexicon.segments:
        held_out = {i for k in family.pool("heldout") for i in family.ids[k]}
        trained = {i for k in family.pool("train") for i in family.ids[k]}
        if len(family.ids) >= 3:  # a family with a held-out variant says something training never does
            assert held_out - trained, family.name
        if family in lexicon.informs:  # and a slot's held-out inform phrases are all new
            assert not held_out & trained, family.name


def test_a_value_two_slots_share_is_held_out_of_both_so_training_never_says_its_words():
    domain = load_domain("train")
    held = heldout_values(domain)
    # the fixed draw (seed 2015), hand-checked: a quarter of each slot, shared values out of both of their slots
    assert held == {
        "departure": ["stansted", "stevenage"], "destination": ["stansted", "stevenage"], "day": ["thursday", "sunday"],
        "leaveat": ["11:00", "15:30"], "arriveby": ["11:00", "15:30"], "people": ["1", "7"],
    }  # fmt: skip
    lexicon = Lexicon(domain)
    training = make_corpus(domain, 3000, seed=9, values="train", templates="all")
    said = {lexicon.vocabulary[i] for i in training.tokens.unique().tolist()}
    unheard = {word for values in held.values() for value in values for word in tokenize(value)}
    assert not said & unheard
    test = make_corpus(domain, 1000, seed=10, values="heldout")
    assert unheard <= {lexicon.vocabulary[i] for i in test.tokens.unique().tolist()}
    # a domain whose slots share no values keeps the per-slot draw it always had
    assert heldout_values(load_domain("movie"))["city"] == ["san francisco", "portland"]


def test_the_ambiguous_set_says_shared_values_in_slots_only_context_tells_apart():
    domain = load_domain("train")
    assert ambiguous_slots(domain) == ["departure", "destination", "leaveat", "arriveby"]
    corpus = make_corpus(domain, 200, seed=8, ambiguous=True)
    assert (corpus.intents == INTENTS.index("inform")).all()
    said = {corpus.lexicon.tags[t][2:] for t in corpus.tags.unique().tolist() if t}
    assert said <= {"departure", "destination", "leaveat", "arriveby"} and len(said) == 4
    with pytest.raises(ValueError, match="no slots that share values"):
        make_corpus("movie", 10, seed=0, ambiguous=True)
