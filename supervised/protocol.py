"""The plug-in protocol: a :class:`RewardModel` scores transitions, a :class:`Discriminator` also learns from them.

* ``RewardModel.reward(batch) -> Tensor[B]``: one reward per transition of ``batch``, a
  :class:`~rlcourse.wrappers.TransitionBatch` (``obs``, ``actions``, ``next_obs``, ``rewards``,
  ``terminated``, ``truncated``, each with a leading batch dimension). Any env takes one through
  :class:`~rlcourse.supervised.reward.ModelReward` (``mode="replace" | "add"``, with a scale).
* ``Discriminator.update(real, fake) -> stats``: one training step that tells ``real`` transitions
  (demonstrations) from ``fake`` ones (the agent's), returning a dict of 0-d tensors; a callback
  (:class:`~rlcourse.supervised.training.DiscriminatorTraining`) runs it between rollouts.
* A plug-in whose model learns from the agent's own transitions alone (curiosity) has
  ``update(batch)`` instead and is trained by :class:`~rlcourse.supervised.training.ModelTraining`.

Every plug-in is built from ``(observation_space, action_space, config)``, where ``config`` is its
dataclass of settings (the same ``hp`` fields agents use), so it can be rebuilt from a file:
:meth:`RewardModel.save` writes plain tensors and data atomically, and :func:`load_plugin` reads them
back with ``weights_only=True`` into the class named in the file (see :mod:`~rlcourse.supervised.storage`).

Rules the models keep, because agents capture the env's ``step`` (and with it ``reward``) in CUDA graphs:
no host reads or Python branches on tensor values in ``reward``, parameters updated in place.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import torch
from gymnasium import spaces
from torch import nn

from rlcourse.callbacks import RolloutBatch
from rlcourse.config import make_config
from rlcourse.wrappers import TransitionBatch

__all__ = ["Discriminator", "NoSettings", "RewardModel", "Transitions", "action_features", "transitions_of"]


class Transitions(Protocol):
    """What a plug-in reads of a batch: a :class:`TransitionBatch`, flattened rollouts, or demonstrations."""

    obs: torch.Tensor
    actions: torch.Tensor
    next_obs: torch.Tensor
    terminated: torch.Tensor
    action_masks: torch.Tensor | None  #: the valid actions in ``obs`` (envs with action masks), else None


@dataclass
class NoSettings:
    """The settings of a plug-in that has none."""


class RewardModel(nn.Module, abc.ABC):
    """A module that gives one reward per transition: ``reward(batch) -> Tensor[B]`` (float, on the batch's device).

    Subclasses build their networks in ``__init__(observation_space, action_space, config)`` after calling
    this one, and set :attr:`config_class` when they have settings; ``config`` may be an instance of it,
    a dict of its fields, or None (the defaults).
    """

    #: The dataclass of this plug-in's settings.
    config_class: ClassVar[type] = NoSettings

    def __init__(self, observation_space: spaces.Space, action_space: spaces.Space, config: Any = None):
        super().__init__()
        if not isinstance(observation_space, spaces.Box) or observation_space.shape is None:
            raise ValueError(f"{type(self).__name__} needs a Box observation space, got {observation_space}")
        if not isinstance(action_space, (spaces.Discrete, spaces.Box)):
            raise ValueError(f"{type(self).__name__} needs a Discrete or Box action space, got {action_space}")
        if config is None or isinstance(config, dict):
            config = make_config(self.config_class, config)
        elif not isinstance(config, self.config_class):
            raise TypeError(f"{type(self).__name__} takes a {self.config_class.__name__}, got {type(config).__name__}")
        self.observation_space, self.action_space, self.config = observation_space, action_space, config
        self.obs_dim = int(torch.Size(observation_space.shape).numel())
        self.action_dim = action_space.n if isinstance(action_space, spaces.Discrete) else int(action_space.shape[0])

    @abc.abstractmethod
    def reward(self, batch: Transitions) -> torch.Tensor:
        """One reward per transition, ``[B]``."""

    def check_env(self, env: Any) -> None:
        """Refuse (a ValueError) an env whose spaces fit but whose data this model cannot read; nothing by default
        (the chat plug-ins check the env's tokenizer). :class:`~rlcourse.supervised.reward.ModelReward` calls it."""

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def features(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """``obs`` flattened, and the actions as :func:`action_features`, side by side: ``[B, obs_dim + action_dim]``."""
        return torch.cat((obs.flatten(1).float(), action_features(actions, self.action_space)), -1)

    def save(self, path: Any) -> Any:
        """Write this plug-in (settings, spaces, weights, optimizer) to ``path`` atomically; see :func:`load_plugin`."""
        from rlcourse.supervised.storage import save_plugin

        return save_plugin(self, path)


class Discriminator(RewardModel):
    """A reward model trained to tell ``real`` transitions (demonstrations) from ``fake`` ones (the agent's)."""

    @abc.abstractmethod
    def update(self, real: Transitions, fake: Transitions) -> dict[str, torch.Tensor]:
        """One training step on a real and a fake batch; statistics as 0-d tensors (read once per log interval)."""


def action_features(actions: torch.Tensor, action_space: spaces.Space) -> torch.Tensor:
    """Actions as floats a network reads: one-hot for ``Discrete``, the values themselves for ``Box``."""
    if isinstance(action_space, spaces.Discrete):  # Discrete(n, start=k) actions are k..k+n-1
        return nn.functional.one_hot(actions.long().reshape(-1) - int(action_space.start), action_space.n).float()
    return actions.reshape(actions.shape[0], -1).float()


def transitions_of(batch: RolloutBatch) -> TransitionBatch:
    """A training iteration's ``[steps, num_envs, ...]`` rollout as one flat :class:`TransitionBatch` ``[steps * num_envs]``."""

    def flat(tensor: torch.Tensor) -> torch.Tensor:
        return tensor.reshape(-1, *tensor.shape[2:])

    terminated = flat(batch.terminated)
    return TransitionBatch(
        obs=flat(batch.obs),
        actions=flat(batch.actions),
        next_obs=flat(batch.next_obs),
        rewards=flat(batch.rewards),
        terminated=terminated,
        truncated=flat(batch.dones) & ~terminated,
        action_masks=None if batch.action_masks is None else flat(batch.action_masks),
    )
