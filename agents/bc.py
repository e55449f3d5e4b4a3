"""Behaviour cloning as an agent: supervised training of PPO's or DQN's network on demonstrations (notes:14068-14078 [Imitation Learning]).

Objective: minimise E_{(s,a)~demos}[−log π_θ(a|s)] over a Minari dataset of expert episodes, with the
env's action masks applied (the update itself is :mod:`rlcourse.supervised.imitation.bc`).

Why an agent: ``rlcourse train bc ENV --demos DATASET`` then gets everything a run has for free (presets,
TensorBoard ``train/loss`` and ``train/accuracy``, checkpoints, ``--resume``, ``eval``, ``play``), and the
checkpoint's network *is* the network of the agent it imitates for, so ``train ppo --init-from`` (or
``dqn`` with ``network=q_network``) starts from it:

* ``network="actor_critic"``: PPO's :class:`~rlcourse.agents.networks.ActorCritic`, saved as ``policy``;
  only π is trained (V stays as initialised and PPO learns it);
* ``network="q_network"``: DQN's :class:`~rlcourse.agents.dqn.QNetwork`, saved as ``q_net``, with Q(s, ·)
  read as logits: π(a|s) = softmax Q(s, ·), so its greedy action, DQN's, is the clone's most likely one.

Counting: a "timestep" of BC is one demonstration transition trained on, so an iteration is
``gradient_steps × batch_size`` of them, and ``--total-steps`` ÷ the number of demonstration transitions is the
number of passes over the data.
BC never steps the env; ``evaluate`` plays the clone on a fresh copy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from gymnasium import spaces

from rlcourse.agents.base import Agent
from rlcourse.agents.distributions import make_distribution
from rlcourse.agents.dqn import QNetwork
from rlcourse.agents.networks import ActorCritic
from rlcourse.config import check_fields, hp
from rlcourse.supervised.imitation.bc import BehaviourCloning
from rlcourse.supervised.imitation.demos import Demonstrations, load_demonstrations


@dataclass
class ImitationConfig:
    """What behaviour cloning and DAgger share: the network trained and its supervised update."""

    network: Literal["actor_critic", "q_network"] = hp(
        "actor_critic", "the network trained: PPO's actor-critic (warm-starts ppo) or DQN's Q-network (warm-starts dqn)"
    )
    net_arch: tuple[int, ...] = hp((64, 64), "hidden layer sizes (match the agent to warm-start)")
    activation: Literal["tanh", "relu", "elu"] = hp("tanh", "hidden-layer activation (ppo: tanh, dqn: relu)")
    log_std_init: float = hp(0.0, "initial log standard deviation of a Gaussian policy (Box actions)")
    batch_size: int = hp(256, "transitions per gradient step, sampled uniformly from the data")
    gradient_steps: int = hp(100, "gradient steps per iteration (one log point)")
    learning_rate: float = hp(1e-3, "Adam step size")
    weight_decay: float = hp(0.0, "Adam's L2 weight decay")
    max_grad_norm: float | None = hp(None, "clip the global gradient norm to this (null: off)")
    adam_eps: float = hp(1e-8, "Adam's epsilon")

    def __post_init__(self) -> None:
        check_fields(
            self,
            positive=("batch_size", "gradient_steps", "learning_rate", "adam_eps"),
            nonnegative=("weight_decay",),
            positive_or_none=("max_grad_norm",),
        )


@dataclass
class BCConfig(ImitationConfig):
    """Behaviour-cloning hyperparameters."""

    demos: str | None = hp(None, "the demonstrations: a Minari dataset id (under MINARI_DATASETS_PATH) or folder")


class ImitationAgent(Agent):
    """An agent whose policy network is trained by supervision (what BC and DAgger share)."""

    config: ImitationConfig

    def _build_policy(self) -> None:
        """The network the config names, its optimizer and its behaviour-cloning update."""
        c = self.config
        obs_space, action_space = self.env.single_observation_space, self.env.single_action_space
        if not isinstance(obs_space, spaces.Box) or len(obs_space.shape) != 1:
            raise ValueError(f"{self.algo} needs a flat Box observation space, got {obs_space}")
        if c.network == "q_network":
            if not isinstance(action_space, spaces.Discrete):
                raise ValueError(f"network=q_network needs a Discrete action space, got {action_space}")
            self.policy = QNetwork(obs_space.shape[0], int(action_space.n), c.net_arch, c.activation)
            self._module_name = "q_net"  # DQN's name for it, so `dqn --init-from` finds it
        else:
            distribution = make_distribution(action_space)
            self.policy = ActorCritic(obs_space.shape[0], distribution, c.net_arch, c.activation, c.log_std_init)
            self._module_name = "policy"  # PPO's name for it
        self.policy.to(self.device)
        self.optimizer = torch.optim.Adam(
            self.policy.parameters(), lr=c.learning_rate, eps=c.adam_eps, weight_decay=c.weight_decay
        )
        self.cloning = BehaviourCloning(self.policy, self.optimizer, c.batch_size, c.max_grad_norm)

    def _policy_actions(self, actions: torch.Tensor) -> torch.Tensor:
        """Env actions -> the policy's indices (``Discrete(n, start=k)`` envs)."""
        return actions - self._action_offset if self._action_offset else actions

    def _act(self, obs, action_masks, deterministic, generator):
        return self.policy.act(obs, action_masks, deterministic, generator)

    def _modules(self) -> dict[str, torch.nn.Module]:
        return {self._module_name: self.policy}

    def _optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"optimizer": self.optimizer}


class BC(ImitationAgent):
    """Behaviour cloning from a Minari dataset of demonstrations (``rlcourse collect`` writes them)."""

    algo = "bc"
    config_class = BCConfig
    config: BCConfig
    default_num_envs = 64  # envs of the evaluation copies only: BC itself never steps the env

    @property
    def steps_per_iteration(self) -> int:
        return self.config.batch_size * self.config.gradient_steps

    def _build(self) -> None:
        self._build_policy()  # the spaces are checked first: an unsupported env is refused for what it is
        if self.config.demos is None:
            raise ValueError(
                "bc needs demonstrations: demos=DATASET, a Minari dataset id or folder (`rlcourse collect` records them)"
            )
        demos = load_demonstrations(self.config.demos, self.device, env=self.env)
        demos.actions = self._policy_actions(demos.actions)
        self.demos: Demonstrations = demos

    def _train_iteration(self) -> dict[str, torch.Tensor]:
        return self.cloning.fit(self.demos, self.config.gradient_steps, self.generator)


__all__ = ["BC", "BCConfig", "ImitationAgent", "ImitationConfig"]
