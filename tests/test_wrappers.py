"""Env wrappers (rlcourse.wrappers): pass-through, SB3 VecNormalize parity, exact resume, reward functions."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces
from stable_baselines3.common.running_mean_std import RunningMeanStd as SB3RunningMeanStd
from stable_baselines3.common.vec_env import VecNormalize
from stable_baselines3.common.vec_env.base_vec_env import VecEnv

import rlcourse
from rlcourse.vec_env import TensorVecEnv
from rlcourse.wrappers import (
    NormalizeObservation,
    NormalizeReward,
    RewardFunction,
    RunningMeanStd,
    TensorVecEnvWrapper,
    TransitionBatch,
)

SCALE = torch.tensor([1.0, 10.0, 0.01])
OFFSET = torch.tensor([0.0, 5.0, -3.0])


class NoisyEnv(TensorVecEnv):
    """Observations on very different scales, noisy rewards, episodes of random length: what normalisation is for."""

    single_observation_space = spaces.Box(-np.inf, np.inf, (3,), dtype=np.float32)
    single_action_space = spaces.Discrete(2)
    state_names = ("elapsed",)

    def __init__(self, num_envs: int, device="cpu", validate: bool = False):
        super().__init__(num_envs, device, validate)
        self.elapsed = torch.zeros(self.num_envs, dtype=torch.int32, device=self.device)

    def _reset_where(self, mask):
        self.elapsed.masked_fill_(mask, 0)

    def _transition(self, actions):
        self.elapsed += 1
        reward = torch.randn(self.num_envs, generator=self.generator, device=self.device) * 3 + actions.float()
        terminated = torch.rand(self.num_envs, generator=self.generator, device=self.device) < 0.1
        return reward, terminated, (self.elapsed >= 7) & ~terminated, {}

    def _observe(self):
        noise = torch.randn(self.num_envs, 3, generator=self.generator, device=self.device)
        return noise * SCALE.to(self.device) + OFFSET.to(self.device)


class CounterEnv(TensorVecEnv):
    """Deterministic: the observation counts the steps of the episode (3 steps, then truncation); reward = action."""

    single_observation_space = spaces.Box(0.0, 3.0, (1,), dtype=np.float32)
    single_action_space = spaces.Discrete(3)
    state_names = ("elapsed",)

    def __init__(self, num_envs: int, device="cpu", validate: bool = False):
        super().__init__(num_envs, device, validate)
        self.elapsed = torch.zeros(self.num_envs, dtype=torch.int32, device=self.device)

    def _reset_where(self, mask):
        self.elapsed.masked_fill_(mask, 0)

    def _transition(self, actions):
        self.elapsed += 1
        truncated = self.elapsed >= 3
        return actions.float(), torch.zeros_like(truncated), truncated, {}

    def _observe(self):
        return self.elapsed[:, None].float()


def actions_at(step: int, n: int) -> torch.Tensor:
    return (torch.arange(n) + step) % 2


def collect(env: TensorVecEnv, steps: int, start: int = 0) -> list[tuple[torch.Tensor, ...]]:
    return [env.step(actions_at(start + t, env.num_envs))[:4] for t in range(steps)]


# ----------------------------------------------------------------------------- pass-through
@pytest.mark.parametrize("levels", [1, 2])
def test_slot_filling_declarations_and_masks_pass_through(levels):
    inner = rlcourse.make_vec("rlcourse/SlotFilling-v0", 4)
    env = inner
    for _ in range(levels):
        env = TensorVecEnvWrapper(env)
    assert env.unwrapped is inner and (env.env is inner) == (levels == 1)
    assert env.outcome_keys == inner.outcome_keys == ("success",)
    assert (env.has_action_masks, env.has_transcripts, env.has_rule_expert) == (True, True, True)
    assert env.options() == inner.options() and env.env_id == "rlcourse/SlotFilling-v0"
    assert env.metadata["render_modes"] == ["ansi"] and env.generator is inner.generator
    assert env.single_observation_space == inner.single_observation_space and env.action_space == inner.action_space
    assert (env.num_envs, env.device, env.restorable, env.graph_safe) == (4, inner.device, True, True)
    env.recording = True
    assert inner.recording
    obs, _ = env.reset(seed=3)
    for _ in range(3):
        masks = env.action_masks()
        assert torch.equal(masks, inner.action_masks())
        obs, reward, *_, info = env.step(masks.int().argmax(1))
        assert "acts" in info and torch.equal(obs, inner._observe())
    assert env.rule_expert()(obs).shape == (4,)
    assert isinstance(env.render_turn(info, 0), list) and env.episode_length is inner.episode_length


def test_cartpole_state_dict_nests_per_level_and_round_trips():
    inner = rlcourse.make_vec("rlcourse/CartPole-v1", 4)
    env = NormalizeObservation(TensorVecEnvWrapper(inner))
    env.reset(seed=0)
    collect(env, 5)
    state = env.state_dict()
    assert set(state) == {"env", "wrapper"} and set(state["wrapper"]) == {"mean", "var", "count"}
    assert state["env"]["wrapper"] == {} and set(state["env"]["env"]) == set(inner.state_dict())
    assert torch.equal(state["env"]["env"]["physics"], inner.physics)
    addresses = [inner.physics.data_ptr(), env.rms.mean.data_ptr()]
    collect(env, 5)
    env.load_state_dict(state)
    assert torch.equal(inner.physics, state["env"]["env"]["physics"]) and torch.equal(
        env.rms.count, state["wrapper"]["count"]
    )
    assert [inner.physics.data_ptr(), env.rms.mean.data_ptr()] == addresses  # in place: captured graphs stay valid


def test_wrapping_something_else_is_a_type_error():
    with pytest.raises(TypeError, match="wraps a TensorVecEnv.*got CartPoleEnv"):
        TensorVecEnvWrapper(gym.make("CartPole-v1").unwrapped)
    with pytest.raises(TypeError, match="got str"):
        NormalizeObservation("rlcourse/CartPole-v1")


def test_normalize_options_are_checked():
    env = rlcourse.make_vec("rlcourse/CartPole-v1", 2)
    with pytest.raises(ValueError, match="clip > 0"):
        NormalizeObservation(env, clip=0.0)
    with pytest.raises(ValueError, match="epsilon > 0"):
        NormalizeReward(env, epsilon=-1.0)
    with pytest.raises(ValueError, match="0 <= gamma <= 1"):
        NormalizeReward(env, gamma=1.5)


# ----------------------------------------------------------------------------- SB3 parity
def test_running_mean_std_matches_sb3():
    ours, theirs = RunningMeanStd((3,), torch.device("cpu")), SB3RunningMeanStd(shape=(3,))
    rng = np.random.default_rng(0)
    for size in (1, 7, 64, 3):
        batch = rng.normal([1.0, -50.0, 0.0], [0.1, 20.0, 3.0], size=(size, 3))
        ours.update(torch.from_numpy(batch))
        theirs.update(batch)
    np.testing.assert_allclose(ours.mean.numpy(), theirs.mean, rtol=1e-12)
    np.testing.assert_allclose(ours.var.numpy(), theirs.var, rtol=1e-12)
    assert float(ours.count) == pytest.approx(theirs.count, rel=1e-15) and theirs.count == pytest.approx(75.0001)


class ReplayVecEnv(VecEnv):
    """An SB3 VecEnv that replays recorded observations, rewards, dones and terminal observations."""

    def __init__(self, first_obs, steps):
        super().__init__(len(first_obs), NoisyEnv.single_observation_space, NoisyEnv.single_action_space)
        self.first_obs, self.steps = first_obs, list(steps)

    def reset(self):
        return self.first_obs.copy()

    def step_async(self, actions):
        pass

    def step_wait(self):
        obs, rewards, dones, final = self.steps.pop(0)
        infos = [{"terminal_observation": final[i].copy()} if dones[i] else {} for i in range(self.num_envs)]
        return obs.copy(), rewards.copy(), dones.copy(), infos

    def close(self):
        pass

    def get_attr(self, attr_name, indices=None):
        return [None] * self.num_envs

    def set_attr(self, attr_name, value, indices=None):
        pass

    def env_method(self, method_name, *args, indices=None, **kwargs):
        return [None] * self.num_envs

    def env_is_wrapped(self, wrapper_class, indices=None):
        return [False] * self.num_envs


def record_raw(num_envs: int, steps: int, seed: int):
    env = NoisyEnv(num_envs)
    first_obs, _ = env.reset(seed=seed)
    recorded = []
    for t in range(steps):
        obs, reward, terminated, truncated, info = env.step(actions_at(t, num_envs))
        recorded.append((obs.numpy(), reward.numpy(), (terminated | truncated).numpy(), info["final_obs"].numpy()))
    return first_obs.numpy(), recorded


@pytest.mark.parametrize("order", ["obs inside", "reward inside"])
def test_normalize_pair_matches_sb3_vec_normalize(order):
    num_envs, steps, seed = 6, 40, 11
    first_obs, recorded = record_raw(num_envs, steps, seed)
    assert sum(done.sum() for _, _, done, _ in recorded) > 10  # the return resets are exercised
    sb3 = VecNormalize(ReplayVecEnv(first_obs, recorded), gamma=0.9, clip_obs=3.0, clip_reward=2.0)
    if order == "obs inside":
        env = NormalizeReward(NormalizeObservation(NoisyEnv(num_envs), clip=3.0), gamma=0.9, clip=2.0)
        obs_wrapper, reward_wrapper = env.env, env
    else:
        env = NormalizeObservation(NormalizeReward(NoisyEnv(num_envs), gamma=0.9, clip=2.0), clip=3.0)
        obs_wrapper, reward_wrapper = env, env.env
    obs, _ = env.reset(seed=seed)
    np.testing.assert_allclose(obs.numpy(), sb3.reset(), rtol=1e-5, atol=1e-5)
    for t in range(steps):
        obs, reward, terminated, truncated, info = env.step(actions_at(t, num_envs))
        sb3.step_async(actions_at(t, num_envs).numpy())
        sb3_obs, sb3_reward, dones, infos = sb3.step_wait()
        np.testing.assert_allclose(obs.numpy(), sb3_obs, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(reward.numpy(), sb3_reward, rtol=1e-5, atol=1e-6)
        for i in np.flatnonzero(dones):
            np.testing.assert_allclose(
                info["final_obs"][i].numpy(), infos[i]["terminal_observation"], rtol=1e-5, atol=1e-5
            )
    assert obs.abs().max() <= 3.0 and reward.dtype == torch.float32
    np.testing.assert_allclose(obs_wrapper.rms.mean.numpy(), sb3.obs_rms.mean, rtol=1e-6)
    np.testing.assert_allclose(obs_wrapper.rms.var.numpy(), sb3.obs_rms.var, rtol=1e-5)
    np.testing.assert_allclose(reward_wrapper.rms.var.numpy(), sb3.ret_rms.var, rtol=1e-10)
    np.testing.assert_allclose(reward_wrapper.returns.numpy(), sb3.returns, rtol=1e-10)
    assert float(obs_wrapper.rms.count) == pytest.approx(sb3.obs_rms.count, rel=1e-15)


def test_normalize_observation_by_hand():
    env = NormalizeObservation(CounterEnv(2))
    env.reset()  # two zeros join the prior (mean 0, var 1, count 1e-4): m2 = 1 * 1e-4, count 2.0001
    assert env.rms.count.item() == pytest.approx(2.0001) and env.rms.mean.item() == 0.0
    assert env.rms.var.item() == pytest.approx(1e-4 / 2.0001, rel=1e-9)
    obs, *_ = env.step(torch.tensor([0, 0]))  # two ones: delta 1, count 4.0001
    mean = 2 / 4.0001
    var = (1e-4 + 1.0**2 * 2.0001 * 2 / 4.0001) / 4.0001  # (m2_old + m2_batch (0) + delta^2 * n_a * n_b / n) / n
    assert env.rms.mean.item() == pytest.approx(mean, rel=1e-12) and env.rms.var.item() == pytest.approx(var, rel=1e-12)
    assert obs[:, 0].tolist() == pytest.approx([(1 - mean) / np.sqrt(var + 1e-8)] * 2, rel=1e-6)
    env.training = False
    env.step(torch.tensor([0, 0]))
    assert env.rms.count.item() == pytest.approx(4.0001)  # frozen


# ----------------------------------------------------------------------------- exact resume
def test_normalize_statistics_resume_bit_identical():
    def build():
        return NormalizeReward(NormalizeObservation(NoisyEnv(5)), gamma=0.95)

    env = build()
    env.reset(seed=4)
    collect(env, 13)
    state = env.state_dict()
    continued = collect(env, 9, start=13)
    fresh = build()
    fresh.reset(seed=99)
    collect(fresh, 2)  # different statistics before the load
    fresh.load_state_dict(state)
    resumed = collect(fresh, 9, start=13)
    for a, b in zip(continued, resumed):
        for x, y in zip(a, b):
            assert torch.equal(x, y)
    for x, y in zip(env.state_dict()["wrapper"].values(), fresh.state_dict()["wrapper"].values()):
        assert torch.equal(x, y)
    assert torch.equal(env.env.rms.var, fresh.env.rms.var) and torch.equal(env.env.rms.count, fresh.env.rms.count)


def snapshot(env):
    return {key: value.clone() for key, value in _flatten(env.state_dict()).items()}


def _flatten(state, prefix=""):
    flat = {}
    for key, value in state.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[prefix + key] = value
    return flat


def assert_same_state(before, env):
    after = _flatten(env.state_dict())
    assert before.keys() == after.keys() and all(torch.equal(before[key], after[key]) for key in before)


def test_mismatched_states_change_nothing():
    env = NormalizeReward(NormalizeObservation(rlcourse.make_vec("rlcourse/CartPole-v1", 4)))
    env.reset(seed=0)
    collect(env, 3)
    before = snapshot(env)
    other = NormalizeReward(NormalizeObservation(rlcourse.make_vec("rlcourse/CartPole-v1", 8)))
    with pytest.raises(ValueError, match="NormalizeReward state 'returns' has shape \\(8,\\).*expected shape \\(4,\\)"):
        env.load_state_dict(other.state_dict())
    with pytest.raises(ValueError, match="keys \\['env', 'wrapper'\\].*saved unwrapped"):
        env.load_state_dict(env.unwrapped.state_dict())
    with pytest.raises(
        ValueError, match="NormalizeObservation state has the entries \\['count', 'mean', 'returns', 'var'\\]"
    ):
        swapped = env.state_dict()
        swapped["env"]["wrapper"] = swapped["wrapper"]
        env.load_state_dict(swapped)
    bad_inner = env.state_dict()  # both wrappers fit, the env does not: the wrappers must not load either
    bad_inner["wrapper"]["count"] += 100
    bad_inner["env"]["env"]["physics"] = torch.zeros(4, 5)
    with pytest.raises(ValueError, match="env state 'physics' has shape"):
        env.load_state_dict(bad_inner)
    assert_same_state(before, env)


# ----------------------------------------------------------------------------- spawn, transcripts, rule expert
def test_spawn_gives_frozen_copies_with_equal_statistics():
    env = NormalizeReward(NormalizeObservation(NoisyEnv(4), clip=5.0), gamma=0.9)
    env.reset(seed=1)
    collect(env, 6)
    copy = env.spawn(3)
    assert isinstance(copy, NormalizeReward) and isinstance(copy.env, NormalizeObservation)
    assert isinstance(copy.unwrapped, NoisyEnv) and copy.num_envs == 3 and copy.unwrapped is not env.unwrapped
    assert (copy.training, copy.env.training, env.training, env.env.training) == (False, False, True, True)
    assert (copy.gamma, copy.env.clip) == (0.9, 5.0)
    for ours, theirs in ((env.rms, copy.rms), (env.env.rms, copy.env.rms)):
        for name, value in ours.tensors().items():
            assert torch.equal(value, theirs.tensors()[name]) and value.data_ptr() != theirs.tensors()[name].data_ptr()
    frozen = snapshot(copy)
    copy.reset(seed=2)
    collect(copy, 4)
    for key in ("wrapper.mean", "wrapper.var", "wrapper.count", "env.wrapper.mean", "env.wrapper.count"):
        assert torch.equal(frozen[key], _flatten(copy.state_dict())[key])


def test_play_transcripts_shows_the_policy_normalised_observations():
    env = NormalizeObservation(rlcourse.make_vec("rlcourse/SlotFilling-v0", 4))
    env.reset(seed=0)
    collect_masked(env, 5)
    before = snapshot(env)
    seen = {"wrapped": [], "raw": []}

    def policy(key):
        def act(obs, masks):
            seen[key].append(obs.clone())
            return masks.int().argmax(1)

        return act

    texts = env.play_transcripts(policy("wrapped"), 2, seed=7)
    raw_texts = env.unwrapped.play_transcripts(policy("raw"), 2, seed=7)
    assert texts == raw_texts and len(seen["wrapped"]) == len(seen["raw"]) > 0
    for wrapped, raw in zip(seen["wrapped"], seen["raw"]):
        assert torch.equal(wrapped, env.observation(raw)) and not torch.equal(wrapped, raw)
    assert_same_state(before, env)


def collect_masked(env, steps):
    for _ in range(steps):
        env.step(env.action_masks().int().argmax(1))


def test_rule_expert_is_withheld_where_observations_change():
    env = NormalizeObservation(rlcourse.make_vec("rlcourse/SlotFilling-v0", 2))
    assert env.env.has_rule_expert and not env.has_rule_expert
    with pytest.raises(NotImplementedError, match="changes the observations the rule expert reads"):
        env.rule_expert()
    assert RewardFunction(env.env, lambda b: b.rewards).has_rule_expert


# ----------------------------------------------------------------------------- reward functions
def test_reward_function_sees_the_true_transition():
    batches = []

    def fn(batch: TransitionBatch) -> torch.Tensor:
        assert batch.action_masks is None  # CounterEnv declares no action masks
        batches.append(
            {
                name: getattr(batch, name).clone()
                for name in (*batch.__dataclass_fields__, "dones")
                if name != "action_masks"
            }
        )
        return batch.next_obs[:, 0] - batch.obs[:, 0] + 10 * batch.truncated

    env = RewardFunction(CounterEnv(2), fn, mode="replace", scale=2.0)
    env.reset()
    rewards = [env.step(torch.tensor([0, 2]))[1].tolist() for _ in range(4)]
    # next - obs is 1 every step, the truncating one too (its next_obs is the final obs 3, not the reset 0)
    assert rewards == [[2.0, 2.0], [2.0, 2.0], [22.0, 22.0], [2.0, 2.0]]
    assert [b["obs"][:, 0].tolist() for b in batches] == [[0, 0], [1, 1], [2, 2], [0, 0]]
    assert [b["next_obs"][:, 0].tolist() for b in batches] == [[1, 1], [2, 2], [3, 3], [1, 1]]
    assert batches[2]["truncated"].tolist() == [True, True] and not batches[2]["terminated"].any()
    assert [b["dones"].tolist() for b in batches] == [[False, False], [False, False], [True, True], [False, False]]
    assert batches[0]["rewards"].tolist() == [0.0, 2.0] and batches[0]["actions"].tolist() == [0, 2]


def test_reward_function_add_mode_and_episode_statistics_stay_the_env_own():
    env = RewardFunction(CounterEnv(2), lambda batch: batch.next_obs[:, 0] * 10, mode="add", scale=0.5)
    env.reset()
    steps = [env.step(torch.tensor([1, 2])) for _ in range(3)]
    assert [s[1].tolist() for s in steps] == [[6.0, 7.0], [11.0, 12.0], [16.0, 17.0]]  # action + 0.5 * 10 * next_obs
    info = steps[-1][4]
    assert info["_episode"].all() and info["episode"]["r"].tolist() == [3.0, 6.0]  # the env's own return


class LinearRewardModel(torch.nn.Module):
    """A RewardModel (DESIGN's plug-in protocol): ``reward(batch)``; ``forward`` is never the one called."""

    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.tensor(3.0))

    def forward(self, batch):
        raise AssertionError("a RewardModel is called through reward(batch)")

    def reward(self, batch: TransitionBatch) -> torch.Tensor:
        return batch.next_obs[:, 0] * self.weight


def test_reward_model_module_is_called_through_reward_and_not_saved():
    env = RewardFunction(CounterEnv(2), LinearRewardModel())
    env.reset()
    reward = env.step(torch.tensor([0, 0]))[1]
    assert reward.tolist() == [3.0, 3.0] and not reward.requires_grad
    assert set(env.state_dict()["wrapper"]) == {"last_obs"}
    assert env.spawn(3).fn is env.fn


def test_reward_function_bad_inputs():
    env = CounterEnv(2)
    with pytest.raises(ValueError, match="mode must be one of 'replace', 'add', got 'multiply'"):
        RewardFunction(env, lambda b: b.rewards, mode="multiply")
    with pytest.raises(TypeError, match="callable fn\\(batch\\) or a module with reward\\(batch\\), got int"):
        RewardFunction(env, 3)
    wrong = RewardFunction(env, lambda b: b.next_obs)  # [B, 1], not [B]
    wrong.reset()
    with pytest.raises(ValueError, match="shape \\(2,\\) \\(one reward per sub-env\\), got shape \\(2, 1\\)"):
        wrong.step(torch.tensor([0, 0]))
    not_tensor = RewardFunction(env, lambda b: [1.0, 2.0])
    with pytest.raises(ValueError, match="got list"):
        not_tensor.step(torch.tensor([0, 0]))


# ----------------------------------------------------------------------------- with an agent
def test_a_wrapped_env_trains_evaluates_and_checkpoints(tmp_path, one_torch_thread):
    from rlcourse.agents import PPO

    env = NormalizeObservation(rlcourse.make_vec("rlcourse/CartPole-v1", 8))
    agent = PPO(env, device="cpu", n_steps=16, batch_size=64)
    agent.learn(2048)
    assert env.rms.count.item() == pytest.approx(2048 + 8, abs=0.01)  # 2048 steps' and 8 reset obs
    stats_before = snapshot(env)
    result = agent.evaluate(n_episodes=4)
    assert result["n_episodes"] == 4 and result["mean_length"] > 0
    assert_same_state(stats_before, env)  # evaluation ran on a frozen copy
    agent.save(tmp_path / "c.pt")
    loaded_env = NormalizeObservation(rlcourse.make_vec("rlcourse/CartPole-v1", 8))
    loaded = PPO.load(tmp_path / "c.pt", device="cpu", env=loaded_env)
    assert torch.equal(loaded_env.rms.mean, env.rms.mean) and torch.equal(loaded_env.rms.count, env.rms.count)
    assert loaded.env is loaded_env


# ----------------------------------------------------------------------------- CUDA graphs
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_wrapped_step_replays_in_a_cuda_graph_as_it_runs_eagerly():
    def build():
        env = RewardFunction(CounterEnv(64, device="cuda"), lambda b: b.next_obs[:, 0] - b.obs[:, 0], mode="add")
        return NormalizeReward(NormalizeObservation(env))

    actions = torch.arange(64, device="cuda") % 3
    eager, captured = build(), build()
    assert captured.graph_safe
    for env in (eager, captured):
        env.reset()
    for _ in range(10):
        expected = eager.step(actions)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        captured.step(actions)  # warm-up: this is step 1
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        outputs = captured.step(actions)
    for _ in range(9):
        graph.replay()
    torch.cuda.synchronize()
    for x, y in zip(expected[:4], outputs[:4]):
        assert torch.allclose(x, y, rtol=1e-6, atol=1e-6)
    assert torch.allclose(expected[4]["final_obs"], outputs[4]["final_obs"], rtol=1e-6, atol=1e-6)
    assert torch.equal(eager.rms.count, captured.rms.count) and torch.allclose(eager.env.rms.var, captured.env.rms.var)
