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


@pytest.mark.parametrize("method", ["gail", "airl"])
def test_absorbing_state_pays_its_discounted_reward_at_terminal_steps(method):
    """With D = 1/2 everywhere, −log(1−D) = log 2 per step, and a terminal step adds γ/(1−γ)·log 2 (γ = 0.9: 9·log 2)."""
    space = rlcourse.make_vec("rlcourse/CartPole-v1", 1)
    classes = {"gail": GAILDiscriminator, "airl": AIRLDiscriminator}
    config = {"absorbing": True, "gamma": 0.9, "net_arch": []}
    discriminator = classes[method](space.single_observation_space, space.single_action_space, config)
    with torch.no_grad():
        for parameter in discriminator.parameters():
            parameter.zero_()  # every logit 0 (for AIRL with a policy whose log π is 0)
    if method == "airl":
        discriminator.attach(CertainPolicy())
    batch = TransitionBatch(
        torch.zeros(2, 4), torch.tensor([0, 1]), torch.zeros(2, 4), torch.zeros(2), torch.tensor([False, True]),
        torch.zeros(2, dtype=bool),
    )  # fmt: skip
    torch.testing.assert_close(discriminator.reward(batch), torch.tensor([math.log(2), math.log(2) * (1 + 9)]))


class CertainPolicy(torch.nn.Module):
    """log π(a|s) = 0: the action is certain."""

    def log_prob(self, obs, actions, action_masks=None):
        return torch.zeros(obs.shape[0])

    def act(self, obs, action_masks=None, deterministic=True, generator=None):
        return torch.zeros(obs.shape[0], dtype=torch.int64)


def test_absorbing_logit_learns_how_often_the_expert_ends_episodes():
    """Expert batches end an episode at 1 step in 4, the actor's never: D(absorbing) rises above 1/2; and the reverse."""
    space = rlcourse.make_vec("rlcourse/CartPole-v1", 1)
    ends_often = TransitionBatch(
        torch.zeros(8, 4), torch.zeros(8, dtype=torch.int64), torch.zeros(8, 4), torch.zeros(8),
        torch.tensor([True, False, False, False] * 2), torch.zeros(8, dtype=bool),
    )  # fmt: skip
    never_ends = TransitionBatch(*(getattr(ends_often, name) for name in ("obs", "actions", "next_obs", "rewards")),
                                 torch.zeros(8, dtype=bool), torch.zeros(8, dtype=bool))  # fmt: skip
    for real, fake, sign in ((ends_often, never_ends, 1), (never_ends, ends_often, -1)):
        discriminator = GAILDiscriminator(
            space.single_observation_space, space.single_action_space, {"absorbing": True, "learning_rate": 0.05}
        )
        for _ in range(50):
            discriminator.update(real, fake)
        assert sign * discriminator.absorbing_logit.item() > 1.0


def test_airl_reads_log_pi_under_the_action_masks():
    """On the masked dialogue env, AIRL's logit is f − log π(a|s) with π restricted to the valid actions."""
    env = rlcourse.make_vec("rlcourse/SlotFilling-v0", 4)
    airl = AIRLDiscriminator(env.single_observation_space, env.single_action_space, {"net_arch": []})
    masks = env.action_masks()

    class UniformOverValid(torch.nn.Module):
        def log_prob(self, obs, actions, action_masks=None):
            assert action_masks is not None
            return -action_masks.sum(1).float().log()

        def act(self, obs, action_masks=None, deterministic=True, generator=None):
            return action_masks.float().argmax(1)

    airl.attach(UniformOverValid())
    obs, _ = env.reset(seed=0)
    masks = env.action_masks()
    actions = masks.float().argmax(1)
    batch = TransitionBatch(
        obs, actions, obs, torch.zeros(4), torch.zeros(4, dtype=bool), torch.zeros(4, dtype=bool), masks
    )
    with torch.no_grad():
        torch.testing.assert_close(airl.logits(batch), airl.f(batch) + masks.sum(1).float().log())


def test_airl_on_a_masked_env_needs_demonstrations_with_masks():
    demos = demonstrations(balancing, 1)  # recorded without masks
    with pytest.raises(ValueError, match="action masks"):
        adversarial_imitation(rlcourse.make_vec("rlcourse/SlotFilling-v0", 2), demos, "airl")


def test_absorbing_needs_a_discount_below_one():
    space = rlcourse.make_vec("rlcourse/CartPole-v1", 1)
    with pytest.raises(ValueError, match="gamma < 1"):
        GAILDiscriminator(space.single_observation_space, space.single_action_space, {"absorbing": True, "gamma": 1.0})


def test_a_reward_function_gets_the_masks_of_the_state_each_step_leaves():
    """The path AIRL trains through: RewardFunction hands every step's batch the masks of its ``obs``."""
    from rlcourse.wrappers import RewardFunction

    env = rlcourse.make_vec("rlcourse/SlotFilling-v0", 4)
    seen = []

    def record(batch):
        seen.append(batch.action_masks.clone())
        return torch.zeros(4)

    wrapped = RewardFunction(env, record)
    wrapped.reset(seed=0)
    expected = []
    for _ in range(3):
        masks = env.action_masks().clone()
        expected.append(masks)
        wrapped.step(masks.float().argmax(1))
    assert all(torch.equal(got, want) for got, want in zip(seen, expected)) and len(seen) == 3
    assert not torch.equal(expected[0], expected[-1])  # the masks change as the dialogue goes on
