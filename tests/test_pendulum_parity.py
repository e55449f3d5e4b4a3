"""rlcourse/Pendulum-v1 against Gymnasium's Pendulum-v1 on the same states and actions.

Gymnasium's truncation comes from the TimeLimit wrapper that ``gym.make("Pendulum-v1")`` adds;
rlcourse's batched env truncates by itself at the same 200 steps. Gymnasium returns a float64
reward; rlcourse's contract makes rewards float32, so "exact" means equal to Gymnasium's reward
rounded to float32.
"""

from __future__ import annotations

import math
import warnings

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

from rlcourse.envs import PendulumVecEnv
from rlcourse.single_env import SingleEnv

EPISODE_STEPS = 200


def choose_actions(theta_dot: np.ndarray, episode: int, rng: np.random.Generator) -> np.ndarray:
    """Float32 torques for every env, a third or more of them outside [-2, 2] (both envs clip them).

    Even episodes act at random in [-3, 3]; odd ones pump energy (push along θ̇, clipped to 2), which
    swings the pendulum over the top and spins it up to the ±8 rad/s speed limit.
    """
    if episode % 2 == 0:
        torque = rng.uniform(-3.0, 3.0, size=theta_dot.shape)
    else:
        torque = np.where(theta_dot >= 0, 2.5, -2.5) + rng.normal(0.0, 0.3, size=theta_dot.shape)
    return torque.astype(np.float32)[:, None]


def make_references(seeds: list[int]) -> list[gym.Env]:
    references = [gym.make("Pendulum-v1") for _ in seeds]
    for reference, seed in zip(references, seeds):
        reference.reset(seed=seed)
    return references


def reference_states(references: list[gym.Env]) -> np.ndarray:
    return np.stack([reference.unwrapped.state for reference in references])


def test_float64_matches_gymnasium_exactly():
    seeds = [1, 2, 3]
    references = make_references(seeds)
    vec = PendulumVecEnv(num_envs=len(seeds), dtype=torch.float64)
    vec.reset(seed=0)
    vec.physics.copy_(torch.from_numpy(reference_states(references)))
    rng = np.random.default_rng(2024)
    episodes, steps, lengths = 0, 0, []
    out_of_range = max_speed_hits = 0
    widest_angle = 0.0
    while episodes < 5:
        actions = choose_actions(reference_states(references)[:, 1], episodes, rng)
        out_of_range += int((np.abs(actions) > 2).sum())
        v_obs, v_reward, v_terminated, v_truncated, info = vec.step(torch.from_numpy(actions))
        assert v_reward.dtype == torch.float32
        steps += 1
        ended = []
        for i, reference in enumerate(references):
            obs, reward, terminated, truncated, _ = reference.step(actions[i])
            done = terminated or truncated
            got = info["final_obs"][i] if done else v_obs[i]
            assert got.dtype == torch.float32
            np.testing.assert_array_equal(got.numpy(), obs, err_msg=f"env {i}, step {steps}")
            assert float(v_reward[i]) == float(np.float32(reward)), f"env {i}, step {steps}"
            assert bool(v_terminated[i]) == terminated, f"env {i}, step {steps}"
            assert bool(v_truncated[i]) == truncated, f"env {i}, step {steps}"
            ended.append(done)
        states = reference_states(references)
        max_speed_hits += int((np.abs(states[:, 1]) == 8.0).sum())
        widest_angle = max(widest_angle, float(np.abs(states[:, 0]).max()))
        if not any(ended):
            # The float64 state itself follows Gymnasium's; torch's and the C library's sin/cos may
            # differ in the last bit, which the float32 observations above never showed.
            np.testing.assert_allclose(vec.physics.numpy(), states, rtol=0, atol=1e-9)
        if all(ended):
            lengths.append(steps)
            assert torch.equal(info["episode"]["l"], torch.full((len(seeds),), steps, dtype=torch.int32))
            episodes, steps = episodes + 1, 0
            for reference in references:
                reference.reset()
            vec.physics.copy_(torch.from_numpy(reference_states(references)))
        else:
            assert not any(ended), "the envs truncate together: there is no termination"
    assert lengths == [EPISODE_STEPS] * 5
    # The run went through every branch of the dynamics: torque clipping, the speed limit and angle wrapping.
    assert out_of_range > 1000, out_of_range
    assert max_speed_hits > 100, max_speed_hits
    assert widest_angle > 10 * math.pi, widest_angle


def test_float32_transitions_match_gymnasium():
    seeds = [5, 6]
    references = make_references(seeds)
    vec = PendulumVecEnv(num_envs=len(seeds))
    assert vec.physics.dtype == torch.float32
    vec.reset(seed=0)
    rng = np.random.default_rng(7)
    episode, ends = 0, 0
    for step in range(4 * EPISODE_STEPS):
        states = reference_states(references)
        vec.physics.copy_(torch.from_numpy(states.astype(np.float32)))
        actions = choose_actions(states[:, 1], episode, rng)
        v_obs, v_reward, v_terminated, v_truncated, info = vec.step(torch.from_numpy(actions))
        for i, reference in enumerate(references):
            obs, reward, terminated, truncated, _ = reference.step(actions[i])
            done = terminated or truncated
            got = (info["final_obs"][i] if done else v_obs[i]).numpy()
            np.testing.assert_allclose(got, obs, rtol=0, atol=2e-5, err_msg=f"env {i}, step {step}")
            np.testing.assert_allclose(float(v_reward[i]), reward, rtol=0, atol=2e-4, err_msg=f"env {i}, step {step}")
            assert bool(v_terminated[i]) == terminated and bool(v_truncated[i]) == truncated, f"env {i}, step {step}"
            if done:
                ends += 1
                reference.reset()
        if bool(v_truncated.all()):
            episode += 1
    assert ends == 4 * len(seeds)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_reset_distribution_fills_its_bounds(dtype):
    n = 20_000
    env = PendulumVecEnv(num_envs=n, dtype=dtype)
    obs, _ = env.reset(seed=0)
    theta, theta_dot = env.physics.unbind(-1)
    for values, bound in ((theta, math.pi), (theta_dot, 1.0)):
        assert bool((values.abs() <= bound).all())
        assert float(values.min()) < -0.99 * bound and float(values.max()) > 0.99 * bound
        assert abs(float(values.mean())) < 0.05 * bound  # uniform, so centred (about 4 standard errors)
        assert float(values.std()) == pytest.approx(bound / math.sqrt(3), rel=0.02)
    assert env.single_observation_space.contains(obs[0].numpy())
    torch.testing.assert_close(obs[:, 0].square() + obs[:, 1].square(), torch.ones(n), atol=1e-6, rtol=0)
    torch.testing.assert_close(obs[:, 2], theta_dot.float(), atol=0, rtol=0)
    # Autoreset draws from the same distribution.
    for _ in range(EPISODE_STEPS):
        obs, _, _, truncated, _ = env.step(torch.zeros(n, 1))
    assert bool(truncated.all())
    assert bool((obs[:, 2].abs() <= 1.0).all()) and float(obs[:, 2].abs().max()) > 0.99
    assert bool((env.physics[:, 0].abs() <= math.pi).all())


def test_same_seed_gives_the_same_stream_and_another_seed_another():
    def rollout(env: PendulumVecEnv, seed: int) -> list[torch.Tensor]:
        out = list(env.reset(seed=seed)[:1])
        gen = torch.Generator().manual_seed(99)
        for _ in range(EPISODE_STEPS + 50):  # past the autoreset, whose draws come from the env's generator
            actions = torch.rand(env.num_envs, 1, generator=gen) * 6 - 3
            obs, reward, _, _, info = env.step(actions)
            out += [obs, reward, info["final_obs"]]
        return out

    first = rollout(PendulumVecEnv(num_envs=4), seed=3)
    again = PendulumVecEnv(num_envs=4)
    assert all(torch.equal(a, b) for a, b in zip(first, rollout(again, seed=3)))
    assert all(torch.equal(a, b) for a, b in zip(first, rollout(again, seed=3)))  # re-seeding restarts the stream
    other = rollout(PendulumVecEnv(num_envs=4), seed=4)
    assert not torch.equal(first[0], other[0])
    assert not torch.equal(first[-3], other[-3])


def test_autoreset_hands_out_the_final_observation():
    n = 4
    env = PendulumVecEnv(num_envs=n, dtype=torch.float64)
    env.reset(seed=8)
    gen = torch.Generator().manual_seed(8)
    rewards = torch.zeros(n)
    for step in range(EPISODE_STEPS):
        before = env.physics.clone()
        actions = torch.rand(n, 1, generator=gen) * 6 - 3
        obs, reward, terminated, truncated, info = env.step(actions)
        rewards += reward
        assert not bool(terminated.any())
        assert bool(truncated.all()) == (step == EPISODE_STEPS - 1)
        assert torch.equal(info["_final_obs"], truncated)
    # The last step by hand, from the state before it: semi-implicit Euler with the clipped torque.
    theta, theta_dot = before.numpy().T
    torque = np.clip(actions[:, 0].numpy(), -2.0, 2.0).astype(np.float64)
    new_theta_dot = np.clip(theta_dot + (15.0 * np.sin(theta) + 3.0 * torque) * 0.05, -8.0, 8.0)
    new_theta = theta + new_theta_dot * 0.05
    expected = np.stack((np.cos(new_theta), np.sin(new_theta), new_theta_dot), -1)
    np.testing.assert_allclose(info["final_obs"].numpy(), expected, rtol=0, atol=1e-6)
    # The observation is the next episode's first: a fresh draw, with the step counter back at zero.
    assert not torch.equal(obs, info["final_obs"])
    assert bool((obs[:, 2].abs() <= 1.0).all()) and bool((env.physics[:, 0].abs() <= math.pi).all())
    assert torch.equal(env.elapsed, torch.zeros(n, dtype=torch.int32))
    assert torch.equal(info["episode"]["l"], torch.full((n,), EPISODE_STEPS, dtype=torch.int32))
    assert torch.equal(info["episode"]["r"], rewards)
    assert torch.equal(info["final_info"]["episode"]["r"], rewards)
    _, _, _, truncated, info = env.step(torch.zeros(n, 1))
    assert not bool(truncated.any()) and torch.equal(info["episode"]["l"], torch.zeros(n, dtype=torch.int32))


def test_out_of_range_torque_is_clipped_and_validate_rejects_it():
    env = PendulumVecEnv(num_envs=2, dtype=torch.float64)
    env.reset(seed=1)
    state = env.state_dict()
    clipped = env.step(torch.tensor([[2.0], [-2.0]]))
    env.load_state_dict(state)
    beyond = env.step(torch.tensor([[7.5], [-30.0]]))
    for a, b in zip(clipped[:4], beyond[:4]):
        assert torch.equal(a, b)
    checked = PendulumVecEnv(num_envs=2, validate=True)
    checked.reset(seed=1)
    checked.step(torch.tensor([[2.0], [-2.0]]))  # the bounds themselves are valid
    with pytest.raises(ValueError, match="outside the action space Box"):
        checked.step(torch.tensor([[2.5], [0.0]]))


def test_single_env_adapter_passes_the_env_checkers():
    env = gym.make("rlcourse/Pendulum-v1")
    assert isinstance(env.unwrapped, SingleEnv)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gym_check_env(env.unwrapped)
        sb3_check_env(env, warn=True)
    # Both checkers advise a [-1, 1] action Box; Pendulum-v1 keeps Gymnasium's [-2, 2] torque, as Gymnasium's own env does.
    unexpected = [str(w.message) for w in caught if "symmetric and normalized" not in str(w.message)]
    assert unexpected == []


def test_single_env_runs_whole_episodes_like_gymnasium():
    env = gym.make("rlcourse/Pendulum-v1")
    obs, _ = env.reset(seed=0)
    assert obs.dtype == np.float32 and env.observation_space.contains(obs)
    total, length, truncated = 0.0, 0, False
    while not truncated:
        obs, reward, terminated, truncated, _ = env.step(env.action_space.sample())
        assert isinstance(reward, float) and -16.3 < reward <= 0.0  # cost ≤ π² + 0.1·8² + 0.001·2²
        assert not terminated and env.observation_space.contains(obs)
        total, length = total + reward, length + 1
    assert length == EPISODE_STEPS and total < 0
    with pytest.raises(ValueError, match="outside the action space"):
        env.step(np.array([2.5], dtype=np.float32))


def test_wrong_action_shape_is_a_clear_error():
    env = PendulumVecEnv(num_envs=3)
    env.reset(seed=0)
    for bad in (torch.zeros(3), torch.zeros(3, 2), torch.zeros(1, 1)):
        with pytest.raises(ValueError, match=r"shape \(3, 1\).*Box\(-2\.0, 2\.0, \(1,\), float32\)"):
            env.step(bad)
    with pytest.raises(ValueError, match="floating tensor"):
        env.step(torch.zeros(3, 1, dtype=torch.int64))
    single = gym.make("rlcourse/Pendulum-v1")
    single.reset(seed=0)
    for bad in (np.float32(1.0), np.zeros(2, dtype=np.float32)):
        with pytest.raises(ValueError, match=r"shape \(1,\)"):
            single.step(bad)
