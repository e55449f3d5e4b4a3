"""The single-env adapter: ``gym.make("rlcourse/<Name>-v<k>")`` runs the batched code with one env on the CPU.

It is a plain :class:`gymnasium.Env` with numpy in and out, so Gymnasium's and SB3's env checkers
and SB3 itself work on it. After an episode ends, the batched env has already started the next one
(SAME_STEP autoreset); an unseeded ``reset()`` hands out that episode instead of drawing another, so
a single env and a batched env with the same seed produce the same stream of episodes.

**Actions** are checked here, in numpy, before they reach the batched env: the shape, that a
discrete action is an integer, and that it lies in the action space (a ``ValueError`` that names
the space). The batched env itself runs with ``validate=False``, so no check is paid twice.

**Speed.** ``reset`` and ``step`` run the batched env under one reused ``torch.inference_mode`` context: a step
is a few dozen operations on one-element tensors, and autograd's bookkeeping would add to each of them (the
outputs leave as numpy, so no inference tensor reaches the caller).

**Info** holds only what a Gymnasium user reads:

* ``reset``: ``{}``, plus ``action_mask`` for envs with action masks;
* a step inside an episode: ``{}``, plus ``action_mask`` for envs with action masks;
* the step that ends an episode: ``episode`` (``{"r": return, "l": length}``, as Gymnasium's
  ``RecordEpisodeStatistics`` writes it) and each of the env's outcomes (``outcome_keys``, e.g.
  ``success``) as a Python bool; ``success`` is also written as ``is_success``, the key SB3 reads
  for its ``rollout/success_rate``.

``action_mask`` is the ``np.int8`` mask of the valid actions in the state just handed out, in the
form ``env.action_space.sample(mask=...)`` takes; :meth:`SingleEnv.action_masks` gives the same as
bools (for sb3-contrib's MaskablePPO). What an action index means is :attr:`SingleEnv.action_names`
(``env.unwrapped.action_names``). The batched env's own, bulkier info (per-step values, the acts
that transcripts are written from) stays inside: use :func:`rlcourse.make_vec` to see it.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces


class SingleEnv(gym.Env):
    """One sub-env of a registered :class:`~rlcourse.TensorVecEnv`, as a Gymnasium env (see the module docstring)."""

    #: The modes any rlcourse env may offer; each instance narrows this to its own env's modes.
    metadata = {"render_modes": ["ansi", "rgb_array"], "render_fps": 1}

    def __init__(self, vec_env_id: str, render_mode: str | None = None, **kwargs: Any):
        from rlcourse.registry import vec_env_class

        vec_cls = vec_env_class(vec_env_id)
        modes = vec_cls.metadata.get("render_modes", [])
        if render_mode is not None and render_mode not in modes:
            raise ValueError(f"{vec_env_id} supports render modes {modes or 'none'}, not {render_mode!r}")
        self.render_mode = render_mode
        self.metadata = {"render_modes": list(modes), "render_fps": vec_cls.metadata.get("render_fps", 1)}
        self._lines: list[str] = []
        # What render_mode="rgb_array" draws: the last observation handed out.
        self._shown_obs: torch.Tensor | np.ndarray | None = None
        self.vec = vec_cls(num_envs=1, device="cpu", **kwargs)
        self.vec.recording = render_mode == "ansi"  # each step's info then carries what render() writes
        self.observation_space = self.vec.single_observation_space
        self.action_space = self.vec.single_action_space
        self._next_episode_obs: torch.Tensor | None = None
        # One action tensor, reused: writing an action through its numpy view costs no torch op.
        self._actions = torch.zeros(self.vec._action_shape, dtype=self.vec._action_dtype)
        self._action_slot = self._actions.numpy()
        self._outcome_keys = tuple(self.vec.outcome_keys)
        if isinstance(self.action_space, spaces.Box):  # its bounds as Python floats, for a cheap check of small actions
            self._bounds = list(zip(self.action_space.low.ravel().tolist(), self.action_space.high.ravel().tolist()))
        self._masked = bool(self.vec.has_action_masks)
        self._inference = torch.inference_mode()

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        del state["_inference"]  # it holds torch's guard object once used, which cannot be copied or pickled
        del state["_action_slot"]  # a copy would no longer share the action tensor's memory
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._action_slot = self._actions.numpy()
        self._inference = torch.inference_mode()

    @property
    def action_names(self) -> tuple[str, ...]:
        """What each action index means, in index order (``()`` where the env does not name its actions)."""
        return self.vec.action_names

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        if seed is None and options is None and self._next_episode_obs is not None:
            obs = self._next_episode_obs
        else:
            with self._inference:
                obs, _ = self.vec.reset(seed=seed, options=options)
        self._next_episode_obs = None
        if self.render_mode == "ansi":
            self._lines = list(self.vec.render_opening(0))
        self._shown_obs = obs[0]
        return obs.numpy()[0], self._mask_info()

    def step(self, action: Any):
        self._next_episode_obs = None  # stepping on without reset() continues the batched env's new episode
        self._put_action(action)
        with self._inference:
            obs, reward, terminated, truncated, info = self.vec.step(self._actions)
        if self.render_mode == "ansi":
            self._lines += self.vec.render_turn(info, 0)
        if self.vec._selects_none(info["_final_obs"]):  # the episode goes on (answered inside the step already)
            ended = cut = False
            step_info = self._mask_info()
        else:
            ended, cut = terminated.item(), truncated.item()
            self._next_episode_obs = obs
            obs = info["final_obs"]
            step_info = self._episode_end_info(info["final_info"])
        self._shown_obs = shown = obs.numpy()[0]
        return shown, reward.item(), ended, cut, step_info

    def _put_action(self, action: Any) -> None:
        """Check ``action`` against the action space and write it into the batched env's action tensor."""
        space = self.action_space
        if isinstance(space, spaces.Box):
            values = np.asarray(action, dtype=self._action_slot.dtype)
            if values.shape != space.shape:
                raise ValueError(f"action must have shape {space.shape} for {space}, got {values.shape}")
            if values.size <= 16:  # NaN fails every comparison, so it is outside too
                inside = all(low <= value <= high for value, (low, high) in zip(values.ravel().tolist(), self._bounds))
            else:
                inside = bool((values >= space.low).all() and (values <= space.high).all())
            if not inside:
                raise ValueError(f"an action is outside the action space {space}")
            self._action_slot[0] = values
            return
        if (
            isinstance(space, spaces.Discrete)
            and isinstance(action, (int, np.integer))
            and not isinstance(action, bool)
        ):
            value = int(action)  # the common case, without a round trip through numpy
        else:
            array = np.asarray(action)
            if array.shape != space.shape:
                raise ValueError(f"action must have shape {space.shape} for {space}, got {array.shape}")
            if not _is_integral(array):
                raise ValueError(f"action must be an integer for {space}, got {action!r}")
            if not isinstance(space, spaces.Discrete):
                self._put_multi(array)
                return
            value = int(array)
        if not space.start <= value < space.start + space.n:
            raise ValueError(f"action {value} is outside the action space {space}")
        self._action_slot[0] = value

    def _put_multi(self, array: np.ndarray) -> None:
        """A MultiDiscrete or MultiBinary action, checked and written."""
        space = self.action_space
        high = space.nvec if isinstance(space, spaces.MultiDiscrete) else 2
        if np.any((array < 0) | (array >= high)):
            raise ValueError(f"an action is outside the action space {space}")
        self._action_slot[0] = array

    def _mask_info(self) -> dict[str, Any]:
        if not self._masked:
            return {}
        return {"action_mask": self.vec.action_masks().numpy()[0].astype(np.int8)}

    def _episode_end_info(self, final_info: dict[str, Any]) -> dict[str, Any]:
        episode = final_info["episode"]
        info: dict[str, Any] = {"episode": {"r": episode["r"].item(), "l": episode["l"].item()}}
        for key in self._outcome_keys:
            info[key] = final_info[key].item()
        if "success" in info:
            info["is_success"] = info["success"]
        return info

    def render(self) -> str | np.ndarray | None:
        """``render_mode="ansi"``: the current episode so far as text (for text envs, the dialogue transcript).

        ``render_mode="rgb_array"``: the ``uint8`` (H, W, 3) picture of the last observation handed out, so the
        step that ends an episode shows its final state (the batched env has already moved on to the next one).
        """
        if self.render_mode == "ansi":
            return "\n".join(self._lines)
        if self.render_mode == "rgb_array" and self._shown_obs is not None:
            return self.vec.render_frame(self._shown_obs)
        return None

    def action_masks(self) -> np.ndarray:
        """Valid actions of the current state (for sb3-contrib's MaskablePPO), where the env has masks."""
        if not self._masked:
            return np.ones(self.action_space.n, dtype=bool)
        return self.vec.action_masks()[0].numpy()


def _is_integral(array: np.ndarray) -> bool:
    """Whether ``array`` holds integers (an integer dtype, or floats with no fractional part)."""
    if np.issubdtype(array.dtype, np.integer):
        return True
    return bool(np.issubdtype(array.dtype, np.floating) and np.all(np.mod(array, 1) == 0))
