"""On-policy rollout storage and the advantage estimators that read it.

Storage is preallocated once, ``[n_steps, num_envs, ...]`` on the device; a rollout writes into it
in place, so the same memory is reused every iteration (and a captured CUDA graph stays valid).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


def generalized_advantages(
    rewards: torch.Tensor,
    values: torch.Tensor,
    dones: torch.Tensor,
    last_value: torch.Tensor,
    gamma: float,
    lam: float,
) -> torch.Tensor:
    """GAE(λ) advantages for ``[T, B]`` rollouts (Schulman et al. 2016; not in the notes, see INDEX §2).

    ``dones[t]`` marks that the episode ended at step ``t`` (the next state belongs to a new episode).
    With ``lam = 1`` and ``values = 0`` this is exactly the discounted reward-to-go of notes:12751-12779 [PPO].
    """
    advantages = torch.empty_like(rewards)
    next_advantage = torch.zeros_like(last_value)
    next_value = last_value
    for t in reversed(range(rewards.shape[0])):
        not_done = 1.0 - dones[t].to(rewards.dtype)
        delta = rewards[t] + gamma * not_done * next_value - values[t]
        next_advantage = delta + gamma * lam * not_done * next_advantage
        advantages[t] = next_advantage
        next_value = values[t]
    return advantages


def rewards_to_go(
    rewards: torch.Tensor, dones: torch.Tensor, gamma: float, last_value: torch.Tensor | None = None
) -> torch.Tensor:
    """Σ_{t'≥t} γ^{t'-t} r_{t'} within each episode (tip 2 of notes:12751-12779 [PPO]).

    An episode still running after the last step is cut there; ``last_value`` (e.g. V(s_T)) then
    stands in for its missing rewards, discounted as γ^{T-t}·last_value (default 0: nothing).

    >>> rewards_to_go(torch.tensor([[5.0], [0.0], [-2.0]]), torch.tensor([[False], [False], [True]]), 1.0).flatten()
    tensor([ 3., -2., -2.])
    """
    zeros = torch.zeros_like(rewards)
    return generalized_advantages(rewards, zeros, dones, zeros[0] if last_value is None else last_value, gamma, 1.0)


def ends_within(dones: torch.Tensor) -> torch.Tensor:
    """``[T, B]`` bool: step t's episode ends at t or later inside the rollout (so its reward-to-go is complete).

    The steps where it is False form the tail of an episode that the rollout cut off.
    """
    return dones.flip(0).to(torch.int32).cumsum(0).flip(0) > 0


def explained_variance(predictions: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """1 - Var[target - prediction] / Var[target] (SB3's ``train/explained_variance``); NaN if Var[target] = 0.

    The variances run over the last dimension: ``[N, n]`` samples of N population members give one value each.
    """
    var_targets = targets.var(-1)
    return 1.0 - (targets - predictions).var(-1) / var_targets


def take_samples(samples: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``samples[index]``: rows ``[n, ...]`` by ``[b]`` → ``[b, ...]``; a population's ``[N, n, ...]`` by ``[N, b]``
    → ``[N, b, ...]``, each member's own rows (see :meth:`RolloutBuffer.flat`)."""
    if index.dim() == 1:
        return samples[index]
    return torch.take_along_dim(samples, index.view(*index.shape, *[1] * (samples.dim() - 2)), dim=1)


@dataclass
class RolloutBuffer:
    """Preallocated tensors for one on-policy rollout of ``n_steps`` × ``num_envs`` transitions."""

    obs: torch.Tensor
    actions: torch.Tensor
    log_probs: torch.Tensor
    values: torch.Tensor
    rewards: torch.Tensor
    dones: torch.Tensor
    action_masks: torch.Tensor | None
    advantages: torch.Tensor
    returns: torch.Tensor
    #: Population members whose envs are consecutive groups of the env dimension (None: an agent of its own, whose
    #: fields have no member dimension; a population of one member still has one).
    groups: int | None = None

    @classmethod
    def allocate(
        cls,
        n_steps: int,
        num_envs: int,
        obs_shape: tuple[int, ...],
        action_shape: tuple[int, ...],
        action_dtype: torch.dtype,
        mask_dim: int | None,
        device: torch.device,
        groups: int | None = None,
    ) -> RolloutBuffer:
        def zeros(*shape: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
            return torch.zeros((n_steps, num_envs, *shape), dtype=dtype, device=device)

        return cls(
            obs=zeros(*obs_shape),
            actions=zeros(*action_shape, dtype=action_dtype),
            log_probs=zeros(),
            values=zeros(),
            rewards=zeros(),
            dones=zeros(dtype=torch.bool),
            action_masks=None if mask_dim is None else zeros(mask_dim, dtype=torch.bool),
            advantages=zeros(),
            returns=zeros(),
            groups=groups,
        )

    def flat(self, name: str) -> torch.Tensor:
        """A field with the step and env dimensions merged, ``[n_steps * num_envs, ...]`` (sample ``t * num_envs + b``).

        With ``groups`` members: ``[groups, n_steps * envs_per_member, ...]``, each member's samples in its row,
        numbered as that member's own rollout numbers them.
        """
        tensor = getattr(self, name)
        if self.groups is None:
            return tensor.reshape(-1, *tensor.shape[2:])
        steps, envs, rest = tensor.shape[0], tensor.shape[1] // self.groups, tensor.shape[2:]
        by_member = tensor.view(steps, self.groups, envs, *rest).transpose(0, 1)
        return by_member.reshape(self.groups, steps * envs, *rest)
