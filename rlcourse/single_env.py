"""The single-env adapter: ``gym.make("rlcourse/<Name>-v<k>")`` runs the batched code with one env on the CPU.

It is a plain :class:`gymnasium.Env` with numpy in and out, so Gymnasium's and SB3's env checkers
and SB3 itself work on it. Values are range-checked (``validate=True``). After an episode ends, the
batched env has already started the next one (SAME_STEP autoreset); an unseeded ``reset()`` hands
out that episode instead of drawing another, so a single env and a batched env with the same seed
produce the same stream of episodes.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch


def _to_python(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        array = value.detach().cpu().numpy()
        return array.item() if array.ndim == 0 else array
    if isinstance(value, dict):
        return {k: _to_python(v) for k, v in value.items()}
    return value


def unbatch_info(info: dict[str, Any], index: int = 0) -> dict[str, Any]:
    """The info of one sub-env, without the ``_key`` masks and autoreset keys, as numpy/python values."""
    single: dict[str, Any] = {}
    for key, value in info.items():
        if key.startswith("_") or key in ("final_obs", "final_info"):
            continue
        if isinstance(value, dict):
            if key == "episode" and not bool(info["_episode"][index]):
                continue
            single[key] = unbatch_info(value, index)
        elif isinstance(value, torch.Tensor) and value.ndim > 0:
            single[key] = _to_python(value[index])
        else:
            single[key] = _to_python(value)
    return single


class SingleEnv(gym.Env):
    """One sub-env of a registered :class:`~rlcourse.TensorVecEnv`, as a Gymnasium env."""

    #: The modes any rlcourse env may offer; each instance narrows this to its own env's modes.
    metadata = {"render_modes": ["ansi"], "render_fps": 1}

    def __init__(self, vec_env_id: str, render_mode: str | None = None, **kwargs: Any):
        from rlcourse.registry import vec_env_class

        vec_cls = vec_env_class(vec_env_id)
        modes = vec_cls.metadata.get("render_modes", [])
        if render_mode is not None and render_mode not in modes:
            raise ValueError(f"{vec_env_id} supports render modes {modes or 'none'}, not {render_mode!r}")
        self.render_mode = render_mode
        self.metadata = {"render_modes": list(modes), "render_fps": 1}
        self._lines: list[str] = []
        self.vec = vec_cls(num_envs=1, device="cpu", validate=True, **kwargs)
        self.vec.recording = render_mode == "ansi"  # each step's info then carries what render() writes
        self.observation_space = self.vec.single_observation_space
        self.action_space = self.vec.single_action_space
        self._next_episode_obs: torch.Tensor | None = None
        self._action_dtype = self.vec._action_dtype

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        if seed is None and options is None and self._next_episode_obs is not None:
            obs = self._next_episode_obs
        else:
            obs, _ = self.vec.reset(seed=seed, options=options)
        self._next_episode_obs = None
        if self.render_mode == "ansi":
            self._lines = list(self.vec.render_opening(0))
        return obs[0].numpy(), {}

    def step(self, action: Any):
        self._next_episode_obs = None  # stepping on without reset() continues the batched env's new episode
        array = np.asarray(action)
        if array.shape != self.action_space.shape:
            raise ValueError(
                f"action must have shape {self.action_space.shape} for {self.action_space}, got {array.shape}"
            )
        integral = np.issubdtype(array.dtype, np.integer) or (
            np.issubdtype(array.dtype, np.floating) and np.all(np.mod(array, 1) == 0)
        )
        if not self._action_dtype.is_floating_point and not integral:
            raise ValueError(f"action must be an integer for {self.action_space}, got {action!r}")
        actions = torch.as_tensor(array, dtype=self._action_dtype).reshape(1, *array.shape)
        obs, reward, terminated, truncated, info = self.vec.step(actions)
        if self.render_mode == "ansi":
            self._lines += self.vec.render_turn(info, 0)
        done = bool(terminated[0] | truncated[0])
        if done:
            self._next_episode_obs = obs
            obs = info["final_obs"]
        return obs[0].numpy(), float(reward[0]), bool(terminated[0]), bool(truncated[0]), unbatch_info(info)

    def render(self) -> str | None:
        """``render_mode="ansi"``: the current episode so far as text (for text envs, the dialogue transcript)."""
        if self.render_mode != "ansi":
            return None
        return "\n".join(self._lines)

    def action_masks(self) -> np.ndarray:
        """Valid actions of the current state (for sb3-contrib's MaskablePPO), where the env has masks."""
        if not self.vec.has_action_masks:
            return np.ones(self.action_space.n, dtype=bool)
        return self.vec.action_masks()[0].numpy()
