"""DDPG: the pathwise derivative policy gradient, Q-learning for continuous actions (notes:13562-13846 [Q-Learning to Actor-Critic]).

Q-learning needs argmax_a Q(s, a), which is no longer a lookup when a is continuous (a steering
angle, 50 joints; notes:13562-13574 [Q-Learning]). The notes' fourth answer (notes:13634-13640 [Q-Learning]) is to learn an
actor that *does* the argmax: a deterministic policy π(s) = a trained by gradient ascent through a
learned Q, with Q frozen for that step — actor and Q joined into one network, like a conditional
GAN's generator and discriminator (notes:13774-13860 [Actor-Critic]). Objectives:

    critic:  minimise  E_buffer[ (Q(s,a) − (r + γ·Q̂(s', π̂(s'))))² ]          (target actor π̂, notes:13816-13846 [Actor-Critic])
    actor:   maximise  E_buffer[ Q(s, π(s)) ]                                   (only π's parameters move)

The algorithm is the DQN loop with four changes (notes:13816-13846 [Actor-Critic]): (1) act with π plus
exploration noise instead of argmax Q; (2) the target uses the target actor π̂ and target critic
Q̂; (3) π is updated too, to maximise Q(s, π(s)); (4) both Q̂ and π̂ follow their networks — here by
Polyak averaging θ̂ ← θ̂ + τ(θ − θ̂) after every update (Lillicrap et al. 2016). Replay and
exploration "still apply" (notes:13774-13846 [Actor-Critic]): the shared replay buffer (``replay.py``, n-step
optional) and Gaussian or Ornstein–Uhlenbeck action noise, one OU process per env, reset when its
episode ends.

The actor ends in tanh, so its action lies in [-1, 1]; that is what the critic sees and the buffer
stores, and the env gets it scaled affinely onto the Box bounds. Noise is in the same [-1, 1] units
(σ = 0.1 is 5 % of the action range), as in SB3.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from gymnasium import spaces
from torch import nn

from rlcourse.agents.networks import mlp, polyak_update_
from rlcourse.agents.off_policy import OffPolicyAgent, check_off_policy_config
from rlcourse.agents.replay import Batch
from rlcourse.config import hp


@dataclass
class DDPGConfig:
    """DDPG hyperparameters (SB3's DDPG defaults, with Gaussian exploration noise on by default)."""

    learning_rate: float = hp(1e-3, "Adam step size of the actor and of the critic")
    anneal_lr: bool = hp(False, "decay the learning rate linearly to 0 over training")
    buffer_size: int = hp(
        1_000_000, "transitions kept in replay; the oldest are dropped first (notes:13260-13296 [Q-Learning])"
    )
    learning_starts: int = hp(100, "env steps of uniformly random actions before the first update")
    batch_size: int = hp(256, "transitions per update, sampled from the buffer")
    tau: float = hp(0.005, "Polyak weight of the target networks' update after every step")
    gamma: float = hp(0.99, "discount γ on future rewards (notes:12777-12779 [PPO])")
    train_freq: int = hp(1, "env steps per env between update phases")
    gradient_steps: int = hp(1, "updates (critic, then actor) in each update phase")
    n_step: int = hp(1, "N of multi-step critic targets (notes:13434-13446 [Q-Learning])")
    action_noise: Literal["normal", "ornstein_uhlenbeck", "none"] = hp("normal", "exploration noise added to π(s)")
    noise_std: float = hp(0.1, "σ of the exploration noise, in units of half the action range")
    ou_theta: float = hp(0.15, "Ornstein–Uhlenbeck pull towards 0 per unit time")
    ou_dt: float = hp(1e-2, "Ornstein–Uhlenbeck time step")
    max_grad_norm: float | None = hp(None, "clip each network's gradient norm to this (null: off)")
    net_arch: tuple[int, ...] = hp((400, 300), "hidden layer sizes of the actor and of the critic")
    activation: Literal["tanh", "relu", "elu"] = hp("relu", "hidden-layer activation")
    adam_eps: float = hp(1e-8, "Adam's epsilon")

    def __post_init__(self) -> None:
        check_off_policy_config(self)
        if self.noise_std < 0:
            raise ValueError(f"noise_std must be >= 0, got {self.noise_std!r}")
        for name in ("ou_theta", "ou_dt"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)!r}")


class DeterministicActor(nn.Module):
    """π(s) ∈ [-1, 1]^d: an MLP ending in tanh."""

    def __init__(self, obs_dim: int, action_dim: int, hidden: tuple[int, ...], activation: str):
        super().__init__()
        self.net = mlp(obs_dim, hidden, action_dim, activation, out_gain=0.01)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.net(obs))


class QCritic(nn.Module):
    """Q(s, a) for a continuous action: an MLP over the concatenated state and action (notes:13087-13109 [Q-Learning])."""

    def __init__(self, obs_dim: int, action_dim: int, hidden: tuple[int, ...], activation: str):
        super().__init__()
        self.net = mlp(obs_dim + action_dim, hidden, 1, activation, out_gain=1.0)

    def forward(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat((obs, actions), dim=-1)).squeeze(-1)


class DDPG(OffPolicyAgent):
    """DDPG on a flat Box observation and a 1-D Box action space with finite bounds."""

    algo = "ddpg"
    config_class = DDPGConfig
    config: DDPGConfig

    def _build(self) -> None:
        c = self.config
        action_space = self.env.single_action_space
        if not isinstance(action_space, spaces.Box) or len(action_space.shape) != 1:
            raise ValueError(f"DDPG supports 1-D Box action spaces only, got {action_space}")
        if not (np.isfinite(action_space.low).all() and np.isfinite(action_space.high).all()):
            raise ValueError(f"DDPG needs a Box action space with finite bounds, got {action_space}")
        obs_dim = self._check_flat_box_obs()
        action_dim = int(action_space.shape[0])
        self.actor = DeterministicActor(obs_dim, action_dim, c.net_arch, c.activation).to(self.device)
        self.critic = QCritic(obs_dim, action_dim, c.net_arch, c.activation).to(self.device)
        self.actor_target = copy.deepcopy(self.actor).requires_grad_(False)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.actor_optimizer = self._make_optimizer(self.actor, c.learning_rate)
        self.critic_optimizer = self._make_optimizer(self.critic, c.learning_rate)
        self._build_replay((action_dim,), torch.float32)
        self._critic_loss_fn = torch.compile(self._critic_loss) if self.compile else self._critic_loss
        self._actor_loss_fn = torch.compile(self._actor_loss) if self.compile else self._actor_loss
        low, high = self._action_bounds
        self._action_center, self._action_half_range = (high + low) / 2, (high - low) / 2
        if c.action_noise == "ornstein_uhlenbeck":
            self.ou_state = torch.zeros(self.num_envs, action_dim, device=self.device)
            self._step_state_names = ("ou_state",)

    def _modules(self) -> dict[str, nn.Module]:
        return {
            "actor": self.actor,
            "critic": self.critic,
            "actor_target": self.actor_target,
            "critic_target": self.critic_target,
        }

    def _optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"actor_optimizer": self.actor_optimizer, "critic_optimizer": self.critic_optimizer}

    # ----------------------------------------------------------------- acting
    def _to_env_units(self, actions: torch.Tensor) -> torch.Tensor:
        """[-1, 1] → [low, high]."""
        return self._action_center + self._action_half_range * actions

    def _gaussian(self, shape: torch.Size, generator: torch.Generator | None) -> torch.Tensor:
        return torch.randn(shape, generator=generator, device=self.device)

    def _exploration_noise(self, shape: torch.Size) -> torch.Tensor:
        """Gaussian noise, or one step of each env's Ornstein–Uhlenbeck process dx = −θx·dt + σ√dt·N(0, 1)."""
        c = self.config
        if c.action_noise == "normal":
            return c.noise_std * self._gaussian(shape, self.generator)
        if c.action_noise == "none":
            return torch.zeros(shape, device=self.device)
        kick = c.noise_std * math.sqrt(c.ou_dt) * self._gaussian(shape, self.generator)
        self.ou_state.add_(-c.ou_theta * c.ou_dt * self.ou_state + kick)
        return self.ou_state

    def _behaviour_actions(self, obs, masks, step):
        policy = self.actor(obs)
        explored = (policy + self._exploration_noise(policy.shape)).clamp(-1.0, 1.0)
        uniform = torch.rand(policy.shape, generator=self.generator, device=self.device) * 2 - 1
        stored = torch.where(self._warming_up(step), uniform, explored)
        return self._to_env_units(stored), stored

    def _on_env_step(self, dones: torch.Tensor) -> None:
        if self.config.action_noise == "ornstein_uhlenbeck":
            self.ou_state.masked_fill_(dones[:, None], 0.0)  # a new episode starts a new process

    def _act(self, obs, action_masks, deterministic, generator):
        actions = self.actor(obs)
        if not deterministic:
            actions = (actions + self.config.noise_std * self._gaussian(actions.shape, generator)).clamp(-1.0, 1.0)
        return self._to_env_units(actions)

    # ----------------------------------------------------------------- learning
    def _actor_loss(self, obs: torch.Tensor) -> torch.Tensor:
        """−Q(s, π(s)): descending it is gradient ascent on Q through the critic (notes:13774-13846 [Actor-Critic]).

        Only the actor is stepped with it (``_clip_and_step`` backpropagates into the actor alone), so Q stays fixed.
        """
        return -self.critic(obs, self.actor(obs)).mean()

    def _critic_loss(self, batch: Batch) -> torch.Tensor:
        """Regression of Q(s, a) onto r + γ·Q̂(s', π̂(s')), both target networks frozen."""
        with torch.no_grad():
            next_q = self.critic_target(batch.next_obs, self.actor_target(batch.next_obs))
            target = batch.returns + batch.discounts * next_q
        return F.mse_loss(self.critic(batch.obs, batch.actions), target)

    def _gradient_step(self) -> dict[str, torch.Tensor]:
        """Critic regression onto Q̂(s', π̂(s')), then actor ascent on Q(s, π(s)), then the Polyak updates."""
        c = self.config
        batch = self.replay.sample(c.batch_size, self.generator)
        critic_loss = self._critic_loss_fn(batch)
        self._clip_and_step(critic_loss, self.critic, self.critic_optimizer)
        actor_loss = self._actor_loss_fn(batch.obs)
        self._clip_and_step(actor_loss, self.actor, self.actor_optimizer)
        polyak_update_(self.critic_target, self.critic, c.tau)
        polyak_update_(self.actor_target, self.actor, c.tau)
        return {"train/critic_loss": critic_loss.detach(), "train/actor_loss": actor_loss.detach()}
