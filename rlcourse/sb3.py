"""Stable-Baselines3's fast path: any :class:`~rlcourse.TensorVecEnv` as an SB3 ``VecEnv``.

``gym.make("rlcourse/<Name>-v<k>")`` gives SB3 one env at a time, so ``DummyVecEnv`` runs the batched
code once per sub-env and step. :class:`SB3VecEnv` hands SB3 the batched env itself: one batched
``step`` and one host transfer per SB3 step, whatever ``num_envs`` is.

How the conventions map (rlcourse -> SB3):

* **Autoreset.** Both reset a finished sub-env inside the step that ended it and return the next
  episode's first observation. rlcourse's ``info["final_obs"][i]`` becomes
  ``infos[i]["terminal_observation"]``, and a truncation that is not also a termination sets
  ``infos[i]["TimeLimit.truncated"] = True`` (SB3 bootstraps those from the terminal observation).
  ``dones = terminated | truncated``.
* **Actions** are SB3's numpy batch of shape ``(num_envs, *action shape)``. Its shape and, for integer
  spaces, kind and range are checked on the host (free: the array is there) before one tensor goes to the
  env's device; what the step returns comes back together (from CUDA: asynchronous copies, one sync).
* **Episode statistics** come from the env's own device counters (``info["episode"]``), in
  ``Monitor``'s format: ``infos[i]["episode"] = {"r": return, "l": length, "t": seconds since the
  adapter was made}``. So ``env_is_wrapped(Monitor)`` is true, SB3's ``evaluate_policy`` reads them, and
  the returns are the env's own rewards even under reward-changing rlcourse wrappers (as a ``Monitor``
  inside ``VecNormalize`` reports them).
* **Outcomes** (``env.outcome_keys``) go in the final infos under their names as Python bools; ``success``
  is also ``is_success``, which SB3 logs as ``rollout/success_rate``.
* **Infos are sparse.** Only sub-envs whose episode ended get keys; the others get an empty dict (the
  env's per-step info is not copied out per sub-env; read ``adapter.env`` for it).
* **Action masks.** Where the env declares ``has_action_masks``, :meth:`SB3VecEnv.action_masks` and
  ``env_method("action_masks")`` give them as numpy bools, as sb3-contrib's ``MaskablePPO`` expects;
  elsewhere ``has_attr("action_masks")`` is false.
* **Seeding.** The sub-envs share one ``torch.Generator``: ``seed(s)`` seeds it with ``s`` at the next
  ``reset()`` (SB3 seeds sub-env ``i`` with ``s + i``; one generator makes the same stream reproducible).
* **Sub-env access.** The sub-envs are one object, so ``get_attr`` reads the batched env's attribute for
  every index; ``set_attr`` and ``env_method`` (other than ``action_masks``) act on the whole batch and
  refuse a subset of indices.
* **Rendering.** Sub-env 0 stands for the batch (rlcourse's convention; SB3 tiles one picture per sub-env).
  ``render_mode="ansi"`` (envs that declare it, such as the dialogue) makes :meth:`render` return its current
  episode as text; ``"rgb_array"`` returns the env's own ``render()`` picture of it.

Example::

    from stable_baselines3 import PPO
    from rlcourse.sb3 import make_sb3_vec_env

    vec_env = make_sb3_vec_env("rlcourse/SlotFilling-v0", num_envs=8, seed=0)
    model = PPO("MlpPolicy", vec_env).learn(50_000)

    # or wrap an env you built (wrappers included); MaskablePPO uses the dialogue's action masks
    import rlcourse
    from rlcourse.sb3 import SB3VecEnv
    from sb3_contrib import MaskablePPO

    env = rlcourse.make_vec("rlcourse/SlotFilling-v0", num_envs=8, nlu="tcbot")
    model = MaskablePPO("MlpPolicy", SB3VecEnv(env, compile=True)).learn(50_000)
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from gymnasium.vector import AutoresetMode
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import VecEnv
from stable_baselines3.common.vec_env.base_vec_env import VecEnvIndices, VecEnvStepReturn

from rlcourse.registry import make_vec
from rlcourse.vec_env import TensorVecEnv

#: Observation spaces the adapter hands SB3 as one array (SB3 also takes them).
OBSERVATION_SPACES = (spaces.Box, spaces.Discrete, spaces.MultiDiscrete, spaces.MultiBinary)
#: Action spaces both SB3 and :class:`~rlcourse.TensorVecEnv` take.
ACTION_SPACES = (spaces.Discrete, spaces.Box, spaces.MultiDiscrete, spaces.MultiBinary)
#: What :meth:`SB3VecEnv.render` can give: text, or the env's own picture.
RENDER_MODES = ("ansi", "rgb_array")
#: The outcome that SB3 knows as ``is_success``.
SUCCESS_KEY = "success"


def _names(classes: Sequence[type]) -> str:
    return ", ".join(cls.__name__ for cls in classes)


def _integer_bounds(space: spaces.Space) -> tuple[np.ndarray, np.ndarray] | None:
    """The lowest and highest valid action of an integer space (None for Box)."""
    if isinstance(space, spaces.Discrete):
        return np.asarray(space.start), np.asarray(space.start + space.n - 1)
    if isinstance(space, spaces.MultiDiscrete):
        return np.asarray(space.start), np.asarray(space.start + space.nvec - 1)
    if isinstance(space, spaces.MultiBinary):
        return np.asarray(0), np.asarray(1)
    return None


def _render_mode(env: TensorVecEnv, asked: str | None) -> str | None:
    """The adapter's render mode: ``asked``, else the env's own, checked against what the env declares."""
    mode = asked if asked is not None else env.render_mode
    modes = list(env.metadata.get("render_modes", []))
    if mode is None:
        return None
    if mode not in RENDER_MODES or mode not in modes:
        raise ValueError(
            f"SB3VecEnv renders {' or '.join(map(repr, RENDER_MODES))} where the env declares it; {env!r} has the "
            f"render modes {modes or 'none'}, got render_mode={mode!r}"
        )
    if mode == "rgb_array" and env.render_mode != "rgb_array":
        raise ValueError(
            "render_mode='rgb_array' draws through the env's own render(): make the env with "
            "render_mode='rgb_array' (make_sb3_vec_env(..., render_mode='rgb_array') does)"
        )
    return mode


class SB3VecEnv(VecEnv):
    """A :class:`~rlcourse.TensorVecEnv` (wrappers included) behind SB3's ``VecEnv`` API (conventions: module docstring).

    Args:
        env: the batched env, on any device; SB3 gets numpy arrays on the host.
        render_mode: ``"ansi"`` for envs that declare it (turns the env's ``recording`` on), or ``"rgb_array"``
            for an env made with that render mode; ``None`` takes the env's own ``render_mode``.
        compile: run the env's ``step`` through ``torch.compile``. Where an env step is many small tensor
            operations (the dialogue) this fuses them; the first step then takes a while to compile.
    """

    def __init__(self, env: TensorVecEnv, render_mode: str | None = None, compile: bool = False):
        if not isinstance(env, TensorVecEnv):
            hint = (
                "for a gym.Env use SB3's DummyVecEnv"
                if isinstance(env, gym.Env)
                else "build one with rlcourse.make_vec(env_id, num_envs, device), which wraps any Gymnasium id"
            )
            raise ValueError(f"SB3VecEnv wraps an rlcourse.TensorVecEnv, got {type(env).__name__}; {hint}")
        if env.metadata.get("autoreset_mode") != AutoresetMode.SAME_STEP:
            raise ValueError(
                f"SB3VecEnv needs SAME_STEP autoreset (SB3's convention); {env!r} declares "
                f"{env.metadata.get('autoreset_mode')!r} in metadata['autoreset_mode']"
            )
        if not isinstance(env.single_observation_space, OBSERVATION_SPACES):
            raise ValueError(
                f"SB3VecEnv supports the observation spaces {_names(OBSERVATION_SPACES)}; "
                f"{env!r} has {env.single_observation_space}"
            )
        if not isinstance(env.single_action_space, ACTION_SPACES):
            raise ValueError(
                f"SB3VecEnv supports the action spaces {_names(ACTION_SPACES)}; {env!r} has {env.single_action_space}"
            )
        render_mode = _render_mode(env, render_mode)
        #: The batched env this adapter steps.
        self.env = env
        super().__init__(env.num_envs, env.single_observation_space, env.single_action_space)
        self.render_mode = render_mode
        self.metadata = {"render_modes": [render_mode] if render_mode else []}
        self._action_shape = (env.num_envs, *env.single_action_space.shape)
        self._action_dtype = env.single_action_space.dtype
        self._action_bounds = _integer_bounds(env.single_action_space)
        self._outcome_keys = tuple(env.outcome_keys)
        self._env_step = torch.compile(env.step) if compile else env.step
        self._actions: torch.Tensor | None = None
        self._next_seed: int | None = None
        self._t_start = time.time()
        self._lines: list[str] = []
        self._restart_lines = False
        env.recording = render_mode == "ansi" or env.recording

    # ----------------------------------------------------------------- the hot path
    def _to_host(self, tensors: Sequence[torch.Tensor]) -> list[np.ndarray]:
        """``tensors`` as numpy arrays: views on the CPU; from CUDA, asynchronous copies and one sync for all."""
        if self.env.device.type == "cpu":
            return [t.detach().numpy() for t in tensors]
        host = [t.detach().to("cpu", non_blocking=True) for t in tensors]
        torch.cuda.current_stream(self.env.device).synchronize()
        return [h.numpy() for h in host]

    def _tensor_actions(self, actions: Any) -> torch.Tensor:
        """SB3's actions as a tensor for the env, after the free checks (shape, kind, integer ranges)."""
        array = np.asarray(actions)
        space = self.env.single_action_space
        if array.shape != self._action_shape:
            raise ValueError(
                f"actions must be an array of shape {self._action_shape} (num_envs, *action shape) for {space}; "
                f"got shape {array.shape}"
            )
        if self._action_bounds is not None:
            low, high = self._action_bounds
            if array.dtype.kind not in "biuf" or (
                array.dtype.kind == "f" and not np.array_equal(array, np.round(array))
            ):
                raise ValueError(f"actions must be integers for {space}; got {array.dtype} values {array!r}")
            if (array < low).any() or (array > high).any():
                raise ValueError(f"actions must be integers in [{low}, {high}] for {space}; got {array!r}")
        elif array.dtype.kind not in "iuf":
            raise ValueError(f"actions must be numbers for {space}; got dtype {array.dtype}")
        return torch.tensor(array.astype(self._action_dtype, copy=False), device=self.env.device)

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = self._tensor_actions(actions)

    def step_wait(self) -> VecEnvStepReturn:
        if self._actions is None:
            raise ValueError("step_wait() needs a step_async(actions) first")
        actions, self._actions = self._actions, None
        if self.render_mode == "ansi" and self._restart_lines:
            self._lines = list(self.env.render_opening(0))
        obs, reward, terminated, truncated, info = self._env_step(actions)
        final_info, episode = info["final_info"], info["episode"]
        obs_np, final_obs, reward_np, terminated, truncated, returns, lengths, *outcomes = self._to_host(
            [obs, info["final_obs"], reward, terminated, truncated, episode["r"], episode["l"]]
            + [final_info[key] for key in self._outcome_keys]
        )
        dones = terminated | truncated
        infos: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
        ended = np.flatnonzero(dones).tolist()
        if ended:
            elapsed = round(time.time() - self._t_start, 6)
            time_limit = truncated & ~terminated
            for i in ended:
                final = infos[i]
                final["terminal_observation"] = final_obs[i].copy()
                final["TimeLimit.truncated"] = bool(time_limit[i])
                final["episode"] = {"r": float(returns[i]), "l": int(lengths[i]), "t": elapsed}
                for key, values in zip(self._outcome_keys, outcomes):
                    final[key] = bool(values[i])
                if SUCCESS_KEY in self._outcome_keys:
                    final["is_success"] = final[SUCCESS_KEY]
        if self.render_mode == "ansi":
            self._lines += self.env.render_turn(info, 0)
            self._restart_lines = bool(dones[0])
        return obs_np.copy(), np.array(reward_np, dtype=np.float32), dones, infos

    def reset(self) -> np.ndarray:
        """Reset every sub-env, with the seed of the last :meth:`seed` and the options of ``set_options`` (once)."""
        options = self._options[0]
        if any(other != options for other in self._options):
            raise ValueError(
                "the sub-envs of a batched env reset with one options dict; call set_options(dict), not a list of "
                "different ones"
            )
        obs, _ = self.env.reset(seed=self._next_seed, options=options or None)
        self._next_seed = None
        self._reset_options()
        self.reset_infos = [{} for _ in range(self.num_envs)]
        self._actions = None
        if self.render_mode == "ansi":
            self._lines, self._restart_lines = list(self.env.render_opening(0)), False
        return self._to_host([obs])[0].copy()

    def seed(self, seed: int | None = None) -> list[int | None]:
        """Seed the env's generator at the next :meth:`reset` (a random seed for None); every sub-env draws from it."""
        if seed is None:
            seed = int(np.random.randint(0, np.iinfo(np.uint32).max, dtype=np.uint32))
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
            raise ValueError(f"seed must be an integer or None, got {seed!r}")
        self._next_seed = int(seed)
        return [self._next_seed] * self.num_envs

    def action_masks(self) -> np.ndarray:
        """``[num_envs, n]`` bool: the valid actions of every sub-env now (envs with ``has_action_masks``)."""
        if not self.env.has_action_masks:
            raise AttributeError(f"{self.env!r} declares no action masks (has_action_masks is False)")
        return self._to_host([self.env.action_masks()])[0].copy()

    def close(self) -> None:
        self.env.close()

    def render(self, mode: str | None = None) -> str | np.ndarray | None:  # type: ignore[override]
        """Sub-env 0 now: ``"ansi"``, its episode so far as text (the dialogue's transcript); ``"rgb_array"``, its
        picture (the env's ``render()``)."""
        if mode not in (None, self.render_mode):
            raise ValueError(f"this SB3VecEnv was made with render_mode={self.render_mode!r}; got mode={mode!r}")
        if self.render_mode is None:
            raise ValueError(
                f"render() needs SB3VecEnv(env, render_mode=...) with one of {self.env.metadata.get('render_modes') or 'none'}"
            )
        if self.render_mode == "rgb_array":
            return self.env.render()
        return "\n".join(self._lines)

    # ----------------------------------------------------------------- SB3's per-sub-env access
    def _whole_batch(self, indices: VecEnvIndices, what: str) -> list[int]:
        chosen = list(self._get_indices(indices))
        if sorted(chosen) != list(range(self.num_envs)):
            raise ValueError(
                f"{what} reaches every sub-env of the batched env at once; use indices=None (got {chosen})"
            )
        return chosen

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        """The batched env's ``attr_name``, once per index (the sub-envs share it)."""
        chosen = list(self._get_indices(indices))
        if attr_name == "action_masks" and not self.env.has_action_masks:
            raise AttributeError(f"{self.env!r} declares no action masks (has_action_masks is False)")
        value = getattr(self.env, attr_name)
        return [value] * len(chosen)

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        """Set ``attr_name`` on the batched env (for every sub-env; a subset of indices is refused)."""
        self._whole_batch(indices, f"set_attr({attr_name!r})")
        setattr(self.env, attr_name, value)

    def env_method(
        self, method_name: str, *method_args: Any, indices: VecEnvIndices = None, **method_kwargs: Any
    ) -> list[Any]:
        """``action_masks``: one mask row per index. Any other method is called once on the batched env and its
        result given for every index (a subset of indices is refused)."""
        if method_name == "action_masks":
            masks = self.action_masks()
            return list(masks[list(self._get_indices(indices))])
        chosen = self._whole_batch(indices, f"env_method({method_name!r})")
        result = getattr(self.env, method_name)(*method_args, **method_kwargs)
        return [result] * len(chosen)

    def env_is_wrapped(self, wrapper_class: type[gym.Wrapper], indices: VecEnvIndices = None) -> list[bool]:
        """True for SB3's ``Monitor`` only: the adapter writes Monitor's episode info; no Gymnasium wrapper is inside."""
        return [wrapper_class is Monitor] * len(list(self._get_indices(indices)))

    def __repr__(self) -> str:
        return f"SB3VecEnv({self.env!r})"


def make_sb3_vec_env(
    env_id: str,
    num_envs: int,
    device: str | torch.device = "cpu",
    seed: int | None = None,
    render_mode: str | None = None,
    compile: bool = False,
    **env_kwargs: Any,
) -> SB3VecEnv:
    """``rlcourse.make_vec(env_id, num_envs, device, **env_kwargs)`` as an SB3 ``VecEnv``, seeded with ``seed``.

    ``env_id`` is an rlcourse id (the batched env itself) or any Gymnasium id (run by Gymnasium's vector env);
    ``render_mode`` and ``compile`` are :class:`SB3VecEnv`'s.
    """
    if render_mode == "rgb_array":  # the env draws its own pictures; text is the adapter's to collect
        env_kwargs["render_mode"] = render_mode
    vec_env = SB3VecEnv(make_vec(env_id, num_envs, device, **env_kwargs), render_mode=render_mode, compile=compile)
    if seed is not None:
        vec_env.seed(seed)
    return vec_env


__all__ = ["SB3VecEnv", "make_sb3_vec_env"]
