"""``rlcourse.make_vec`` on external Gymnasium ids: the contract, checked against plain Gymnasium envs.

Gymnasium's vector env seeds sub-env ``i`` with ``seed + i`` and resets it unseeded after an
episode, so one plain ``gym.make(id)`` per sub-env, driven the same way, is an exact reference.
"""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces
from gymnasium.vector import AutoresetMode

import rlcourse
from rlcourse.gym_vec import GymVecEnv

pytestmark = pytest.mark.filterwarnings("ignore:.*infinity.*:UserWarning")

THETA_LIMIT = 12 * 2 * math.pi / 360


def sample_actions(space: spaces.Space, n: int, gen: torch.Generator) -> torch.Tensor:
    if isinstance(space, spaces.Discrete):
        return torch.randint(int(space.n), (n,), generator=gen) + int(space.start)
    if isinstance(space, spaces.Box):
        low, high = torch.as_tensor(space.low), torch.as_tensor(space.high)
        return low + torch.rand((n, *space.shape), generator=gen) * (high - low)
    raise AssertionError(f"no sampler for {space}")


def encode(env_id: str, obs) -> np.ndarray:
    """The reference observation as rlcourse presents it (float32; Discrete one-hot)."""
    if env_id == "FrozenLake-v1":
        return np.eye(16, dtype=np.float32)[int(obs)]
    return np.asarray(obs, dtype=np.float32)


def run_against_reference(env_id: str, num_envs: int, steps: int, seed: int = 5):
    """Step make_vec(env_id) and one plain Gymnasium env per sub-env on the same actions; assert they agree.

    Returns the list of (sub-env index, terminated, truncated, final_obs, episode length) of every ended episode.
    """
    env = rlcourse.make_vec(env_id, num_envs=num_envs)
    assert isinstance(env, GymVecEnv) and isinstance(env, rlcourse.TensorVecEnv)
    assert env.metadata["autoreset_mode"] is AutoresetMode.SAME_STEP
    references = [gym.make(env_id) for _ in range(num_envs)]
    obs_shape = (num_envs, *env.single_observation_space.shape)

    obs, _ = env.reset(seed=seed)
    assert isinstance(obs, torch.Tensor) and obs.shape == obs_shape and obs.dtype == torch.float32
    for i, reference in enumerate(references):
        np.testing.assert_array_equal(obs[i].numpy(), encode(env_id, reference.reset(seed=seed + i)[0]))

    gen = torch.Generator().manual_seed(seed)
    returns = np.zeros(num_envs, dtype=np.float32)
    lengths = np.zeros(num_envs, dtype=np.int64)
    ended = []
    for step in range(steps):
        actions = sample_actions(env.single_action_space, num_envs, gen)
        obs, reward, terminated, truncated, info = env.step(actions)
        assert obs.shape == obs_shape and obs.dtype == torch.float32 and obs.device == env.device
        assert reward.shape == (num_envs,) and reward.dtype == torch.float32
        assert terminated.dtype == torch.bool and truncated.dtype == torch.bool
        assert info["final_obs"].shape == obs_shape
        done = (terminated | truncated).numpy()
        np.testing.assert_array_equal(info["_final_obs"].numpy(), done)
        np.testing.assert_array_equal(info["_episode"].numpy(), done)
        for i, reference in enumerate(references):
            action = actions[i].numpy() if actions.ndim > 1 else int(actions[i])
            r_obs, r_reward, r_terminated, r_truncated, _ = reference.step(action)
            assert float(reward[i]) == np.float32(r_reward), f"step {step}, env {i}"
            assert bool(terminated[i]) == r_terminated and bool(truncated[i]) == r_truncated, f"step {step}, env {i}"
            returns[i] += np.float32(r_reward)
            lengths[i] += 1
            if r_terminated or r_truncated:
                # final_obs is the real last observation of the episode, obs is the first of the next one.
                final = info["final_obs"][i].numpy()
                np.testing.assert_array_equal(final, encode(env_id, r_obs), err_msg=f"step {step}, env {i}")
                np.testing.assert_allclose(float(info["episode"]["r"][i]), returns[i], rtol=1e-5)
                assert int(info["episode"]["l"][i]) == lengths[i]
                ended.append((i, r_terminated, r_truncated, final, int(lengths[i])))
                returns[i], lengths[i] = 0.0, 0
                r_obs, _ = reference.reset()
            np.testing.assert_array_equal(obs[i].numpy(), encode(env_id, r_obs), err_msg=f"step {step}, env {i}")
    env.close()
    return ended


def test_cartpole_follows_the_contract():
    ended = run_against_reference("CartPole-v1", num_envs=3, steps=250)
    terminated = [final for _, te, _, final, _ in ended if te]
    assert len(terminated) >= 5
    for x, _, theta, _ in terminated:
        assert abs(x) > 2.4 or abs(theta) > THETA_LIMIT


def test_acrobot_follows_the_contract():
    ended = run_against_reference("Acrobot-v1", num_envs=2, steps=520)
    assert len(ended) >= 1
    for _, terminated, truncated, final, length in ended:
        if truncated:
            assert length == 500
        if terminated:  # the free end is above the bar: -cos(t1) - cos(t1 + t2) > 1
            cos1, sin1, cos2, sin2 = final[:4]
            assert -cos1 - (cos1 * cos2 - sin1 * sin2) > 1.0


def test_pendulum_follows_the_contract():
    ended = run_against_reference("Pendulum-v1", num_envs=2, steps=420)
    assert len(ended) == 4
    assert all(truncated and not terminated and length == 200 for _, terminated, truncated, _, length in ended)


def test_pendulum_box_actions():
    env = rlcourse.make_vec("Pendulum-v1", num_envs=2)
    assert env.single_action_space == gym.make("Pendulum-v1").action_space
    env.reset(seed=0)
    with pytest.raises(ValueError, match="Box"):
        env.step(torch.zeros(2, 1, dtype=torch.int64))
    with pytest.raises(ValueError, match="Box"):
        env.step(np.zeros((2, 1), dtype=np.float32))


def test_frozenlake_observation_is_one_hot():
    env = rlcourse.make_vec("FrozenLake-v1", num_envs=2)
    assert env.single_observation_space == spaces.Box(0.0, 1.0, (16,), dtype=np.float32)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (2, 16) and obs.dtype == torch.float32
    np.testing.assert_array_equal(obs.numpy(), np.eye(16, dtype=np.float32)[[0, 0]])  # both start in cell 0
    obs, *_ = env.step(torch.full((2,), 2))  # move right (may slip; either way still one cell)
    assert torch.equal(obs.sum(1), torch.ones(2)) and set(obs.unique().tolist()) <= {0.0, 1.0}


def test_frozenlake_episode_ends():
    # Discrete observations arrive as plain Python ints, also in final_obs.
    ended = run_against_reference("FrozenLake-v1", num_envs=2, steps=150)
    assert len(ended) >= 5
    for _, terminated, _truncated, final, _ in ended:
        assert final.sum() == 1.0
        if terminated:  # a hole or the goal
            assert int(final.argmax()) in {5, 7, 11, 12, 15}


# ----------------------------------------------------------------------------- unsupported spaces, errors
class _DictObsEnv(gym.Env):
    observation_space = spaces.Dict({"position": spaces.Box(-1.0, 1.0, (2,), dtype=np.float32)})
    action_space = spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return {"position": np.zeros(2, dtype=np.float32)}, {}

    def step(self, action):
        return {"position": np.zeros(2, dtype=np.float32)}, 0.0, True, False, {}


class _TupleActionEnv(gym.Env):
    observation_space = spaces.Box(-1.0, 1.0, (2,), dtype=np.float32)
    action_space = spaces.Tuple((spaces.Discrete(2), spaces.Discrete(3)))

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.zeros(2, dtype=np.float32), {}

    def step(self, action):
        return np.zeros(2, dtype=np.float32), 0.0, True, False, {}


@pytest.fixture
def custom_env_ids():
    ids = {"rlcourse_test/DictObs-v0": _DictObsEnv, "rlcourse_test/TupleAction-v0": _TupleActionEnv}
    for env_id, cls in ids.items():
        gym.register(id=env_id, entry_point=cls)
    yield list(ids)
    for env_id in ids:
        gym.registry.pop(env_id, None)


def _assert_lists_supported_spaces(message: str) -> None:
    assert "supported" in message
    for name in ("Box", "Discrete", "MultiDiscrete"):
        assert name in message


def test_dict_observation_space_is_rejected(custom_env_ids):
    with pytest.raises(ValueError) as excinfo:
        rlcourse.make_vec("rlcourse_test/DictObs-v0", num_envs=2)
    assert "Dict" in str(excinfo.value)
    _assert_lists_supported_spaces(str(excinfo.value))


def test_tuple_action_space_is_rejected(custom_env_ids):
    with pytest.raises(ValueError) as excinfo:
        rlcourse.make_vec("rlcourse_test/TupleAction-v0", num_envs=2)
    assert "Tuple" in str(excinfo.value)
    _assert_lists_supported_spaces(str(excinfo.value))


def test_blackjack_tuple_observation_is_rejected():
    with pytest.raises(ValueError) as excinfo:
        rlcourse.make_vec("Blackjack-v1", num_envs=2)
    assert "Tuple" in str(excinfo.value)
    _assert_lists_supported_spaces(str(excinfo.value))


def test_unknown_id_names_the_rlcourse_envs():
    with pytest.raises(ValueError) as excinfo:
        rlcourse.make_vec("NoSuchEnv-v0", num_envs=2)
    message = str(excinfo.value)
    assert "NoSuchEnv-v0" in message
    assert rlcourse.list_envs(), "no rlcourse env registered"
    for env_id in rlcourse.list_envs():
        assert env_id in message


@pytest.mark.parametrize("bad", [0, -1, 2.5, True])
def test_bad_num_envs_is_rejected_for_gymnasium_ids(bad):
    with pytest.raises(ValueError, match="num_envs"):
        rlcourse.make_vec("CartPole-v1", num_envs=bad)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
@pytest.mark.parametrize("env_id", ["CartPole-v1", "rlcourse/CartPole-v1"])
def test_cuda_without_cuda_is_a_clear_error(env_id):
    with pytest.raises(ValueError, match="CUDA"):
        rlcourse.make_vec(env_id, num_envs=2, device="cuda")
