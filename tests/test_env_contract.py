"""The env contract (DESIGN.md, "The env contract"), checked for every registered batched env.

Every test is parametrized over ``rlcourse.list_envs()``, so a newly registered env is covered
without touching this file.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

import rlcourse
from rlcourse.registry import vec_env_class

ENV_IDS = rlcourse.list_envs()
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])

pytestmark = pytest.mark.filterwarnings("ignore:.*infinity.*:UserWarning")


def test_at_least_one_env_is_registered():
    assert "rlcourse/CartPole-v1" in ENV_IDS


# ----------------------------------------------------------------------------- helpers
def torch_dtype(space: spaces.Space) -> torch.dtype:
    return torch.from_numpy(np.zeros((), dtype=space.dtype)).dtype


def sample_actions(env: rlcourse.TensorVecEnv, gen: torch.Generator) -> torch.Tensor:
    """Valid random actions for every sub-env, drawn only from ``gen`` (CPU), returned on the env device."""
    space, n = env.single_action_space, env.num_envs
    dtype = torch_dtype(space)
    if isinstance(space, spaces.Discrete):
        if env.has_action_masks:
            mask = env.action_masks().cpu().float()
            index = torch.multinomial(mask, 1, generator=gen).squeeze(1)
        else:
            index = torch.randint(int(space.n), (n,), generator=gen)
        actions = index + int(space.start)
    elif isinstance(space, spaces.MultiDiscrete):
        nvec = torch.as_tensor(space.nvec, dtype=torch.float64)
        actions = (torch.rand((n, *nvec.shape), generator=gen, dtype=torch.float64) * nvec).floor()
    elif isinstance(space, spaces.Box):
        low = torch.as_tensor(np.where(np.isfinite(space.low), space.low, -1.0), dtype=torch.float64)
        high = torch.as_tensor(np.where(np.isfinite(space.high), space.high, 1.0), dtype=torch.float64)
        actions = low + torch.rand((n, *space.shape), generator=gen, dtype=torch.float64) * (high - low)
    else:
        pytest.skip(f"no random-action sampler for {space}")
    return actions.to(dtype).to(env.device)


def rollout(env: rlcourse.TensorVecEnv, seed: int, action_seed: int, steps: int) -> list[tuple[torch.Tensor, ...]]:
    """Reset with ``seed`` and take ``steps`` seeded random actions; every output, cloned to the CPU."""
    obs, _ = env.reset(seed=seed)
    gen = torch.Generator().manual_seed(action_seed)
    stream = [(obs.cpu().clone(),)]
    for _ in range(steps):
        obs, reward, terminated, truncated, info = env.step(sample_actions(env, gen))
        stream.append(tuple(t.cpu().clone() for t in (obs, reward, terminated, truncated, info["final_obs"])))
    return stream


def assert_streams_equal(a, b) -> None:
    assert len(a) == len(b)
    for step, (x, y) in enumerate(zip(a, b)):
        for u, v in zip(x, y):
            assert torch.equal(u, v), f"streams differ at step {step}"


def make(env_id: str, num_envs: int = 4, **kwargs) -> rlcourse.TensorVecEnv:
    return rlcourse.make_vec(env_id, num_envs=num_envs, device=kwargs.pop("device", "cpu"), **kwargs)


# ----------------------------------------------------------------------------- types and spaces
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("env_id", ENV_IDS)
def test_outputs_are_batched_tensors_on_the_env_device(env_id, device):
    n = 3
    env = make(env_id, n, device=device)
    assert isinstance(env, rlcourse.TensorVecEnv) and isinstance(env, VectorEnv)
    assert env.num_envs == n
    assert env.device.type == device
    assert env.observation_space == batch_space(env.single_observation_space, n)
    assert env.action_space == batch_space(env.single_action_space, n)

    obs_shape = (n, *env.single_observation_space.shape)
    obs_dtype = torch_dtype(env.single_observation_space)
    obs, info = env.reset(seed=0)
    assert isinstance(info, dict)
    assert isinstance(obs, torch.Tensor) and obs.device == env.device
    assert obs.shape == obs_shape and obs.dtype == obs_dtype
    assert env.observation_space.contains(obs.cpu().numpy())

    gen = torch.Generator().manual_seed(0)
    for _ in range(20):
        obs, reward, terminated, truncated, info = env.step(sample_actions(env, gen))
        for tensor in (obs, reward, terminated, truncated, info["final_obs"]):
            assert isinstance(tensor, torch.Tensor) and tensor.device == env.device
        assert obs.shape == obs_shape and obs.dtype == obs_dtype
        assert info["final_obs"].shape == obs_shape
        assert reward.shape == (n,) and reward.dtype == torch.float32
        assert terminated.shape == (n,) and terminated.dtype == torch.bool
        assert truncated.shape == (n,) and truncated.dtype == torch.bool
        assert env.observation_space.contains(obs.cpu().numpy())


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_autoreset_mode_is_same_step(env_id):
    assert make(env_id).metadata["autoreset_mode"] is AutoresetMode.SAME_STEP
    assert vec_env_class(env_id).metadata["autoreset_mode"] is AutoresetMode.SAME_STEP


# ----------------------------------------------------------------------------- SAME_STEP autoreset
@pytest.mark.parametrize("env_id", ENV_IDS)
def test_same_step_autoreset_final_obs_and_episode_stats(env_id):
    n = 8
    env = make(env_id, n)
    env.reset(seed=3)
    gen = torch.Generator().manual_seed(3)
    episode_return = torch.zeros(n, dtype=torch.float32)
    episode_length = torch.zeros(n, dtype=torch.int64)
    ended = 0
    for step in range(3000):
        obs, reward, terminated, truncated, info = env.step(sample_actions(env, gen))
        episode_return += reward.cpu()
        episode_length += 1
        done = (terminated | truncated).cpu()
        for key in ("_final_obs", "_final_info", "_episode"):
            assert torch.equal(info[key].cpu(), done), key
        assert torch.equal(info["final_info"]["_episode"].cpu(), done)
        for i in done.nonzero().flatten().tolist():
            final = info["final_obs"][i]
            assert not torch.equal(final, obs[i]), (
                "final_obs must be the last obs of the ended episode, not the new one"
            )
            assert env.single_observation_space.contains(final.cpu().numpy())
            torch.testing.assert_close(info["episode"]["r"][i].cpu().float(), episode_return[i])
            assert int(info["episode"]["l"][i]) == int(episode_length[i])
            torch.testing.assert_close(info["final_info"]["episode"]["r"][i].cpu().float(), episode_return[i])
            assert int(info["final_info"]["episode"]["l"][i]) == int(episode_length[i])
            episode_return[i] = 0.0
            episode_length[i] = 0
            ended += 1
        if ended >= 20 and step >= 50:
            break
    assert ended >= 20, "too few episodes ended to check the autoreset"


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_reset_clears_episode_statistics(env_id):
    env = make(env_id, 2)
    env.reset(seed=0)
    gen = torch.Generator().manual_seed(0)
    for _ in range(5):
        env.step(sample_actions(env, gen))
    env.reset(seed=0)
    # After a reset, the first episode to end must report only the steps taken since the reset.
    length = 0
    while True:
        _, _, terminated, truncated, info = env.step(sample_actions(env, gen))
        length += 1
        done = terminated | truncated
        if bool(done.any()):
            i = int(done.nonzero()[0])
            assert int(info["episode"]["l"][i]) == length
            break
        assert length < 5000


# ----------------------------------------------------------------------------- seeding
@pytest.mark.parametrize("env_id", ENV_IDS)
def test_same_seed_gives_identical_streams(env_id):
    # 250 steps: longer than a Pendulum-v1 episode (200 steps, no termination), so the stream crosses an autoreset.
    first = rollout(make(env_id), seed=11, action_seed=5, steps=250)
    second_env = make(env_id)
    second = rollout(second_env, seed=11, action_seed=5, steps=250)
    assert_streams_equal(first, second)
    # Re-seeding an env that has already run restarts the same stream.
    assert_streams_equal(first, rollout(second_env, seed=11, action_seed=5, steps=250))
    assert any(bool((s[2] | s[3]).any()) for s in first[1:]), "the stream should include episode ends"


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_different_seeds_give_different_streams(env_id):
    a = rollout(make(env_id), seed=11, action_seed=5, steps=50)
    b = rollout(make(env_id), seed=12, action_seed=5, steps=50)
    assert any(not torch.equal(x[0], y[0]) for x, y in zip(a, b))


# ----------------------------------------------------------------------------- checkpoints
@pytest.mark.parametrize("env_id", ENV_IDS)
def test_state_dict_round_trip_continues_identically(env_id):
    if not vec_env_class(env_id).restorable:
        pytest.skip(f"{env_id} declares restorable = False")
    env = make(env_id)
    env.reset(seed=21)
    gen = torch.Generator().manual_seed(21)
    for _ in range(37):
        env.step(sample_actions(env, gen))
    state = env.state_dict()
    action_state = gen.get_state()

    def continue_for(target, steps=200):  # 37 + 200 steps pass the 200-step truncation of Pendulum-v1
        gen.set_state(action_state)
        out = []
        for _ in range(steps):
            obs, reward, terminated, truncated, info = target.step(sample_actions(target, gen))
            out.append(
                tuple(
                    t.cpu().clone()
                    for t in (
                        obs,
                        reward,
                        terminated,
                        truncated,
                        info["final_obs"],
                        info["episode"]["r"],
                        info["episode"]["l"],
                    )
                )
            )
        return out

    expected = continue_for(env)
    assert any(bool((s[2] | s[3]).any()) for s in expected), "continuation should include episode ends (resets)"

    other = make(env_id)
    other.reset(seed=999)
    other.load_state_dict(state)
    assert_streams_equal(expected, continue_for(other))

    env.load_state_dict(state)  # rewinding the original env works too
    assert_streams_equal(expected, continue_for(env))


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_load_state_dict_rejects_other_num_envs(env_id):
    if not vec_env_class(env_id).restorable:
        pytest.skip(f"{env_id} declares restorable = False")
    state = make(env_id, 4).state_dict()
    with pytest.raises(ValueError):
        make(env_id, 3).load_state_dict(state)


# ----------------------------------------------------------------------------- bad input
def _valid_actions(env):
    return sample_actions(env, torch.Generator().manual_seed(0))


def _expect_space_error(env, actions):
    with pytest.raises(ValueError) as excinfo:
        env.step(actions)
    assert str(env.single_action_space) in str(excinfo.value), f"message does not name the space: {excinfo.value}"


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_wrong_shape_is_rejected(env_id):
    env = make(env_id, 4)
    env.reset(seed=0)
    good = _valid_actions(env)
    _expect_space_error(env, torch.cat([good, good[:1]]))  # one action too many
    _expect_space_error(env, good[:3])  # one too few
    _expect_space_error(env, good.unsqueeze(-1))  # extra trailing dim


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_wrong_dtype_is_rejected(env_id):
    env = make(env_id, 4)
    env.reset(seed=0)
    good = _valid_actions(env)
    space = env.single_action_space
    if isinstance(space, (spaces.Discrete, spaces.MultiDiscrete)):
        _expect_space_error(env, good.float())
        _expect_space_error(env, good.bool())
    elif isinstance(space, spaces.Box):
        _expect_space_error(env, good.long())
    else:
        pytest.skip(f"no wrong dtype defined for {space}")


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_numpy_actions_are_rejected(env_id):
    env = make(env_id, 4)
    env.reset(seed=0)
    _expect_space_error(env, _valid_actions(env).cpu().numpy())
    _expect_space_error(env, _valid_actions(env).tolist())


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_wrong_device_is_rejected(env_id):
    # The "meta" device makes the device check testable on a CPU-only machine.
    env = make(env_id, 4)
    env.reset(seed=0)
    other = "meta" if env.device.type != "meta" else "cpu"
    _expect_space_error(env, _valid_actions(env).to(other))


# ----------------------------------------------------------------------------- validate
def _out_of_range_actions(env) -> list[torch.Tensor]:
    space, n = env.single_action_space, env.num_envs
    dtype = torch_dtype(space)
    if isinstance(space, spaces.Discrete):
        return [
            torch.full((n,), int(space.start + space.n), dtype=dtype),
            torch.full((n,), int(space.start) - 1, dtype=dtype),
        ]
    if isinstance(space, spaces.Box):
        bad = [torch.full((n, *space.shape), float("nan"), dtype=dtype)]
        if np.all(np.isfinite(space.high)):
            bad.append(torch.as_tensor(space.high + 1.0, dtype=dtype).expand(n, *space.shape).clone())
        return bad
    pytest.skip(f"no out-of-range action defined for {space}")


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_validate_true_rejects_out_of_range_actions(env_id):
    env = make(env_id, 4, validate=True)
    env.reset(seed=0)
    env.step(_valid_actions(env))  # valid actions pass
    for bad in _out_of_range_actions(env):
        with pytest.raises(ValueError, match="outside the action space"):
            env.step(bad.to(env.device))


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_validate_false_does_not_check_values(env_id, monkeypatch):
    env = make(env_id, 4, validate=False)
    env.reset(seed=0)
    calls = []
    monkeypatch.setattr(env, "_check_action_values", lambda actions: calls.append(actions))
    for bad in _out_of_range_actions(env):
        try:
            env.step(bad.to(env.device))
        except ValueError as error:
            pytest.fail(f"validate=False must not check action values, got {error}")
        except Exception:
            pass  # what an unchecked out-of-range action does is the env's business
    assert calls == []
    # The spy is live: with validate on, the same env does call it.
    env.validate = True
    env.step(_valid_actions(env))
    assert len(calls) == 1


@pytest.mark.parametrize("bad", [0, -1, 2.5, True])
@pytest.mark.parametrize("env_id", ENV_IDS)
def test_bad_num_envs_is_rejected(env_id, bad):
    with pytest.raises(ValueError, match="num_envs"):
        rlcourse.make_vec(env_id, num_envs=bad)
    with pytest.raises(ValueError, match="num_envs"):
        vec_env_class(env_id)(num_envs=bad)


# ----------------------------------------------------------------------------- batch vs single env
@pytest.mark.parametrize("env_id", ENV_IDS)
def test_single_env_matches_batched_env_with_one_env(env_id):
    seed = 17
    single = gym.make(env_id)
    vec = make(env_id, 1)
    s_obs, _ = single.reset(seed=seed)
    v_obs, _ = vec.reset(seed=seed)
    assert isinstance(s_obs, np.ndarray)
    np.testing.assert_array_equal(s_obs, v_obs[0].cpu().numpy())

    gen = torch.Generator().manual_seed(4)
    episodes = steps = 0
    while steps < 300 or episodes < 5:
        assert steps < 20_000, "too few episode ends"
        actions = sample_actions(vec, gen)
        s_obs, s_reward, s_terminated, s_truncated, _ = single.step(actions[0].cpu().numpy())
        v_obs, v_reward, v_terminated, v_truncated, info = vec.step(actions)
        steps += 1
        done = s_terminated or s_truncated
        expected_obs = info["final_obs"][0] if done else v_obs[0]
        np.testing.assert_array_equal(s_obs, expected_obs.cpu().numpy(), err_msg=f"step {steps}")
        assert s_reward == float(v_reward[0])
        assert s_terminated == bool(v_terminated[0])
        assert s_truncated == bool(v_truncated[0])
        if done:
            episodes += 1
            s_obs, _ = single.reset()  # unseeded: continues the batched stream
            np.testing.assert_array_equal(s_obs, v_obs[0].cpu().numpy())
    assert episodes >= 5


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_single_env_stepping_past_the_end_then_reset_gives_the_current_state(env_id):
    # Stepping on after an episode ended (without reset) continues the batched env's new episode;
    # a later unseeded reset() must not hand out the observation saved at that episode end.
    import gymnasium as gym

    env = gym.make(env_id).unwrapped
    env.reset(seed=0)
    ended_at = None
    for step in range(2000):
        obs, _, terminated, truncated, _ = env.step(env.action_space.sample())
        if terminated or truncated:
            ended_at = step
            break
    assert ended_at is not None
    obs, *_ = env.step(env.action_space.sample())  # past the end, no reset
    reset_obs, _ = env.reset()
    assert np.array_equal(reset_obs, env.vec._observe()[0].numpy())
