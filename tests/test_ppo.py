"""PPO: the loss by hand (notes:12919-12991), learning (CartPole, SB3-style identity envs), determinism,
save/load/resume, the target_kl early stop and bad inputs."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from agent_checks import (
    assert_an_agent_ignoring_masks_takes_invalid_actions,
    assert_equal_tree,
    assert_masked_identity_is_learned_without_a_masked_action,
    assert_predict_respects_masks,
    assert_resume_matches_an_uninterrupted_run,
    log_without_time,
)
from gymnasium import spaces
from identity_envs import (
    N_CLASSES,
    ContinuousIdentityEnv,
    IdentityEnv,
    MaskedIdentityEnv,
    reward_before_and_after,
)

from rlcourse import make_vec
from rlcourse.agents import PPO
from rlcourse.agents.ppo import ppo_losses
from rlcourse.config import RUN_KEYS, ConfigError, load_preset

CARTPOLE = "rlcourse/CartPole-v1"
SMALL = dict(n_steps=32, batch_size=64, n_epochs=2)


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py


def small_cartpole(seed: int = 0, num_envs: int = 4, **overrides) -> PPO:
    # preset=None: these tests reason from PPOConfig's defaults, not from the CartPole preset's.
    return PPO(CARTPOLE, num_envs=num_envs, device="cpu", seed=seed, preset=None, **{**SMALL, **overrides})


IDENTITY_HP = dict(n_steps=16, batch_size=32, n_epochs=4, learning_rate=3e-3)


# ============================================================================= the loss by hand
RATIOS = torch.tensor([0.5, 1.0, 1.5])
ADVANTAGES = torch.tensor([1.0, -1.0, 1.0])
OLD_LOG_PROB = torch.tensor([-1.0, -0.5, -2.0])
EPS = torch.tensor(0.2)
# approx KL = mean((r - 1) - log r) = mean(-0.5 + ln 2, 0, 0.5 - ln 1.5)
KL_BY_HAND = ((-0.5 + math.log(2)) + 0.0 + (0.5 - math.log(1.5))) / 3  # 0.0958940


def test_clip_loss_kl_and_clip_fraction_by_hand():
    new_log_prob = OLD_LOG_PROB + RATIOS.log()
    loss, approx_kl, clip_fraction = ppo_losses(new_log_prob, OLD_LOG_PROB, ADVANTAGES, EPS, "clip", torch.tensor(0.0))
    # min(r A, clip(r, 0.8, 1.2) A): r=0.5,A=+1 -> min(0.5, 0.8) = 0.5; r=1,A=-1 -> -1; r=1.5,A=+1 -> min(1.5, 1.2) = 1.2
    # J = (0.5 - 1 + 1.2) / 3 = 0.7 / 3, and the loss is -J
    assert loss.item() == pytest.approx(-0.7 / 3, abs=1e-6)
    assert approx_kl.item() == pytest.approx(KL_BY_HAND, abs=1e-6)
    assert pytest.approx(0.0958940, abs=1e-6) == KL_BY_HAND
    assert clip_fraction.item() == pytest.approx(2 / 3, abs=1e-6)  # |r - 1| > 0.2 for 0.5 and 1.5


def test_clip_loss_gradient_is_zero_exactly_past_the_band_in_the_direction_of_a():
    ratios = torch.tensor([0.5, 0.7, 0.9, 1.1, 1.3, 1.5]).repeat(2)
    advantages = torch.tensor([1.0] * 6 + [-2.0] * 6)
    old = torch.linspace(-3.0, -0.1, 12)
    new = (old + ratios.log()).requires_grad_()
    loss, _, _ = ppo_losses(new, old, advantages, EPS, "clip", torch.tensor(0.0))
    loss.backward()
    ratio = (new - old).exp().detach()
    # notes:12973-12991: for A > 0 the ratio gains nothing above 1+ε; for A < 0 nothing below 1−ε
    saturated = ((advantages > 0) & (ratio > 1.2)) | ((advantages < 0) & (ratio < 0.8))
    assert saturated.tolist() == [False] * 4 + [True] * 2 + [True] * 2 + [False] * 4
    assert torch.all(new.grad[saturated] == 0.0)
    # elsewhere the gradient is that of the unclipped -r·A/N: d/dlogp = -r·A/N (also outside the band against A)
    expected = -ratio * advantages / len(ratio)
    torch.testing.assert_close(new.grad[~saturated], expected[~saturated])
    assert torch.all(new.grad[~saturated] != 0.0)


def test_clip_loss_gradient_on_the_hand_batch():
    new = (OLD_LOG_PROB + RATIOS.log()).requires_grad_()
    ppo_losses(new, OLD_LOG_PROB, ADVANTAGES, EPS, "clip", torch.tensor(0.0))[0].backward()
    # r=0.5, A=+1: below the band but A pushes it up -> gradient -0.5/3; r=1, A=-1: inside -> +1/3; r=1.5, A=+1: 0
    torch.testing.assert_close(new.grad, torch.tensor([-0.5 / 3, 1.0 / 3, 0.0]))


def test_kl_penalty_objective_by_hand():
    new_log_prob = OLD_LOG_PROB + RATIOS.log()
    beta = torch.tensor(0.5)
    loss, approx_kl, _ = ppo_losses(new_log_prob, OLD_LOG_PROB, ADVANTAGES, EPS, "kl_penalty", beta)
    # -mean(r·A) + β·KL = -(0.5 - 1 + 1.5)/3 + 0.5 * 0.0958940 = -0.2853863
    assert loss.item() == pytest.approx(-1.0 / 3 + 0.5 * KL_BY_HAND, abs=1e-6)
    assert loss.item() == pytest.approx(-0.2853863, abs=1e-6)
    assert approx_kl.item() == pytest.approx(KL_BY_HAND, abs=1e-6)


def test_identical_policies_have_zero_kl_and_no_clipping():
    old = torch.tensor([-0.3, -1.2, -2.0, -0.7])
    loss, approx_kl, clip_fraction = ppo_losses(
        old.clone(), old, torch.tensor([1.0, -1.0, 2.0, 0.5]), EPS, "clip", torch.tensor(1.0)
    )
    assert approx_kl.item() == 0.0 and clip_fraction.item() == 0.0
    assert loss.item() == pytest.approx(-2.5 / 4)


def test_adaptive_kl_beta_doubles_halves_or_keeps():
    agent = small_cartpole(objective="kl_penalty", kl_beta=1.0, kl_max=0.02, kl_min=0.01, kl_beta_factor=2.0)
    agent._adapt_kl_beta(torch.tensor(0.5))  # KL > kl_max: the penalty did not bite, raise β
    assert agent.kl_beta.item() == 2.0
    agent._adapt_kl_beta(torch.tensor(0.015))  # within [kl_min, kl_max]: keep
    assert agent.kl_beta.item() == 2.0
    agent._adapt_kl_beta(torch.tensor(0.001))  # KL < kl_min: too strong, lower β
    assert agent.kl_beta.item() == 1.0
    agent._adapt_kl_beta(torch.tensor(0.0))
    assert agent.kl_beta.item() == 0.5


def test_kl_penalty_training_adapts_beta_in_the_direction_of_the_measured_kl():
    agent = small_cartpole(objective="kl_penalty", kl_beta=1.0, learning_rate=3e-3)
    measured = []

    def record(a):
        kl = a._kl_after_update(a.buffer.flat("obs"), a.buffer.flat("actions"), a.buffer.flat("log_probs"), None)
        measured.append((kl.item(), a.last_log["train/kl_beta"]))

    agent.learn(4 * 128, callbacks=[record])
    assert len(measured) == 4
    beta_before = 1.0
    for kl, beta in measured:  # KL after the update (the callback sees the updated policy) decides the move
        expected = (
            beta_before * 2
            if kl > agent.config.kl_max
            else beta_before / 2
            if kl < agent.config.kl_min
            else beta_before
        )
        assert beta == pytest.approx(expected)
        beta_before = beta
    assert any(beta != 1.0 for _, beta in measured), "β never adapted"
    assert agent.kl_beta.item() == measured[-1][1]
    assert "train/clip_fraction" in agent.last_log and math.isfinite(agent.last_log["train/loss"])


# ============================================================================= learning
def test_cartpole_preset_reaches_475():
    preset = load_preset("ppo", CARTPOLE)
    run = {key: preset.pop(key) for key in RUN_KEYS}
    assert run == {"num_envs": 8, "total_timesteps": 100_000}
    agent = PPO(CARTPOLE, num_envs=run["num_envs"], device="cpu", seed=0, **preset)
    agent.learn(run["total_timesteps"])
    result = agent.evaluate(n_episodes=20)
    assert result["n_episodes"] == 20
    assert result["mean_reward"] >= 475, result
    assert agent.last_log["rollout/ep_rew_mean"] > 200  # training episodes were long too


def test_identity_env_is_learned():
    agent = PPO(IdentityEnv(8), device="cpu", seed=0, **IDENTITY_HP)
    before, after = reward_before_and_after(agent, IdentityEnv, 2048)
    assert before < 0.6
    assert after >= 0.9, (before, after)
    assert agent.last_log["rollout/ep_len_mean"] == 4.0
    assert agent.last_log["rollout/ep_rew_mean"] >= 0.8 * 4  # the stochastic training policy too


def test_continuous_identity_env_is_learned_through_the_gaussian_policy():
    agent = PPO(ContinuousIdentityEnv(8), device="cpu", seed=0, **IDENTITY_HP)
    before, after = reward_before_and_after(agent, ContinuousIdentityEnv, 4096)
    # untrained: a ≈ 0 so the reward is about -E[t²] = -1/3; trained: a ≈ target
    assert before < -0.2
    assert after > -0.05 and after > before + 0.2, (before, after)
    assert agent.policy.log_std.exp().item() < 1.0  # it became more certain


def test_masked_env_never_takes_a_masked_action():
    assert_masked_identity_is_learned_without_a_masked_action(
        lambda env: PPO(env, device="cpu", seed=0, **IDENTITY_HP), 2048, rollout_steps=16 * 8
    )


def test_masked_env_control_an_agent_ignoring_masks_takes_invalid_actions():
    # Shows that the test above can fail: the same env without masking is exploited.
    assert_an_agent_ignoring_masks_takes_invalid_actions(lambda env: PPO(env, device="cpu", seed=0, **IDENTITY_HP), 512)


def test_predict_with_action_masks_never_returns_a_masked_action():
    agent = PPO(MaskedIdentityEnv(8), device="cpu", seed=0, **IDENTITY_HP)
    agent.learn(2048)
    assert_predict_respects_masks(agent)  # one-hot observations, one action left valid: greedy and sampled
    eye = np.eye(N_CLASSES, dtype=np.float32)
    # random masks on a batch, tensors in and out
    generator = torch.Generator().manual_seed(0)
    masks = torch.rand(256, N_CLASSES, generator=generator) < 0.5
    masks[torch.arange(256), torch.randint(0, N_CLASSES, (256,), generator=generator)] = True
    obs = torch.from_numpy(eye[torch.randint(0, N_CLASSES, (256,), generator=generator).numpy()])
    for deterministic in (True, False):
        actions = agent.predict(obs, deterministic=deterministic, action_masks=masks)
        assert isinstance(actions, torch.Tensor)
        assert masks.gather(1, actions[:, None]).all()


def test_truncated_episodes_bootstrap_from_the_final_observation():
    # IdentityEnv episodes end by truncation only: the stored reward there is r + γ·V(final_obs).
    agent = PPO(IdentityEnv(4, ep_length=3), device="cpu", seed=0, n_steps=6, batch_size=24, gamma=0.9)
    raw_rewards, final_values = [], []
    step = agent.env.step

    def recording_step(actions):
        obs, reward, terminated, truncated, info = step(actions)
        raw_rewards.append(reward.clone())
        final_values.append(torch.where(truncated, agent.policy.value(info["final_obs"]), 0.0))
        return obs, reward, terminated, truncated, info

    agent.env.step = recording_step
    agent._collect_rollout()
    buf = agent.buffer
    expected = torch.stack(raw_rewards) + 0.9 * torch.stack(final_values)
    assert buf.dones[2].all() and buf.dones[5].all() and not buf.dones[[0, 1, 3, 4]].any()
    torch.testing.assert_close(buf.rewards, expected)
    assert not torch.equal(buf.rewards, torch.stack(raw_rewards))  # the bootstrap term is really there


# ============================================================================= determinism, save/load, resume
def _assert_same_state(a: PPO, b: PPO) -> None:
    for (name, p), q in zip(a.policy.named_parameters(), b.policy.parameters()):
        assert torch.equal(p, q), name
    assert_equal_tree(a.optimizer.state_dict(), b.optimizer.state_dict())


def test_same_seed_same_run_and_different_seed_different_run():
    a, b, c = small_cartpole(seed=7), small_cartpole(seed=7), small_cartpole(seed=8)
    for agent in (a, b, c):
        agent.learn(512)
    assert log_without_time(a) == log_without_time(b)
    _assert_same_state(a, b)
    assert not all(torch.equal(p, q) for p, q in zip(a.policy.parameters(), c.policy.parameters()))
    assert log_without_time(a) != log_without_time(c)


def test_evaluate_does_not_change_the_run():
    a, b = small_cartpole(seed=5), small_cartpole(seed=5)
    a.learn(256)
    b.learn(256)
    a.evaluate(n_episodes=3)
    a.evaluate(n_episodes=2, deterministic=False)
    a.learn(256, reset_num_timesteps=False)
    b.learn(256, reset_num_timesteps=False)
    assert_equal_tree(a.checkpoint_state(), b.checkpoint_state())


def test_save_and_load_give_identical_predictions(tmp_path):
    agent = small_cartpole(seed=3)
    agent.learn(256)
    path = agent.save(tmp_path / "agent.pt")
    loaded = PPO.load(path, device="cpu")
    assert loaded.num_timesteps == agent.num_timesteps == 256 and loaded.config == agent.config
    obs = torch.randn(64, 4, generator=torch.Generator().manual_seed(0))
    assert torch.equal(agent.predict(obs), loaded.predict(obs))
    # the agent's generator is restored too, so sampling continues identically
    assert torch.equal(agent.predict(obs, deterministic=False), loaded.predict(obs, deterministic=False))
    single = obs[0].numpy()
    assert isinstance(agent.predict(single), np.ndarray) and agent.predict(single).shape == ()
    assert agent.predict(single) == loaded.predict(single)


def test_resume_is_bitwise_identical_to_an_uninterrupted_run(tmp_path):
    hparams = dict(
        n_steps=64,
        batch_size=64,
        n_epochs=4,
        learning_rate=1e-3,
        anneal_lr=True,
        anneal_clip_range=True,
        target_kl=0.001,
    )
    updates = []
    # kl_beta, RNGs, env state, observation, episode sums, counters: all in the checkpoint, all compared
    straight, resumed = assert_resume_matches_an_uninterrupted_run(
        lambda run_dir=None: PPO(CARTPOLE, num_envs=4, device="cpu", seed=3, run_dir=run_dir, **hparams),
        tmp_path,
        total=2048,
        half=1024,
        straight_callbacks=[lambda a: updates.append(a.last_log["train/n_updates"])],
    )
    assert any(n < 16 for n in updates), updates  # the masked target_kl early stop happened
    assert torch.equal(straight.clip_range, resumed.clip_range)  # annealed from host progress, not checkpointed
    # As in SB3, an update sees the progress after its rollout: the last one runs at a learning rate of 0.
    assert straight.last_log["train/learning_rate"] == 0.0


def test_tiny_target_kl_skips_minibatches_without_touching_parameters():
    agent = small_cartpole(n_steps=32, batch_size=32, n_epochs=4, target_kl=1e-6, learning_rate=1e-3)
    full = agent.config.n_epochs * agent.steps_per_iteration // agent.config.batch_size
    original_step = agent._optimizer_step
    skipped_unchanged, applied_changed, seen = [], [], []

    def spy(skip):
        before = [p.detach().clone() for p in agent.policy.parameters()]
        state_before = {k: {n: t.clone() for n, t in s.items()} for k, s in agent.optimizer.state.items()}
        original_step(skip)
        after = list(agent.policy.parameters())
        same = all(torch.equal(p, q) for p, q in zip(before, after))
        if bool(skip):
            same_state = all(
                torch.equal(t, agent.optimizer.state[k][n]) for k, s in state_before.items() for n, t in s.items()
            )
            skipped_unchanged.append(same and same_state)
        else:
            applied_changed.append(not same)
        seen.append(bool(skip))

    agent._optimizer_step = spy
    agent.learn(agent.steps_per_iteration)
    assert len(seen) == full
    n_updates = agent.last_log["train/n_updates"]
    assert 1 <= n_updates < full
    assert seen.count(False) == n_updates
    assert seen == sorted(seen)  # once stopped, stopped for the rest of the iteration
    assert skipped_unchanged and all(skipped_unchanged)
    assert applied_changed and all(applied_changed)


# ============================================================================= bad inputs
@pytest.mark.parametrize(
    "overrides, key",
    [
        ({"learning_rte": 1e-3}, "learning_rte"),
        ({"clip_range": "a"}, "clip_range"),
        ({"gamma": 1.5}, "gamma"),
        ({"n_steps": 0}, "n_steps"),
        ({"kl_min": 0.02, "kl_max": 0.01}, "kl_min"),
        ({"kl_min": 0.01, "kl_max": 0.01}, "kl_min"),
        ({"gae_lambda": -0.1}, "gae_lambda"),
        ({"target_kl": 0.0}, "target_kl"),
        ({"ent_coef": -0.01}, "ent_coef"),
        ({"net_arch": [64, 0]}, "net_arch"),
        ({"activation": "sigmoid"}, "activation"),
    ],
)
def test_bad_hyperparameters_raise_config_errors_naming_the_key(overrides, key):
    with pytest.raises(ConfigError, match=key):
        PPO(CARTPOLE, num_envs=2, device="cpu", **{**SMALL, **overrides})


@pytest.mark.parametrize("key", ["learning_rate", "gamma", "gae_lambda", "clip_range", "kl_max"])
def test_nan_hyperparameters_are_rejected(key):
    with pytest.raises(ConfigError, match=key):
        PPO(CARTPOLE, num_envs=2, device="cpu", **{**SMALL, key: float("nan")})


@pytest.mark.parametrize("key", ["ent_coef", "vf_coef", "kl_beta_factor", "log_std_init"])
def test_nan_coefficients_are_rejected(key):
    with pytest.raises(ConfigError, match=key):
        PPO(CARTPOLE, num_envs=2, device="cpu", **{**SMALL, key: float("nan")})


def test_batch_size_must_divide_the_rollout():
    with pytest.raises(ValueError, match="batch_size"):
        PPO(CARTPOLE, num_envs=3, device="cpu", n_steps=10, batch_size=4)


@pytest.mark.parametrize(
    "kwargs, key",
    [
        ({"num_envs": 0}, "num_envs"),
        ({"seed": -1}, "seed"),
        ({"seed": 1.5}, "seed"),
        ({"device": "tpu"}, "device"),
    ],
)
def test_bad_agent_arguments(kwargs, key):
    with pytest.raises(ValueError, match=key):
        PPO(CARTPOLE, **{"num_envs": 2, "device": "cpu", **SMALL, **kwargs})


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_cuda_is_a_clear_error():
    with pytest.raises(ValueError, match="device 'cuda'.*CUDA is not available"):
        PPO(CARTPOLE, num_envs=2, device="cuda", **SMALL)


def test_cuda_graphs_need_cuda():
    with pytest.raises(ValueError, match="cuda_graphs"):
        PPO(CARTPOLE, num_envs=2, device="cpu", cuda_graphs=True, **SMALL)


def test_env_on_another_device_than_the_agent():
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    with pytest.raises(ValueError, match="env is on"):
        PPO(IdentityEnv(2, device="cpu"), device="cuda", n_steps=4, batch_size=8)


@pytest.mark.parametrize("total", [0, -5, 2.5, True])
def test_bad_total_timesteps(total):
    agent = small_cartpole()
    with pytest.raises(ValueError, match="total_timesteps"):
        agent.learn(total)


def test_unknown_env_id():
    with pytest.raises(ValueError, match="unknown env"):
        PPO("NoSuchEnv-v0", num_envs=2, device="cpu", **SMALL)


class _DictActionEnv(IdentityEnv):
    single_action_space = spaces.Dict({"move": spaces.Discrete(2)})


def test_env_declaring_a_dict_action_space_is_rejected_clearly():
    with pytest.raises(ValueError, match="Dict"):
        PPO(_DictActionEnv(2), device="cpu", n_steps=4, batch_size=8)


class _StartAtOneEnv(IdentityEnv):
    """Actions are 1..4 (Discrete(4, start=1)); action k names class k-1."""

    single_action_space = spaces.Discrete(N_CLASSES, start=1)

    def _reward(self, actions):
        return super()._reward(actions - 1)


def test_discrete_action_space_with_nonzero_start():
    agent = PPO(_StartAtOneEnv(4, validate=True), device="cpu", seed=0, n_steps=8, batch_size=16)
    agent.learn(64)  # validate=True: the env raises on any action outside 1..4
    actions = agent.predict(np.eye(N_CLASSES, dtype=np.float32), deterministic=False)
    assert ((actions >= 1) & (actions <= N_CLASSES)).all()


@pytest.mark.parametrize(
    "obs", [np.zeros(3, np.float32), np.zeros((2, 5), np.float32), np.zeros((2, 2, 4), np.float32), np.float32(0.0)]
)
def test_predict_with_a_wrong_observation_shape(obs):
    agent = small_cartpole()
    with pytest.raises(ValueError, match=r"obs must have shape \(4,\)"):
        agent.predict(obs)


def test_predict_shapes_and_types():
    agent = small_cartpole()
    batch = np.zeros((5, 4), np.float32)
    actions = agent.predict(batch)
    assert isinstance(actions, np.ndarray) and actions.shape == (5,)
    assert isinstance(agent.predict(torch.zeros(5, 4)), torch.Tensor)
    with pytest.raises(ValueError, match="n_episodes"):
        agent.evaluate(n_episodes=0)


def test_batch_size_one_is_refused_with_normalisation_and_finite_without():
    # A one-sample minibatch has no spread to standardise by: refused clearly rather than going NaN.
    with pytest.raises(ConfigError, match="batch_size"):
        PPO(CARTPOLE, num_envs=1, device="cpu", seed=0, n_steps=4, batch_size=1, n_epochs=1, preset=None)
    agent = PPO(
        CARTPOLE,
        num_envs=1,
        device="cpu",
        seed=0,
        n_steps=4,
        batch_size=1,
        n_epochs=1,
        normalize_advantage=False,
        preset=None,
    )
    before = [p.detach().clone() for p in agent.policy.parameters()]
    agent.learn(4)
    assert all(torch.isfinite(p).all() for p in agent.policy.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(before, agent.policy.parameters()))


def test_evaluate_on_an_env_passed_as_an_instance():
    agent = PPO(IdentityEnv(4), device="cpu", seed=0, n_steps=4, batch_size=16)
    result = agent.evaluate(n_episodes=4)
    assert result["mean_length"] == 4.0


# ============================================================================= an external Gymnasium env
def test_pendulum_through_make_vec_clips_box_actions_and_evaluates():
    env = make_vec("Pendulum-v1", num_envs=2, device="cpu", validate=True)  # validate: out-of-bounds actions raise
    agent = PPO(env, device="cpu", seed=0, n_steps=32, batch_size=32, n_epochs=2, log_std_init=1.0)
    assert agent.env_id == "Pendulum-v1"
    agent.learn(128)
    # the Gaussian samples left [-2, 2], so clipping to the bounds was exercised (the env saw only clipped actions)
    assert (agent.buffer.actions.abs() > 2.0).any()
    assert agent._env_action(torch.tensor([[5.0], [-7.0], [0.5]])).flatten().tolist() == [2.0, -2.0, 0.5]
    result = agent.evaluate(n_episodes=2)
    assert all(math.isfinite(result[k]) for k in ("mean_reward", "std_reward", "mean_length"))
    assert result["mean_length"] == 200.0 and result["mean_reward"] < 0


def test_stochastic_predict_does_not_change_training():
    a, b = small_cartpole(seed=4), small_cartpole(seed=4)
    a.learn(128)
    b.learn(128)
    a.predict(np.zeros((5, 4), np.float32), deterministic=False)  # draws from predict's own generator
    a.learn(128, reset_num_timesteps=False)
    b.learn(128, reset_num_timesteps=False)
    assert all(torch.equal(p, q) for p, q in zip(a.policy.parameters(), b.policy.parameters()))


def test_env_and_agent_streams_are_seeded_independently():
    agent = small_cartpole(seed=0)
    env_draw = torch.rand(8, generator=agent.env.generator)
    agent_draw = torch.rand(8, generator=agent.generator)
    assert not torch.equal(env_draw, agent_draw)


# ----------------------------------------------------------------- bf16 forward passes (precision: bf16)
def _minibatch_loss_and_gradient(agent: PPO) -> tuple[torch.Tensor, torch.Tensor]:
    buf = agent.buffer
    idx = torch.arange(64)
    inputs = [buf.flat(name)[idx] for name in ("obs", "actions", "log_probs", "values", "advantages", "returns")]
    agent.optimizer.zero_grad(set_to_none=False)
    loss, _ = agent._loss(*inputs, None)
    loss.backward()
    gradient = torch.cat([p.grad.flatten() for p in agent.policy.parameters()])
    return loss.detach(), gradient.clone()


@pytest.mark.parametrize("env_id", ["rlcourse/CartPole-v1", "rlcourse/Chatbot-v0"])
def test_bf16_forward_gives_the_fp32_loss_and_gradient_on_a_fixed_batch(env_id):
    # an entropy bonus, so the gradient is not zero where no reward arrived yet (a reply may take all 16 steps)
    small = {"num_envs": 8, "n_steps": 16, "batch_size": 64, "seed": 0, "device": "cpu", "ent_coef": 0.01}
    if env_id == "rlcourse/Chatbot-v0":
        agent = PPO(env_id, **small, net_arch=[16, 32], policy_network="token_gru", preset=None)
    else:
        agent = PPO(env_id, **small, preset=None)
    agent._collect_rollout()
    loss32, grad32 = _minibatch_loss_and_gradient(agent)
    agent.config.precision = "bf16"
    loss16, grad16 = _minibatch_loss_and_gradient(agent)
    assert loss16.dtype == torch.float32
    assert abs(float(loss16 - loss32)) <= 0.02 * abs(float(loss32)) + 1e-3
    cosine = torch.nn.functional.cosine_similarity(grad16, grad32, dim=0)
    assert cosine > 0.99, cosine


def test_bf16_rollout_keeps_float32_log_probs_and_values():
    agent = PPO("rlcourse/CartPole-v1", num_envs=4, n_steps=8, batch_size=32, seed=0, device="cpu",
                precision="bf16", preset=None)  # fmt: skip
    agent.learn(total_timesteps=64)
    assert agent.buffer.log_probs.dtype == torch.float32 and agent.buffer.values.dtype == torch.float32
    assert torch.isfinite(agent.buffer.log_probs).all()


def test_unknown_precision_is_refused():
    with pytest.raises(ValueError, match="precision"):
        PPO("rlcourse/CartPole-v1", num_envs=4, n_steps=8, batch_size=32, precision="fp16", preset=None)
