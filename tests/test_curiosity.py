"""The Intrinsic Curiosity Module: its losses and reward by hand, learning what it has seen, and an agent run with it."""

from __future__ import annotations

import math

import pytest
import torch
from gymnasium import spaces

import rlcourse
from rlcourse.agents import PPO
from rlcourse.supervised import ICM, CuriosityConfig, add_curiosity
from rlcourse.wrappers import TransitionBatch

OBS = spaces.Box(-10, 10, (2,))
ACTIONS = spaces.Discrete(3)


def hand_made_icm() -> ICM:
    """Linear networks (no hidden layers) with weights set by hand: φ(s) = s, φ̂(s') = 0, inverse logits = 0."""
    icm = ICM(OBS, ACTIONS, {"feature_dim": 2, "net_arch": [], "eta": 0.01, "beta": 0.2})
    with torch.no_grad():
        icm.encoder[0].weight.copy_(torch.eye(2))
        for module in (icm.encoder[0], icm.forward_model[0], icm.inverse_model[0]):
            module.bias.zero_()
        icm.forward_model[0].weight.zero_()
        icm.inverse_model[0].weight.zero_()
    return icm


def batch(obs, next_obs, actions) -> TransitionBatch:
    n = len(actions)
    return TransitionBatch(
        obs=torch.tensor(obs, dtype=torch.float32),
        actions=torch.tensor(actions),
        next_obs=torch.tensor(next_obs, dtype=torch.float32),
        rewards=torch.zeros(n),
        terminated=torch.zeros(n, dtype=torch.bool),
        truncated=torch.zeros(n, dtype=torch.bool),
    )


def test_reward_and_losses_by_hand():
    icm = hand_made_icm()
    transitions = batch([[1.0, 0.0], [0.0, 2.0]], [[3.0, 4.0], [0.0, 1.0]], [0, 2])
    # rⁱ = η/2 ‖φ̂(s') − φ(s')‖² with φ̂ = 0 and φ(s') = s' (the running statistics start at mean 0, variance 1)
    torch.testing.assert_close(icm.reward(transitions), torch.tensor([0.01 / 2 * 25, 0.01 / 2 * 1]))
    losses = icm.losses(transitions)
    torch.testing.assert_close(losses["inverse_loss"], torch.tensor(math.log(3)))  # uniform over 3 actions
    torch.testing.assert_close(losses["forward_loss"], torch.tensor((25 / 2 + 1 / 2) / 2))


def test_the_forward_loss_does_not_train_the_encoder():
    icm = hand_made_icm()
    transitions = batch([[1.0, 0.0]], [[3.0, 4.0]], [1])
    icm.losses(transitions)["forward_loss"].backward()
    assert icm.encoder[0].weight.grad is None or torch.all(icm.encoder[0].weight.grad == 0)
    assert icm.forward_model[0].weight.grad.abs().sum() > 0


def test_a_repeated_transition_becomes_boring():
    torch.manual_seed(0)
    icm = ICM(OBS, ACTIONS, {"learning_rate": 0.01})
    seen = batch([[0.5, -0.2]] * 8, [[0.6, -0.1]] * 8, [2] * 8)
    unseen = batch([[-3.0, 2.0]] * 8, [[-2.0, 3.0]] * 8, [0] * 8)
    for _ in range(5):
        icm.update(seen)  # the statistics settle before the reward is measured
    before = icm.reward(seen).mean()
    for _ in range(300):
        icm.update(seen)
    assert icm.reward(seen).mean() < 0.05 * before
    assert icm.reward(unseen).mean() > 10 * icm.reward(seen).mean()


def test_curiosity_adds_its_reward_and_logs_apart(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    env, training = add_curiosity(rlcourse.make_vec("rlcourse/MountainCar-v0", 4), {"batch_size": 16}, seed=1)
    agent = PPO(env, preset=None, n_steps=16, batch_size=32, run_dir=tmp_path / "run")
    agent.learn(256, callbacks=[training])
    tags = EventAccumulator(str(tmp_path / "run")).Reload().Tags()["scalars"]
    assert {"curiosity/intrinsic_reward", "curiosity/inverse_loss", "curiosity/forward_loss"} <= set(tags)
    obs, _ = env.reset(seed=0)
    actions = torch.ones(4, dtype=torch.int64)
    _, reward, _, _, _ = env.step(actions)
    assert torch.all(reward > -1.0) and torch.all(reward < 0.0)  # −1 from the task plus a small rⁱ > 0


def test_bad_settings_are_named():
    with pytest.raises(ValueError, match="beta"):
        CuriosityConfig(beta=1.5)
    with pytest.raises(ValueError, match="eta"):
        CuriosityConfig(eta=0.0)
    with pytest.raises(ValueError, match="Box observation"):
        ICM(spaces.Discrete(4), ACTIONS)
