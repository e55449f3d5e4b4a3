"""Curiosity: the Intrinsic Curiosity Module (Pathak et al. 2017), a reward for what the agent cannot yet predict.

The course (notes:13894-13950 [Sparse Reward]): the agent's total reward is r + rⁱ, where the ICM
gives rⁱ(s_t, a_t, s_{t+1}) from three networks:

* a **feature encoder** φ(s), meant to keep only what the agent's actions can affect (the leaves blowing
  in the wind, which no action changes, should not be interesting);
* **network 2, the inverse model**, predicts a_t from φ(s_t) and φ(s_{t+1}); φ is trained through it,
  which is what makes the features action-relevant;
* **network 1, the forward model**, predicts φ̂(s_{t+1}) from φ(s_t) and a_t; the worse it predicts,
  the larger the reward: rⁱ = η/2 · ‖φ̂(s_{t+1}) − φ(s_{t+1})‖².

Both are trained on the agent's own transitions between rollouts and fixed while it acts, minimising
(1 − β) L_I + β L_F, with the paper's β = 0.2 and η = 0.01. The forward loss does not move φ (its
target is detached), so the features come from the inverse model alone, as the notes describe.

Use it on any env and agent with :func:`add_curiosity` (a :class:`ModelReward` wrapper in ``add`` mode
plus a :class:`ModelTraining` callback), or ``--hp curiosity=true`` in ``rlcourse train``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from gymnasium import spaces
from torch import nn

from rlcourse.config import check_fields, hp
from rlcourse.supervised.networks import check_layers, mlp
from rlcourse.supervised.protocol import RewardModel, Transitions, action_features
from rlcourse.supervised.reward import ModelReward
from rlcourse.supervised.training import ModelTraining
from rlcourse.vec_env import TensorVecEnv

__all__ = ["ICM", "CuriosityConfig", "add_curiosity"]


@dataclass
class CuriosityConfig:
    """Settings of the Intrinsic Curiosity Module (defaults: Pathak et al. 2017's β and η)."""

    feature_dim: int = hp(32, "size of the feature vector φ(s)")
    net_arch: tuple[int, ...] = hp((64,), "hidden layers of the encoder, the inverse and the forward model")
    beta: float = hp(0.2, "weight of the forward loss: minimise (1 - beta) * inverse loss + beta * forward loss")
    eta: float = hp(0.01, "scale of the intrinsic reward eta/2 * ||phi_hat(s') - phi(s')||^2")
    learning_rate: float = hp(1e-3, "Adam step size of the three networks")
    updates: int = hp(4, "gradient steps after every rollout")
    batch_size: int = hp(256, "transitions per gradient step (drawn from the rollout)")

    def __post_init__(self):
        check_fields(self, positive=("feature_dim", "eta", "learning_rate", "updates", "batch_size"), net_arch=None)
        check_layers(self.net_arch)
        if not 0.0 <= self.beta <= 1.0:
            raise ValueError(f"beta must be in [0, 1], got {self.beta!r}")


class ICM(RewardModel):
    """The Intrinsic Curiosity Module: ``reward(batch)`` = η/2 ‖φ̂(s') − φ(s')‖², ``update(batch)`` trains it."""

    config_class = CuriosityConfig

    def __init__(self, observation_space: spaces.Space, action_space: spaces.Space, config: Any = None):
        super().__init__(observation_space, action_space, config)
        c = self.config
        self.encoder = mlp(self.obs_dim, c.net_arch, c.feature_dim, "elu")
        self.inverse_model = mlp(2 * c.feature_dim, c.net_arch, self.action_dim, "elu")
        self.forward_model = mlp(c.feature_dim + self.action_dim, c.net_arch, c.feature_dim, "elu")
        self.optimizer = torch.optim.Adam(self.parameters(), lr=c.learning_rate)
        # The encoder reads observations standardised by running statistics of the transitions it trains on, so
        # one setting suits any env's scale (MountainCar's velocity is a hundredth of its position).
        self.register_buffer("obs_mean", torch.zeros(self.obs_dim))
        self.register_buffer("obs_var", torch.ones(self.obs_dim))
        self.register_buffer("obs_count", torch.zeros(()))

    def encode(self, obs: torch.Tensor) -> torch.Tensor:
        standardised = (obs.flatten(1).float() - self.obs_mean) * torch.rsqrt(self.obs_var + 1e-8)
        return self.encoder(standardised)

    def _update_statistics(self, obs: torch.Tensor) -> None:
        """Chan et al.'s parallel update of the running mean and variance with this batch (in place)."""
        obs = obs.flatten(1).float()
        count = torch.tensor(float(obs.shape[0]), device=obs.device)
        mean, var = obs.mean(0), obs.var(0, unbiased=False)
        total = self.obs_count + count
        delta = mean - self.obs_mean
        self.obs_mean.add_(delta * count / total)
        self.obs_var.copy_(
            (self.obs_var * self.obs_count + var * count + delta.pow(2) * self.obs_count * count / total) / total
        )
        self.obs_count.copy_(total)

    def predicted_features(self, features: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Network 1: φ̂(s_{t+1}) from φ(s_t) and a_t."""
        return self.forward_model(torch.cat((features, action_features(actions, self.action_space)), -1))

    def reward(self, batch: Transitions) -> torch.Tensor:
        features, next_features = self.encode(batch.obs), self.encode(batch.next_obs)
        error = self.predicted_features(features, batch.actions) - next_features
        return 0.5 * self.config.eta * error.pow(2).sum(-1)

    def losses(self, batch: Transitions) -> dict[str, torch.Tensor]:
        """The inverse loss L_I (cross-entropy, or squared error for continuous actions) and the forward loss L_F."""
        features, next_features = self.encode(batch.obs), self.encode(batch.next_obs)
        predicted_action = self.inverse_model(torch.cat((features, next_features), -1))
        if isinstance(self.action_space, spaces.Discrete):
            targets = batch.actions.long().reshape(-1) - int(self.action_space.start)
            inverse = nn.functional.cross_entropy(predicted_action, targets)
        else:
            inverse = 0.5 * (predicted_action - action_features(batch.actions, self.action_space)).pow(2).sum(-1).mean()
        forward_error = self.predicted_features(features.detach(), batch.actions) - next_features.detach()
        return {"inverse_loss": inverse, "forward_loss": 0.5 * forward_error.pow(2).sum(-1).mean()}

    def update(self, batch: Transitions) -> dict[str, torch.Tensor]:
        """One Adam step on (1 − β) L_I + β L_F; the batch's mean intrinsic reward before the step is logged too."""
        self._update_statistics(batch.next_obs)
        losses = self.losses(batch)
        beta = self.config.beta
        loss = (1 - beta) * losses["inverse_loss"] + beta * losses["forward_loss"]
        self.optimizer.zero_grad(set_to_none=False)
        loss.backward()
        self.optimizer.step()
        intrinsic = self.config.eta * losses["forward_loss"].detach()  # η/2 ‖·‖² averaged = η · L_F
        return {**{name: value.detach() for name, value in losses.items()}, "intrinsic_reward": intrinsic}


def add_curiosity(
    env: TensorVecEnv, config: CuriosityConfig | dict[str, Any] | None = None, seed: int = 0
) -> tuple[ModelReward, ModelTraining]:
    """``env`` with curiosity's reward added, and the callback that trains the ICM: pass both to an agent.

    >>> env, curiosity = add_curiosity(rlcourse.make_vec("rlcourse/MountainCar-v0", 16))
    >>> PPO(env, preset=None).learn(200_000, callbacks=[curiosity])   # doctest: +SKIP
    """
    with torch.random.fork_rng(devices=[]):  # the ICM's initial weights come from ``seed``, not the global stream
        torch.manual_seed(seed)
        icm = ICM(env.single_observation_space, env.single_action_space, config).to(env.device)
    training = ModelTraining(icm, icm.config.updates, icm.config.batch_size, seed=seed, prefix="curiosity")
    return ModelReward(env, icm, mode="add"), training
