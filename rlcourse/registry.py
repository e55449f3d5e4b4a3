"""Env registration and :func:`make_vec`, the one way agents get an env.

Every batched rlcourse env is registered twice under one id ``rlcourse/<Name>-v<k>``: here, for
:func:`make_vec`, and with Gymnasium, so that ``gym.make(id)`` gives the single-env adapter.
Any other Gymnasium id is wrapped by :class:`rlcourse.gym_vec.GymVecEnv`.
"""

from __future__ import annotations

import inspect
import warnings
from importlib import metadata
from typing import Any

import gymnasium as gym
import torch

from rlcourse.device import resolve_device
from rlcourse.vec_env import TensorVecEnv

_VEC_ENVS: dict[str, type[TensorVecEnv]] = {}
#: The entry-point group through which env packages register their envs (rlcourse's own included).
ENV_PLUGIN_GROUP = "rlcourse.envs"


def load_env_plugins() -> None:
    """Run every ``rlcourse.envs`` entry point (each calls :func:`register_env` for its envs).

    This is how the core finds envs without importing an env package by name: rlcourse's own envs
    and a third-party package's are registered the same way, from their distribution's metadata.
    """
    for entry_point in metadata.entry_points(group=ENV_PLUGIN_GROUP):
        try:
            entry_point.load()()
        except Exception as error:  # a broken third-party env package must not break rlcourse itself
            warnings.warn(
                f"the env plugin {entry_point.name!r} ({entry_point.value}) failed to register: {error}",
                RuntimeWarning,
                stacklevel=2,
            )


def register_env(env_id: str, vec_cls: type[TensorVecEnv]) -> None:
    """Register a batched env class under ``env_id`` for :func:`make_vec` and for ``gym.make``."""
    vec_cls.env_id = env_id
    _VEC_ENVS[env_id] = vec_cls
    if env_id not in gym.registry:
        gym.register(id=env_id, entry_point="rlcourse.single_env:SingleEnv", kwargs={"vec_env_id": env_id})


def vec_env_class(env_id: str) -> type[TensorVecEnv]:
    """The batched class registered as ``env_id``."""
    if env_id not in _VEC_ENVS:
        raise ValueError(f"{env_id!r} is not a batched rlcourse env; registered: {', '.join(sorted(_VEC_ENVS))}")
    return _VEC_ENVS[env_id]


def list_envs() -> list[str]:
    """Ids of the batched rlcourse envs."""
    return sorted(_VEC_ENVS)


def make_vec(env_id: str, num_envs: int = 1, device: str | torch.device = "cpu", **kwargs: Any) -> TensorVecEnv:
    """Make ``num_envs`` copies of ``env_id`` behind the :class:`TensorVecEnv` contract.

    rlcourse ids build the batched tensor env directly on ``device``; any other Gymnasium id is run
    by Gymnasium's vector env and converted to tensors. ``kwargs`` go to the env's constructor.
    """
    device = resolve_device(device)
    if env_id in _VEC_ENVS:
        vec_cls = _VEC_ENVS[env_id]
        accepted = [
            name
            for name in inspect.signature(vec_cls.__init__).parameters
            if name not in ("self", "num_envs", "device")
        ]
        unknown = sorted(set(kwargs) - set(accepted))
        if unknown:
            raise ValueError(f"{env_id} has no option {unknown[0]!r}; its options: {', '.join(accepted) or 'none'}")
        try:
            return vec_cls(num_envs=num_envs, device=device, **kwargs)
        except TypeError as error:  # an option of the wrong type (e.g. dtype="float16" where a torch dtype is due)
            raise ValueError(
                f"bad option value for {env_id} ({', '.join(f'{k}={v!r}' for k, v in kwargs.items())}): {error}"
            ) from None
    if env_id not in gym.registry:
        raise ValueError(
            f"unknown env {env_id!r}; rlcourse envs: {', '.join(list_envs())}; "
            "or any registered Gymnasium id such as CartPole-v1, Acrobot-v1 or Pendulum-v1"
        )
    from rlcourse.gym_vec import GymVecEnv

    # GymVecEnv's own options pass through; every other option goes to gym.make (as --env-opt g=9.81 on Pendulum-v1).
    own = {key: kwargs.pop(key) for key in ("validate", "vectorization_mode", "env_kwargs") if key in kwargs}
    if kwargs:
        own["env_kwargs"] = {**own.get("env_kwargs", {}), **kwargs}
    return GymVecEnv(env_id, num_envs=num_envs, device=device, **own)
