"""DAgger (Dataset Aggregation): the learner drives, the expert labels the states it visits (notes:14090-14108 [Imitation Learning]).

Behaviour cloning only sees the states the expert visits; once the clone errs it meets states nobody
showed it (notes:14080-14088 [Imitation Learning]). DAgger collects "what the expert would do in the
extreme situations" (notes:14092-14094 [Imitation Learning]) by letting the learner act:

1. the actor π₁ drives; an expert rides along and says what it would do in every state π₁ visits
   (notes:14098-14100 [Imitation Learning]);
2. π₁ ignores those instructions and carries on (notes:14102-14104 [Imitation Learning]): only the labels
   (s, π̂(s)) are recorded;
3. the labels are added to the data, π₂ is trained on all of it, and the process repeats
   (notes:14108 [Imitation Learning]).

Ross et al.'s β-mixing (beyond the notes): in iteration i the expert's action is executed with probability
βᵢ (per env and step) and the learner's otherwise; βᵢ = β₀·decayⁱ, and β₀ = 1, decay = 0 is the common
"the expert drives the first iteration only". Every visited state is labelled whoever drove, so the
expert-label budget is the number of env steps. Training on the aggregate is behaviour cloning
(:class:`~rlcourse.supervised.imitation.bc.BehaviourCloning`).
"""

from __future__ import annotations

import torch

from rlcourse.policy import Expert, StochasticPolicy
from rlcourse.supervised.imitation.demos import Demonstrations
from rlcourse.vec_env import TensorVecEnv


def mixing_beta(iteration: int, beta0: float, decay: float) -> float:
    """βᵢ = β₀ · decayⁱ, the probability that the expert's action is the one executed in iteration ``iteration``."""
    return float(beta0) * float(decay) ** int(iteration) if iteration > 0 else float(beta0)


class AggregatedLabels:
    """The growing dataset D = ∪ᵢ {(s, π̂(s))}: preallocated tensors on the device, the oldest dropped when full.

    ``states`` holds only what labels need (observations, expert actions, masks), as :class:`Demonstrations`
    with empty rewards and next observations equal to the observations (behaviour cloning reads neither).
    """

    def __init__(
        self,
        capacity: int,
        obs_shape: tuple[int, ...],
        action_shape: tuple[int, ...],
        action_dtype: torch.dtype,
        mask_dim: int | None,
        device: torch.device,
        obs_dtype: torch.dtype = torch.float32,
    ):
        if capacity <= 0:
            raise ValueError(f"capacity must be positive, got {capacity!r}")
        self.capacity = int(capacity)
        self.obs = torch.zeros((self.capacity, *obs_shape), dtype=obs_dtype, device=device)
        self.labels = torch.zeros((self.capacity, *action_shape), dtype=action_dtype, device=device)
        self.masks = (
            None if mask_dim is None else torch.ones((self.capacity, mask_dim), dtype=torch.bool, device=device)
        )
        self.size = 0  # host counters: the number of rows is known without reading the device
        self.position = 0

    def add(self, obs: torch.Tensor, labels: torch.Tensor, masks: torch.Tensor | None) -> None:
        """Append a batch of labelled states (overwriting the oldest once full)."""
        if obs.shape[0] > self.capacity:  # only the newest rows fit
            obs, labels = obs[-self.capacity :], labels[-self.capacity :]
            masks = None if masks is None else masks[-self.capacity :]
        rows = (self.position + torch.arange(obs.shape[0], device=obs.device)) % self.capacity
        self.obs[rows] = obs
        self.labels[rows] = labels
        if self.masks is not None and masks is not None:
            self.masks[rows] = masks
        self.position = (self.position + obs.shape[0]) % self.capacity
        self.size = min(self.capacity, self.size + obs.shape[0])

    def demonstrations(self) -> Demonstrations:
        """The labelled states so far as :class:`Demonstrations` (views, no copies)."""
        n = self.size
        zeros = torch.zeros(n, device=self.obs.device)
        flags = torch.zeros(n, dtype=torch.bool, device=self.obs.device)
        masks = None if self.masks is None else self.masks[:n]
        return Demonstrations(self.obs[:n], self.labels[:n], self.obs[:n], zeros, flags, flags, masks, 0)

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The filled rows only (a checkpoint does not carry the empty capacity) and the counters."""
        n = self.size
        state = {"obs": self.obs[:n], "labels": self.labels[:n], "counters": torch.tensor([n, self.position])}
        return state if self.masks is None else {**state, "masks": self.masks[:n]}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        size, position = (int(v) for v in state["counters"].tolist())
        if size > self.capacity or tuple(state["obs"].shape[1:]) != tuple(self.obs.shape[1:]):
            raise ValueError(
                f"the saved aggregate ({size} states of shape {tuple(state['obs'].shape[1:])}) does not fit "
                f"this one ({self.capacity} of shape {tuple(self.obs.shape[1:])})"
            )
        self.obs[:size] = state["obs"]
        self.labels[:size] = state["labels"]
        if self.masks is not None:
            self.masks[:size] = state["masks"]
        self.size, self.position = size, position


def dagger_rollout(
    env: TensorVecEnv,
    obs: torch.Tensor,
    policy: StochasticPolicy,
    expert: Expert,
    labels: AggregatedLabels,
    n_steps: int,
    beta: float,
    generator: torch.Generator,
    deterministic: bool = False,
    action_offset: int = 0,
    on_step=None,
) -> torch.Tensor:
    """``n_steps`` steps of every env driven by the β-mixture; each visited state is labelled by ``expert``.

    ``expert`` is asked exactly once per visited state and only there. ``action_offset`` turns the policy's
    action indices into env actions (``Discrete(n, start=k)``); ``on_step(info)`` sees each step's info (episode
    statistics). Returns the observations the rollout ended in.
    """
    for _ in range(n_steps):
        masks = env.action_masks() if env.has_action_masks else None
        with torch.no_grad():
            expert_actions = expert(obs, masks)
            learner_actions = policy.act(obs, masks, deterministic, generator) + action_offset
        labels.add(obs, expert_actions - action_offset, masks)
        if beta > 0.0:
            take_expert = torch.rand(obs.shape[0], generator=generator, device=obs.device) < beta
            take_expert = take_expert.view(-1, *[1] * (learner_actions.dim() - 1))
            actions = torch.where(take_expert, expert_actions.to(learner_actions.dtype), learner_actions)
        else:
            actions = learner_actions
        obs, _, _, _, info = env.step(actions)
        if on_step is not None:
            on_step(info)
    return obs


__all__ = ["AggregatedLabels", "dagger_rollout", "mixing_beta"]
