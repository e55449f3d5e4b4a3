"""GAIL and AIRL: the discriminator separates expert from random transitions, the rewards by hand, and GAIL learns."""

from __future__ import annotations

import math

import pytest
import torch

import rlcourse
from rlcourse.agents import PPO
from rlcourse.supervised.imitation.demos import Demonstrations, record_episodes
from rlcourse.supervised.imitation.gail import AIRLDiscriminator, GAILDiscriminator, adversarial_imitation
from rlcourse.wrappers import TransitionBatch


def balancing(obs, masks=None):
    """A hand-written CartPole expert that keeps the pole up for all 500 steps: push towards where it falls."""
    return ((3 * obs[:, 2] + obs[:, 3]) > 0).long()


def demonstrations(policy, episodes=4, seed=0) -> Demonstrations:
    env = rlcourse.make_vec("rlcourse/CartPole-v1", episodes)
    recorded = record_episodes(env, policy, episodes, seed=seed)
    columns = {
        name: torch.cat([torch.as_tensor(episode[key]) for episode in recorded.episodes])
        for name, key in (("actions", "actions"), ("rewards", "rewards"), ("terminated", "terminations"))
    }
    columns["truncated"] = torch.cat([torch.as_tensor(episode["truncations"]) for episode in recorded.episodes])
    obs = [torch.as_tensor(episode["observations"]) for episode in recorded.episodes]
    return Demonstrations(
        obs=torch.cat([o[:-1] for o in obs]),
        next_obs=torch.cat([o[1:] for o in obs]),
        action_masks=None,
        num_episodes=episodes,
        **columns,
    )


def as_batch(demos: Demonstrations, index=None) -> TransitionBatch:
    index = slice(None) if index is None else index
    return TransitionBatch(
        demos.obs[index],
        demos.actions[index],
        demos.next_obs[index],
        demos.rewards[index],
        demos.terminated[index],
        demos.truncated[index],
    )


def random_policy(obs, masks=None):
    return torch.randint(2, (obs.shape[0],))


def test_the_discriminator_separates_expert_from_random_transitions():
    torch.manual_seed(0)
    expert, random = demonstrations(balancing, seed=0), demonstrations(random_policy, episodes=64, seed=1)
    space = rlcourse.make_vec("rlcourse/CartPole-v1", 1)
    discriminator = GAILDiscriminator(
        space.single_observation_space, space.single_action_space, {"learning_rate": 0.003}
    )
    generator = torch.Generator().manual_seed(0)
    for _ in range(800):
        discriminator.update(expert.sample(256, generator), random.sample(256, generator))
    held_out_expert = as_batch(demonstrations(balancing, seed=5))
    held_out_random = as_batch(demonstrations(random_policy, episodes=64, seed=6))
    stats = discriminator.update(held_out_expert, held_out_random)  # statistics of the logits before the step
    assert stats["real_accuracy"] > 0.85 and stats["fake_accuracy"] > 0.75, stats
    assert discriminator.reward(held_out_expert).mean() > 2 * discriminator.reward(held_out_random).mean()


@pytest.mark.parametrize(("option", "expected"), [("-log(1-D)", math.log(2)), ("log(D)", -math.log(2)), ("logit", 0.0)])
def test_gail_reward_options_at_even_odds(option, expected):
    space = rlcourse.make_vec("rlcourse/CartPole-v1", 1)
    discriminator = GAILDiscriminator(space.single_observation_space, space.single_action_space, {"reward": option})
    with torch.no_grad():
        discriminator.network[-1].weight.zero_()
        discriminator.network[-1].bias.zero_()  # logit 0: D = 1/2
    batch = as_batch(demonstrations(balancing, episodes=1), slice(0, 3))
    torch.testing.assert_close(discriminator.reward(batch), torch.full((3,), expected))


class HalfPolicy(torch.nn.Module):
    """π(a|s) = 1/2 for both actions."""

    def log_prob(self, obs, actions, action_masks=None):
        return torch.full((obs.shape[0],), math.log(0.5))

    def act(self, obs, action_masks=None, deterministic=True, generator=None):
        return torch.zeros(obs.shape[0], dtype=torch.int64)


def test_airl_reward_shape_on_a_hand_made_transition():
    space = rlcourse.make_vec("rlcourse/CartPole-v1", 1)
    airl = AIRLDiscriminator(
        space.single_observation_space, space.single_action_space, {"net_arch": [], "gamma": 0.9, "reward": "f"}
    )
    with torch.no_grad():  # g(s) = s₀ + 1 and h(s) = 2 s₁, both linear
        airl.reward_net[0].weight.copy_(torch.tensor([[1.0, 0.0, 0.0, 0.0]]))
        airl.reward_net[0].bias.fill_(1.0)
        airl.potential[0].weight.copy_(torch.tensor([[0.0, 2.0, 0.0, 0.0]]))
        airl.potential[0].bias.zero_()
    obs = torch.tensor([[0.5, 1.0, 0.0, 0.0], [0.5, 1.0, 0.0, 0.0]])
    next_obs = torch.tensor([[0.0, 3.0, 0.0, 0.0], [0.0, 3.0, 0.0, 0.0]])
    batch = TransitionBatch(
        obs, torch.tensor([0, 1]), next_obs, torch.zeros(2), torch.tensor([False, True]), torch.zeros(2, dtype=bool)
    )
    # f = g(s) + γ h(s') − h(s) = 1.5 + 0.9·6 − 2 = 4.9; after a terminal step h(s') counts 0: 1.5 − 2 = −0.5
    torch.testing.assert_close(airl.reward(batch), torch.tensor([4.9, -0.5]))
    with pytest.raises(RuntimeError, match="attach"):
        airl.logits(batch)
    airl.attach(HalfPolicy())
    torch.testing.assert_close(airl.logits(batch), torch.tensor([4.9 - math.log(0.5), -0.5 - math.log(0.5)]))
    assert "policy" not in dict(airl.named_modules()) and not any("policy" in key for key in airl.state_dict())
    with pytest.raises(TypeError, match="log_prob"):
        airl.attach(object())


def test_gail_learns_cartpole_from_a_few_expert_episodes():
    env, training = adversarial_imitation(
        rlcourse.make_vec("rlcourse/CartPole-v1", 8), demonstrations(balancing, episodes=4), "gail", seed=0
    )
    agent = PPO(env, seed=0)  # the CartPole preset: the learner never sees CartPole's reward
    agent.learn(40_000, callbacks=[training])
    assert agent.evaluate(n_episodes=10)["mean_reward"] >= 400


def test_unknown_method_is_named():
    with pytest.raises(ValueError, match="'gail' or 'airl'"):
        adversarial_imitation(rlcourse.make_vec("rlcourse/CartPole-v1", 2), demonstrations(balancing, 1), "gan")
