"""The dialogue env hearing its user through a learned NLU: a perfect tagger hears what the clean preset hears, the
single env and the batched one agree, the ear's generator is part of the env's state, and bad NLUs are clear errors."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from rlcourse.envs.dialogue import SlotFillingVecEnv, load_domain
from rlcourse.envs.dialogue.lexicon import Lexicon
from rlcourse.envs.dialogue.speech import INTENTS
from rlcourse.supervised.nlu import TaggerSpec, build_tagger, save_tagger

pytestmark = pytest.mark.usefixtures("one_torch_thread")
ENV_ID = "rlcourse/SlotFilling-v0"


class OracleParser:
    """A perfect tagger: it fits the protocol and answers with the gold tags of the turn the env just said."""

    def __init__(self, domain: str):
        lexicon = Lexicon(load_domain(domain))
        self.vocabulary, self.tags, self.intents = lexicon.vocabulary, lexicon.tags, INTENTS
        self.ear = None

    def parse(self, tokens, lengths):
        intent, tags = self.ear.gold
        return intent.clone(), tags[:, : tokens.shape[1]].clone(), torch.ones(tokens.shape[0])


def untrained_tagger(tmp_path, domain: str = "movie", seed: int = 0):
    """A saved BiLSTM+CRF with random weights: it fits the protocol, and mishears often (which parity tests want)."""
    torch.manual_seed(seed)
    lexicon = Lexicon(load_domain(domain))
    spec = TaggerSpec(lexicon.vocabulary, lexicon.tags, INTENTS, domain, hidden_dim=16, embedding_dim=16)
    return save_tagger(
        build_tagger(spec, torch.ones(len(lexicon.vocabulary), dtype=torch.bool)), tmp_path / f"{domain}.pt"
    )


def random_actions(env, generator):
    masks = env.action_masks()
    return torch.where(masks, torch.rand(masks.shape, generator=generator), -1.0).argmax(1)


def test_a_perfect_tagger_hears_what_the_clean_preset_hears():
    clean = SlotFillingVecEnv(64, nlu="clean")
    oracle = OracleParser("movie")
    learned = SlotFillingVecEnv(64, nlu=oracle, word_typo=0.0, paraphrase=True)
    oracle.ear = learned.ear
    obs_clean, _ = clean.reset(seed=3)
    obs_learned, _ = learned.reset(seed=3)
    assert torch.equal(obs_clean, obs_learned)
    generator, ended = torch.Generator().manual_seed(0), 0
    for _ in range(120):
        actions = random_actions(clean, generator)
        expected, got = clean.step(actions), learned.step(actions)
        for a, b in zip(expected[:4], got[:4]):
            assert torch.equal(a, b)
        assert torch.equal(clean.belief_value, learned.belief_value)
        assert torch.equal(clean.belief_confidence, learned.belief_confidence)
        ended += int(expected[2].sum())
    assert ended > 100  # many dialogues, and the resets inside steps, were compared


def test_single_and_batched_envs_agree_with_a_learned_nlu_and_word_noise(tmp_path):
    options = dict(nlu=f"learned:{untrained_tagger(tmp_path)}", word_typo=0.1, word_drop=0.1)
    single = gym.make(ENV_ID, **options)
    batched = SlotFillingVecEnv(1, **options)
    obs_s, _ = single.reset(seed=7)
    obs_b, _ = batched.reset(seed=7)
    generator = torch.Generator().manual_seed(8)
    for step in range(80):
        assert np.array_equal(obs_s, obs_b[0].numpy()), f"step {step}"
        action = random_actions(batched, generator)
        obs_s, reward_s, terminated_s, _, _ = single.step(int(action[0]))
        obs_b, reward_b, terminated_b, _, info_b = batched.step(action)
        assert reward_s == float(reward_b[0]) and terminated_s == bool(terminated_b[0])
        if terminated_s:
            assert np.array_equal(obs_s, info_b["final_obs"][0].numpy())
            obs_s, _ = single.reset()
    single.close()


def test_the_ears_generator_is_seeded_and_saved_with_the_env(tmp_path):
    path = untrained_tagger(tmp_path)
    env = SlotFillingVecEnv(8, nlu=f"learned:{path}", word_drop=0.2)
    env.reset(seed=5)
    generator = torch.Generator().manual_seed(1)
    for _ in range(5):
        env.step(random_actions(env, generator))
    state = env.state_dict()
    assert "speech_generator" in state
    actions = [random_actions(env, generator) for _ in range(10)]
    first = [env.step(a)[0].clone() for a in actions]
    env.load_state_dict(state)
    assert [torch.equal(a, env.step(b)[0]) for a, b in zip(first, actions)] == [True] * 10
    with pytest.raises(ValueError, match="speech_generator"):
        SlotFillingVecEnv(8).load_state_dict(state)


def test_a_learned_nlu_spawns_and_reports_its_options(tmp_path):
    options = dict(nlu=f"learned:{untrained_tagger(tmp_path)}", word_typo=0.05)
    env = SlotFillingVecEnv(4, **options)
    assert env.options()["nlu"] == options["nlu"] and env.options()["word_typo"] == 0.05
    copy = env.spawn(2)
    assert copy.num_envs == 2 and copy.ear is not None and copy.options() == env.options()


def test_bad_nlus_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown NLU noise preset 'bogus'; choose one of clean, .*learned:PATH"):
        SlotFillingVecEnv(1, nlu="bogus")
    with pytest.raises(ValueError, match="needs the path of a saved NLU"):
        SlotFillingVecEnv(1, nlu="learned:")
    with pytest.raises(ValueError, match="no checkpoint at '.*missing.pt'"):
        SlotFillingVecEnv(1, nlu=f"learned:{tmp_path / 'missing.pt'}")
    train_tagger = untrained_tagger(tmp_path, domain="train")
    with pytest.raises(ValueError, match="does not fit the 'movie' dialogue domain: its vocabulary differ .*'train'"):
        SlotFillingVecEnv(1, nlu=f"learned:{train_tagger}")
    SlotFillingVecEnv(1, nlu=f"learned:{train_tagger}", domain="train")  # its own domain is fine
    with pytest.raises(ValueError, match="is not an NLU parser"):
        SlotFillingVecEnv(1, nlu=object())
    with pytest.raises(ValueError, match="need a learned NLU"):
        SlotFillingVecEnv(1, nlu="tcbot", word_typo=0.1)
    with pytest.raises(ValueError, match=r"word_drop must be a number in \[0, 1\)"):
        SlotFillingVecEnv(1, nlu=OracleParser("movie"), word_drop=1.0)
