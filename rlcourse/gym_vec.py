"""Any Gymnasium env behind the :class:`~rlcourse.TensorVecEnv` contract.

Gymnasium's own vector env (``sync`` or ``async``, SAME_STEP autoreset) runs the copies on the
CPU; this wrapper turns its numpy arrays into tensors on ``device`` and keeps the same episode
statistics as the batched envs. It is the slow path, for envs that have no tensor implementation.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from gymnasium.vector import AutoresetMode

from rlcourse.vec_env import TensorVecEnv

SUPPORTED = "observations: Box or Discrete (one-hot encoded); actions: Discrete, MultiDiscrete, MultiBinary or Box"


def _check_supported(env_id: str, obs_space: spaces.Space, act_space: spaces.Space) -> None:
    if not isinstance(obs_space, (spaces.Box, spaces.Discrete)):
        raise ValueError(
            f"{env_id} has observation space {obs_space}, which rlcourse cannot wrap; supported {SUPPORTED}"
        )
    if not isinstance(act_space, (spaces.Discrete, spaces.MultiDiscrete, spaces.MultiBinary, spaces.Box)):
        raise ValueError(f"{env_id} has action space {act_space}, which rlcourse cannot wrap; supported {SUPPORTED}")


class GymVecEnv(TensorVecEnv):
    """``num_envs`` copies of a Gymnasium env id, with tensors in and out.

    Args:
        env_id: a registered Gymnasium id.
        vectorization_mode: ``"sync"`` (one process) or ``"async"`` (one process per copy).
        env_kwargs: keyword arguments for ``gym.make``.
    """

    #: Gymnasium's envs keep state rlcourse cannot read, so a resumed run starts fresh episodes.
    restorable = False
    #: Every step goes through numpy on the host, which a CUDA graph cannot replay.
    graph_safe = False

    def __init__(
        self,
        env_id: str,
        num_envs: int,
        device="cpu",
        validate: bool = False,
        vectorization_mode: str = "sync",
        env_kwargs: dict[str, Any] | None = None,
    ):
        if isinstance(num_envs, bool) or not isinstance(num_envs, (int, np.integer)) or num_envs <= 0:
            raise ValueError(f"num_envs must be a positive integer, got {num_envs!r}")
        if vectorization_mode not in ("sync", "async"):
            raise ValueError(f"vectorization_mode must be 'sync' or 'async', got {vectorization_mode!r}")
        try:
            probe = gym.make(env_id, **(env_kwargs or {}))
        except TypeError as error:
            raise ValueError(f"{env_id} does not take the options {sorted(env_kwargs or {})}: {error}") from None
        obs_space, act_space = probe.observation_space, probe.action_space
        probe.close()
        _check_supported(env_id, obs_space, act_space)
        self._one_hot = isinstance(obs_space, spaces.Discrete)
        self._obs_start = int(obs_space.start) if self._one_hot else 0
        if self._one_hot:
            obs_space = spaces.Box(0.0, 1.0, (int(obs_space.n),), dtype=np.float32)
        elif obs_space.dtype != np.float32:
            obs_space = spaces.Box(
                obs_space.low.astype(np.float32), obs_space.high.astype(np.float32), dtype=np.float32
            )
        self.single_observation_space = obs_space
        self.single_action_space = act_space
        self.env_id = env_id
        self._options: dict[str, Any] = (
            {"vectorization_mode": vectorization_mode} if vectorization_mode != "sync" else {}
        )
        if env_kwargs:
            self._options["env_kwargs"] = dict(env_kwargs)
        self.envs = gym.make_vec(
            env_id,
            num_envs=int(num_envs),
            vectorization_mode=vectorization_mode,
            vector_kwargs={"autoreset_mode": AutoresetMode.SAME_STEP},
            **(env_kwargs or {}),
        )
        super().__init__(num_envs, device, validate)

    def _obs_tensor(self, obs: Any) -> torch.Tensor:
        obs = torch.as_tensor(np.asarray(obs), device=self.device)
        if self._one_hot:
            return torch.nn.functional.one_hot(
                obs.long() - self._obs_start, self.single_observation_space.shape[0]
            ).float()
        return obs.float()

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        if seed is not None:
            self.generator.manual_seed(int(seed))
        obs, _ = self.envs.reset(seed=seed, options=options)
        self.episode_return.zero_()
        self.episode_length.zero_()
        return self._obs_tensor(obs), {}

    def step(self, actions: torch.Tensor):
        actions = self._check_actions(actions)
        obs, reward, terminated, truncated, info = self.envs.step(actions.cpu().numpy())
        reward = torch.as_tensor(np.asarray(reward, dtype=np.float32), device=self.device)
        terminated = torch.as_tensor(np.asarray(terminated, dtype=bool), device=self.device)
        truncated = torch.as_tensor(np.asarray(truncated, dtype=bool), device=self.device)
        done = terminated | truncated
        next_obs = self._obs_tensor(obs)
        final_obs = next_obs.clone()
        if "final_obs" in info:
            for index in np.flatnonzero(info["_final_obs"]):
                final_obs[index] = self._obs_tensor(np.asarray(info["final_obs"][index])[None])[0]
        return next_obs, reward, terminated, truncated, self._autoreset_info(reward, done, final_obs, {})

    def options(self) -> dict[str, Any]:
        return dict(self._options)

    def spawn(self, num_envs: int, device: str | torch.device | None = None) -> GymVecEnv:
        return GymVecEnv(
            self.env_id, num_envs=num_envs, device=self.device if device is None else device, **self.options()
        )

    def close_extras(self, **kwargs: Any) -> None:
        self.envs.close()
