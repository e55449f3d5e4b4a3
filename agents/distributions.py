"""Action distributions as plain tensor functions: sampling takes an explicit generator and never syncs.

``Categorical`` works on logits and honours action masks (invalid actions get probability 0);
``DiagGaussian`` works on a mean and a state-independent log standard deviation. Sampling uses the
Gumbel-max trick and ``torch.randn`` with a given ``torch.Generator``, so it is reproducible and can
be captured in a CUDA graph; a :class:`~rlcourse.vec_env.GeneratorGroup` (a population) samples each
member's rows from the member's own generator.
"""

from __future__ import annotations

import math

import torch
from gymnasium import spaces

from rlcourse.vec_env import GeneratorGroup, draw_normal, draw_uniform


def mask_logits(logits: torch.Tensor, action_masks: torch.Tensor | None) -> torch.Tensor:
    """Logits with invalid actions pushed to the lowest finite value (keeps entropies finite)."""
    if action_masks is None:
        return logits
    return torch.where(action_masks, logits, torch.finfo(logits.dtype).min)


class Categorical:
    """A distribution over ``n`` discrete actions, parameterised by logits of shape ``[B, n]``."""

    def __init__(self, n: int):
        self.n = n
        self.param_dim = n

    def sample(self, logits: torch.Tensor, generator: torch.Generator | GeneratorGroup | None) -> torch.Tensor:
        uniform = draw_uniform(logits.shape, generator, logits.device, logits.dtype)
        gumbel = -torch.log(-torch.log(uniform.clamp_min(torch.finfo(logits.dtype).tiny)))
        return torch.argmax(logits + gumbel, dim=-1)

    def mode(self, logits: torch.Tensor) -> torch.Tensor:
        return torch.argmax(logits, dim=-1)

    def log_prob(self, logits: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        log_probs = torch.log_softmax(logits, dim=-1)
        return log_probs.gather(-1, actions.long().unsqueeze(-1)).squeeze(-1)

    def entropy(self, logits: torch.Tensor) -> torch.Tensor:
        log_probs = torch.log_softmax(logits, dim=-1)
        return -(log_probs.exp() * log_probs).sum(-1)


class DiagGaussian:
    """A diagonal Gaussian over Box actions; parameters are ``(mean [B, d], log_std [d])``."""

    def __init__(self, dim: int):
        self.dim = dim
        self.param_dim = dim

    def sample(
        self, params: tuple[torch.Tensor, torch.Tensor], generator: torch.Generator | GeneratorGroup | None
    ) -> torch.Tensor:
        mean, log_std = params
        noise = draw_normal(mean.shape, generator, mean.device, mean.dtype)
        return mean + log_std.exp() * noise

    def mode(self, params: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        return params[0]

    def log_prob(self, params: tuple[torch.Tensor, torch.Tensor], actions: torch.Tensor) -> torch.Tensor:
        mean, log_std = params
        z = (actions - mean) * torch.exp(-log_std)
        return (-0.5 * z.square() - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)

    def entropy(self, params: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        mean, log_std = params
        per_dim = 0.5 + 0.5 * math.log(2 * math.pi) + log_std
        return per_dim.sum(-1).expand(mean.shape[:-1])


def make_distribution(action_space: spaces.Space) -> Categorical | DiagGaussian:
    """The distribution family for an action space, or a ``ValueError`` naming the supported ones."""
    if isinstance(action_space, spaces.Discrete):
        return Categorical(int(action_space.n))
    if isinstance(action_space, spaces.Box) and len(action_space.shape) == 1:
        return DiagGaussian(int(action_space.shape[0]))
    raise ValueError(f"action space {action_space} is not supported by this agent; supported: Discrete, 1-D Box")
