"""rlcourse/CartPole-v1 against Gymnasium's CartPole-v1 on the same states and actions.

Gymnasium's truncation comes from the TimeLimit wrapper that ``gym.make("CartPole-v1")`` adds;
rlcourse's batched env truncates by itself at the same 500 steps.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from rlcourse.envs import CartPoleVecEnv

pytestmark = pytest.mark.filterwarnings("ignore:.*infinity.*:UserWarning")


def choose_action(state: np.ndarray, episode: int, rng: np.random.Generator) -> int:
    """Odd episodes balance the pole (long runs that reach the 500-step truncation); even ones act at random."""
    if episode % 2 == 0:
        return int(rng.integers(2))
    x, x_dot, theta, theta_dot = state
    return int(theta + 0.5 * theta_dot + 0.01 * x + 0.1 * x_dot > 0)


def test_float64_matches_gymnasium_exactly():
    reference = gym.make("CartPole-v1")
    vec = CartPoleVecEnv(num_envs=1, dtype=torch.float64)
    vec.reset(seed=0)
    rng = np.random.default_rng(2024)

    def sync_state():
        vec.physics[0] = torch.from_numpy(reference.unwrapped.state)

    reference.reset(seed=1)
    sync_state()
    episode, length, ends = 0, 0, []
    for step in range(1600):
        action = choose_action(reference.unwrapped.state, episode, rng)
        obs, reward, terminated, truncated, _ = reference.step(action)
        v_obs, v_reward, v_terminated, v_truncated, info = vec.step(torch.tensor([action]))
        length += 1
        expected = info["final_obs"][0] if (terminated or truncated) else v_obs[0]
        assert expected.dtype == torch.float32
        np.testing.assert_array_equal(obs, expected.numpy(), err_msg=f"step {step}")
        assert float(v_reward[0]) == reward
        assert bool(v_terminated[0]) == terminated, f"step {step}"
        assert bool(v_truncated[0]) == truncated, f"step {step}"
        if terminated or truncated:
            ends.append((length, terminated, truncated))
            assert int(info["episode"]["l"][0]) == length
            assert float(info["episode"]["r"][0]) == float(length)
            episode, length = episode + 1, 0
            reference.reset()
            sync_state()
    assert sum(1 for _, te, _ in ends if te) >= 3, ends
    assert any(tr and n == 500 for n, _, tr in ends), f"no episode reached the 500-step truncation: {ends}"


def test_float32_transitions_match_gymnasium():
    reference = gym.make("CartPole-v1")
    vec = CartPoleVecEnv(num_envs=1)
    assert vec.physics.dtype == torch.float32
    vec.reset(seed=0)
    rng = np.random.default_rng(7)
    reference.reset(seed=3)
    episode, ends, truncations = 0, 0, 0
    for step in range(1200):
        state = reference.unwrapped.state
        vec.physics[0] = torch.from_numpy(np.asarray(state, dtype=np.float32))
        action = choose_action(state, episode, rng)
        obs, reward, terminated, truncated, _ = reference.step(action)
        v_obs, v_reward, v_terminated, v_truncated, info = vec.step(torch.tensor([action]))
        done = terminated or truncated
        got = (info["final_obs"][0] if done else v_obs[0]).numpy()
        np.testing.assert_allclose(got, obs, rtol=0, atol=1e-5, err_msg=f"step {step}")
        assert float(v_reward[0]) == reward
        assert bool(v_terminated[0]) == terminated, f"step {step}"
        assert bool(v_truncated[0]) == truncated, f"step {step}"
        if done:
            ends += 1
            truncations += truncated
            episode += 1
            reference.reset()
    assert ends >= 3 and truncations >= 1, (ends, truncations)
