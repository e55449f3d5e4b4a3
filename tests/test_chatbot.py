"""rlcourse/Chatbot-v0 and what trains on it: the env's endings, masks and rule rewards; the MLE language model;
the token GRU policy's incremental acting; PPO/REINFORCE with ``policy_network=token_gru``; the KL penalty to a
reference policy; the warm start from a language-model plug-in.

The env contract and the Gymnasium/SB3 checkers run on the chatbot's default options in tests/test_env_contract.py,
tests/test_env_checkers.py and tests/test_agents_on_envs.py (parametrised over every registered env); this file
adds the chatbot's own behaviour. The corpus and tokenizer are tested in tests/test_chatbot_corpus.py.
"""

from __future__ import annotations

import copy
import math

import gymnasium as gym
import pytest
import torch
from agent_checks import assert_equal_tree, assert_resume_matches_an_uninterrupted_run
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env
from test_env_checkers import _run_checker
from test_env_contract import sample_actions

import rlcourse
from rlcourse.agents import PPO, REINFORCE
from rlcourse.agents.distributions import mask_logits
from rlcourse.agents.networks import Actor, ActorCritic, policy_network
from rlcourse.agents.token_policy import TokenActorCritic
from rlcourse.checkpoint import CheckpointError
from rlcourse.envs.chatbot.corpus import observation_layout
from rlcourse.supervised.chat.language_model import ChatLanguageModel, fit_mle, last_token_index
from rlcourse.wrappers import RewardFunction, TransitionBatch

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py

ENV_ID = "rlcourse/Chatbot-v0"
PAD, BOS, EOS, UNK = 0, 1, 2, 3
#: Env tests: the whole train vocabulary (so no train context holds UNK), short layouts.
SMALL = dict(context_len=4, reply_len=5)
#: Network tests: 53 tokens, L = 4 + 1 + 4.
TINY = dict(context_len=4, reply_len=4, min_count=50)
#: Word ids far down the vocabulary (rare words, in no dull reply).
W1, W2, W3, W4, W5 = 100, 101, 102, 103, 104


def make_env(num_envs: int = 2, **options) -> rlcourse.TensorVecEnv:
    return rlcourse.make_vec(ENV_ID, num_envs, "cpu", **{**SMALL, **options})


def agent(algo=PPO, num_envs: int = 2, **hparams):
    """A small token-GRU agent on the tiny chatbot; preset=None so the tests reason from the config defaults."""
    small = dict(n_steps=8, net_arch=(16, 32), policy_network="token_gru")
    if algo is PPO:
        small.update(batch_size=8, n_epochs=1)
    return algo(ENV_ID, num_envs=num_envs, device="cpu", seed=0, preset=None, env_kwargs=TINY, **{**small, **hparams})


def play(env, replies: torch.Tensor, seed: int = 0) -> dict[str, torch.Tensor]:
    """Reset ``env`` (one sub-env per row of ``replies`` ``[N, R]``) and feed each row its reply (a filler word once
    it has ended); what the step that ended each row reported, and the largest |reward| before it."""
    obs, _ = env.reset(seed=seed)
    n = replies.shape[0]
    out = {
        "context": obs[:, : env.context_len].clone(),
        "reward": torch.zeros(n),
        "before": torch.zeros(n),
        "dull": torch.zeros(n, dtype=torch.bool),
        "repeat": torch.zeros(n, dtype=torch.bool),
        "length": torch.zeros(n, dtype=torch.int64),
        "final_obs": torch.zeros_like(obs),
    }
    ended = torch.zeros(n, dtype=torch.bool)
    for t in range(env.reply_len):
        obs, reward, terminated, truncated, info = env.step(torch.where(ended, W1, replies[:, t]))
        assert not truncated.any()
        new = terminated & ~ended
        out["before"] = torch.maximum(out["before"], torch.where(~terminated & ~ended, reward.abs(), 0.0))
        final = info["final_info"]
        for key, value in (("reward", reward), ("dull", final["dull"]), ("repeat", final["repeat"])):
            out[key] = torch.where(new, value, out[key])
        out["length"] = torch.where(new, final["reply_length"], out["length"])
        out["final_obs"][new] = info["final_obs"][new]
        ended |= terminated
    assert ended.all()
    return out


def counting(calls: list[int], fn):
    """``fn`` that appends to ``calls`` on every call."""

    def counted(*args):
        calls.append(1)
        return fn(*args)

    return counted


def reply_rows(*replies: list[int], reply_len: int = 5) -> torch.Tensor:
    return torch.tensor([r + [PAD] * (reply_len - len(r)) for r in replies])


# ============================================================================= 1. checkers on other options
def test_gymnasium_and_sb3_checkers_pass_on_non_default_options():
    """The default options run in tests/test_env_checkers.py; here a short layout and a small vocabulary."""
    assert ENV_ID in rlcourse.list_envs()  # so the parametrised contract and checker tests cover it
    options = dict(context_len=3, reply_len=3, min_count=20)
    _run_checker(gym_check_env, gym.make(ENV_ID, **options).unwrapped)
    _run_checker(lambda env: sb3_check_env(env, warn=True), gym.make(ENV_ID, **options))


# ============================================================================= 2. endings
def test_a_reply_ends_at_eos_and_only_that_row_restarts():
    env = make_env(2)
    C = env.context_len
    obs, _ = env.reset(seed=0)
    context = obs[:, :C].clone()
    obs, reward, terminated, truncated, info = env.step(torch.tensor([W1, W2]))
    assert not terminated.any() and not truncated.any() and torch.equal(reward, torch.zeros(2))
    assert torch.equal(obs[:, :C], context) and (obs[:, C] == BOS).all()
    assert obs[:, C + 1].tolist() == [W1, W2] and (obs[:, C + 2 :] == PAD).all()

    obs, reward, terminated, truncated, info = env.step(torch.tensor([EOS, W3]))
    assert terminated.tolist() == [True, False] and not truncated.any()
    assert info["final_info"]["reply_length"][0] == 2 and info["episode"]["l"][0] == 2
    expected_final = observation_layout(context[:1], reply_rows([W1, EOS]))
    assert torch.equal(info["final_obs"][0], expected_final[0])
    # Row 0 starts over: a corpus context, BOS, an empty reply; row 1 goes on with its reply.
    assert (env.contexts == obs[0, :C]).all(1).any() and obs[0, C] == BOS and (obs[0, C + 1 :] == PAD).all()
    assert torch.equal(obs[1], observation_layout(context[1:], reply_rows([W2, W3]))[0])


def test_a_reply_ends_after_r_tokens_without_eos():
    env = make_env(1)
    C, R = env.context_len, env.reply_len
    obs, _ = env.reset(seed=1)
    context = obs[:, :C].clone()
    words = [W1, W2, W3, W4, W5][:R]
    for t, word in enumerate(words):
        obs, reward, terminated, truncated, info = env.step(torch.tensor([word]))
        assert bool(terminated) == (t == R - 1) and not truncated.any()
    assert reward.item() == 0.0 and info["final_info"]["reply_length"].item() == R
    assert torch.equal(info["final_obs"], observation_layout(context, torch.tensor([words])))
    assert (obs[0, C + 1 :] == PAD).all()


def test_the_shortest_reply_length_the_corpus_allows_steps():
    """BUG: reply_len=2 passes the corpus's check (>= 2), but ``_judge`` unfolds the reply in windows of
    LOOP_LENGTH = 3 and raises a RuntimeError on the first step. Either fix passes: the env steps (no loop fits in
    two tokens), or its constructor refuses the length with a ValueError that names it."""
    try:
        env = make_env(1, reply_len=2)
    except ValueError as error:
        assert "reply_len" in str(error)
        return
    env.reset(seed=0)
    env.step(torch.tensor([W1]))
    _, reward, terminated, _, info = env.step(torch.tensor([W2]))
    assert terminated.item() and reward.item() == 0.0 and not info["final_info"]["repeat"].item()


def test_the_chatbot_never_truncates():
    env = make_env(4)
    assert env.truncates is False
    env.reset(seed=2)
    gen = torch.Generator().manual_seed(2)
    ends = 0
    for _ in range(100):
        _, _, terminated, truncated, _ = env.step(sample_actions(env, gen))
        assert not truncated.any()
        ends += int(terminated.sum())
    assert ends >= 4 * 100 // env.reply_len  # every reply ends within R steps


# ============================================================================= 3. masks
def test_pad_bos_unk_always_masked_and_eos_only_at_the_first_token():
    env = make_env(2)
    env.reset(seed=0)
    vocab = env.single_action_space.n
    first = env.action_masks()
    assert first.shape == (2, vocab) and first.dtype == torch.bool
    assert not first[:, [PAD, BOS, UNK, EOS]].any() and first[:, 4:].all()
    env.step(torch.tensor([W1, W2]))
    later = env.action_masks()
    assert not later[:, [PAD, BOS, UNK]].any() and later[:, EOS].all() and later[:, 4:].all()
    env.step(torch.tensor([EOS, W3]))  # row 0 starts a new reply
    assert env.action_masks()[:, EOS].tolist() == [False, True]


# ============================================================================= 4. rewards
def test_a_dull_reply_costs_the_dull_penalty_at_its_last_step():
    env = make_env(1, dull_penalty=0.7, repeat_penalty=0.3)
    dull = env.dull_replies
    assert dull.shape[0] >= 5 and (dull == EOS).any(1).all()  # "i don't know." and friends, each ending with EOS
    env = make_env(dull.shape[0], dull_penalty=0.7, repeat_penalty=0.3)
    out = play(env, dull)
    assert out["dull"].all() and not out["repeat"].any()
    assert torch.equal(out["reward"], torch.full_like(out["reward"], -0.7))
    assert (out["before"] == 0).all()
    assert torch.equal(out["length"], (dull != PAD).sum(1))
    assert torch.equal(out["final_obs"][:, env.context_len + 1 :], dull)


@pytest.mark.parametrize(("context_len", "reply_len"), [(4, 5), (6, 3)])
def test_repeating_the_context_costs_the_repeat_penalty(context_len, reply_len):
    """With room, the context's words and EOS; a context longer than the reply: its first R words."""
    env = make_env(6, context_len=context_len, reply_len=reply_len, dull_penalty=0.7, repeat_penalty=0.3)
    contexts = env.reset(seed=3)[0][:, :context_len]
    replies = []
    for row in contexts.tolist():
        words = [w for w in row if w != PAD]
        assert UNK not in words
        replies.append(([*words, EOS] + [PAD] * reply_len)[:reply_len])
    assert any(len([w for w in row if w != PAD]) >= reply_len for row in contexts.tolist()) == (reply_len == 3)
    out = play(env, torch.tensor(replies), seed=3)
    assert torch.equal(out["context"], contexts) and out["repeat"].all()
    torch.testing.assert_close(out["reward"], -(0.3 + 0.7 * out["dull"].float()), rtol=0, atol=1e-6)
    # The control: the context with its last word replaced is no repeat.
    changed = torch.tensor(replies)
    last = (changed != PAD) & (changed != EOS)
    position = (torch.arange(reply_len) * last).argmax(1)
    changed[torch.arange(6), position] = W5
    assert not play(env, changed, seed=3)["repeat"].any()


def test_a_loop_of_three_costs_the_repeat_penalty_and_an_ordinary_reply_nothing():
    env = make_env(6, dull_penalty=0.7, repeat_penalty=0.3)
    replies = reply_rows(
        [W1, W2, W2, W2, EOS],  # a loop
        [W1, W2, W3, W3, W3],  # a loop at the end, no EOS
        [W2, W2, W3, W2, EOS],  # twice in a row is no loop
        [W1, W2, W1, W2, W1],  # alternating is no loop
        [W1, W2, W3, EOS],  # ordinary
        [W4, EOS],  # ordinary, short
    )
    out = play(env, replies)
    assert out["repeat"].tolist() == [True, True, False, False, False, False] and not out["dull"].any()
    assert torch.equal(out["reward"], torch.tensor([-0.3, -0.3, 0.0, 0.0, 0.0, 0.0]))
    assert out["length"].tolist() == [5, 5, 5, 5, 4, 2] and (out["before"] == 0).all()


def test_penalties_are_configurable_and_validated():
    dull = make_env(1).dull_replies[:3]
    free = make_env(3, dull_penalty=0.0)
    assert free.options()["dull_penalty"] == 0.0 and free.spawn(1).dull_penalty == 0.0
    out = play(free, dull)
    assert out["dull"].all() and (out["reward"] == 0).all()  # still reported, no longer punished
    for bad in (-0.1, True, "1", float("nan")):
        with pytest.raises(ValueError, match="dull_penalty"):
            make_env(1, dull_penalty=bad)
    with pytest.raises(ValueError, match="repeat_penalty"):
        make_env(1, repeat_penalty=-1)
    with pytest.raises(ValueError, match="split"):
        make_env(1, split="dev")


# ============================================================================= 5. seeds and state
def _stream(env, gen_seed: int, steps: int) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(gen_seed)
    out = []
    for _ in range(steps):
        obs, reward, terminated, _, info = env.step(sample_actions(env, gen))
        out += [
            obs.clone(),
            reward.clone(),
            terminated.clone(),
            info["final_obs"].clone(),
            info["episode"]["r"].clone(),
        ]
    return out


def test_same_seed_same_contexts_and_replies_and_state_dict_continues_identically():
    a, b, other = make_env(4), make_env(4), make_env(4)
    first_a, first_b = a.reset(seed=7)[0], b.reset(seed=7)[0]
    assert torch.equal(first_a, first_b) and not torch.equal(first_a, other.reset(seed=8)[0])
    for x, y in zip(_stream(a, 0, 30), _stream(b, 0, 30)):
        assert torch.equal(x, y)
    state = a.state_dict()
    expected = _stream(a, 1, 30)
    other.load_state_dict(state)
    for x, y in zip(expected, _stream(other, 1, 30)):
        assert torch.equal(x, y)


# ============================================================================= 6. the language model
@pytest.fixture(scope="module")
def tiny_env():
    return rlcourse.make_vec(ENV_ID, 4, "cpu", **TINY)


def language_model(env, embed: int = 8, hidden: int = 16, seed: int = 0) -> ChatLanguageModel:
    torch.manual_seed(seed)
    return ChatLanguageModel(
        env.single_observation_space, env.single_action_space, {"embed_dim": embed, "hidden_dim": hidden}
    )


def uniform(lm: ChatLanguageModel) -> ChatLanguageModel:
    """The head outputs zeros: every next token has probability 1/V."""
    with torch.no_grad():
        lm.lm.head.weight.zero_()
        lm.lm.head.bias.zero_()
    return lm


def test_last_token_index_by_hand():
    tokens = torch.tensor([[5, 0, 0, 0], [0, 0, 0, 0], [0, 7, 8, 0], [1, 0, 9, 0], [4, 4, 4, 4]])
    assert last_token_index(tokens).tolist() == [0, 0, 2, 2, 3]


def test_token_log_probs_mask_covers_exactly_the_reply_and_its_eos(tiny_env):
    lm = uniform(language_model(tiny_env))
    V = tiny_env.single_action_space.n
    #  context (C=4)  BOS  reply (R=4)
    tokens = torch.tensor(
        [[0, 0, 5, 6, BOS, 7, EOS, 0, 0], [0, 0, 5, 6, BOS, 7, 8, 9, 10], [0, 8, 8, 8, BOS, 4, EOS, 0, 0]]
    )
    picked, mask = lm.token_log_probs(tokens)
    # targets are tokens[:, 1:]: the reply starts at target index 4 (token index 5)
    assert mask.tolist() == [
        [False, False, False, False, True, True, False, False],
        [False, False, False, False, True, True, True, True],
        [False, False, False, False, True, True, False, False],
    ]
    torch.testing.assert_close(picked, torch.where(mask, -math.log(V), 0.0))
    # Under the env's masks a uniform model spreads over the allowed tokens: V − 3 (no PAD, BOS, UNK), and one
    # fewer for the reply's first token (no EOS there).
    masked, same_mask = lm.token_log_probs(tokens, env_masks=True)
    assert torch.equal(same_mask, mask)
    first = torch.zeros_like(mask)
    first[:, 4] = True
    expected = torch.where(first, -math.log(V - 4), -math.log(V - 3))
    torch.testing.assert_close(masked, torch.where(mask, expected, 0.0))
    total, count = lm.reply_log_likelihood(tokens)
    assert count.tolist() == [2, 4, 2]
    torch.testing.assert_close(total, -count * math.log(V))
    torch.testing.assert_close(lm.mle_loss(tokens), torch.tensor(math.log(V)))
    assert lm.perplexity(tokens) == pytest.approx(V, rel=1e-5)


def test_mle_loss_equals_a_step_by_step_cross_entropy(tiny_env):
    lm = language_model(tiny_env, seed=3)
    contexts, replies = tiny_env.corpus.train
    tokens = observation_layout(contexts[:5], replies[:5])
    state = torch.zeros(5, 16)
    losses = []
    for t in range(tokens.shape[1] - 1):
        state = lm.lm.step(state, tokens[:, t])  # the GRU one token at a time, not the fused sequence
        target = tokens[:, t + 1]
        in_reply = (t >= tiny_env.context_len) & (target != PAD)
        nll = torch.nn.functional.cross_entropy(lm.lm.head(state), target, reduction="none")
        losses += nll[in_reply].tolist()
    torch.testing.assert_close(lm.mle_loss(tokens), torch.tensor(sum(losses) / len(losses)), atol=1e-5, rtol=1e-5)


def test_fit_mle_lowers_the_loss_on_a_tiny_corpus(tiny_env):
    lm = language_model(tiny_env, embed=16, hidden=32, seed=0)
    lm.config.learning_rate = 1e-2
    contexts, replies = tiny_env.corpus.train
    train = observation_layout(contexts[:20], replies[:20])
    with torch.no_grad():
        before = float(lm.mle_loss(train))
    history = fit_mle(lm, train, train[:10], epochs=6, batch_size=10, seed=0)
    losses = history["train_loss"]
    assert len(losses) == len(history["valid_perplexity"]) == 6
    assert all(b < a for a, b in zip(losses, losses[1:])), losses
    with torch.no_grad():
        assert float(lm.mle_loss(train)) < before - 1.0
    with pytest.raises(ValueError, match="epochs"):
        fit_mle(lm, train, train, epochs=0)
    with pytest.raises(ValueError, match="non-empty"):
        fit_mle(lm, train[:0], train)


def test_fit_mle_ends_with_the_weights_of_its_best_validation_epoch(tiny_env, monkeypatch):
    lm = language_model(tiny_env, seed=1)
    contexts, replies = tiny_env.corpus.train
    train = observation_layout(contexts[:16], replies[:16])
    scripted = iter([5.0, 2.0, 3.0, 4.0])
    monkeypatch.setattr(lm, "perplexity", lambda tokens: next(scripted))
    snapshots = []

    def log(tag, value, epoch):
        if tag == "valid/perplexity":
            snapshots.append(copy.deepcopy(lm.state_dict()))

    history = fit_mle(lm, train, train, epochs=4, batch_size=8, log=log)
    assert history["valid_perplexity"] == [5.0, 2.0, 3.0, 4.0] and len(snapshots) == 4
    assert_equal_tree(lm.state_dict(), snapshots[1])
    assert not torch.equal(snapshots[1]["lm.head.weight"], snapshots[3]["lm.head.weight"])


def test_sample_never_draws_pad_or_bos_never_eos_first_and_pads_after_eos(tiny_env):
    lm = uniform(language_model(tiny_env))
    with torch.no_grad():
        lm.lm.head.bias[[PAD, BOS]] = 20.0  # the model wants them most: only the masks keep them out
        lm.lm.head.bias[EOS] = 2.5  # EOS about one time in five: replies of every length
    contexts = tiny_env.corpus.train[0][:200]
    for greedy in (False, True):
        replies = lm.sample(contexts, 4, generator=torch.Generator().manual_seed(0), greedy=greedy)
        assert replies.shape == (200, 4) and replies.dtype == torch.long
        assert not (replies == BOS).any() and not (replies[:, 0] == EOS).any()
        ended = (replies == EOS).long().cumsum(1) > 0
        after_eos = torch.cat([torch.zeros(200, 1, dtype=torch.bool), ended[:, :-1]], 1)
        assert torch.equal(replies == PAD, after_eos)  # PAD exactly after EOS, nowhere before
        if greedy:
            assert (replies[:, 1] == EOS).all()
        else:
            lengths = (replies != PAD).sum(1)
            assert set(lengths.tolist()) == {2, 3, 4}  # EOS drawn at every position it may be
            assert (replies[:, 0] != replies[0, 0]).any()  # sampled, not one fixed word


def test_sample_never_draws_unk_which_the_env_masks(tiny_env):
    lm = uniform(language_model(tiny_env))
    with torch.no_grad():
        lm.lm.head.bias[UNK] = 20.0
    replies = lm.sample(tiny_env.corpus.train[0][:20], 4, generator=torch.Generator().manual_seed(0))
    assert not (replies == UNK).any()


def test_reward_is_the_mean_reply_log_prob_where_terminated_and_zero_elsewhere(tiny_env):
    lm = uniform(language_model(tiny_env))
    V = tiny_env.single_action_space.n
    obs = observation_layout(
        torch.tensor([[0, 0, 5, 6]] * 3), torch.tensor([[7, EOS, 0, 0], [7, 8, 9, 10], [7, 0, 0, 0]])
    )
    batch = TransitionBatch(
        obs,
        torch.zeros(3, dtype=torch.long),
        obs,
        torch.zeros(3),
        torch.tensor([True, True, False]),
        torch.zeros(3, dtype=torch.bool),
    )
    torch.testing.assert_close(lm.reward(batch), torch.tensor([-math.log(V), -math.log(V), 0.0]))


# ============================================================================= 7. the token policy
def token_net(env, incremental: bool = True, seed: int = 0) -> TokenActorCritic:
    torch.manual_seed(seed)
    net = TokenActorCritic(env.single_observation_space, env.single_action_space, (8, 16), incremental=incremental)
    torch.nn.init.normal_(net.value_head.weight)  # the zero-initialised value head would compare 0 with 0
    return net.eval()


def test_incremental_acting_matches_reading_whole_sequences(tiny_env):
    env = rlcourse.make_vec(ENV_ID, 3, "cpu", **TINY)
    net = token_net(env)
    reads: list[int] = []
    features = net.lm.features
    net.lm.features = lambda tokens: (reads.append(tokens.shape[0]), features(tokens))[1]
    obs, _ = env.reset(seed=0)
    gen = torch.Generator().manual_seed(0)
    done = torch.ones(3, dtype=torch.bool)  # every row is new at the start
    partial_ends = 0
    for _ in range(4 * env.reply_len):
        with torch.no_grad():
            full_logits, full_values = net.params_and_value(obs)
        reads.clear()
        logits, values = net.rollout_params_and_value(obs)
        torch.testing.assert_close(logits, full_logits, atol=1e-5, rtol=0)
        torch.testing.assert_close(values, full_values, atol=1e-5, rtol=0)
        assert sum(reads) == int(done.sum())  # only new replies are read from scratch
        # EOS three times in ten where it is valid, so rows end at different steps
        eos = env.action_masks()[:, EOS] & (torch.rand(3, generator=gen) < 0.3)
        obs, _, terminated, _, _ = env.step(torch.where(eos, EOS, sample_actions(env, gen)))
        done = terminated
        partial_ends += int(0 < int(done.sum()) < 3)
    assert partial_ends >= 3
    # Another batch size, or rows that are no one-token extension, are read again (and still right).
    for other in (obs[:2], obs.flip(0)):
        torch.testing.assert_close(net.rollout_params_and_value(other)[0], net.policy_params(other), atol=1e-5, rtol=0)


def test_the_non_incremental_path_reads_whole_sequences_and_keeps_nothing(tiny_env):
    net = token_net(tiny_env, incremental=False)
    obs, _ = tiny_env.reset(seed=1)
    for _ in range(3):
        logits, values = net.rollout_params_and_value(obs)
        assert torch.equal(logits, net.policy_params(obs)) and torch.equal(values, net.value(obs))
        assert net._kept_obs is None
        obs = tiny_env.step(sample_actions(tiny_env, torch.Generator().manual_seed(1)))[0]


def test_forget_train_and_eval_drop_the_kept_states(tiny_env):
    net = token_net(tiny_env)
    obs, _ = tiny_env.reset(seed=2)
    for drop in (net.forget, net.train, net.eval):
        net.rollout_params_and_value(obs)
        assert net._kept_obs is not None and net._kept_state is not None
        drop()
        assert net._kept_obs is None and net._kept_state is None


def test_token_policy_settings_are_checked(tiny_env):
    obs_space, action_space = tiny_env.single_observation_space, tiny_env.single_action_space
    for net_arch in ((16,), (8, 16, 32)):
        with pytest.raises(ValueError, match="net_arch"):
            TokenActorCritic(obs_space, action_space, net_arch)
        with pytest.raises(ValueError, match="net_arch"):
            agent(net_arch=net_arch)
    cartpole = rlcourse.make_vec("rlcourse/CartPole-v1", 1, "cpu")
    with pytest.raises(ValueError, match="integer Box"):
        TokenActorCritic(cartpole.single_observation_space, cartpole.single_action_space, (8, 16))
    with pytest.raises(ValueError, match="policy_network must be one of"):
        policy_network("lstm", obs_space, action_space, None, (8, 16), "tanh", 0.0)


@pytest.mark.parametrize("algo", [PPO, REINFORCE])
def test_an_mlp_policy_on_the_chatbot_trains_or_is_refused_clearly(tiny_env, algo):
    """BUG: the MLP builds (the observation is a 1-D Box) and ``predict`` works (it casts to float32), but the first
    rollout step feeds the env's int64 token ids to nn.Linear: RuntimeError "mat1 and mat2 must have the same dtype".
    Either fix passes: the MLP reads the ids as floats, or building it is a ValueError that points to token_gru."""
    try:
        mlp = agent(algo, policy_network="mlp", net_arch=(16, 16))
    except ValueError as error:
        assert "token_gru" in str(error)
        return
    assert isinstance(mlp.policy, (Actor, ActorCritic))
    mlp.learn(mlp.steps_per_iteration)
    obs, _ = tiny_env.reset(seed=0)
    masks = tiny_env.action_masks()
    actions = torch.as_tensor(mlp.predict(obs, deterministic=False, action_masks=masks))
    assert masks.gather(1, actions.view(-1, 1)).all()


# ============================================================================= 8. agents on the chatbot
@pytest.mark.parametrize(
    ("algo", "hparams"), [(PPO, {}), (REINFORCE, {"baseline": "mean"}), (REINFORCE, {"baseline": "value"})]
)
def test_agents_train_a_token_gru_on_the_chatbot_and_log_outcome_rates(algo, hparams):
    trained = agent(algo, **hparams)
    assert isinstance(trained.policy, TokenActorCritic)
    trained.learn(2 * trained.steps_per_iteration, log_interval=1)
    for key in ("rollout/dull_rate", "rollout/repeat_rate"):
        assert 0.0 <= trained.last_log[key] <= 1.0
    assert trained.buffer.action_masks.gather(-1, trained.buffer.actions[..., None]).all()
    assert {"dull_rate", "repeat_rate"} <= set(trained.evaluate(n_episodes=2))


def test_rollout_log_probs_and_values_match_the_network_across_rollouts(monkeypatch):
    """What a rollout stored is what the network (whole sequences, the update's path) says about those states: holds
    whether the rollout stepped incrementally or not, and only if kept states are dropped between rollouts (6 steps
    a rollout, R = 4: a rollout starts in the middle of a reply; the entropy bonus moves the weights every update)."""
    trained = agent(PPO, kl_ref_coef=0.1, learning_rate=1e-2, n_steps=6, batch_size=6, ent_coef=0.01)
    checked = []
    update = trained._update
    reference_step = trained.reference.rollout_params_and_value

    def checked_update():
        buf = trained.buffer
        with torch.no_grad():
            obs = buf.obs.flatten(0, 1)
            params, values = trained.policy.params_and_value(obs)
            log_prob = trained.distribution.log_prob(
                mask_logits(params, buf.action_masks.flatten(0, 1)), buf.actions.flatten()
            )
        torch.testing.assert_close(log_prob.view_as(buf.log_probs), buf.log_probs, atol=1e-5, rtol=0)
        torch.testing.assert_close(values.view_as(buf.values), buf.values, atol=1e-5, rtol=0)
        checked.append(True)
        return update()

    def checked_reference_step(obs):
        params, values = reference_step(obs)
        torch.testing.assert_close(params, trained.reference.policy_params(obs), atol=1e-5, rtol=0)
        return params, values

    monkeypatch.setattr(trained, "_update", checked_update)
    monkeypatch.setattr(trained.reference, "rollout_params_and_value", checked_reference_step)
    trained.learn(3 * trained.steps_per_iteration)
    assert len(checked) == 3


def test_the_token_policy_acts_incrementally_inside_an_agent_rollout(monkeypatch):
    """The agent's rollout steps the token GRU (``keeps_state``) instead of reading every prefix whole, twice."""
    trained = agent(PPO)
    calls: list[int] = []
    monkeypatch.setattr(
        trained.policy, "rollout_params_and_value", counting(calls, trained.policy.rollout_params_and_value)
    )
    trained.learn(trained.steps_per_iteration)
    assert trained.policy.keeps_state
    assert len(calls) == trained.config.n_steps


def test_no_final_state_is_valued_on_an_env_that_never_truncates(monkeypatch):
    counts = {}
    for truncates in (False, True):
        trained = agent(PPO)
        monkeypatch.setattr(trained.env, "truncates", truncates)
        calls: list[int] = []
        monkeypatch.setattr(trained, "_value", counting(calls, trained._value))
        trained._collect_rollout()
        counts[truncates] = len(calls)
    assert counts[True] - counts[False] == trained.config.n_steps


def test_ppo_learns_a_first_word_reward_within_a_small_budget():
    """+1 for every reply that starts with "i": from about 1/50 of the replies to most of them in 3k steps."""
    env = rlcourse.make_vec(ENV_ID, 16, "cpu", **TINY)
    C, target = env.context_len, env.tokenizer.encode("i")[0]
    rewarded = RewardFunction(env, lambda b: ((b.next_obs[:, C + 1] == target) & b.terminated).float())
    learner = PPO(
        rewarded, device="cpu", seed=0, preset=None, policy_network="token_gru", net_arch=(16, 32),
        n_steps=16, batch_size=64, n_epochs=4, learning_rate=3e-3,
    )  # fmt: skip
    probe = rlcourse.make_vec(ENV_ID, 64, "cpu", **TINY)
    obs, _ = probe.reset(seed=123)

    def first_word_probability() -> float:
        with torch.no_grad():
            return float(
                mask_logits(learner.policy.policy_params(obs), probe.action_masks()).softmax(-1)[:, target].mean()
            )

    before = first_word_probability()
    rates = []
    learner.learn(3072, callbacks=[lambda a: rates.append(float(a.buffer.rewards.sum() / a.buffer.dones.sum()))])
    assert before < 0.05 and rates[0] < 0.1
    assert first_word_probability() > 0.5 and rates[-1] > 0.5, rates


# ============================================================================= 9. the KL penalty to a reference
def test_the_reference_is_a_frozen_copy_of_the_initial_policy_and_the_first_rollout_has_no_kl():
    assert agent(PPO).reference is None
    trained = agent(PPO, kl_ref_coef=0.1, learning_rate=1e-2, ent_coef=0.01)
    assert trained.reference is not trained.policy
    assert_equal_tree(trained.reference.state_dict(), trained.policy.state_dict())
    assert not any(p.requires_grad for p in trained.reference.parameters())
    trained.learn(trained.steps_per_iteration, log_interval=1)
    assert abs(trained.last_log["train/ref_kl"]) < 1e-5 and trained.last_log["train/ref_kl_coef"] == pytest.approx(0.1)
    trained.learn(3 * trained.steps_per_iteration, log_interval=1)  # the control: the policy has moved away
    assert abs(trained.last_log["train/ref_kl"]) > 1e-4  # a sampled estimate: it may fall below 0


def test_reference_penalty_by_hand(tiny_env):
    """Policy uniform over the n valid tokens; the reference gives token a twice the weight of the others:
    log π(a) − log π_ref(a) = −ln n − (ln 2 − ln(n + 1)), and for any other token b, −ln n + ln(n + 1)."""
    trained = agent(PPO, kl_ref_coef=0.5)
    uniform(trained.policy)
    uniform(trained.reference)
    a, b = 7, 9
    with torch.no_grad():
        trained.reference.lm.head.bias[a] = math.log(2)
    env = rlcourse.make_vec(ENV_ID, 2, "cpu", **TINY)
    obs, _ = env.reset(seed=0)
    kls = []
    for _ in range(2):  # a first token (EOS masked), then a second one (EOS valid)
        masks = env.action_masks()
        n = int(masks[0].sum())
        log_prob = torch.full((2,), -math.log(n))
        trained.reference.forget()
        penalty = trained._reference_penalty(obs, masks, torch.tensor([a, b]), log_prob)
        kl = torch.tensor([-math.log(n) - math.log(2) + math.log(n + 1), -math.log(n) + math.log(n + 1)])
        torch.testing.assert_close(penalty, 0.5 * kl)
        kls.append(float(kl.mean()))
        obs = env.step(torch.tensor([a, b]))[0]
    assert kls[0] != kls[1]  # n differs: 49, then 50 valid tokens
    stats = trained._reference_stats()
    assert float(stats["train/ref_kl"]) == pytest.approx(sum(kls) / trained.config.n_steps, rel=1e-5)
    assert float(trained._ref_kl_sum) == 0.0


def test_an_adaptive_coefficient_follows_the_documented_rule():
    """β ← β·(1 + 0.1·clip(KL/target − 1, −0.2, 0.2)), KL the rollout's mean per-token KL."""
    trained = agent(PPO, kl_ref_coef=0.2, kl_ref_target=0.1)
    beta = 0.2
    for kl, factor in ((0.3, 1.02), (0.105, 1.005), (0.1, 1.0), (0.09, 0.99), (0.0, 0.98)):
        trained._ref_kl_sum.fill_(kl * trained.config.n_steps)
        stats = trained._reference_stats()
        assert float(stats["train/ref_kl"]) == pytest.approx(kl, abs=1e-7)
        assert float(stats["train/ref_kl_coef"]) == pytest.approx(beta, rel=1e-6)
        beta *= factor
        assert float(trained.kl_ref_coef) == pytest.approx(beta, rel=1e-6)
    fixed = agent(PPO, kl_ref_coef=0.2)
    fixed._ref_kl_sum.fill_(5.0)
    fixed._reference_stats()
    assert float(fixed.kl_ref_coef) == pytest.approx(0.2)


@pytest.mark.parametrize("algo", [PPO, REINFORCE])
def test_bad_kl_settings_are_refused(algo):
    with pytest.raises(ValueError, match="kl_ref_target adapts kl_ref_coef"):
        agent(algo, kl_ref_target=0.1)
    with pytest.raises(ValueError, match="kl_ref_coef must be >= 0"):
        agent(algo, kl_ref_coef=-0.1)
    with pytest.raises(ValueError, match="kl_ref_target > 0"):
        agent(algo, kl_ref_coef=0.1, kl_ref_target=0.0)


def test_save_and_load_keep_the_reference_and_the_adapted_coefficient(tmp_path):
    trained = agent(PPO, kl_ref_coef=0.1, kl_ref_target=0.01, learning_rate=1e-2, ent_coef=0.01)
    trained.learn(3 * trained.steps_per_iteration)
    assert not torch.equal(trained.policy.lm.head.weight, trained.reference.lm.head.weight)
    loaded = PPO.load(trained.save(tmp_path / "chatbot.pt"), device="cpu")
    assert_equal_tree(loaded.reference.state_dict(), trained.reference.state_dict())
    assert_equal_tree(loaded.policy.state_dict(), trained.policy.state_dict())
    assert float(trained.kl_ref_coef) != pytest.approx(0.1)
    # BUG: the adapted β lives in self.kl_ref_coef, which no checkpoint holds (not in _extra_state).
    assert float(loaded.kl_ref_coef) == float(trained.kl_ref_coef)


@pytest.mark.parametrize("target", [None, 0.01], ids=["fixed-beta", "adaptive-beta"])
def test_a_resumed_kl_penalised_run_ends_identical_to_an_uninterrupted_one(tmp_path, target):
    """With an adaptive β the resumed run must start from the β the checkpoint had reached (see the test above)."""

    def make(run_dir=None):
        return agent(PPO, kl_ref_coef=0.1, kl_ref_target=target, learning_rate=1e-2, run_dir=run_dir)

    steps = make().steps_per_iteration
    assert_resume_matches_an_uninterrupted_run(make, tmp_path, total=4 * steps, half=2 * steps)


# ============================================================================= 10. warm start from a language model
def test_init_from_a_language_model_copies_it_into_policy_and_reference(tiny_env, tmp_path):
    lm = language_model(tiny_env, embed=16, hidden=32, seed=5)
    path = lm.save(tmp_path / "lm.pt")
    trained = agent(PPO, kl_ref_coef=0.1)
    value_head = copy.deepcopy(trained.policy.value_head.state_dict())
    trained.init_from(path)
    for network in (trained.policy, trained.reference):
        assert_equal_tree(network.lm.state_dict(), lm.lm.state_dict())
    assert_equal_tree(trained.policy.value_head.state_dict(), value_head)
    trained.learn(trained.steps_per_iteration, log_interval=1)
    assert abs(trained.last_log["train/ref_kl"]) < 1e-5  # policy and reference start equal


def test_init_from_a_language_model_that_does_not_fit_names_the_problem(tiny_env, tmp_path):
    path = language_model(tiny_env, embed=16, hidden=48).save(tmp_path / "lm.pt")
    with pytest.raises(CheckpointError, match=r"net_arch = \[embed_dim, hidden_dim\]"):
        agent(PPO).init_from(path)
    other = rlcourse.make_vec(ENV_ID, 1, "cpu", **{**TINY, "reply_len": 5})
    path = language_model(other, embed=16, hidden=32).save(tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="observation space"):
        agent(PPO).init_from(path)


# ============================================================================= 11. CUDA graphs
@pytest.mark.parametrize("algo", [PPO, REINFORCE])
def test_a_token_gru_agent_is_never_captured(algo):
    trained = agent(algo)
    assert trained.cuda_graphs is False and trained._graph_safe_network() is False
    assert agent(algo, policy_network="mlp", net_arch=(16, 16))._graph_safe_network() is True
    with pytest.raises(ValueError, match="CUDA"):
        agent(algo, cuda_graphs=True)
