"""The single-env adapter (``gym.make("rlcourse/...")``, ``rlcourse/single_env.py``): its lean info, the public
action names, its action checks, and step-for-step parity with the batched env it runs.

The parity tests compare everything a step gives (observation, reward, both flags, the episode
statistics and outcomes at an episode's end, the action masks) with a ``num_envs=1`` batched env
built with the same seed and given the same actions, across episode ends, unseeded resets (which
continue the batched stream) and seeded ones, so an optimisation of the adapter cannot change what
it computes. The Gymnasium and SB3 checkers run on it in ``test_env_checkers.py``.
"""

from __future__ import annotations

import re

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces

import rlcourse
from rlcourse.envs.dialogue import SlotFillingVecEnv
from rlcourse.registry import vec_env_class
from rlcourse.wrappers import NormalizeObservation

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py

ENV_IDS = rlcourse.list_envs()
DIALOGUE = "rlcourse/SlotFilling-v0"
#: (env id, options): every registered env, plus settings whose code paths differ (noisy NLU, float64 physics).
CASES = [(env_id, {}) for env_id in ENV_IDS] + [
    (DIALOGUE, {"nlu": "pydial30", "domain": "restaurant"}),
    (DIALOGUE, {"nlu": "tcbot", "reward": "pydial", "max_turns": 6}),
    ("rlcourse/CartPole-v1", {"dtype": torch.float64}),
    ("rlcourse/Pendulum-v1", {"dtype": torch.float64}),
]
CASE_IDS = [
    f"{env_id.split('/')[1]}{'-' + '-'.join(map(str, opts.values())) if opts else ''}" for env_id, opts in CASES
]


def random_action(env: gym.Env, rng: np.random.Generator):
    """A valid action for the single env, drawn from ``rng`` (masked envs: among the valid ones)."""
    space = env.action_space
    if isinstance(space, spaces.Discrete):
        valid = np.flatnonzero(env.unwrapped.action_masks())
        return int(rng.choice(valid)) + int(space.start)
    return rng.uniform(space.low, space.high).astype(space.dtype)


def batched_action(vec: rlcourse.TensorVecEnv, action) -> torch.Tensor:
    return torch.as_tensor(np.asarray(action)).reshape(1, *vec.single_action_space.shape).to(vec._action_dtype)


# ----------------------------------------------------------------------------- lean info
@pytest.mark.parametrize("env_id", ENV_IDS)
def test_info_is_lean_inside_episodes_and_reports_the_outcome_at_the_end(env_id):
    env = gym.make(env_id)
    vec_cls = vec_env_class(env_id)
    masked = vec_cls.has_action_masks
    mask_keys = {"action_mask"} if masked else set()
    end_keys = {"episode", *vec_cls.outcome_keys} | ({"is_success"} if "success" in vec_cls.outcome_keys else set())
    _, info = env.reset(seed=0)
    assert set(info) == mask_keys
    rng = np.random.default_rng(0)
    ends = 0
    for _ in range(3000):
        _, reward, terminated, truncated, info = env.step(random_action(env, rng))
        assert type(reward) is float and type(terminated) is bool and type(truncated) is bool
        if not (terminated or truncated):
            assert set(info) == mask_keys, sorted(info)
            if masked:
                mask = info["action_mask"]
                assert mask.dtype == np.int8 and mask.shape == (env.action_space.n,)
                assert np.array_equal(mask.astype(bool), env.unwrapped.action_masks())
                env.action_space.sample(mask=mask)  # the form Gymnasium's own sample takes
            continue
        assert set(info) == end_keys, sorted(info)
        assert set(info["episode"]) == {"r", "l"}
        assert type(info["episode"]["r"]) is float and type(info["episode"]["l"]) is int and info["episode"]["l"] > 0
        for key in vec_cls.outcome_keys:
            assert type(info[key]) is bool
        if "success" in info:
            assert info["is_success"] is info["success"]
        ends += 1
        _, info = env.reset()
        assert set(info) == mask_keys
        if ends == 3:
            break
    assert ends == 3


def test_info_carries_none_of_the_batched_envs_internals():
    env = gym.make(DIALOGUE, render_mode="ansi")  # recording on: the batched env's info holds the turn's acts
    env.reset(seed=1)
    bye = env.unwrapped.action_names.index("bye")
    _, _, _, _, inside = env.step(env.unwrapped.action_names.index("request(city)"))
    _, _, terminated, _, end = env.step(bye)
    assert terminated
    for info in (inside, end):
        assert not {"acts", "turns", "final_obs", "final_info", "_episode", "_final_obs"} & set(info)
    assert "System: Goodbye." in env.render()  # the transcript still comes from the acts the adapter keeps inside


def test_episode_statistics_and_success_equal_the_batched_envs():
    single = gym.make(DIALOGUE)
    vec = SlotFillingVecEnv(1)
    single.reset(seed=5)
    obs, _ = vec.reset(seed=5)
    expert = vec.rule_expert()
    successes = 0
    for _ in range(200):
        action = expert(obs)
        _, _, terminated, _, info = single.step(int(action[0]))
        obs, _, _, _, vec_info = vec.step(action)
        if terminated:
            assert info["episode"] == {"r": float(vec_info["episode"]["r"][0]), "l": int(vec_info["episode"]["l"][0])}
            assert info["success"] is bool(vec_info["final_info"]["success"][0])
            successes += info["success"]
            single.reset()
    assert successes >= 5


# ----------------------------------------------------------------------------- action names
def test_the_dialogue_env_names_its_actions():
    vec = SlotFillingVecEnv(2)
    names = vec.action_names
    assert len(names) == vec.single_action_space.n == len(set(names))
    assert names[0] == "greeting" and names[-2:] == ("book", "bye")
    assert names[1 : 1 + len(vec.slots)] == tuple(f"request({s})" for s in vec.slots)
    assert names[1 + len(vec.slots) : 1 + 2 * len(vec.slots)] == tuple(f"confirm({s})" for s in vec.slots)
    assert names[1 + 2 * len(vec.slots) : -2] == tuple(f"inform({r})" for r in vec.requests)
    assert all(vec.describe_action(i) == name for i, name in enumerate(names))
    restaurant = SlotFillingVecEnv(1, domain="restaurant").action_names
    assert "request(food)" in restaurant and "request(moviename)" not in restaurant


def test_action_names_are_reachable_from_gym_make_and_through_wrappers():
    env = gym.make(DIALOGUE)
    names = env.unwrapped.action_names
    assert names == SlotFillingVecEnv(1).action_names
    env.reset(seed=0)
    *_, terminated, _, _ = env.step(names.index("bye"))
    assert terminated, "the name 'bye' is the act that ends the dialogue"
    wrapped = NormalizeObservation(SlotFillingVecEnv(2, domain="restaurant"))
    assert wrapped.action_names == SlotFillingVecEnv(1, domain="restaurant").action_names
    for env_id in ("rlcourse/CartPole-v1", "rlcourse/Pendulum-v1"):
        assert gym.make(env_id).unwrapped.action_names == ()  # declared, and empty where the env names none


# ----------------------------------------------------------------------------- action checks
@pytest.mark.parametrize(
    ("env_id", "bad", "mentions"),
    [
        ("rlcourse/CartPole-v1", 2, "action 2 is outside the action space Discrete(2)"),
        ("rlcourse/CartPole-v1", -1, "action -1 is outside"),
        ("rlcourse/CartPole-v1", 0.5, "must be an integer for Discrete(2)"),
        ("rlcourse/CartPole-v1", True, "must be an integer"),
        ("rlcourse/CartPole-v1", np.array([1]), "shape () for Discrete(2), got (1,)"),
        ("rlcourse/Pendulum-v1", np.array([2.5], dtype=np.float32), "outside the action space Box"),
        ("rlcourse/Pendulum-v1", np.array([np.nan], dtype=np.float32), "outside the action space Box"),
        ("rlcourse/Pendulum-v1", np.array([0.0, 0.0], dtype=np.float32), "shape (1,)"),
        (DIALOGUE, 22, "action 22 is outside the action space Discrete(22)"),
    ],
)
def test_bad_actions_are_clear_errors_and_change_nothing(env_id, bad, mentions):
    env = gym.make(env_id)
    env.reset(seed=0)
    before = {name: tensor.clone() for name, tensor in env.unwrapped.vec.state_dict().items()}
    with pytest.raises(ValueError, match=re.escape(mentions)):
        env.step(bad)
    after = env.unwrapped.vec.state_dict()
    assert all(torch.equal(before[name], after[name]) for name in before), "a rejected action moved the env"


def test_integral_floats_and_numpy_integers_are_accepted_as_discrete_actions():
    env = gym.make("rlcourse/CartPole-v1")
    vec = vec_env_class("rlcourse/CartPole-v1")(num_envs=1)
    env.reset(seed=3)
    vec.reset(seed=3)
    for action in (1, np.int64(0), np.array(1), 0.0, np.float32(1.0)):
        obs, *_ = env.step(action)
        vec_obs, *_ = vec.step(torch.tensor([int(action)]))
        assert np.array_equal(obs, vec_obs[0].numpy())


# ----------------------------------------------------------------------------- parity with the batched env
@pytest.mark.parametrize(("env_id", "options"), CASES, ids=CASE_IDS)
def test_single_env_steps_exactly_like_the_batched_env(env_id, options):
    single = gym.make(env_id, **options)
    vec = vec_env_class(env_id)(num_envs=1, **options)
    assert type(single.unwrapped.vec) is type(vec) and single.unwrapped.vec.num_envs == 1
    rng = np.random.default_rng(11)
    obs, _ = single.reset(seed=21)
    vec_obs, _ = vec.reset(seed=21)
    np.testing.assert_array_equal(obs, vec_obs[0].numpy())
    episodes = 0
    for step in range(1500):
        if vec.has_action_masks:
            assert np.array_equal(single.unwrapped.action_masks(), vec.action_masks()[0].numpy()), f"step {step}"
        action = random_action(single, rng)
        obs, reward, terminated, truncated, info = single.step(action)
        vec_obs, vec_reward, vec_terminated, vec_truncated, vec_info = vec.step(batched_action(vec, action))
        assert (reward, terminated, truncated) == (
            float(vec_reward[0]),
            bool(vec_terminated[0]),
            bool(vec_truncated[0]),
        ), f"step {step}"
        done = terminated or truncated
        expected = vec_info["final_obs"][0] if done else vec_obs[0]
        np.testing.assert_array_equal(obs, expected.numpy(), err_msg=f"step {step}")
        assert obs.dtype == single.observation_space.dtype and single.observation_space.contains(obs)
        if not done:
            continue
        episodes += 1
        assert info["episode"] == {"r": float(vec_info["episode"]["r"][0]), "l": int(vec_info["episode"]["l"][0])}
        for key in vec.outcome_keys:
            assert info[key] is bool(vec_info["final_info"][key][0])
        if episodes % 3 == 0:  # a seeded reset starts both streams again
            obs, _ = single.reset(seed=100 + episodes)
            vec_obs, _ = vec.reset(seed=100 + episodes)
        else:  # an unseeded one hands out the episode the batched env already started
            obs, _ = single.reset()
        np.testing.assert_array_equal(obs, vec_obs[0].numpy(), err_msg=f"after the reset at step {step}")
    assert episodes >= 4, episodes
    state, vec_state = single.unwrapped.vec.state_dict(), vec.state_dict()
    assert all(torch.equal(state[name], vec_state[name]) for name in state), "the two envs ended in different states"


def test_observations_handed_out_stay_as_they_were():
    """The adapter hands out numpy views of the batched env's fresh observation tensors; later steps must not
    write into them (a reused buffer would)."""
    env = gym.make(DIALOGUE)
    first, _ = env.reset(seed=2)
    kept = [first.copy()]
    handed = [first]
    rng = np.random.default_rng(2)
    for _ in range(60):
        obs, _, terminated, truncated, _ = env.step(random_action(env, rng))
        handed.append(obs)
        kept.append(obs.copy())
        if terminated or truncated:
            obs, _ = env.reset()
            handed.append(obs)
            kept.append(obs.copy())
    assert all(np.array_equal(a, b) for a, b in zip(handed, kept))
