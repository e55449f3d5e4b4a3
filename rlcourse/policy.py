"""The seam between a trainable policy and the code that trains it by supervision (imitation plug-ins).

:mod:`rlcourse.supervised` may not import the agents, yet behaviour cloning and DAgger train an agent's
network. They meet here: a :class:`StochasticPolicy` is any ``torch.nn.Module`` that gives log π(a|s)
and acts; the agents' policy networks (PPO's actor-critic, DQN's Q-network read as logits) satisfy it.
An :data:`Expert` is any batched labeller ``expert(obs, action_masks) -> env actions`` (a rule expert, a
trained agent's ``predict``).

Actions here are the policy's own indices (0..n-1 for a ``Discrete(n, start=k)`` space); turning them into
env actions is the agent's business.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Protocol, runtime_checkable

import torch

#: ``expert(obs [B, ...], action_masks [B, n] or None) -> env actions [B, ...]``, batched, on the env's device.
Expert = Callable[[torch.Tensor, "torch.Tensor | None"], torch.Tensor]


@runtime_checkable
class StochasticPolicy(Protocol):
    """A trainable stochastic policy π_θ(a|s) over batched tensors."""

    def log_prob(
        self, obs: torch.Tensor, actions: torch.Tensor, action_masks: torch.Tensor | None = None
    ) -> torch.Tensor:
        """log π(a|s) ``[N]`` of ``actions`` in ``obs``; invalid actions (mask False) get probability 0."""
        ...

    def act(
        self,
        obs: torch.Tensor,
        action_masks: torch.Tensor | None = None,
        deterministic: bool = True,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Actions ``[N, ...]``: the most likely valid one, or a sample drawn with ``generator``."""
        ...

    def parameters(self, recurse: bool = True) -> Iterator[torch.nn.Parameter]:
        """What an optimizer updates (``torch.nn.Module.parameters``)."""
        ...


__all__ = ["Expert", "StochasticPolicy"]
