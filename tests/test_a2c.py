"""A2C: n-step/one-step advantages by hand (notes:13706-13740), the shared trunk (notes:13744-13752), learning
(identity envs, masks, CartPole), determinism, save/load, bitwise resume and bad inputs."""

from __future__ import annotations

import math

import pytest
import torch
from agent_checks import (
    assert_an_agent_ignoring_masks_takes_invalid_actions,
    assert_masked_identity_is_learned_without_a_masked_action,
    assert_resume_matches_an_uninterrupted_run,
    learning_curves,
    tags_of_a_cli_run,
)
from identity_envs import (
    ContinuousIdentityEnv,
    IdentityEnv,
    reward_before_and_after,
)

from rlcourse.agents import A2C
from rlcourse.agents.a2c import actor_critic_loss
from rlcourse.agents.networks import SharedActorCritic
from rlcourse.config import ConfigError, load_preset

CARTPOLE = "rlcourse/CartPole-v1"


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py


def _constant_critic(agent: A2C, value: float) -> None:
    """Make V(s) = value for every s (zero the value head's weights, set its bias)."""
    with torch.no_grad():
        head = agent.policy.value_head[-1]
        head.weight.zero_()
        head.bias.fill_(value)


# ============================================================================= advantages by hand
def _hand_rollout(gae_lambda: float) -> A2C:
    """One env, three steps: rewards 1, 0, 2; the episode ends after step 1; V = 0.5, 0.4, 0.3; V(s_3) = 0.7."""
    agent = A2C(IdentityEnv(1), device="cpu", seed=0, n_steps=3, gamma=0.9, gae_lambda=gae_lambda)
    _constant_critic(agent, 0.7)
    buf = agent.buffer
    buf.rewards.copy_(torch.tensor([[1.0], [0.0], [2.0]]))
    buf.values.copy_(torch.tensor([[0.5], [0.4], [0.3]]))
    buf.dones.copy_(torch.tensor([[False], [True], [False]]))
    agent._compute_targets()
    return agent


def test_n_step_advantage_by_hand():
    buf = _hand_rollout(gae_lambda=1.0).buffer
    # t=2: the rollout ends mid-episode: 2 + 0.9·V(s_3) − V(s_2) = 2 + 0.63 − 0.3 = 2.33
    # t=1: the episode ends here: 0 − 0.4 = −0.4
    # t=0: n-step return 1 + 0.9·0 (the rest of the episode pays 0) − 0.5 = 0.5
    torch.testing.assert_close(buf.advantages.flatten(), torch.tensor([0.5, -0.4, 2.33]))
    torch.testing.assert_close(buf.returns.flatten(), torch.tensor([1.0, 0.0, 2.63]))


def test_one_step_advantage_of_the_notes_by_hand():
    buf = _hand_rollout(gae_lambda=0.0).buffer
    # r_t + γ V(s_{t+1}) − V(s_t) (notes:13706-13740): 1 + 0.9·0.4 − 0.5 = 0.86; −0.4 (terminal); 2 + 0.63 − 0.3 = 2.33
    torch.testing.assert_close(buf.advantages.flatten(), torch.tensor([0.86, -0.4, 2.33]))


def test_actor_critic_loss_by_hand():
    log_prob = torch.log(torch.tensor([0.5, 0.25]))
    entropy = torch.tensor([0.6, 0.4])
    values = torch.tensor([1.0, 2.0])
    advantages = torch.tensor([2.0, -1.0])
    returns = torch.tensor([3.0, 1.0])
    loss, parts = actor_critic_loss(log_prob, entropy, values, advantages, returns, ent_coef=0.1, vf_coef=0.5)
    policy = -(2.0 * math.log(0.5) - 1.0 * math.log(0.25)) / 2  # = -(-1.386 + 1.386)/2 = 0
    value = ((3 - 1) ** 2 + (1 - 2) ** 2) / 2  # 2.5
    entropy_loss = -0.5
    assert parts.tolist() == pytest.approx(
        [policy, value, entropy_loss, policy + 0.1 * entropy_loss + 0.5 * value], abs=1e-6
    )
    assert loss.item() == pytest.approx(1.2, abs=1e-6)


# ============================================================================= the shared trunk
def test_value_loss_gradient_moves_the_trunk_the_policy_reads():
    from rlcourse.agents.distributions import Categorical

    torch.manual_seed(0)
    net = SharedActorCritic(4, Categorical(3), (16, 16), "tanh")
    obs = torch.randn(32, 4)
    logits_before = net.policy_params(obs).detach().clone()
    net.value(obs).square().mean().backward()  # a loss of the critic alone
    trunk_grads = [p.grad for p in net.trunk.parameters()]
    assert all(g is not None and g.abs().sum() > 0 for g in trunk_grads)
    assert all(p.grad is None for p in net.policy_head.parameters())  # the policy head was not on the path
    with torch.no_grad():
        for p in net.trunk.parameters():
            p -= 0.1 * p.grad
    assert not torch.allclose(net.policy_params(obs), logits_before)  # the policy changed through the shared layers


def test_a2c_uses_one_trunk_for_both_heads():
    agent = A2C(CARTPOLE, num_envs=2, device="cpu", seed=0, net_arch=[32], head_arch=[8])
    names = {name.split(".")[0] for name, _ in agent.policy.named_parameters()}
    assert names == {"trunk", "policy_head", "value_head"}
    obs = torch.randn(5, 4)
    params, value = agent.policy.params_and_value(obs)
    torch.testing.assert_close(params, agent.policy.policy_params(obs))
    torch.testing.assert_close(value, agent.policy.value(obs))
    assert agent.policy.trunk[0].in_features == 4 and agent.policy.policy_head[0].in_features == 32


# ============================================================================= learning
# A short horizon, as in SB3's identity tests: with γ = 0.99 the bootstrapped values reach ~25 on these
# 4-step (truncated) episodes, and the value loss then swamps the trunk that the policy shares.
IDENTITY_HP = {"n_steps": 8, "learning_rate": 3e-3, "gamma": 0.5}


def test_identity_env_is_learned():
    before, after = reward_before_and_after(A2C(IdentityEnv(8), device="cpu", seed=0, **IDENTITY_HP), IdentityEnv, 4096)
    assert before < 0.6
    assert after >= 0.9, (before, after)


def test_masked_env_never_takes_a_masked_action():
    assert_masked_identity_is_learned_without_a_masked_action(
        lambda env: A2C(env, device="cpu", seed=0, **IDENTITY_HP), 4096, rollout_steps=64
    )


def test_masked_env_control_without_masks_takes_invalid_actions():
    # shows the test above can fail
    assert_an_agent_ignoring_masks_takes_invalid_actions(
        lambda env: A2C(env, device="cpu", seed=0, **IDENTITY_HP), 1024
    )


def test_continuous_actions_learn_through_the_gaussian_head():
    agent = A2C(ContinuousIdentityEnv(8), device="cpu", seed=0, **IDENTITY_HP, optimizer="adam")
    before, after = reward_before_and_after(agent, ContinuousIdentityEnv, 8192)
    assert after > before + 0.15, (before, after)


def test_cartpole_threshold_within_a_small_budget():
    agent = A2C(CARTPOLE, num_envs=8, device="cpu", seed=0, learning_rate=3e-3, optimizer="adam", n_steps=16)
    agent.learn(40_000)
    result = agent.evaluate(n_episodes=10)
    assert result["mean_reward"] >= 150, result


# ============================================================================= determinism, save/load, resume
def _small(seed: int, run_dir=None, **overrides) -> A2C:
    return A2C(CARTPOLE, num_envs=4, device="cpu", seed=seed, run_dir=run_dir, **{"n_steps": 8, **overrides})


def test_same_seed_same_curve_and_another_seed_another():
    a, b, c = learning_curves([_small(seed) for seed in (7, 7, 8)], 1024, log_interval=1)
    assert a == b
    assert a != c


def test_save_and_load_give_identical_predictions(tmp_path):
    agent = _small(3)
    agent.learn(512)
    loaded = A2C.load(agent.save(tmp_path / "a2c.pt"), device="cpu")
    assert loaded.num_timesteps == 512 and loaded.config == agent.config
    obs = torch.randn(64, 4, generator=torch.Generator().manual_seed(0))
    assert torch.equal(agent.predict(obs), loaded.predict(obs))
    assert torch.equal(agent.predict(obs, deterministic=False), loaded.predict(obs, deterministic=False))


@pytest.mark.parametrize("optimizer", ["rmsprop", "adam"])
def test_resume_is_bitwise_identical_to_an_uninterrupted_run(tmp_path, optimizer):
    hparams = {
        "optimizer": optimizer,
        "anneal_lr": True,
        "ent_coef": 0.01,
        "gae_lambda": 0.9,
        "normalize_advantage": True,
    }
    straight, _ = assert_resume_matches_an_uninterrupted_run(
        lambda run_dir=None: _small(5, run_dir=run_dir, **hparams), tmp_path, total=2048, half=1024
    )
    assert straight.optimizer.state  # the optimizer state really was compared
    assert straight.last_log["train/learning_rate"] == 0.0  # annealed to 0 at the last update


def test_logs_use_sb3_a2c_names():
    agent = _small(0)
    agent.learn(256)
    for tag in (
        "train/policy_loss",
        "train/value_loss",
        "train/entropy_loss",
        "train/explained_variance",
        "train/learning_rate",
        "rollout/ep_rew_mean",
        "rollout/ep_len_mean",
        "time/fps",
    ):
        assert tag in agent.last_log, tag
    assert all(math.isfinite(v) for v in agent.last_log.values())


def test_a_gradient_step_is_clipped_to_max_grad_norm():
    agent = _small(0, max_grad_norm=1e-3, optimizer="adam", learning_rate=1.0)
    norms = []
    original = agent._apply_gradients

    def record():
        norms.append(torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in agent.policy.parameters()])).item())
        original()

    agent._apply_gradients = record
    agent.learn(64)
    assert norms and all(n <= 1e-3 * (1 + 1e-4) for n in norms)


def test_rl_zoo_preset_and_the_cli_run(tmp_path):
    assert load_preset("a2c", CARTPOLE) == {"num_envs": 8, "total_timesteps": 500_000, "ent_coef": 0.0}
    assert load_preset("a2c", "CartPole-v1") == load_preset("a2c", CARTPOLE)
    assert {
        "rollout/ep_rew_mean",
        "train/policy_loss",
        "train/value_loss",
        "train/entropy_loss",
        "train/explained_variance",
        "train/learning_rate",
        "time/fps",
        "eval/mean_reward",
    } <= tags_of_a_cli_run(tmp_path, "a2c", CARTPOLE, "--total-steps", "640")


# ============================================================================= bad inputs
@pytest.mark.parametrize(
    "overrides, key",
    [
        ({"learning_rte": 1e-3}, "learning_rte"),
        ({"optimizer": "sgd"}, "optimizer"),
        ({"gae_lambda": 1.5}, "gae_lambda"),
        ({"gamma": 0.0}, "gamma"),
        ({"n_steps": 0}, "n_steps"),
        ({"net_arch": []}, "net_arch"),
        ({"head_arch": [0]}, "head_arch"),
        ({"max_grad_norm": 0.0}, "max_grad_norm"),
        ({"rms_prop_alpha": 1.0}, "rms_prop_alpha"),
        ({"ent_coef": float("nan")}, "ent_coef"),
    ],
)
def test_bad_hyperparameters_name_the_key(overrides, key):
    with pytest.raises(ConfigError, match=key):
        A2C(CARTPOLE, num_envs=2, device="cpu", **overrides)
