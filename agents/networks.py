"""Networks shared by the agents: MLPs with orthogonal init, and the actor-critic used by PPO.

The init follows common practice for PPO (and SB3's default): orthogonal weights with gain √2 in
hidden layers, 0.01 for the policy head and 1 for the value head, zero biases.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from rlcourse.agents.distributions import Categorical, DiagGaussian

ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU, "elu": nn.ELU}


def mlp(in_dim: int, hidden: tuple[int, ...], out_dim: int, activation: str, out_gain: float) -> nn.Sequential:
    """``in_dim -> hidden... -> out_dim`` with orthogonal init; the last layer has gain ``out_gain``."""
    layers: list[nn.Module] = []
    sizes = (in_dim, *hidden)
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        layers += [_orthogonal(nn.Linear(fan_in, fan_out), math.sqrt(2)), ACTIVATIONS[activation]()]
    layers.append(_orthogonal(nn.Linear(sizes[-1], out_dim), out_gain))
    return nn.Sequential(*layers)


def _orthogonal(layer: nn.Linear, gain: float) -> nn.Linear:
    nn.init.orthogonal_(layer.weight, gain)
    nn.init.zeros_(layer.bias)
    return layer


class ActorCritic(nn.Module):
    """Separate policy and value MLPs over a flat observation (π(a|s) and V(s), notes:13744-13752).

    ``policy_params(obs)`` gives the distribution's parameters: logits for ``Categorical``,
    ``(mean, log_std)`` for ``DiagGaussian``.
    """

    def __init__(self, obs_dim: int, distribution: Categorical | DiagGaussian, hidden: tuple[int, ...],
                 activation: str, log_std_init: float = 0.0):
        super().__init__()
        self.distribution = distribution
        self.policy_net = mlp(obs_dim, hidden, distribution.param_dim, activation, out_gain=0.01)
        self.value_net = mlp(obs_dim, hidden, 1, activation, out_gain=1.0)
        self.log_std = nn.Parameter(torch.full((distribution.param_dim,), float(log_std_init))) if isinstance(distribution, DiagGaussian) else None

    def policy_params(self, obs: torch.Tensor):
        out = self.policy_net(obs)
        return out if self.log_std is None else (out, self.log_std)

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        return self.value_net(obs).squeeze(-1)
