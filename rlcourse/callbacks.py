"""Training callbacks: the events of a training loop, and the rollout batch they may read.

A callback subclasses :class:`Callback` and overrides the events it needs:

* ``on_training_start(run)``: ``run`` is the agent, seen through the :class:`TrainingRun` protocol
  (the core knows no agent class);
* ``on_rollout_end(batch)``: after every training iteration (collect, then update). With CUDA
  graphs it runs between two replays, never inside a capture. ``batch`` is the iteration's
  :class:`RolloutBatch` when some callback sets ``needs_batch`` (filling it costs a copy of every
  transition), else ``None``. Returning ``False`` stops training;
* ``on_log(stats)``: the statistics read at a log interval, as floats;
* ``on_training_end()``: after the last iteration (also after a stop by signal or callback).

Discriminator training (GAIL, SeqGAN), curiosity models and periodic evaluation are callbacks.
A callback with state a resumed run needs (the best evaluation so far) returns it from
``state_dict`` and gets it back in ``load_state_dict``; agents keep it in their checkpoints.
Plain functions ``fn(agent) -> bool | None`` still work: they run at ``on_rollout_end``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol

import torch

from rlcourse.run_dir import RunDir


@dataclass
class RolloutBatch:
    """The transitions of one training iteration, ``[steps, num_envs, ...]`` tensors on the agent's device.

    ``next_obs`` is the true next state (the final observation where an episode ended), ``rewards``
    the env's own rewards (before any bootstrapping the agent adds), ``actions`` what the env received.
    The tensors are preallocated and refilled in place every iteration: copy what you keep.
    """

    obs: torch.Tensor
    actions: torch.Tensor
    rewards: torch.Tensor
    next_obs: torch.Tensor
    terminated: torch.Tensor
    dones: torch.Tensor
    action_masks: torch.Tensor | None

    @classmethod
    def allocate(
        cls,
        steps: int,
        num_envs: int,
        obs_shape: tuple[int, ...],
        action_shape: tuple[int, ...],
        action_dtype: torch.dtype,
        mask_dim: int | None,
        device: torch.device,
    ) -> RolloutBatch:
        def zeros(*shape: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
            return torch.zeros((steps, num_envs, *shape), dtype=dtype, device=device)

        return cls(
            obs=zeros(*obs_shape),
            actions=zeros(*action_shape, dtype=action_dtype),
            rewards=zeros(),
            next_obs=zeros(*obs_shape),
            terminated=zeros(dtype=torch.bool),
            dones=zeros(dtype=torch.bool),
            action_masks=None if mask_dim is None else zeros(mask_dim, dtype=torch.bool),
        )

    def record(
        self,
        step: int,
        obs: torch.Tensor,
        actions: torch.Tensor,
        rewards: torch.Tensor,
        next_obs: torch.Tensor,
        terminated: torch.Tensor,
        dones: torch.Tensor,
        action_masks: torch.Tensor | None,
    ) -> None:
        """Write step ``step`` in place (graph safe)."""
        self.obs[step].copy_(obs)
        self.actions[step].copy_(actions)
        self.rewards[step].copy_(rewards)
        self.next_obs[step].copy_(next_obs)
        self.terminated[step].copy_(terminated)
        self.dones[step].copy_(dones)
        if self.action_masks is not None and action_masks is not None:
            self.action_masks[step].copy_(action_masks)


class TrainingRun(Protocol):
    """What a callback sees of the agent that trains."""

    algo: str
    num_timesteps: int
    total_timesteps: int
    run_dir: RunDir | None

    def evaluate(
        self, n_episodes: int = ..., deterministic: bool = ..., seed: int | None = ...
    ) -> dict[str, float]: ...

    def save(self, path: str | Path) -> Path: ...

    def save_checkpoint(self) -> Path: ...

    def log_scalars(self, values: dict[str, float]) -> None: ...


class Callback:
    """Base class of training callbacks; every event does nothing unless overridden (see the module docstring)."""

    #: Whether :meth:`on_rollout_end` reads the batch (agents fill it only when some callback does).
    needs_batch: ClassVar[bool] = False

    def on_training_start(self, run: TrainingRun) -> None:
        self.run = run

    def on_rollout_end(self, batch: RolloutBatch | None) -> bool | None:
        return None

    def on_log(self, stats: dict[str, float]) -> None:
        return None

    def on_training_end(self) -> None:
        return None

    def state_dict(self) -> dict[str, Any]:
        """State a resumed run needs (plain data and tensors)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        return None


class FunctionCallback(Callback):
    """A plain ``fn(agent) -> bool | None``, called after every iteration; ``False`` stops training."""

    def __init__(self, fn: Callable[[Any], bool | None]):
        self.fn = fn

    def on_rollout_end(self, batch: RolloutBatch | None) -> bool | None:
        return self.fn(self.run)


class CallbackList:
    """The callbacks of one ``learn`` call, driven together by the training loop."""

    def __init__(self, callbacks: Iterable[Callback | Callable[[Any], bool | None]]):
        self.callbacks: list[Callback] = []
        for callback in callbacks:
            if isinstance(callback, Callback):
                self.callbacks.append(callback)
            elif callable(callback):
                self.callbacks.append(FunctionCallback(callback))
            else:
                raise TypeError(
                    f"a callback must be an rlcourse.callbacks.Callback or a function of the agent, "
                    f"got {type(callback).__name__}"
                )

    @property
    def needs_batch(self) -> bool:
        return any(callback.needs_batch for callback in self.callbacks)

    def start(self, run: TrainingRun, saved_states: dict[str, Any] | None = None) -> None:
        for key, callback in self._keyed():
            callback.on_training_start(run)
            if saved_states and key in saved_states:
                callback.load_state_dict(saved_states[key])

    def rollout_end(self, batch: RolloutBatch | None) -> bool:
        """Run every callback (none is skipped); whether training should go on."""
        results = [callback.on_rollout_end(batch) for callback in self.callbacks]
        return all(result is not False for result in results)

    def log(self, stats: dict[str, float]) -> None:
        for callback in self.callbacks:
            callback.on_log(stats)

    def end(self) -> None:
        for callback in self.callbacks:
            callback.on_training_end()

    def state_dicts(self) -> dict[str, Any]:
        """Each stateful callback's state, keyed by class name and position (what a checkpoint stores)."""
        return {key: state for key, callback in self._keyed() if (state := callback.state_dict())}

    def _keyed(self) -> list[tuple[str, Callback]]:
        return [(f"{index}:{type(callback).__name__}", callback) for index, callback in enumerate(self.callbacks)]


class EvalCallback(Callback):
    """Evaluate every ``eval_freq`` env steps on a fresh env, log ``eval/*``, keep the best policy in ``best.pt``.

    As SB3's ``EvalCallback``: ``eval/mean_reward``, ``eval/mean_ep_length`` and ``eval/<key>_rate`` for each
    of the env's outcomes; ``best.pt`` (beside ``checkpoint.pt`` in the run folder) is written when, and only
    when, the mean reward beats every earlier evaluation of the run. ``last_result`` holds the latest one.
    """

    def __init__(self, eval_freq: int, n_eval_episodes: int = 10, deterministic: bool = True):
        for name, value in (("eval_freq", eval_freq), ("n_eval_episodes", n_eval_episodes)):
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        self.eval_freq, self.n_eval_episodes, self.deterministic = eval_freq, n_eval_episodes, bool(deterministic)
        self.best_mean_reward = -float("inf")
        self.last_eval_step: int | None = None
        self.last_result: dict[str, float] | None = None

    def on_training_start(self, run: TrainingRun) -> None:
        super().on_training_start(run)
        if self.last_eval_step is None:
            self.last_eval_step = run.num_timesteps

    def on_rollout_end(self, batch: RolloutBatch | None) -> bool | None:
        if self.run.num_timesteps - self.last_eval_step < self.eval_freq:
            return None
        self.last_eval_step = self.run.num_timesteps
        result = self.run.evaluate(n_episodes=self.n_eval_episodes, deterministic=self.deterministic)
        self.last_result = result
        scalars = {"eval/mean_reward": result["mean_reward"], "eval/mean_ep_length": result["mean_length"]}
        scalars.update({f"eval/{key}": value for key, value in result.items() if key.endswith("_rate")})
        self.run.log_scalars(scalars)
        if result["mean_reward"] > self.best_mean_reward:
            self.best_mean_reward = result["mean_reward"]
            if self.run.run_dir is not None:
                self.run.save(self.run.run_dir.best)
        return None

    def state_dict(self) -> dict[str, Any]:
        return {"best_mean_reward": self.best_mean_reward, "last_eval_step": self.last_eval_step}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best_mean_reward = float(state["best_mean_reward"])
        self.last_eval_step = int(state["last_eval_step"])


class CheckpointCallback(Callback):
    """Write the run's ``checkpoint.pt`` every ``save_freq`` env steps (besides the agent's timed checkpoints)."""

    def __init__(self, save_freq: int):
        if isinstance(save_freq, bool) or not isinstance(save_freq, int) or save_freq <= 0:
            raise ValueError(f"save_freq must be a positive integer, got {save_freq!r}")
        self.save_freq = save_freq
        self.last_save_step: int | None = None

    def on_training_start(self, run: TrainingRun) -> None:
        super().on_training_start(run)
        if run.run_dir is None:
            raise ValueError("CheckpointCallback needs an agent with a run_dir to write checkpoints into")
        self.last_save_step = run.num_timesteps

    def on_rollout_end(self, batch: RolloutBatch | None) -> bool | None:
        if self.run.num_timesteps - self.last_save_step >= self.save_freq:
            self.last_save_step = self.run.num_timesteps
            self.run.save_checkpoint()
        return None
