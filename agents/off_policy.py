"""The loop shared by the off-policy agents (DQN, DDPG): act, store in replay, then update from replay.

One iteration (the "typical Q-learning algorithm" of notes:13298-13318 [Q-Learning], also the skeleton of the
pathwise-derivative algorithm of notes:13816-13846 [Actor-Critic]):

1. act ``train_freq`` steps in every env with the exploring behaviour policy, pushing each
   transition into the replay buffer (notes:13260-13296 [Q-Learning]);
2. once ``learning_starts`` steps were collected, do ``gradient_steps`` updates, each on a batch
   sampled from the buffer.

Until ``learning_starts`` the behaviour is uniformly random (as in SB3), so the first batches are
diverse. Everything in an iteration stays on the device: the per-step schedules (warm-up flags,
exploration rates) are computed from device scalars that are refreshed with ``fill_`` before each
iteration, the buffer is written at a device-side position, and statistics are summed as tensors.
An algorithm writes ``_behaviour_actions`` (what to do and what to store), ``_gradient_step`` and
its networks; the replay buffer, and the per-step state an algorithm declares in
``_step_state_names``, go into checkpoints, so a resumed CPU run continues bit for bit. With
``compile=True`` an algorithm runs its losses through ``torch.compile``; on CUDA an iteration after
``learning_starts`` is captured as one CUDA graph (``graphs.capture``) when the env steps on the device.
"""

from __future__ import annotations

import abc
from typing import Any

import torch
from gymnasium import spaces

from rlcourse.agents.base import Agent
from rlcourse.agents.replay import PrioritizedReplayBuffer, ReplayBuffer
from rlcourse.config import check_fields
from rlcourse.vec_env import true_next_obs

REPLAY_PREFIX = "replay."


def check_off_policy_config(config: Any) -> None:
    """Checks every off-policy config shares (``ValueError`` naming the field)."""
    check_fields(
        config,
        positive=("learning_rate", "buffer_size", "batch_size", "train_freq", "gradient_steps", "n_step", "adam_eps"),
        nonnegative=("learning_starts",),
        positive_or_none=("max_grad_norm",),
    )
    if not 0.0 < config.gamma <= 1.0:
        raise ValueError(f"gamma must be in (0, 1], got {config.gamma!r}")
    if not 0.0 < config.tau <= 1.0:
        raise ValueError(f"tau must be in (0, 1], got {config.tau!r}")


class OffPolicyAgent(Agent):
    """Base of the replay-based agents; see the module docstring for the iteration."""

    #: Names of tensor attributes carried from one env step to the next (e.g. exploration noise state).
    _step_state_names: tuple[str, ...] = ()

    @property
    def steps_per_iteration(self) -> int:
        return self.num_envs * self.config.train_freq

    @property
    def default_log_interval(self) -> int:  # type: ignore[override]
        """Read statistics about every 1000 env steps: an iteration can be a single step (train_freq 1, one env)."""
        return max(1, 1000 // self.steps_per_iteration)

    # ----------------------------------------------------------------- building
    def _check_flat_box_obs(self) -> int:
        obs_space = self.env.single_observation_space
        if not isinstance(obs_space, spaces.Box) or len(obs_space.shape) != 1:
            raise ValueError(f"{self.algo.upper()} needs a flat Box observation space, got {obs_space}")
        return int(obs_space.shape[0])

    def _build_replay(
        self, action_shape: tuple[int, ...], action_dtype: torch.dtype, prioritized: bool = False, alpha: float = 0.0
    ) -> None:
        """The replay buffer, the device scalars that drive the per-step schedules, and the update counter."""
        c = self.config
        mask_dim = int(self.env.single_action_space.n) if self.has_action_masks else None
        args = (
            c.buffer_size,
            self.num_envs,
            self.env.single_observation_space.shape,
            action_shape,
            action_dtype,
            mask_dim,
            c.gamma,
            c.n_step,
            self.device,
        )
        self.replay = PrioritizedReplayBuffer(*args, alpha=alpha) if prioritized else ReplayBuffer(*args)
        # Env steps (summed over envs) done before this iteration, and the run's length: refreshed with
        # fill_ each iteration, so the same captured graph serves every iteration.
        self._first_step = torch.zeros((), dtype=torch.float64, device=self.device)
        self._total_steps = torch.ones((), dtype=torch.float64, device=self.device)
        self.n_updates = torch.zeros((), dtype=torch.int64, device=self.device)
        self._learning_rate = torch.zeros((), device=self.device)  # for the log: a host float would need an upload

    def _make_optimizer(self, module: torch.nn.Module, learning_rate: float) -> torch.optim.Adam:
        # Under CUDA graphs the learning rate must be a device tensor that a replay reads.
        lr = torch.tensor(learning_rate, device=self.device) if self.cuda_graphs else learning_rate
        return torch.optim.Adam(
            module.parameters(), lr=lr, eps=self.config.adam_eps, capturable=self.cuda_graphs, fused=True
        )

    # ----------------------------------------------------------------- what an algorithm writes
    @abc.abstractmethod
    def _behaviour_actions(
        self, obs: torch.Tensor, masks: torch.Tensor | None, step: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Exploring actions for step ``step`` of the iteration: ``(policy actions, what the buffer stores)``."""

    @abc.abstractmethod
    def _gradient_step(self) -> dict[str, torch.Tensor]:
        """One update from a replay batch; returns 0-d statistics."""

    def _iteration_stats(self) -> dict[str, torch.Tensor]:
        """Statistics reported every iteration, updates or not (e.g. the exploration rate)."""
        return {}

    def _on_env_step(self, dones: torch.Tensor) -> None:
        """After each env step (e.g. reset the exploration noise of envs whose episode ended)."""

    # ----------------------------------------------------------------- schedules
    def _step_number(self, step: int) -> torch.Tensor:
        """Env steps done (summed over envs) before step ``step`` of this iteration (a device scalar)."""
        return self._first_step + step * self.num_envs

    def _warming_up(self, step: int) -> torch.Tensor:
        """Whether step ``step`` of this iteration still belongs to the first ``learning_starts`` (random) steps."""
        return self._step_number(step) < self.config.learning_starts

    def _progress(self) -> float:
        """Fraction of training done once this iteration's steps are collected (what its updates see, as in SB3)."""
        done = self.num_timesteps + self.steps_per_iteration
        return min(1.0, done / self.total_timesteps) if self.total_timesteps else 0.0

    def _apply_schedules(self) -> None:
        """Host-known progress into the device scalars and learning rates (``fill_``: no host read, graph safe)."""
        self._first_step.fill_(float(self.num_timesteps))
        self._total_steps.fill_(float(max(self.total_timesteps, 1)))
        c = self.config
        lr = c.learning_rate * (1.0 - self._progress()) if c.anneal_lr else c.learning_rate
        self._learning_rate.fill_(lr)
        self._set_learning_rate(lr)

    # ----------------------------------------------------------------- one iteration
    def _train_iteration(self) -> dict[str, torch.Tensor]:
        self._apply_schedules()
        # As SB3: updates begin once the steps collected by the end of this iteration pass learning_starts.
        updates = self.num_timesteps + self.steps_per_iteration >= self.config.learning_starts
        if not (self.cuda_graphs and updates):  # warm-up iterations (no updates) run eagerly
            return self._collect_and_update(updates)
        return self._replay_captured(lambda: self._collect_and_update(True))

    def _collect_and_update(self, updates: bool) -> dict[str, torch.Tensor]:
        stats = self._collect()
        if updates:
            stats.update(self._update())
        stats["train/n_updates"] = self.n_updates.clone()  # SB3's cumulative count (0 while warming up)
        return stats

    @torch.no_grad()
    def _collect(self) -> dict[str, torch.Tensor]:
        """``train_freq`` steps of every env with the behaviour policy, each transition stored."""
        masks = self.env.action_masks() if self.has_action_masks else None
        for step in range(self.config.train_freq):
            actions, stored = self._behaviour_actions(self.obs, masks, step)
            env_actions, masks_before = self._env_action(actions), masks
            next_obs, reward, terminated, truncated, info = self.env.step(env_actions)
            dones = terminated | truncated
            # The true next state of a finished episode is its final observation, not the reset one.
            next_state = true_next_obs(next_obs, info)
            next_masks = None
            if masks is not None:
                masks = self.env.action_masks()
                # The final observation's mask is not part of the env contract unless final_info carries
                # one; without it every action counts as valid there (it matters only for truncations:
                # a terminated transition does not bootstrap).
                final_masks = info["final_info"].get("action_masks", torch.ones_like(masks))
                next_masks = torch.where(dones[:, None], final_masks, masks)
            self.replay.add(self.obs, stored, reward, next_state, terminated, dones, next_masks)
            if self.batch is not None:
                self.batch.record(step, self.obs, env_actions, reward, next_state, terminated, dones, masks_before)
            self.episodes.record(info)
            self._on_env_step(dones)
            self.obs.copy_(next_obs)
        return self._iteration_stats()

    def _update(self) -> dict[str, torch.Tensor]:
        """``gradient_steps`` updates; statistics are their means."""
        sums: dict[str, torch.Tensor] = {}
        for _ in range(self.config.gradient_steps):
            self.n_updates += 1
            for name, value in self._gradient_step().items():
                sums[name] = sums[name] + value.detach() if name in sums else value.detach().clone()
        stats = {name: total / self.config.gradient_steps for name, total in sums.items()}
        stats["train/learning_rate"] = self._learning_rate.clone()
        return stats

    def _clip_and_step(self, loss: torch.Tensor, module: torch.nn.Module, optimizer: torch.optim.Optimizer) -> None:
        """Backpropagate ``loss`` into ``module`` only, clip its gradient norm (if set) and take an Adam step."""
        optimizer.zero_grad(set_to_none=False)
        loss.backward(inputs=list(module.parameters()))
        if self.config.max_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_(module.parameters(), self.config.max_grad_norm)
        optimizer.step()

    # ----------------------------------------------------------------- checkpoints
    def _extra_state(self) -> dict[str, torch.Tensor]:
        state = {REPLAY_PREFIX + name: value for name, value in self.replay.state_dict().items()}
        state["n_updates"] = self.n_updates
        state.update({name: getattr(self, name) for name in self._step_state_names})
        return state

    def _split_extra(self, extra: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        replay = {k[len(REPLAY_PREFIX) :]: v for k, v in extra.items() if k.startswith(REPLAY_PREFIX)}
        return replay, {k: v for k, v in extra.items() if not k.startswith(REPLAY_PREFIX)}

    def _check_fits(self, payload: dict[str, Any], restores_env: bool) -> None:
        super()._check_fits(payload, restores_env)
        replay, own = self._split_extra(payload["extra"])
        self.replay.check_state_dict(replay)
        expected = {"n_updates", *self._step_state_names}
        if set(own) != expected:
            raise ValueError(f"extra state has entries {sorted(own)}, expected {sorted(expected)}")
        for name in expected:
            if own[name].shape != getattr(self, name).shape:
                raise ValueError(
                    f"{name} has shape {tuple(own[name].shape)} in the checkpoint, "
                    f"{tuple(getattr(self, name).shape)} here (another num_envs?)"
                )

    def _load_extra_state(self, state: dict[str, torch.Tensor]) -> None:
        replay, own = self._split_extra(state)
        self.replay.load_state_dict({k: v.to(self.device) for k, v in replay.items()})
        super()._load_extra_state(own)
