"""The plug-in protocol: reward models through ModelReward (replace and add, in an agent run), plug-in files, callbacks."""

from __future__ import annotations

import pytest
import torch
from gymnasium import spaces

import rlcourse
from rlcourse.agents import PPO
from rlcourse.callbacks import Callback
from rlcourse.checkpoint import CheckpointError
from rlcourse.supervised import (
    DiscriminatorTraining,
    ModelReward,
    ModelTraining,
    RewardModel,
    load_plugin,
    transitions_of,
)
from rlcourse.supervised.imitation.demos import Demonstrations
from rlcourse.supervised.imitation.gail import GAILDiscriminator
from rlcourse.supervised.storage import plugin_class
from rlcourse.wrappers import TransitionBatch


class PoleUpright(RewardModel):
    """The README's example: reward 1 − |θ| / 0.21, highest with the pole straight up."""

    def __init__(self, observation_space, action_space, config=None):
        super().__init__(observation_space, action_space, config)
        self.scale = torch.nn.Parameter(torch.ones(()))

    def reward(self, batch):
        return self.scale * (1 - batch.obs[:, 2].abs() / 0.21)


class Recorder(Callback):
    """Keeps copies of every iteration's rollout batch."""

    needs_batch = True

    def __init__(self):
        self.batches = []

    def on_rollout_end(self, batch):
        self.batches.append(transitions_of(batch))


def cartpole(num_envs=4):
    return rlcourse.make_vec("rlcourse/CartPole-v1", num_envs)


def upright(env):
    return PoleUpright(env.single_observation_space, env.single_action_space)


@pytest.mark.parametrize("mode", ["replace", "add"])
def test_the_agent_learns_from_the_model_reward_in_either_mode(mode):
    env = cartpole()
    wrapped = ModelReward(env, upright(env), mode=mode, scale=0.5)
    recorder = Recorder()
    PPO(wrapped, preset=None, seed=0, n_steps=16, batch_size=32).learn(128, callbacks=[recorder])
    batch = recorder.batches[-1]
    model = 0.5 * (1 - batch.obs[:, 2].abs() / 0.21)
    expected = model if mode == "replace" else 1.0 + model  # CartPole's own reward is 1 every step
    torch.testing.assert_close(batch.rewards, expected)


def test_the_episode_statistics_keep_the_env_reward():
    env = cartpole(2)
    wrapped = ModelReward(env, upright(env), mode="replace", scale=0.0)
    wrapped.reset(seed=0)
    ended = 0
    for _ in range(60):  # always pushing left ends every episode within a few dozen steps
        _, reward, terminated, truncated, info = wrapped.step(torch.zeros(2, dtype=torch.int64))
        assert torch.all(reward == 0)
        done = terminated | truncated
        if done.any():
            episode = info["final_info"]["episode"]
            assert torch.all(episode["r"][done] == episode["l"][done].float())  # the env's 1 per step, not 0
            ended += int(done.sum())
    assert ended >= 2


def test_model_reward_checks_what_it_is_given():
    env = cartpole()
    with pytest.raises(TypeError, match="RewardModel"):
        ModelReward(env, lambda batch: batch.rewards)
    other = PoleUpright(spaces.Box(-1, 1, (3,)), spaces.Discrete(2))
    with pytest.raises(ValueError, match="observation space"):
        ModelReward(env, other)
    with pytest.raises(ValueError, match="mode"):
        ModelReward(env, upright(env), mode="multiply")


def transitions(n=64, seed=0):
    generator = torch.Generator().manual_seed(seed)
    obs = torch.randn(n, 4, generator=generator)
    return TransitionBatch(
        obs=obs,
        actions=torch.randint(2, (n,), generator=generator),
        next_obs=obs + 0.1,
        rewards=torch.ones(n),
        terminated=torch.zeros(n, dtype=torch.bool),
        truncated=torch.zeros(n, dtype=torch.bool),
    )


def test_a_saved_plugin_loads_with_the_same_rewards_and_optimizer(tmp_path):
    env = cartpole()
    model = GAILDiscriminator(env.single_observation_space, env.single_action_space, {"net_arch": [16]})
    for seed in range(3):
        model.update(transitions(seed=seed), transitions(seed=seed + 10))
    path = model.save(tmp_path / "gail.pt")
    loaded = load_plugin(path, observation_space=env.single_observation_space)
    assert isinstance(loaded, GAILDiscriminator) and loaded.config.net_arch == (16,)
    batch = transitions(seed=99)
    torch.testing.assert_close(loaded.reward(batch), model.reward(batch), rtol=0, atol=0)
    # the optimizer state came along: one more identical step keeps them identical
    model.update(transitions(seed=5), transitions(seed=6))
    loaded.update(transitions(seed=5), transitions(seed=6))
    torch.testing.assert_close(loaded.reward(batch), model.reward(batch), rtol=0, atol=0)
    # and it plugs into another env of the same spaces
    ModelReward(cartpole(2), loaded, mode="replace")


def test_plugin_files_refuse_the_wrong_thing(tmp_path):
    env = cartpole()
    model = GAILDiscriminator(env.single_observation_space, env.single_action_space)
    path = model.save(tmp_path / "gail.pt")
    with pytest.raises(ValueError, match="observation space"):
        load_plugin(path, observation_space=spaces.Box(-1, 1, (3,)))
    with pytest.raises(ValueError, match="action space"):
        load_plugin(path, action_space=spaces.Discrete(3))
    agent = PPO(env, preset=None)
    agent_file = agent.save(tmp_path / "agent.pt")
    with pytest.raises(CheckpointError, match="not a plug-in"):
        load_plugin(agent_file)
    with pytest.raises(CheckpointError, match="no checkpoint"):
        load_plugin(tmp_path / "absent.pt")
    with pytest.raises(ValueError, match=r"unknown plug-in 'gial'.*did you mean 'gail'"):
        plugin_class("gial")


class CountingModel(RewardModel):
    def __init__(self, observation_space, action_space, config=None):
        super().__init__(observation_space, action_space, config)
        self.weight = torch.nn.Parameter(torch.zeros(()))
        self.seen = []

    def reward(self, batch):
        return torch.zeros(batch.obs.shape[0])

    def update(self, batch):
        self.seen.append(batch.obs.shape[0])
        return {"size": torch.tensor(float(batch.obs.shape[0]))}


def test_model_training_updates_on_minibatches_of_every_rollout():
    env = cartpole(4)
    model = CountingModel(env.single_observation_space, env.single_action_space)
    training = ModelTraining(model, updates=3, batch_size=10, prefix="counting")
    PPO(env, preset=None, n_steps=8, batch_size=16).learn(64, callbacks=[training])
    assert model.seen == [10] * 3 * 2  # 64 steps = 2 iterations of 8 steps × 4 envs, 3 updates each
    with pytest.raises(ValueError, match="updates"):
        ModelTraining(model, updates=0)


def demonstrations(n=256):
    batch = transitions(n)
    return Demonstrations(
        batch.obs, batch.actions, batch.next_obs, batch.rewards, batch.terminated, batch.truncated, None, 1
    )


def test_discriminator_training_state_round_trips():
    env = cartpole()
    first = GAILDiscriminator(env.single_observation_space, env.single_action_space)
    training = DiscriminatorTraining(first, demonstrations(), updates=2, batch_size=16)
    PPO(env, preset=None, n_steps=8, batch_size=16).learn(64, callbacks=[training])
    second = GAILDiscriminator(env.single_observation_space, env.single_action_space)
    restored = DiscriminatorTraining(second, demonstrations(), updates=2, batch_size=16)
    batch = transitions(seed=3)
    assert not torch.equal(second.reward(batch), first.reward(batch))
    restored.load_state_dict(training.state_dict())
    torch.testing.assert_close(second.reward(batch), first.reward(batch), rtol=0, atol=0)
    assert torch.equal(restored.generator.get_state(), training.generator.get_state())
    with pytest.raises(TypeError, match="Discriminator"):
        DiscriminatorTraining(CountingModel(env.single_observation_space, env.single_action_space), demonstrations())
