"""GAIL and AIRL: inverse RL as a GAN, with the actor as the generator and the reward as the discriminator.

The course (notes:14146-14204 [Imitation Learning]): the expert π̂ and the actor π each play some
episodes; a reward function is learned that scores the expert's above the actor's ("shoot the arrow,
then draw the target"); the actor is trained by RL on that reward; repeat. Written as a GAN, the
demonstrations are the real data, the actor is the generator and the reward is the discriminator.

* :class:`GAILDiscriminator` (Ho & Ermon 2016): D(s, a) ∈ (0, 1), the probability that (s, a) is the
  expert's, trained by logistic regression (expert → 1, actor → 0). The actor's reward is an option:
  ``-log(1-D)`` (positive, the usual choice), ``log(D)`` (negative) or ``logit`` (log D − log(1−D), both).
* :class:`AIRLDiscriminator` (Fu et al. 2018): the discriminator is shaped as
  D = exp f / (exp f + π(a|s)) with f(s, a, s') = g(s) + γ h(s') − h(s), so that g recovers a reward
  of the state alone and h is a potential that shapes it. Its logit, f − log π(a|s), reads the
  generator's policy, given by :meth:`AIRLDiscriminator.attach` (the agent's policy network, an
  :class:`rlcourse.policy.StochasticPolicy`). The actor's reward is ``-log(1-D)`` = softplus(f − log π)
  by default, ``logit`` = f − log π (the paper's, log D − log(1−D)), or ``f`` itself (the learned reward, which may be negative: on a task whose episodes end
  on failure, such as CartPole, a negative reward teaches the actor to end them early).

A reward of one sign biases the actor about when to stop: always positive, it learns to make episodes
last (a dialogue that never says goodbye); always negative, to end them at once. With ``absorbing``
(Kostrikov et al. 2019, "Discriminator-Actor-Critic"), every terminal step leads to an absorbing state
whose discriminator logit is learned too: the expert's episodes reach it once per episode, the actor's
as often as it ends them, so D learns how expert-like ending is, and the actor's reward at a terminal
step adds the absorbing state's discounted reward γ/(1−γ)·r(absorbing). The absorbing logit is one
parameter (the state has no features), trained on the weights of the terminal steps in each batch.

Either one plugs into any env through :class:`~rlcourse.supervised.reward.ModelReward` (``replace``
mode) and is trained between rollouts by
:class:`~rlcourse.supervised.training.DiscriminatorTraining`; :func:`adversarial_imitation` builds both.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch
from gymnasium import spaces
from torch import nn

from rlcourse.config import check_fields, hp
from rlcourse.policy import StochasticPolicy
from rlcourse.supervised.networks import check_layers, mlp
from rlcourse.supervised.protocol import Discriminator, Transitions
from rlcourse.supervised.reward import ModelReward
from rlcourse.supervised.training import DiscriminatorTraining
from rlcourse.vec_env import TensorVecEnv

__all__ = ["AIRLConfig", "AIRLDiscriminator", "GAILConfig", "GAILDiscriminator", "adversarial_imitation"]


@dataclass
class GAILConfig:
    """Settings of GAIL's discriminator."""

    net_arch: tuple[int, ...] = hp((64, 64), "hidden layers of D(s, a)")
    learning_rate: float = hp(3e-4, "Adam step size of the discriminator")
    reward: Literal["-log(1-D)", "log(D)", "logit"] = hp(
        "-log(1-D)", "the actor's reward from D: -log(1-D) > 0, log(D) < 0, or the logit log D - log(1-D)"
    )
    updates: int = hp(1, "discriminator steps after every rollout")
    batch_size: int = hp(512, "agent transitions per step (and as many expert ones)")
    entropy_coef: float = hp(0.0, "bonus on the Bernoulli entropy of D, which keeps it from saturating")
    absorbing: bool = hp(False, "learn D of the absorbing state after a terminal step and pay its discounted reward")
    gamma: float = hp(0.99, "γ of the absorbing state's discounted reward γ/(1−γ)·r (the generator's own discount)")

    def __post_init__(self):
        check_fields(
            self, positive=("learning_rate", "updates", "batch_size"), nonnegative=("entropy_coef",), net_arch=None
        )
        check_layers(self.net_arch)
        _check_discount(self.gamma, self.absorbing)


@dataclass
class AIRLConfig:
    """Settings of AIRL's discriminator."""

    net_arch: tuple[int, ...] = hp((64, 64), "hidden layers of g(s) and of the potential h(s)")
    learning_rate: float = hp(3e-4, "Adam step size of the discriminator")
    gamma: float = hp(0.99, "γ of the shaping term γ h(s') − h(s) (the generator's own discount)")
    reward: Literal["-log(1-D)", "logit", "f"] = hp(
        "-log(1-D)",
        "the actor's reward: -log(1-D) = softplus(f - log π) > 0, logit = f - log π (Fu et al.'s), or f itself",
    )
    updates: int = hp(1, "discriminator steps after every rollout")
    batch_size: int = hp(512, "agent transitions per step (and as many expert ones)")
    absorbing: bool = hp(False, "learn D of the absorbing state after a terminal step and pay its discounted reward")

    def __post_init__(self):
        check_fields(self, positive=("learning_rate", "updates", "batch_size"), net_arch=None)
        check_layers(self.net_arch)
        _check_discount(self.gamma, self.absorbing)


def _check_discount(gamma: float, absorbing: bool) -> None:
    if not 0.0 < gamma <= 1.0:
        raise ValueError(f"gamma must be in (0, 1], got {gamma!r}")
    if absorbing and gamma == 1.0:
        raise ValueError("absorbing needs gamma < 1: the absorbing state's reward is summed as γ/(1−γ)·r")


def _absorbing_reward(batch: Transitions, gamma: float, reward: torch.Tensor) -> torch.Tensor:
    """After a terminal step the absorbing state forever: its discounted reward γ/(1−γ)·r, paid at that step."""
    return batch.terminated.float() * (gamma / (1.0 - gamma)) * reward


def _logistic_update(
    discriminator: Discriminator,
    real_logits: torch.Tensor,
    fake_logits: torch.Tensor,
    entropy_coef: float = 0.0,
    absorbing: tuple[torch.Tensor, Transitions, Transitions] | None = None,
) -> dict[str, torch.Tensor]:
    """One Adam step of logistic regression, real → 1 and fake → 0, and the statistics of the logits before it.

    ``absorbing``: (the absorbing state's logit, the real batch, the fake batch). Each terminal step of a
    batch adds one absorbing-state sample to it, so the logit's loss terms are weighted by the fraction
    of terminal steps in each batch (fixed shapes, whatever that fraction is).
    """
    bce = nn.functional.binary_cross_entropy_with_logits
    loss = bce(real_logits, torch.ones_like(real_logits)) + bce(fake_logits, torch.zeros_like(fake_logits))
    if absorbing is not None:
        logit, real, fake = absorbing
        real_share, fake_share = real.terminated.float().mean(), fake.terminated.float().mean()
        loss = loss + real_share * bce(logit, torch.ones_like(logit)) + fake_share * bce(logit, torch.zeros_like(logit))
    logits = torch.cat((real_logits, fake_logits))
    probability = torch.sigmoid(logits)
    entropy = bce(logits, probability)  # the Bernoulli entropy of D: H(p) = BCE(logit, p)
    discriminator.optimizer.zero_grad(set_to_none=False)
    (loss - entropy_coef * entropy).backward()
    discriminator.optimizer.step()
    return {
        "loss": loss.detach(),
        "real_accuracy": (real_logits.detach() > 0).float().mean(),
        "fake_accuracy": (fake_logits.detach() < 0).float().mean(),
        "entropy": entropy.detach(),
    }


class GAILDiscriminator(Discriminator):
    """D(s, a) = sigmoid(logit(s, a)): how likely (s, a) is the expert's rather than the actor's."""

    config_class = GAILConfig

    def __init__(self, observation_space: spaces.Space, action_space: spaces.Space, config: Any = None):
        super().__init__(observation_space, action_space, config)
        self.network = mlp(self.obs_dim + self.action_dim, self.config.net_arch, 1)
        if self.config.absorbing:
            self.absorbing_logit = nn.Parameter(torch.zeros(1))  # D of the absorbing state
        self.optimizer = torch.optim.Adam(self.parameters(), lr=self.config.learning_rate)

    def logits(self, batch: Transitions) -> torch.Tensor:
        return self.network(self.features(batch.obs, batch.actions)).squeeze(-1)

    def _reward_of(self, logits: torch.Tensor) -> torch.Tensor:
        if self.config.reward == "-log(1-D)":
            return nn.functional.softplus(logits)  # −log(1 − sigmoid(x)) = softplus(x)
        if self.config.reward == "log(D)":
            return -nn.functional.softplus(-logits)  # log sigmoid(x) = −softplus(−x)
        return logits

    def reward(self, batch: Transitions) -> torch.Tensor:
        reward = self._reward_of(self.logits(batch))
        if self.config.absorbing:
            reward = reward + _absorbing_reward(batch, self.config.gamma, self._reward_of(self.absorbing_logit))
        return reward

    def update(self, real: Transitions, fake: Transitions) -> dict[str, torch.Tensor]:
        absorbing = (self.absorbing_logit, real, fake) if self.config.absorbing else None
        return _logistic_update(self, self.logits(real), self.logits(fake), self.config.entropy_coef, absorbing)


class AIRLDiscriminator(Discriminator):
    """f(s, a, s') = g(s) + γ h(s')(1 − terminated) − h(s), and D = sigmoid(f − log π(a|s))."""

    config_class = AIRLConfig

    def __init__(self, observation_space: spaces.Space, action_space: spaces.Space, config: Any = None):
        super().__init__(observation_space, action_space, config)
        self.reward_net = mlp(self.obs_dim, self.config.net_arch, 1)  # g(s)
        self.potential = mlp(self.obs_dim, self.config.net_arch, 1)  # h(s)
        if self.config.absorbing:
            self.absorbing_logit = nn.Parameter(torch.zeros(1))  # f of the absorbing state (π plays no part there)
        self.optimizer = torch.optim.Adam(self.parameters(), lr=self.config.learning_rate)
        self.policy: StochasticPolicy | None = None

    def attach(self, policy: StochasticPolicy) -> AIRLDiscriminator:
        """The generator whose log π(a|s) the discriminator's update reads (not part of this module's state)."""
        if not isinstance(policy, StochasticPolicy):
            raise TypeError(f"AIRL needs a policy with log_prob(obs, actions, masks), got {type(policy).__name__}")
        object.__setattr__(self, "policy", policy)  # kept out of this module's parameters and state_dict
        return self

    def f(self, batch: Transitions) -> torch.Tensor:
        """The shaped reward g(s) + γ h(s') − h(s); h(s') is zero after a terminal step (there is no future)."""
        obs, next_obs = batch.obs.flatten(1).float(), batch.next_obs.flatten(1).float()
        alive = (~batch.terminated).float()
        g, h, next_h = self.reward_net(obs), self.potential(obs), self.potential(next_obs)
        return (g + self.config.gamma * alive.unsqueeze(-1) * next_h - h).squeeze(-1)

    def logits(self, batch: Transitions) -> torch.Tensor:
        """log D − log(1 − D) = f(s, a, s') − log π(a|s), with the attached generator's π."""
        if self.policy is None:
            raise RuntimeError("AIRLDiscriminator needs the generator's log π: call attach(agent_policy) first")
        actions = batch.actions
        if isinstance(self.action_space, spaces.Discrete):  # the policy's own indices, 0..n-1
            actions = actions - int(self.action_space.start)
        with torch.no_grad():
            log_pi = self.policy.log_prob(batch.obs, actions, batch.action_masks)
        return self.f(batch) - log_pi

    def reward(self, batch: Transitions) -> torch.Tensor:
        if self.config.reward == "f":
            reward = self.f(batch)
        else:
            logits = self.logits(batch)
            reward = logits if self.config.reward == "logit" else nn.functional.softplus(logits)
        if self.config.absorbing:
            logit = self.absorbing_logit
            absorbing = logit if self.config.reward != "-log(1-D)" else nn.functional.softplus(logit)
            reward = reward + _absorbing_reward(batch, self.config.gamma, absorbing)
        return reward

    def update(self, real: Transitions, fake: Transitions) -> dict[str, torch.Tensor]:
        absorbing = (self.absorbing_logit, real, fake) if self.config.absorbing else None
        return _logistic_update(self, self.logits(real), self.logits(fake), absorbing=absorbing)


def adversarial_imitation(
    env: TensorVecEnv,
    demonstrations: Any,
    method: Literal["gail", "airl"] = "gail",
    config: GAILConfig | AIRLConfig | dict[str, Any] | None = None,
    seed: int = 0,
) -> tuple[ModelReward, DiscriminatorTraining]:
    """``env`` rewarded by a fresh discriminator, and the callback that trains it on ``demonstrations``.

    The env's reward is replaced (the learner never sees it; ``rollout/ep_rew_mean`` still reports it).
    For AIRL, call ``training.model.attach(agent.policy)`` once the agent exists.
    """
    classes = {"gail": GAILDiscriminator, "airl": AIRLDiscriminator}
    if method not in classes:
        raise ValueError(f"adversarial imitation is 'gail' or 'airl', got {method!r}")
    if method == "airl" and env.has_action_masks and demonstrations.action_masks is None:
        raise ValueError(
            f"{env.env_id} has action masks but the demonstrations record none: record them on this env "
            "(rlcourse collect) so that AIRL can read log π(a|s) under the expert's valid actions"
        )
    with torch.random.fork_rng(devices=[]):  # the discriminator's initial weights come from ``seed``
        torch.manual_seed(seed)
        discriminator = classes[method](env.single_observation_space, env.single_action_space, config)
    discriminator.to(env.device)
    c = discriminator.config
    training = DiscriminatorTraining(
        discriminator, demonstrations.to(env.device), c.updates, c.batch_size, seed=seed, prefix="discriminator"
    )
    return ModelReward(env, discriminator, mode="replace"), training
