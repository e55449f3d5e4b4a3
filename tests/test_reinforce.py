"""REINFORCE: weights by hand (notes:12751-12785: reward-to-go, whole-episode return, baselines), the cut-off
tail (masked or bootstrapped), learning (identity env, CartPole), determinism, save/load, bitwise resume, bad inputs."""

from __future__ import annotations

import math

import pytest
import torch
from agent_checks import (
    assert_resume_matches_an_uninterrupted_run,
    learning_curves,
    tags_of_a_cli_run,
)
from identity_envs import IdentityEnv, MaskedIdentityEnv, reward_before_and_after

from rlcourse.agents import REINFORCE
from rlcourse.agents.reinforce import policy_gradient_weights
from rlcourse.config import ConfigError, load_preset

CARTPOLE = "rlcourse/CartPole-v1"
NOTES_REWARDS = torch.tensor([[5.0], [0.0], [-2.0]])  # notes:12759-12769: (s_a, a1) +5, (s_b, a2) 0, (s_c, a3) −2
NOTES_DONES = torch.tensor([[False], [False], [True]])


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py


# ============================================================================= weights by hand
def test_reward_to_go_of_the_notes_example():
    weights, returns, used = policy_gradient_weights(NOTES_REWARDS, NOTES_DONES, 1.0, True, torch.zeros(1))
    # (s_b, a2) gets −2, not the episode's +3 (notes:12763-12769)
    assert weights.flatten().tolist() == [3.0, -2.0, -2.0]
    assert returns.flatten().tolist() == [3.0, -2.0, -2.0]
    assert used.all()


def test_whole_episode_return_weights_every_step_alike():
    weights, returns, _ = policy_gradient_weights(NOTES_REWARDS, NOTES_DONES, 1.0, False, torch.zeros(1))
    assert weights.flatten().tolist() == [3.0, 3.0, 3.0]  # R(τ) = 5 + 0 − 2 on every step (notes:12520)
    assert returns.flatten().tolist() == [3.0, -2.0, -2.0]


def test_discounted_reward_to_go_by_hand():
    weights, _, _ = policy_gradient_weights(NOTES_REWARDS, NOTES_DONES, 0.9, True, torch.zeros(1))
    # 5 + 0.9·0 + 0.81·(−2) = 3.38;  0 + 0.9·(−2) = −1.8;  −2
    torch.testing.assert_close(weights.flatten(), torch.tensor([3.38, -1.8, -2.0]))


def test_episodes_are_separate_and_envs_independent():
    rewards = torch.tensor([[1.0, 10.0], [2.0, 20.0], [3.0, 30.0], [4.0, 40.0]])
    dones = torch.tensor([[False, False], [True, False], [False, True], [True, True]])
    weights, _, used = policy_gradient_weights(rewards, dones, 1.0, True, torch.zeros(2))
    assert weights.tolist() == [[3.0, 60.0], [2.0, 50.0], [7.0, 30.0], [4.0, 40.0]]
    assert used.all()


def test_the_cut_off_tail_is_masked_without_a_critic():
    rewards = torch.ones(4, 1)
    dones = torch.tensor([[False], [True], [False], [False]])
    weights, _, used = policy_gradient_weights(rewards, dones, 1.0, True, torch.zeros(1))
    assert used.flatten().tolist() == [True, True, False, False]  # steps 2, 3: their episode goes on after the batch
    assert weights.flatten()[:2].tolist() == [2.0, 1.0]


def test_the_cut_off_tail_is_bootstrapped_with_a_critic():
    rewards = torch.ones(4, 1)
    dones = torch.tensor([[False], [True], [False], [False]])
    weights, _, used = policy_gradient_weights(
        rewards, dones, 0.5, True, torch.zeros(1), last_value=torch.tensor([8.0])
    )
    assert used.all()
    # step 3: 1 + 0.5·V(s_4) = 5; step 2: 1 + 0.5·5 = 3.5; the finished episode is untouched: 1 + 0.5·1 = 1.5, 1
    assert weights.flatten().tolist() == [1.5, 1.0, 3.5, 5.0]


def test_whole_episode_return_counts_what_was_paid_before_the_batch():
    rewards = torch.tensor([[1.0], [1.0], [1.0], [1.0]])
    dones = torch.tensor([[False], [True], [False], [False]])
    weights, _, used = policy_gradient_weights(rewards, dones, 1.0, False, torch.tensor([4.0]))
    assert weights.flatten()[:2].tolist() == [6.0, 6.0]  # 4 paid earlier + 1 + 1
    assert used.flatten().tolist() == [True, True, False, False]


def _agent_with_batch(rewards, dones, baseline="none", values=None, **overrides) -> REINFORCE:
    """A REINFORCE agent (one env) whose batch is filled by hand, weights computed."""
    agent = REINFORCE(
        IdentityEnv(1), device="cpu", seed=0, n_steps=len(rewards), gamma=1.0, baseline=baseline, **overrides
    )
    _fill(agent, rewards, dones, values)
    return agent


def _fill(agent, rewards, dones, values=None) -> dict:
    buf = agent.buffer
    buf.rewards.copy_(torch.tensor(rewards).reshape(-1, 1))
    buf.dones.copy_(torch.tensor(dones).reshape(-1, 1))
    if values is not None:
        buf.values.copy_(torch.tensor(values).reshape(-1, 1))
    agent.return_so_far.zero_()
    return agent._compute_targets()


def test_mean_baseline_by_hand():
    agent = _agent_with_batch([5.0, 0.0, -2.0], [False, False, True], baseline="mean", baseline_decay=0.5)
    # The first batch has no earlier mean: b = 0, so the weights stay [3, −2, −2]; then b = mean = −1/3.
    assert agent.buffer.advantages.flatten().tolist() == [3.0, -2.0, -2.0]
    assert agent.mean_baseline.item() == pytest.approx(-1 / 3)
    stats = _fill(agent, [1.0, 1.0, 1.0], [False, False, True])
    # G = [3, 2, 1] minus b = −1/3 (the earlier batches' mean, never this batch's own)
    torch.testing.assert_close(agent.buffer.advantages.flatten(), torch.tensor([10 / 3, 7 / 3, 4 / 3]))
    assert stats["train/baseline"].item() == pytest.approx(-1 / 3)
    assert agent.mean_baseline.item() == pytest.approx(0.5 * (-1 / 3) + 0.5 * 2.0)  # b ← ½b + ½·mean(3, 2, 1)


def test_mean_baseline_ignores_the_masked_tail():
    agent = _agent_with_batch([1.0, 1.0, 100.0], [False, True, False], baseline="mean")
    assert agent.mean_baseline.item() == pytest.approx(1.5)  # mean of [2, 1]; the cut-off 100 is not in it
    assert agent.buffer.advantages.flatten().tolist() == [2.0, 1.0, 0.0]  # the tail has weight 0


def test_value_baseline_gives_the_advantage_by_hand():
    agent = _agent_with_batch([5.0, 0.0, -2.0], [False, False, True], baseline="value", values=[1.0, 2.0, 3.0])
    # A = G − V(s): 3 − 1, −2 − 2, −2 − 3 (notes:12783-12785)
    assert agent.buffer.advantages.flatten().tolist() == [2.0, -4.0, -5.0]
    assert agent.buffer.returns.flatten().tolist() == [3.0, -2.0, -2.0]  # the critic's regression targets


def test_loss_is_the_return_weighted_log_likelihood():
    agent = _agent_with_batch([5.0, 0.0, -2.0], [False, False, True])
    obs = torch.eye(4)[:3]
    actions = torch.tensor([0, 1, 2])
    weights = agent.buffer.advantages.flatten()
    loss, parts = agent._loss(
        obs, actions, weights, agent.buffer.returns.flatten(), torch.ones(3, dtype=torch.bool), None
    )
    log_prob = torch.log_softmax(agent.policy.policy_params(obs), -1)[torch.arange(3), actions]
    expected = -(torch.tensor([3.0, -2.0, -2.0]) * log_prob).mean()
    torch.testing.assert_close(loss, expected)
    torch.testing.assert_close(parts[0], expected.detach())


def test_a_batch_that_finishes_no_episode_changes_nothing_without_a_critic():
    agent = REINFORCE(IdentityEnv(4, ep_length=100), device="cpu", seed=0, n_steps=8)
    before = [p.detach().clone() for p in agent.policy.parameters()]
    agent.learn(32)
    assert agent.last_log["train/used_fraction"] == 0.0
    assert all(torch.equal(p, q) for p, q in zip(before, agent.policy.parameters()))
    # the same batch with a critic bootstraps the tail and learns from it
    critic = REINFORCE(IdentityEnv(4, ep_length=100), device="cpu", seed=0, n_steps=8, baseline="value")
    before = [p.detach().clone() for p in critic.policy.policy_net.parameters()]
    critic.learn(32)
    assert critic.last_log["train/used_fraction"] == 1.0
    assert not all(torch.equal(p, q) for p, q in zip(before, critic.policy.policy_net.parameters()))


# ============================================================================= learning
@pytest.mark.parametrize("baseline", ["none", "mean", "value"])
def test_identity_env_is_learned(baseline):
    agent = REINFORCE(
        IdentityEnv(8), device="cpu", seed=0, n_steps=16, learning_rate=3e-3, gamma=0.5, baseline=baseline
    )
    before, after = reward_before_and_after(agent, IdentityEnv, 4096)
    assert before < 0.6 and after >= 0.9, (before, after)


def test_masked_env_never_takes_a_masked_action():
    env = MaskedIdentityEnv(8)
    agent = REINFORCE(env, device="cpu", seed=0, n_steps=16, learning_rate=3e-3, gamma=0.5)
    agent.learn(2048)
    assert env.invalid_taken.item() == 0
    assert bool(agent.buffer.action_masks.gather(-1, agent.buffer.actions[..., None]).all())


def test_cartpole_threshold_within_a_small_budget():
    agent = REINFORCE(CARTPOLE, num_envs=8, device="cpu", seed=0, n_steps=128, learning_rate=3e-3, baseline="value")
    agent.learn(60_000)
    result = agent.evaluate(n_episodes=10)
    assert result["mean_reward"] >= 150, result


# ============================================================================= determinism, save/load, resume
def _small(seed: int, run_dir=None, **overrides) -> REINFORCE:
    return REINFORCE(CARTPOLE, num_envs=4, device="cpu", seed=seed, run_dir=run_dir, **{"n_steps": 32, **overrides})


def test_same_seed_same_curve_and_another_seed_another():
    a, b, c = learning_curves([_small(seed) for seed in (7, 7, 8)], 1024)
    assert a == b
    assert a != c


def test_save_and_load_give_identical_predictions(tmp_path):
    agent = _small(3, baseline="value")
    agent.learn(512)
    loaded = REINFORCE.load(agent.save(tmp_path / "r.pt"), device="cpu")
    assert loaded.num_timesteps == 512 and loaded.config == agent.config
    obs = torch.randn(64, 4, generator=torch.Generator().manual_seed(0))
    assert torch.equal(agent.predict(obs), loaded.predict(obs))
    assert torch.equal(agent.predict(obs, deterministic=False), loaded.predict(obs, deterministic=False))
    assert torch.equal(agent.policy.value(obs), loaded.policy.value(obs))


@pytest.mark.parametrize(
    "hparams",
    [
        {
            "baseline": "mean",
            "anneal_lr": True,
            "reward_to_go": False,
            "gamma": 1.0,
        },  # running mean and R(τ) across batches
        {"baseline": "value", "normalize_advantage": True, "max_grad_norm": 0.5},
    ],
)
def test_resume_is_bitwise_identical_to_an_uninterrupted_run(tmp_path, hparams):
    straight, _ = assert_resume_matches_an_uninterrupted_run(
        lambda run_dir=None: _small(5, run_dir=run_dir, **hparams), tmp_path, total=2048, half=1024
    )
    if hparams["baseline"] == "mean":
        assert straight.mean_baseline.item() != 0.0 and straight.mean_baseline_ready.item()


def test_preset_and_the_cli_run(tmp_path):
    preset = load_preset("reinforce", CARTPOLE)
    assert preset["baseline"] == "value" and preset["total_timesteps"] == 200_000
    assert load_preset("reinforce", "CartPole-v1") == preset
    flags = ("--total-steps", "512", "--num-envs", "2", "--hp", "n_steps=64", "--hp", "baseline=mean")
    assert {
        "rollout/ep_rew_mean",
        "train/policy_loss",
        "train/baseline",
        "train/used_fraction",
        "time/fps",
        "eval/mean_reward",
    } <= tags_of_a_cli_run(tmp_path, "reinforce", CARTPOLE, *flags)


# ============================================================================= bad inputs
@pytest.mark.parametrize(
    "overrides, key",
    [
        ({"baseline": "median"}, "baseline"),
        ({"reward_to_go": False}, "gamma"),  # the whole-episode return is undiscounted: gamma must be 1
        ({"baseline_decay": 1.0}, "baseline_decay"),
        ({"n_steps": 0}, "n_steps"),
        ({"gamma": 1.5}, "gamma"),
        ({"learning_rate": float("nan")}, "learning_rate"),
        ({"max_grad_norm": -1.0}, "max_grad_norm"),
        ({"net_arch": []}, "net_arch"),
        ({"no_such": 1}, "no_such"),
    ],
)
def test_bad_hyperparameters_name_the_key(overrides, key):
    with pytest.raises(ConfigError, match=key):
        REINFORCE(CARTPOLE, num_envs=2, device="cpu", **overrides)


def test_logs_hold_the_policy_gradient_statistics():
    agent = _small(0, baseline="mean")
    agent.learn(256)
    for tag in (
        "train/policy_loss",
        "train/entropy_loss",
        "train/baseline",
        "train/used_fraction",
        "train/learning_rate",
        "rollout/ep_rew_mean",
        "time/fps",
    ):
        assert tag in agent.last_log, tag
    assert "train/value_loss" not in agent.last_log  # no critic
    assert all(math.isfinite(v) for v in agent.last_log.values())
