"""``rlcourse.sb3``: a batched env behind Stable-Baselines3's ``VecEnv`` API.

Checked against the batched env it wraps (same seed, same actions), through SB3's own wrappers and
algorithms (``VecCheckNan``, ``VecMonitor``, ``VecNormalize``, ``evaluate_policy``, PPO, sb3-contrib's
MaskablePPO), and for the errors a user meets first.
"""

from __future__ import annotations

import warnings
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces
from gymnasium.vector import AutoresetMode
from identity_envs import IdentityEnv, MaskedIdentityEnv
from stable_baselines3 import PPO
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.logger import KVWriter, Logger
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import VecCheckNan, VecEnv, VecEnvWrapper, VecMonitor, VecNormalize

import rlcourse
from rlcourse.sb3 import SB3VecEnv, make_sb3_vec_env
from rlcourse.vec_env import TensorVecEnv
from rlcourse.wrappers import NormalizeReward

pytestmark = pytest.mark.usefixtures("one_torch_thread")

DIALOGUE = "rlcourse/SlotFilling-v0"
CARTPOLE = "rlcourse/CartPole-v1"


class EchoEnv(TensorVecEnv):
    """Observation: the last action as floats; reward: its sum; an episode lasts 3 steps. Any action space."""

    state_names = ("last", "elapsed")

    def __init__(self, num_envs: int, action_space: spaces.Space, device="cpu"):
        self.single_action_space = action_space
        self.single_observation_space = spaces.Box(-10.0, 10.0, (int(np.prod(action_space.shape)),), np.float32)
        super().__init__(num_envs, device)
        self.last = torch.zeros(self.num_envs, *self.single_observation_space.shape, device=self.device)
        self.elapsed = torch.zeros(self.num_envs, dtype=torch.int64, device=self.device)

    def _reset_where(self, mask):
        self.last.masked_fill_(mask[:, None], 0.0)
        self.elapsed.masked_fill_(mask, 0)

    def _transition(self, actions):
        self.last.copy_(actions.float().reshape(self.num_envs, -1))
        self.elapsed += 1
        truncated = self.elapsed >= 3
        return self.last.sum(1), torch.zeros_like(truncated), truncated, {}

    def _observe(self):
        return self.last.clone()


class RecordingWriter(KVWriter):
    """An SB3 logger output that keeps every key it was given."""

    def __init__(self) -> None:
        self.keys: set[str] = set()

    def write(self, key_values: dict[str, Any], key_excluded: dict[str, Any], step: int = 0) -> None:
        self.keys.update(key_values)


class MaskAudit(VecEnvWrapper):
    """Counts the actions that the inner adapter's masks forbid, as they are stepped."""

    def __init__(self, venv: SB3VecEnv):
        super().__init__(venv)
        self.masked_taken = 0
        self.actions_taken = 0

    def step_async(self, actions: np.ndarray) -> None:
        masks = self.venv.action_masks()
        self.masked_taken += int((~masks[np.arange(self.num_envs), actions]).sum())
        self.actions_taken += self.num_envs
        self.venv.step_async(actions)

    def reset(self):
        return self.venv.reset()

    def step_wait(self):
        return self.venv.step_wait()


def random_valid_actions(masks: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One uniformly random valid action per row of ``masks``."""
    scores = rng.random(masks.shape) * masks
    return scores.argmax(1)


# --------------------------------------------------------------------------- the API
def test_it_is_an_sb3_vec_env_with_the_single_spaces():
    vec = make_sb3_vec_env(DIALOGUE, 8, seed=0)
    assert isinstance(vec, VecEnv) and vec.num_envs == 8
    assert vec.observation_space == vec.env.single_observation_space
    assert vec.action_space == vec.env.single_action_space
    obs = vec.reset()
    assert obs.shape == (8, *vec.observation_space.shape) and obs.dtype == np.float32
    obs, rewards, dones, infos = vec.step(np.zeros(8, dtype=np.int64))
    assert rewards.dtype == np.float32 and rewards.shape == (8,)
    assert dones.dtype == bool and isinstance(infos, list) and len(infos) == 8
    assert vec.env_is_wrapped(Monitor) == [True] * 8 and vec.env_is_wrapped(gym.Wrapper, indices=[1]) == [False]
    vec.close()


def test_steps_match_the_batched_env_and_carry_sb3s_final_infos():
    """Truncation after 4 steps (IdentityEnv): SB3's dones, terminal observations, TimeLimit flag and episode info,
    hand-checked against the batched env on the same seed and actions."""
    vec, twin = SB3VecEnv(IdentityEnv(6)), IdentityEnv(6)
    vec.seed(3)
    obs = vec.reset()
    twin_obs, _ = twin.reset(seed=3)
    np.testing.assert_array_equal(obs, twin_obs.numpy())
    rng = np.random.default_rng(0)
    returns, ended = np.zeros(6), 0
    for step in range(1, 10):
        actions = rng.integers(0, 4, 6)
        obs, rewards, dones, infos = vec.step(actions)
        twin_obs, twin_rewards, terminated, truncated, twin_info = twin.step(torch.as_tensor(actions))
        np.testing.assert_array_equal(obs, twin_obs.numpy())
        np.testing.assert_array_equal(rewards, twin_rewards.numpy())
        returns += rewards
        assert dones.tolist() == [step % 4 == 0] * 6  # every episode lasts exactly 4 steps
        for i, info in enumerate(infos):
            if not dones[i]:
                assert info == {}
                continue
            ended += 1
            np.testing.assert_array_equal(info["terminal_observation"], twin_info["final_obs"][i].numpy())
            assert info["TimeLimit.truncated"] is True  # truncated, not terminated
            assert info["episode"]["r"] == returns[i] == float(twin_info["episode"]["r"][i])
            assert info["episode"]["l"] == 4 and isinstance(info["episode"]["t"], float)
            returns[i] = 0.0
    assert ended == 2 * 6


def test_terminations_are_not_time_limits_and_the_next_episode_continues():
    """CartPole pushed one way falls over within a few dozen steps: terminated, so TimeLimit.truncated is False;
    the returned observation is the fresh episode's, the terminal one the fallen pole's."""
    vec = make_sb3_vec_env(CARTPOLE, 4, seed=5)
    vec.reset()
    lengths = np.zeros(4, dtype=int)
    seen = 0
    for _ in range(60):
        obs, rewards, dones, infos = vec.step(np.ones(4, dtype=np.int64))
        lengths += 1
        for i in np.flatnonzero(dones):
            info = infos[i]
            assert info["TimeLimit.truncated"] is False
            assert info["episode"]["l"] == lengths[i] and info["episode"]["r"] == float(lengths[i])  # +1 a step
            assert abs(info["terminal_observation"][2]) > 0.2  # the pole angle passed 12 degrees
            assert np.all(np.abs(obs[i]) <= 0.05)  # the next episode's first state
            lengths[i] = 0
            seen += 1
    assert seen >= 4


def test_outcomes_are_passed_through_as_is_success():
    """The dialogue's success outcome, per ended episode, as ``success`` and SB3's ``is_success``; the rule
    expert plays half the envs so both outcomes occur."""
    vec, twin = make_sb3_vec_env(DIALOGUE, 8, seed=11), rlcourse.make_vec(DIALOGUE, 8)
    vec.reset()
    twin_obs, _ = twin.reset(seed=11)
    expert, rng = twin.rule_expert(), np.random.default_rng(1)
    outcomes = []
    for _ in range(80):
        actions = random_valid_actions(twin.action_masks().numpy(), rng)
        actions[:4] = expert(twin_obs).numpy()[:4]
        _, _, dones, infos = vec.step(actions)
        twin_obs, _, _, _, twin_info = twin.step(torch.as_tensor(actions))
        for i in np.flatnonzero(dones):
            assert infos[i]["success"] is infos[i]["is_success"] is bool(twin_info["final_info"]["success"][i])
            outcomes.append(infos[i]["success"])
    assert True in outcomes and False in outcomes


def test_reward_wrappers_keep_the_envs_own_episode_returns():
    """Under NormalizeReward the agent sees scaled rewards, the episode info the env's own (as Monitor inside
    VecNormalize), equal to what VecMonitor sums on an unwrapped copy."""
    plain, scaled = SB3VecEnv(IdentityEnv(4)), SB3VecEnv(NormalizeReward(IdentityEnv(4)))
    with pytest.warns(UserWarning, match="Monitor"):  # the adapter already writes Monitor's episode info
        monitored = VecMonitor(SB3VecEnv(IdentityEnv(4)))
    for vec in (plain, scaled, monitored):
        vec.seed(2)
        vec.reset()
    rng = np.random.default_rng(2)
    for _ in range(8):
        actions = rng.integers(0, 4, 4)
        _, raw_rewards, dones, infos = plain.step(actions)
        _, scaled_rewards, _, scaled_infos = scaled.step(actions)
        _, _, _, monitor_infos = monitored.step(actions)
        assert not np.allclose(raw_rewards, scaled_rewards) or not raw_rewards.any()
        for i in np.flatnonzero(dones):
            assert scaled_infos[i]["episode"]["r"] == infos[i]["episode"]["r"]
            assert monitor_infos[i]["episode"]["r"] == pytest.approx(infos[i]["episode"]["r"])
            assert monitor_infos[i]["episode"]["l"] == infos[i]["episode"]["l"] == 4


# --------------------------------------------------------------------------- SB3's own wrappers and algorithms
def test_sb3_wrappers_run_on_it():
    vec = make_sb3_vec_env(CARTPOLE, 4, seed=0)
    with pytest.warns(UserWarning, match="Monitor"):  # the adapter already writes Monitor's episode info
        wrapped = VecNormalize(VecMonitor(VecCheckNan(vec, raise_exception=True)))
    obs = wrapped.reset()
    assert obs.shape == (4, 4)
    episodes = 0
    for _ in range(40):
        obs, _, _, infos = wrapped.step(np.ones(4, dtype=np.int64))
        episodes += sum("episode" in info for info in infos)
        assert np.isfinite(obs).all()
    assert episodes >= 4
    checked = VecCheckNan(make_sb3_vec_env("rlcourse/Pendulum-v1", 2), raise_exception=True)
    checked.reset()
    with pytest.raises(ValueError, match="nan"):
        checked.step(np.full((2, 1), np.nan))


def test_evaluate_policy_reads_the_episode_info_without_a_monitor_warning():
    model = PPO("MlpPolicy", SB3VecEnv(IdentityEnv(4)), n_steps=16, seed=0, device="cpu")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        returns, lengths = evaluate_policy(
            model, SB3VecEnv(IdentityEnv(4)), n_eval_episodes=8, return_episode_rewards=True
        )
    assert lengths == [4] * 8 and all(r in (0.0, 1.0, 2.0, 3.0, 4.0) for r in returns)


@pytest.mark.parametrize("env_id", [DIALOGUE, CARTPOLE])
def test_sb3_ppo_trains_through_it(env_id):
    """A few thousand steps of SB3 PPO; on the dialogue SB3 logs rollout/success_rate from is_success."""
    vec = make_sb3_vec_env(env_id, 8, seed=0)
    model = PPO("MlpPolicy", vec, n_steps=64, batch_size=128, n_epochs=2, seed=0, device="cpu")
    writer = RecordingWriter()
    model.set_logger(Logger(folder=None, output_formats=[writer]))
    model.learn(3072)
    assert model.num_timesteps >= 3072 and len(model.ep_info_buffer) > 0
    assert {"rollout/ep_rew_mean", "rollout/ep_len_mean", "time/fps"} <= writer.keys
    assert ("rollout/success_rate" in writer.keys) == (env_id == DIALOGUE)


def test_sb3_ppo_learns_cartpole_through_it():
    """RL Zoo's CartPole settings (8 envs, short rollouts, many epochs) learn well past random play (~22) in 16k
    steps, judged by a deterministic evaluation on a fresh adapter."""
    model = PPO(
        "MlpPolicy",
        make_sb3_vec_env(CARTPOLE, 8, seed=0),
        n_steps=32,
        batch_size=256,
        gae_lambda=0.8,
        gamma=0.98,
        n_epochs=20,
        ent_coef=0.0,
        learning_rate=1e-3,
        clip_range=0.2,
        seed=0,
        device="cpu",
    )
    model.learn(16_384)
    mean_return, _ = evaluate_policy(model, make_sb3_vec_env(CARTPOLE, 8, seed=123), n_eval_episodes=16)
    assert mean_return >= 200.0


def test_maskable_ppo_uses_the_dialogue_masks():
    """MaskablePPO reads the masks through env_method and never steps a masked action; plain PPO, which
    does not read them, does (so the audit can fail)."""
    from sb3_contrib import MaskablePPO

    masked = MaskAudit(make_sb3_vec_env(DIALOGUE, 8, seed=0))
    model = MaskablePPO("MlpPolicy", masked, n_steps=64, batch_size=128, n_epochs=2, seed=0, device="cpu")
    model.learn(2048)
    assert masked.actions_taken >= 2048 and masked.masked_taken == 0
    assert len(model.ep_success_buffer) > 0

    unmasked = MaskAudit(make_sb3_vec_env(DIALOGUE, 8, seed=0))
    PPO("MlpPolicy", unmasked, n_steps=64, seed=0, device="cpu").learn(512)
    assert unmasked.masked_taken > 0


def test_masks_follow_the_batched_env():
    vec = make_sb3_vec_env(DIALOGUE, 4, seed=0)
    vec.reset()
    assert vec.has_attr("action_masks")
    rows = vec.env_method("action_masks")
    masks = vec.action_masks()
    np.testing.assert_array_equal(np.stack(rows), masks)
    np.testing.assert_array_equal(masks, vec.env.action_masks().numpy())
    np.testing.assert_array_equal(np.stack(vec.env_method("action_masks", indices=[2, 0])), masks[[2, 0]])
    assert masks.dtype == bool and not masks.all()  # the first turn offers only some acts
    assert not make_sb3_vec_env(CARTPOLE, 2).has_attr("action_masks")
    with pytest.raises(AttributeError, match="has_action_masks"):
        make_sb3_vec_env(CARTPOLE, 2).action_masks()


# --------------------------------------------------------------------------- seeding and spaces
def obs_stream(vec: SB3VecEnv, steps: int = 30) -> np.ndarray:
    rng = np.random.default_rng(0)
    frames = [vec.reset()]
    for _ in range(steps):
        frames.append(vec.step(rng.integers(0, vec.action_space.n, vec.num_envs))[0])
    return np.stack(frames)


def test_the_same_seed_gives_the_same_observation_stream():
    first = obs_stream(make_sb3_vec_env(DIALOGUE, 4, seed=7))
    second = SB3VecEnv(rlcourse.make_vec(DIALOGUE, 4))
    assert second.seed(7) == [7] * 4
    np.testing.assert_array_equal(first, obs_stream(second))
    assert not np.array_equal(first, obs_stream(make_sb3_vec_env(DIALOGUE, 4, seed=8)))
    twin = rlcourse.make_vec(DIALOGUE, 4)
    np.testing.assert_array_equal(first[0], twin.reset(seed=7)[0].numpy())  # the batched env's own stream
    # SB3 applies a seed once: a later reset() continues the generator instead of repeating the stream
    again = make_sb3_vec_env(DIALOGUE, 4, seed=7)
    np.testing.assert_array_equal(again.reset(), first[0])
    assert not np.array_equal(again.reset(), first[0])


@pytest.mark.parametrize(
    "space", [spaces.MultiDiscrete([3, 4]), spaces.MultiBinary(3), spaces.Box(-1.0, 1.0, (2,), np.float32)]
)
def test_action_spaces_arrive_as_the_env_expects(space):
    """Actions of each space reach the env unchanged (EchoEnv shows them back), and SB3 PPO runs on them."""
    vec = SB3VecEnv(EchoEnv(4, action_space=space))
    vec.reset()
    actions = np.stack([space.sample() for _ in range(4)])
    obs, rewards, _, _ = vec.step(actions)
    np.testing.assert_allclose(obs, actions.reshape(4, -1).astype(np.float32))
    np.testing.assert_allclose(rewards, actions.reshape(4, -1).sum(1), rtol=1e-6)
    PPO("MlpPolicy", vec, n_steps=16, batch_size=32, n_epochs=1, seed=0, device="cpu").learn(64)


def test_sb3s_attribute_access_reaches_the_batched_env():
    vec = make_sb3_vec_env(DIALOGUE, 3, seed=0)
    assert vec.get_attr("outcome_keys") == [("success",)] * 3 and vec.get_attr("num_envs", indices=1) == [3]
    vec.set_attr("validate", True)
    assert vec.env.validate is True
    assert vec.env_method("options") == [vec.env.options()] * 3
    with pytest.raises(AttributeError):
        vec.get_attr("no_such_attribute")


def test_ansi_render_shows_sub_env_0s_dialogue():
    vec = make_sb3_vec_env(DIALOGUE, 2, seed=0, render_mode="ansi")
    vec.reset()
    opening = vec.render()
    assert isinstance(opening, str) and opening
    vec.step(np.zeros(2, dtype=np.int64))  # the greeting
    assert vec.render().startswith(opening) and len(vec.render()) > len(opening)


def test_rgb_array_render_is_the_envs_picture_of_sub_env_0():
    vec = make_sb3_vec_env(CARTPOLE, 2, seed=0, render_mode="rgb_array")
    assert vec.env.render_mode == "rgb_array" and vec.render_mode == "rgb_array"
    vec.reset()
    frame = vec.render()
    assert frame.dtype == np.uint8 and frame.shape == (400, 600, 3)
    np.testing.assert_array_equal(frame, vec.env.render())
    with pytest.raises(ValueError, match="render_mode='rgb_array'"):
        SB3VecEnv(rlcourse.make_vec(CARTPOLE, 2), render_mode="rgb_array")  # the env was not made to draw


# --------------------------------------------------------------------------- bad inputs
class NextStepEnv(IdentityEnv):
    metadata = {"autoreset_mode": AutoresetMode.NEXT_STEP, "render_modes": []}


class DictObsEnv(IdentityEnv):
    single_observation_space = spaces.Dict({"x": spaces.Box(0.0, 1.0, (4,), np.float32)})


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: SB3VecEnv(gym.make(CARTPOLE)), "DummyVecEnv"),
        (lambda: SB3VecEnv("rlcourse/CartPole-v1"), "make_vec"),
        (lambda: SB3VecEnv(NextStepEnv(2)), "SAME_STEP"),
        (lambda: SB3VecEnv(DictObsEnv(2)), "observation spaces Box"),
        (lambda: make_sb3_vec_env(CARTPOLE, 2, render_mode="ansi"), "render"),
        (lambda: make_sb3_vec_env(CARTPOLE, 0), "num_envs"),
        (lambda: make_sb3_vec_env(CARTPOLE, 2, seed="one"), "seed"),
    ],
)
def test_unsupported_envs_are_clear_errors(make, match):
    with pytest.raises(ValueError, match=match):
        make()


@pytest.mark.parametrize(
    ("actions", "match"),
    [
        (np.zeros(3, dtype=np.int64), r"shape \(4,\)"),
        (np.zeros((4, 1), dtype=np.int64), r"shape \(4,\)"),
        (np.array([0, 1, 2, 4]), r"in \[0, 3\]"),
        (np.array([0, -1, 0, 0]), r"in \[0, 3\]"),
        (np.array([0.5, 1, 2, 3]), "integers"),
        (np.array(["a", "b", "c", "d"]), "integers"),
    ],
)
def test_bad_actions_are_clear_errors(actions, match):
    vec = SB3VecEnv(IdentityEnv(4))
    vec.reset()
    with pytest.raises(ValueError, match=match):
        vec.step(actions)
    vec.step(np.array([0.0, 1.0, 2.0, 3.0]))  # integral floats are fine


def test_whole_batch_operations_refuse_a_subset_of_sub_envs():
    vec = make_sb3_vec_env(CARTPOLE, 3)
    with pytest.raises(ValueError, match="indices=None"):
        vec.set_attr("validate", True, indices=[0])
    with pytest.raises(ValueError, match="indices=None"):
        vec.env_method("options", indices=[1, 2])
    vec.set_options([{"a": 1}, {}, {}])
    with pytest.raises(ValueError, match="one options dict"):
        vec.reset()
    with pytest.raises(ValueError, match="step_async"):
        make_sb3_vec_env(CARTPOLE, 3).step_wait()
    with pytest.raises(ValueError, match="render_mode"):
        vec.render()


def test_masked_identity_env_masks_reach_maskable_ppo():
    """A second masked env (tests' MaskedIdentityEnv): an invalid action pays 10, so a policy that ignored the
    masks would be drawn to them; MaskablePPO through the adapter takes none."""
    from sb3_contrib import MaskablePPO

    env = MaskedIdentityEnv(8)
    MaskablePPO("MlpPolicy", SB3VecEnv(env), n_steps=32, batch_size=64, n_epochs=2, seed=0, device="cpu").learn(512)
    assert int(env.invalid_taken) == 0
