"""Behaviour cloning: imitation as plain supervised learning on the expert's (s, a) pairs (notes:14068-14078 [Imitation Learning]).

Objective. Given demonstrations {(s_i, a_i)} of an expert π̂, "learn a network, the actor: given s_i we want
its output to be a_i; a purely supervised learning problem" (notes:14076-14078 [Imitation Learning]). For a
stochastic policy π_θ that is maximum likelihood, i.e. minimise the cross-entropy

    L(θ) = E_{(s,a)~demos} [ −log π_θ(a | s) ]

where π_θ(·|s) puts no mass on the actions the env marks invalid in s (the masks are part of the data), so
the probability is spread over the valid ones only. ``train/accuracy`` is how often π_θ's most likely action
is the expert's.

Known limits, which DAgger (:mod:`~rlcourse.supervised.imitation.dagger`) and inverse RL address: the expert
only visits a narrow set of states, so the clone has never seen the ones its own mistakes lead to
(notes:14080-14088 [Imitation Learning]); it copies irrelevant habits too, and with limited capacity may
copy the wrong ones (notes:14110-14124 [Imitation Learning]); and the states it meets at test time are not
those it was trained on, so small errors compound (notes:14126-14144 [Imitation Learning]).

The policy is any :class:`rlcourse.policy.StochasticPolicy` (an agent's network), so the same update trains
PPO's actor-critic or DQN's Q-network (read as logits) and the result warm-starts that agent.
"""

from __future__ import annotations

import torch

from rlcourse.policy import StochasticPolicy
from rlcourse.supervised.imitation.demos import Demonstrations


def bc_loss(
    policy: StochasticPolicy, obs: torch.Tensor, actions: torch.Tensor, action_masks: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """The negative log-likelihood −mean log π(a|s) of a batch, and (Discrete actions) the clone's accuracy."""
    loss = -policy.log_prob(obs, actions, action_masks).mean()
    if actions.dtype.is_floating_point:
        return loss, torch.full((), float("nan"), device=loss.device)
    with torch.no_grad():
        accuracy = (policy.act(obs, action_masks, deterministic=True) == actions).float().mean()
    return loss, accuracy


class BehaviourCloning:
    """Minibatch gradient descent on :func:`bc_loss` for one policy and its optimizer.

    Args:
        policy: the network to train.
        optimizer: an optimizer over ``policy.parameters()``.
        batch_size: transitions per gradient step, drawn uniformly from the demonstrations.
        max_grad_norm: clip the global gradient norm to this (None: no clipping).
    """

    def __init__(
        self,
        policy: StochasticPolicy,
        optimizer: torch.optim.Optimizer,
        batch_size: int = 256,
        max_grad_norm: float | None = None,
    ):
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size!r}")
        self.policy, self.optimizer = policy, optimizer
        self.batch_size, self.max_grad_norm = int(batch_size), max_grad_norm
        self._parameters = [p for group in optimizer.param_groups for p in group["params"]]

    def step(self, batch: Demonstrations) -> torch.Tensor:
        """One gradient step on ``batch``; returns ``[loss, accuracy]`` (on the device, no host sync)."""
        loss, accuracy = bc_loss(self.policy, batch.obs, batch.actions, batch.action_masks)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.max_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_(self._parameters, self.max_grad_norm)
        self.optimizer.step()
        return torch.stack((loss.detach(), accuracy))

    def fit(self, demos: Demonstrations, gradient_steps: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """``gradient_steps`` steps on minibatches sampled from ``demos``; the mean ``train/loss`` and ``train/accuracy``."""
        sums = torch.zeros(2, device=demos.obs.device)
        for _ in range(gradient_steps):
            sums += self.step(demos.sample(self.batch_size, generator))
        mean = sums / max(gradient_steps, 1)
        return {"train/loss": mean[0], "train/accuracy": mean[1]}


__all__ = ["BehaviourCloning", "bc_loss"]
