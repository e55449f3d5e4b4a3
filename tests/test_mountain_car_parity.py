"""rlcourse/MountainCar-v0 against Gymnasium's MountainCar-v0 on the same states and actions.

Gymnasium keeps the state as float64 numbers; with ``dtype=torch.float64`` the batched env must give the
same states, terminations and truncations bit for bit, through the left wall and up to the flag.
"""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import torch
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

from rlcourse.envs import MountainCarVecEnv
from rlcourse.single_env import SingleEnv


def energy_pumping(velocity: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Push along the velocity (which reaches the flag) with a fifth of the actions random (which hits the wall)."""
    actions = np.where(velocity >= 0, 2, 0)
    random = rng.random(velocity.shape) < 0.2
    return np.where(random, rng.integers(0, 3, velocity.shape), actions)


def test_float64_matches_gymnasium_exactly():
    references = [gym.make("MountainCar-v0") for _ in range(4)]
    for seed, reference in enumerate(references):
        reference.reset(seed=seed)
    vec = MountainCarVecEnv(num_envs=len(references), dtype=torch.float64)
    vec.reset(seed=0)
    vec.physics.copy_(torch.tensor(np.stack([reference.unwrapped.state for reference in references])))
    rng = np.random.default_rng(7)
    goals = walls = truncations = 0
    for _ in range(600):
        velocity = vec.physics[:, 1].numpy().copy()
        actions = energy_pumping(velocity, rng)
        obs, reward, terminated, truncated, info = vec.step(torch.as_tensor(actions))
        for index, reference in enumerate(references):
            ref_obs, ref_reward, ref_terminated, ref_truncated, _ = reference.step(int(actions[index]))
            assert bool(terminated[index]) == ref_terminated and bool(truncated[index]) == ref_truncated
            assert float(reward[index]) == ref_reward == -1.0
            walls += int(reference.unwrapped.state[0] == -1.2)
            if ref_terminated or ref_truncated:
                goals += int(ref_terminated)
                truncations += int(ref_truncated)
                np.testing.assert_array_equal(info["final_obs"][index].numpy(), ref_obs)
                assert bool(info["final_info"]["success"][index]) == ref_terminated
                reference.reset()
                vec.physics[index] = torch.tensor(reference.unwrapped.state)
                vec.elapsed[index] = 0
            else:
                np.testing.assert_array_equal(obs[index].numpy(), ref_obs)
                np.testing.assert_array_equal(vec.physics[index].numpy(), reference.unwrapped.state)
    assert goals >= 4 and walls >= 1 and truncations >= 1, (goals, walls, truncations)


def test_starts_in_the_valley_at_rest():
    vec = MountainCarVecEnv(num_envs=1000)
    obs, _ = vec.reset(seed=3)
    assert obs[:, 0].min() >= -0.6 and obs[:, 0].max() < -0.4 and obs[:, 0].std() > 0.05
    assert torch.all(obs[:, 1] == 0)


def test_single_env_passes_both_checkers():
    env = SingleEnv("rlcourse/MountainCar-v0")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gym_check_env(env, skip_render_check=True)
        sb3_check_env(env)
    made = gym.make("rlcourse/MountainCar-v0")
    assert made.spec.id == "rlcourse/MountainCar-v0" and made.action_space.n == 3
