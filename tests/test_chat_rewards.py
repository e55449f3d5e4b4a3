"""The chatbot's learned rewards: the preference model (Bradley–Terry) and SeqGAN's discriminator D(c, x).

Synthetic token data in the env's layout (context left-padded, BOS, reply right-padded), a tiny vocabulary.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from gymnasium import spaces

import rlcourse
from rlcourse.supervised import ModelReward, load_plugin
from rlcourse.supervised.chat.discriminator import SeqGANDiscriminator, SeqGANDiscriminatorConfig, chat_demonstrations
from rlcourse.supervised.chat.preference import (
    PreferenceConfig,
    PreferenceRewardModel,
    bradley_terry_loss,
    fit_preference,
    mixed_preference_pairs,
    preference_pairs,
    without_ties,
)
from rlcourse.supervised.chat.scorer import SequenceScorer
from rlcourse.wrappers import TransitionBatch

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py

PAD, BOS, EOS = 0, 1, 2
VOCAB, C, R = 24, 4, 6
L = C + 1 + R
OBS_SPACE = spaces.Box(0, VOCAB - 1, shape=(L,), dtype=np.int64)
ACTION_SPACE = spaces.Discrete(VOCAB)
SMALL = {"embed_dim": 8, "hidden_dim": 16, "net_arch": [16]}
DULL = torch.tensor([[4, 5, EOS, PAD, PAD, PAD], [6, EOS, PAD, PAD, PAD, PAD]])  # "i don't know", "ok"


def layout(contexts: torch.Tensor, replies: torch.Tensor) -> torch.Tensor:
    bos = torch.full((contexts.shape[0], 1), BOS, dtype=torch.int64)
    return torch.cat([contexts, bos, replies], 1)


def synthetic_pairs(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Contexts of 1..C words (7..23), and replies that count up from the context's last word, then EOS."""
    g = torch.Generator().manual_seed(seed)
    contexts = torch.full((n, C), PAD, dtype=torch.int64)
    replies = torch.full((n, R), PAD, dtype=torch.int64)
    for i in range(n):
        k = int(torch.randint(1, C + 1, (), generator=g))
        contexts[i, C - k :] = torch.randint(7, VOCAB, (k,), generator=g)
        m = int(torch.randint(2, R, (), generator=g))  # 2..R-1 words, then EOS
        replies[i, :m] = 7 + (contexts[i, -1] - 7 + torch.arange(1, m + 1)) % (VOCAB - 7)
        replies[i, m] = EOS
    return contexts, replies


def random_replies(n: int, seed: int) -> torch.Tensor:
    """Uniformly random words (4..VOCAB-1) of random length, then EOS (what an untrained generator says)."""
    g = torch.Generator().manual_seed(seed)
    replies = torch.randint(4, VOCAB, (n, R), generator=g)
    lengths = torch.randint(1, R, (n,), generator=g)
    positions = torch.arange(R)
    replies = torch.where(positions < lengths[:, None], replies, PAD)
    return torch.where(positions == lengths[:, None], EOS, replies)


def batch_of(next_obs: torch.Tensor, terminated: torch.Tensor) -> TransitionBatch:
    n = next_obs.shape[0]
    return TransitionBatch(
        obs=next_obs, actions=torch.zeros(n, dtype=torch.int64), next_obs=next_obs,
        rewards=torch.zeros(n), terminated=terminated, truncated=torch.zeros(n, dtype=torch.bool),
    )  # fmt: skip


# ----------------------------------------------------------------------------------------- the scorer
def test_the_scorer_ignores_pads_wherever_they_are():
    torch.manual_seed(0)
    scorer = SequenceScorer(VOCAB, 8, 16, (16,))
    words = torch.tensor([9, 10, BOS, 11, 12, EOS])
    rows = torch.full((3, 9), PAD)
    rows[0, 1:7], rows[1, :6], rows[2, 3:] = words, words, words
    scores = scorer(rows)
    assert scores.shape == (3,)
    torch.testing.assert_close(scores, scores[:1].expand(3), rtol=0, atol=1e-6)
    other = rows[:1].clone()
    other[0, 4] = 13  # one word changed
    assert not torch.allclose(scorer(other), scores[:1])


def test_the_scorer_equals_a_packed_bidirectional_gru():
    """Forward and backward GRUs over the real tokens alone, as pack_padded_sequence would run them."""
    torch.manual_seed(1)
    scorer = SequenceScorer(VOCAB, 8, 16, (16,))
    row = torch.tensor([[PAD, PAD, 9, 10, BOS, 11, EOS, PAD]])
    real = torch.tensor([[9, 10, BOS, 11, EOS]])
    forward, _ = scorer.forward_gru(scorer.embedding(real))
    backward, _ = scorer.backward_gru(scorer.embedding(real.flip(1)))
    states = torch.cat((forward, backward), -1)
    expected = scorer.head(torch.cat((states.mean(1), states.amax(1)), -1)).squeeze(-1)
    torch.testing.assert_close(scorer(row), expected)


# ----------------------------------------------------------------------------------------- Bradley-Terry
def test_the_bradley_terry_loss_by_hand():
    loss = bradley_terry_loss(torch.tensor([2.0]), torch.tensor([0.0]))
    assert math.isclose(float(loss), math.log(1 + math.exp(-2)), rel_tol=1e-6)
    both = bradley_terry_loss(torch.tensor([2.0, 0.0]), torch.tensor([0.0, 0.0]))
    assert math.isclose(float(both), (math.log(1 + math.exp(-2)) + math.log(2)) / 2, rel_tol=1e-6)
    far = bradley_terry_loss(torch.tensor([-200.0]), torch.tensor([200.0]))
    assert math.isclose(float(far), 400.0, rel_tol=1e-6)  # logsigmoid: no overflow
    with pytest.raises(ValueError, match="one shape"):
        bradley_terry_loss(torch.zeros(2), torch.zeros(3))


def test_preference_training_ranks_structured_replies_above_dull_ones():
    torch.manual_seed(0)
    model = PreferenceRewardModel(OBS_SPACE, ACTION_SPACE, {**SMALL, "learning_rate": 3e-3})
    g = torch.Generator().manual_seed(0)
    train = preference_pairs(*synthetic_pairs(256, seed=1), "dull", g, dull_replies=DULL)
    valid = preference_pairs(*synthetic_pairs(128, seed=2), "dull", g, dull_replies=DULL)
    logged = []
    history = fit_preference(model, train, valid, epochs=3, batch_size=32, seed=0, log=lambda *a: logged.append(a))
    assert set(history) == {"train_loss", "valid_loss", "valid_accuracy"} and len(history["train_loss"]) == 3
    assert max(history["valid_accuracy"]) > 0.9
    assert history["train_loss"][-1] < history["train_loss"][0]
    assert {tag for tag, _, _ in logged} == {"train/loss", "valid/loss", "valid/pairwise_accuracy"}
    with torch.no_grad():  # the model keeps its best epoch
        accuracy = float((model.score(valid[0]) > model.score(valid[1])).float().mean())
    assert accuracy == max(history["valid_accuracy"])


def test_pairs_of_each_kind():
    contexts, replies = synthetic_pairs(7, seed=3)
    replies[:, 0] = torch.arange(4, 11)  # every reply tells its row apart
    g = torch.Generator().manual_seed(0)
    chosen, dull = preference_pairs(contexts, replies, "dull", g, dull_replies=DULL)
    assert chosen.shape == dull.shape == (7, L)
    assert torch.equal(chosen, layout(contexts, replies)) and torch.equal(dull[:, : C + 1], chosen[:, : C + 1])
    assert all(any(torch.equal(row, d) for d in DULL) for row in dull[:, C + 1 :])
    for seed in range(20):
        _, shuffled = preference_pairs(contexts, replies, "shuffled", torch.Generator().manual_seed(seed))
        assert torch.equal(shuffled[:, : C + 1], chosen[:, : C + 1])
        assert (shuffled[:, C + 1] != replies[:, 0]).all()  # never its own reply
        assert sorted(shuffled[:, C + 1].tolist()) == replies[:, 0].tolist()  # each reply once
    _, sampled = preference_pairs(contexts, replies, "sampled", g, sampler=lambda c: torch.full((c.shape[0], R), 9))
    assert sampled.shape == (7, L) and (sampled[:, C + 1 :] == 9).all()
    mixed_chosen, mixed_rejected = mixed_preference_pairs(contexts, replies, g, DULL, lambda c: torch.full((7, R), 9))
    assert mixed_chosen.shape == mixed_rejected.shape == (21, L)
    assert int((mixed_rejected[:, C + 1 :] == 9).all(1).sum()) == 7
    kept_chosen, kept_rejected = without_ties(torch.cat([chosen, chosen[:2]]), torch.cat([dull, chosen[:2]]))
    assert kept_chosen.shape[0] == 7 - int((chosen == dull).all(1).sum())


def test_pairs_reject_missing_or_bad_arguments():
    contexts, replies = synthetic_pairs(4, seed=4)
    g = torch.Generator().manual_seed(0)
    with pytest.raises(ValueError, match="need dull_replies"):
        preference_pairs(contexts, replies, "dull", g)
    with pytest.raises(ValueError, match="need a sampler"):
        preference_pairs(contexts, replies, "sampled", g)
    with pytest.raises(ValueError, match="unknown preference-pair kind 'boring'"):
        preference_pairs(contexts, replies, "boring", g)
    with pytest.raises(ValueError, match="at least 2 pairs"):
        preference_pairs(contexts[:1], replies[:1], "shuffled", g)
    with pytest.raises(ValueError, match="dull_replies must be"):
        preference_pairs(contexts, replies, "dull", g, dull_replies=DULL[:, :3])
    with pytest.raises(ValueError, match="the sampler must return"):
        preference_pairs(contexts, replies, "sampled", g, sampler=lambda c: torch.zeros(4, R + 1, dtype=torch.int64))


def test_the_preference_reward_is_the_score_where_a_reply_ended():
    torch.manual_seed(0)
    model = PreferenceRewardModel(OBS_SPACE, ACTION_SPACE, SMALL)
    next_obs = layout(*synthetic_pairs(6, seed=5))
    terminated = torch.tensor([True, False, True, False, False, True])
    with torch.no_grad():
        reward, score = model.reward(batch_of(next_obs, terminated)), model.score(next_obs)
    assert (reward[~terminated] == 0).all() and (score[~terminated] != 0).all()
    torch.testing.assert_close(reward[terminated], score[terminated])


# ----------------------------------------------------------------------------------------- SeqGAN
def test_the_discriminator_separates_corpus_replies_from_random_ones():
    torch.manual_seed(0)
    discriminator = SeqGANDiscriminator(OBS_SPACE, ACTION_SPACE, {**SMALL, "learning_rate": 1e-2})
    demonstrations = chat_demonstrations(*synthetic_pairs(256, seed=6))
    fake_contexts, _ = synthetic_pairs(256, seed=7)
    fake = layout(fake_contexts, random_replies(256, seed=8))
    g = torch.Generator().manual_seed(0)
    for _ in range(100):
        index = torch.randint(256, (64,), generator=g)
        stats = discriminator.update(
            demonstrations.sample(64, g), batch_of(fake[index], torch.ones(64, dtype=torch.bool))
        )
    assert set(stats) >= {"loss", "real_accuracy", "fake_accuracy"} and all(v.dim() == 0 for v in stats.values())
    held_contexts, held_replies = synthetic_pairs(200, seed=9)
    with torch.no_grad():
        real_logits = discriminator.logits(layout(held_contexts, held_replies))
        fake_logits = discriminator.logits(layout(held_contexts, random_replies(200, seed=10)))
    accuracy = ((real_logits > 0).float().mean() + (fake_logits < 0).float().mean()) / 2
    assert accuracy > 0.9


def test_the_discriminator_ignores_unfinished_rows():
    torch.manual_seed(0)
    discriminator = SeqGANDiscriminator(OBS_SPACE, ACTION_SPACE, SMALL)
    real = chat_demonstrations(*synthetic_pairs(8, seed=11))
    finished = layout(*synthetic_pairs(5, seed=12))
    garbage = torch.randint(0, VOCAB, (7, L), generator=torch.Generator().manual_seed(13))
    mixed = torch.cat([garbage[:3], finished, garbage[3:]])
    terminated = torch.tensor([False] * 3 + [True] * 5 + [False] * 4)
    twin = copy.deepcopy(discriminator)
    with_garbage = discriminator.update(real, batch_of(mixed, terminated))
    without = twin.update(real, batch_of(finished, torch.ones(5, dtype=torch.bool)))
    for key in ("loss", "real_accuracy", "fake_accuracy"):
        torch.testing.assert_close(with_garbage[key], without[key])
    for mine, its in zip(discriminator.parameters(), twin.parameters()):  # the same step, too
        torch.testing.assert_close(mine, its)


def test_the_seqgan_reward_is_d_or_log_d_where_a_reply_ended():
    torch.manual_seed(0)
    next_obs = layout(*synthetic_pairs(5, seed=14))
    terminated = torch.tensor([True, False, True, True, False])
    rewards = {}
    for kind in ("prob", "log_prob"):
        torch.manual_seed(0)
        discriminator = SeqGANDiscriminator(OBS_SPACE, ACTION_SPACE, {**SMALL, "reward": kind})
        with torch.no_grad():
            rewards[kind], logits = discriminator.reward(batch_of(next_obs, terminated)), discriminator.logits(next_obs)
        assert (rewards[kind][~terminated] == 0).all()
    torch.testing.assert_close(rewards["prob"][terminated], torch.sigmoid(logits[terminated]))
    torch.testing.assert_close(rewards["log_prob"][terminated], torch.log(torch.sigmoid(logits[terminated])))


def test_chat_demonstrations_end_each_pair():
    contexts, replies = synthetic_pairs(5, seed=15)
    demos = chat_demonstrations(contexts, replies)
    assert torch.equal(demos.next_obs, layout(contexts, replies)) and demos.terminated.all()
    changed = demos.obs != demos.next_obs
    assert (changed.sum(1) == 1).all() and (demos.obs[changed] == PAD).all()
    assert (demos.actions == EOS).all()  # every corpus reply ends with EOS
    with pytest.raises(ValueError, match="at least one token"):
        chat_demonstrations(contexts, torch.zeros_like(replies))


# ----------------------------------------------------------------------------------------- files and settings
@pytest.mark.parametrize("cls", [PreferenceRewardModel, SeqGANDiscriminator])
def test_save_and_load_give_the_same_rewards(cls, tmp_path):
    torch.manual_seed(0)
    model = cls(OBS_SPACE, ACTION_SPACE, {**SMALL, "learning_rate": 5e-3})
    next_obs = layout(*synthetic_pairs(6, seed=16))
    batch = batch_of(next_obs, torch.tensor([True, True, False, True, False, True]))
    if isinstance(model, SeqGANDiscriminator):  # a trained one, with an optimizer state
        model.update(chat_demonstrations(*synthetic_pairs(6, seed=17)), batch)
    else:
        fit_preference(model, (next_obs, next_obs.flip(1)), (next_obs, next_obs.flip(1)), epochs=1, batch_size=4)
    loaded = load_plugin(model.save(tmp_path / "plugin.pt"), observation_space=OBS_SPACE, action_space=ACTION_SPACE)
    assert type(loaded) is cls and loaded.config == model.config
    with torch.no_grad():
        assert torch.equal(loaded.reward(batch), model.reward(batch))
    assert loaded.optimizer.state_dict()["state"].keys() == model.optimizer.state_dict()["state"].keys()


def test_bad_settings_and_spaces_are_clear_errors():
    with pytest.raises(ValueError, match="reward"):
        SeqGANDiscriminator(OBS_SPACE, ACTION_SPACE, {"reward": "logit"})
    with pytest.raises(ValueError, match="unknown SeqGAN reward 'logit'"):
        SeqGANDiscriminatorConfig(reward="logit")
    with pytest.raises(ValueError, match="embed_dim must be a positive integer"):
        PreferenceRewardModel(OBS_SPACE, ACTION_SPACE, {"embed_dim": 0})
    with pytest.raises(ValueError, match="hidden_dim must be a positive integer"):
        SeqGANDiscriminatorConfig(hidden_dim=-3)
    with pytest.raises(ValueError, match="net_arch"):
        PreferenceConfig(net_arch=(16, 0))
    with pytest.raises(ValueError, match="learning_rate"):
        PreferenceConfig(learning_rate=0.0)
    with pytest.raises(ValueError, match="1-D integer Box"):
        PreferenceRewardModel(spaces.Box(0.0, 1.0, shape=(L,)), ACTION_SPACE)
    with pytest.raises(ValueError, match=r"token ids must lie in \[0, 24\)"):
        SeqGANDiscriminator(spaces.Box(0, VOCAB, shape=(L,), dtype=np.int64), ACTION_SPACE)
    with pytest.raises(ValueError, match="Discrete"):
        PreferenceRewardModel(OBS_SPACE, spaces.Box(-1.0, 1.0, shape=(2,)))
    model = PreferenceRewardModel(OBS_SPACE, ACTION_SPACE, SMALL)
    pairs = (torch.zeros(3, L, dtype=torch.int64), torch.zeros(3, L, dtype=torch.int64))
    with pytest.raises(ValueError, match="epochs must be a positive integer"):
        fit_preference(model, pairs, pairs, epochs=0)
    with pytest.raises(ValueError, match=r"train_pairs must be two \[N >= 1, L = 11\]"):
        fit_preference(model, (pairs[0][:, :5], pairs[1][:, :5]), pairs)


def test_both_plug_ins_reward_the_chatbot_env_through_model_reward():
    env = rlcourse.make_vec("rlcourse/Chatbot-v0", 8, context_len=6, reply_len=4)
    for cls in (PreferenceRewardModel, SeqGANDiscriminator):
        torch.manual_seed(0)
        model = cls(env.single_observation_space, env.single_action_space, SMALL)
        wrapped = ModelReward(env, model, mode="replace")
        wrapped.reset(seed=0)
        ended = 0
        for _ in range(4):
            actions = torch.multinomial(wrapped.action_masks().float(), 1).squeeze(1)
            _, rewards, terminated, _, info = wrapped.step(actions)
            assert rewards.dtype == torch.float32 and (rewards[~terminated] == 0).all()
            with torch.no_grad():  # the finished reply is the one scored, not the next context's first observation
                scores = (
                    model.logits(info["final_obs"]) if cls is SeqGANDiscriminator else model.score(info["final_obs"])
                )
            expected = torch.sigmoid(scores) if cls is SeqGANDiscriminator else scores
            torch.testing.assert_close(rewards[terminated], expected[terminated])
            ended += int(terminated.sum())
        assert ended >= 8  # every reply ends within reply_len steps


# ----------------------------------------------------------------------------- Li et al.'s rewards
def _li_setup():
    from rlcourse.envs.chatbot.env import ChatbotVecEnv
    from rlcourse.supervised.chat.language_model import ChatLanguageModel
    from rlcourse.supervised.chat.rules import LiRewards

    torch.manual_seed(0)
    env = ChatbotVecEnv(3, context_len=6, reply_len=6)
    lm = ChatLanguageModel(env.single_observation_space, env.single_action_space, {"embed_dim": 8, "hidden_dim": 8})
    rules = LiRewards(
        env.single_observation_space, env.single_action_space, {"context_len": 6}, forward=lm,
        dull_replies=env.dull_replies,
    )  # fmt: skip
    return env, lm, rules


def test_li_ease_of_answering_is_minus_the_mean_dull_likelihood_given_the_reply():
    env, lm, rules = _li_setup()
    obs = torch.tensor([[0, 0, 0, 0, 9, 10, 1, 11, 12, 2, 0, 0, 0]])
    expected = []
    for dull in env.dull_replies:
        pair = torch.cat((torch.tensor([0, 0, 0, 0, 11, 12, 1]), dull)).unsqueeze(0)  # the reply as the context
        log_likelihood, n = lm.reply_log_likelihood(pair)
        expected.append(float(log_likelihood / n))
    assert rules.ease_of_answering(obs).item() == pytest.approx(-sum(expected) / len(expected), rel=1e-5)


def test_li_rewards_pay_only_where_a_reply_ended_and_weigh_the_three_terms():
    env, lm, rules = _li_setup()
    obs = torch.tensor([[0, 0, 0, 0, 9, 10, 1, 11, 12, 2, 0, 0, 0], [0, 0, 0, 5, 6, 7, 1, 5, 6, 7, 2, 0, 0]])
    batch = TransitionBatch(obs, torch.zeros(2, dtype=torch.long), obs, torch.zeros(2),
                            torch.tensor([True, False]), torch.zeros(2, dtype=torch.bool))  # fmt: skip
    reward = rules.reward(batch)
    expected = (
        0.25 * rules.ease_of_answering(obs) + 0.25 * rules.information_flow(obs) + 0.5 * rules.semantic_coherence(obs)
    )
    assert reward[1] == 0 and reward[0].item() == pytest.approx(expected[0].item(), rel=1e-5)
    # the reply that says the context's words again has the same encoding: information flow's penalty is 0
    assert rules.information_flow(obs)[1].item() == pytest.approx(0.0, abs=1e-4)
    assert rules.semantic_coherence(obs)[0].item() == pytest.approx(lm.reward(batch)[0].item(), rel=1e-5)
