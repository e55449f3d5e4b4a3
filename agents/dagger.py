"""DAgger as an agent: the learner drives, an expert labels every state it visits, BC on the aggregate (notes:14090-14108 [Imitation Learning]).

Each iteration i (:mod:`rlcourse.supervised.imitation.dagger` holds the pieces):

1. play ``n_steps`` steps in every env, executing the expert's action with probability βᵢ and the learner's
   otherwise (βᵢ = ``beta0`` · ``beta_decay``ⁱ; the defaults let the expert drive iteration 0 only);
2. ask the expert what it would do in each visited state, and add (s, π̂(s)) to the aggregate D;
3. train the policy for ``gradient_steps`` behaviour-cloning steps on minibatches of D
   (min E_D[−log π_θ(a|s)], notes:14068-14078 [Imitation Learning]).

The expert (``expert``, the CLI's ``--expert``) is the env's rule expert (``expert``) or a trained run
(:func:`rlcourse.agents.experts.resolve_expert`). A timestep is an env step, which is also one expert
label, so ``total_timesteps`` is the expert-label budget, comparable with BC's number of demonstration
transitions. The network and its update are BC's (:class:`~rlcourse.agents.bc.ImitationAgent`), so a DAgger
checkpoint warm-starts PPO or DQN the same way. TensorBoard: ``train/loss``, ``train/accuracy`` (on D),
``train/dataset_size``, ``rollout/expert_fraction`` (βᵢ) and the ``rollout/*`` episode statistics of the
β-mixed policy that acts (the expert's alone in the first iteration when β₀ = 1).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from gymnasium import spaces

from rlcourse.agents.bc import ImitationAgent, ImitationConfig
from rlcourse.agents.experts import RULE_EXPERT, resolve_expert
from rlcourse.config import hp
from rlcourse.supervised.imitation.dagger import AggregatedLabels, dagger_rollout, mixing_beta
from rlcourse.supervised.imitation.demos import load_demonstrations


@dataclass
class DAggerConfig(ImitationConfig):
    """DAgger hyperparameters (the network and its update are BC's)."""

    expert: str = hp(RULE_EXPERT, "who labels the states: 'expert' (the env's rule expert), or a run folder/checkpoint")
    n_steps: int = hp(32, "env steps per env each iteration; every visited state gets an expert label")
    beta0: float = hp(1.0, "probability that the expert's action is executed in iteration 0 (Ross et al.'s β)")
    beta_decay: float = hp(0.0, "β is multiplied by this every iteration (0: only iteration 0 is expert-driven)")
    deterministic: bool = hp(False, "the learner drives with its most likely action instead of sampling")
    demos: str | None = hp(
        None, "expert demonstrations (a Minari dataset) to start the aggregate with, as DAgger's D₀ (null: none)"
    )
    buffer_size: int = hp(200_000, "labelled states kept in the aggregate; the oldest are dropped first")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.n_steps < 1 or self.buffer_size < 1:
            raise ValueError(f"n_steps and buffer_size must be >= 1, got {self.n_steps!r}, {self.buffer_size!r}")
        for name in ("beta0", "beta_decay"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)!r}")


class DAgger(ImitationAgent):
    """Dataset Aggregation with an expert that labels the learner's states."""

    algo = "dagger"
    config_class = DAggerConfig
    config: DAggerConfig

    @property
    def steps_per_iteration(self) -> int:
        return self.config.n_steps * self.num_envs

    def _build(self) -> None:
        c = self.config
        self._build_policy()
        self.expert = resolve_expert(c.expert, self.env)
        obs_space, action_space = self.env.single_observation_space, self.env.single_action_space
        discrete = isinstance(action_space, spaces.Discrete)
        self.aggregate = AggregatedLabels(
            c.buffer_size,
            obs_space.shape,
            action_space.shape,
            torch.int64 if discrete else torch.float32,
            int(action_space.n) if self.has_action_masks else None,
            self.device,
        )
        if c.demos is not None:  # D₀: the expert's own episodes, labelled by what it did
            demos = load_demonstrations(c.demos, self.device, env=self.env)
            if demos.action_masks is None and self.has_action_masks:
                raise ValueError(f"the demonstrations {c.demos!r} have no action masks; {self.env_id} masks actions")
            self.aggregate.add(demos.obs, self._policy_actions(demos.actions), demos.action_masks)

    def _extra_state(self) -> dict[str, torch.Tensor]:
        return {f"aggregate_{name}": value for name, value in self.aggregate.state_dict().items()}

    def _load_extra_state(self, state: dict[str, torch.Tensor]) -> None:
        self.aggregate.load_state_dict({name.removeprefix("aggregate_"): value for name, value in state.items()})

    def _train_iteration(self) -> dict[str, torch.Tensor]:
        c = self.config
        beta = mixing_beta(self.iteration, c.beta0, c.beta_decay)
        last_obs = dagger_rollout(
            self.env,
            self.obs,
            self.policy,
            self.expert.policy,
            self.aggregate,
            c.n_steps,
            beta,
            self.generator,
            c.deterministic,
            self._action_offset,
            on_step=self.episodes.record,
        )
        self.obs.copy_(last_obs)
        stats = self.cloning.fit(self.aggregate.demonstrations(), c.gradient_steps, self.generator)
        stats["train/dataset_size"] = torch.tensor(float(self.aggregate.size), device=self.device)
        stats["rollout/expert_fraction"] = torch.tensor(beta, device=self.device)
        return stats


__all__ = ["DAgger", "DAggerConfig"]
