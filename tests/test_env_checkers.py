"""Gymnasium's and SB3's env checkers, and an SB3 PPO smoke run, on every registered single-env adapter."""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3 import PPO
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import rlcourse
from rlcourse.single_env import SingleEnv

ENV_IDS = rlcourse.list_envs()


def _is_expected_warning(warning: warnings.WarningMessage, env: gym.Env) -> bool:
    """Infinite Box bounds, and the advice to rescale a Box action space that is not [-1, 1].

    The advice is expected only where an env keeps the bounds of the task it reproduces
    (rlcourse/Pendulum-v1 keeps Gymnasium's [-2, 2] torque, and Gymnasium's own env gets the same advice).
    """
    text = str(warning.message).lower()
    if "infinity" in text or "unbounded" in text:
        return True
    space = env.action_space
    rescalable = isinstance(space, spaces.Box) and not (np.all(space.low == -1) and np.all(space.high == 1))
    return "symmetric and normalized" in text and rescalable


def _run_checker(checker, env) -> None:
    """Run ``checker(env)``; any warning but the expected ones (:func:`_is_expected_warning`) fails the test."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        checker(env)
    unexpected = [str(w.message) for w in caught if not _is_expected_warning(w, env)]
    assert unexpected == [], f"checker warned: {unexpected}"


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_gym_make_gives_the_single_env_adapter(env_id):
    env = gym.make(env_id)
    assert isinstance(env.unwrapped, SingleEnv)
    obs, _ = env.reset(seed=0)
    assert isinstance(obs, np.ndarray) and env.observation_space.contains(obs)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_gymnasium_env_checker(env_id):
    _run_checker(gym_check_env, gym.make(env_id).unwrapped)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_sb3_env_checker(env_id):
    _run_checker(lambda env: sb3_check_env(env, warn=True), gym.make(env_id))


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_sb3_ppo_smoke_run_and_predict(env_id):
    env = gym.make(env_id)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = PPO("MlpPolicy", env, n_steps=64, batch_size=32, n_epochs=1, seed=0, device="cpu")
        model.learn(256)
    assert model.num_timesteps == 256

    check_env = gym.make(env_id)
    obs, _ = check_env.reset(seed=1)
    for _ in range(20):
        action, _ = model.predict(obs, deterministic=False)
        assert check_env.action_space.contains(action), f"predict gave {action!r}, not in {check_env.action_space}"
        obs, reward, terminated, truncated, _ = check_env.step(action)
        assert check_env.observation_space.contains(obs)
        assert np.isfinite(reward)
        if terminated or truncated:
            obs, _ = check_env.reset()


@pytest.mark.parametrize(
    ("env_id", "gymnasium_id"), [("rlcourse/CartPole-v1", "CartPole-v1"), ("rlcourse/Pendulum-v1", "Pendulum-v1")]
)
def test_classic_twins_declare_gymnasiums_spaces(env_id, gymnasium_id):
    """The batched classic-control envs have exactly Gymnasium's spaces, and the single-env adapter adds no second
    TimeLimit (the batched env truncates by itself)."""
    from rlcourse.registry import vec_env_class

    reference = gym.make(gymnasium_id)
    assert vec_env_class(env_id).single_observation_space == reference.observation_space
    assert vec_env_class(env_id).single_action_space == reference.action_space
    single = gym.make(env_id)
    assert (single.observation_space, single.action_space) == (reference.observation_space, reference.action_space)
    assert single.spec.max_episode_steps is None
