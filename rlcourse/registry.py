"""Env registration and :func:`make_vec`, the one way agents get an env.

Every batched rlcourse env is registered twice under one id ``rlcourse/<Name>-v<k>``: here, for
:func:`make_vec`, and with Gymnasium, so that ``gym.make(id)`` gives the single-env adapter.
Any other Gymnasium id is wrapped by :class:`rlcourse.gym_vec.GymVecEnv`.

Registering is cheap: this module imports neither torch nor an env, and an env package may register a
class by name (``"package.module:Class"``), imported the first time the env is made. ``import rlcourse``
registers every installed env, so the price of registering is paid by every program that imports it.
"""

from __future__ import annotations

import importlib
import inspect
import warnings
from importlib import metadata
from typing import TYPE_CHECKING, Any

import gymnasium as gym

from rlcourse.config import did_you_mean

if TYPE_CHECKING:
    import torch

    from rlcourse.vec_env import TensorVecEnv

#: env id -> its batched class, or ``"module:Class"`` naming the class until the env is first made.
_VEC_ENVS: dict[str, type[TensorVecEnv] | str] = {}
#: The entry-point group through which env packages register their envs (rlcourse's own included).
ENV_PLUGIN_GROUP = "rlcourse.envs"
#: Options of :class:`~rlcourse.gym_vec.GymVecEnv` itself; every other option of a Gymnasium id goes to ``gym.make``.
_GYM_VEC_OPTIONS = ("validate", "vectorization_mode", "env_kwargs")
#: Gymnasium errors whose message says which version of an env to use instead (``Taxi-v3`` -> ``Taxi-v4``).
_GYM_VERSION_ERRORS = (gym.error.DeprecatedEnv, gym.error.VersionNotFound)


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


def register_env(env_id: str, vec_cls: type[TensorVecEnv] | str) -> None:
    """Register a batched env class under ``env_id`` for :func:`make_vec` and for ``gym.make``.

    ``vec_cls`` is the class, or ``"module:Class"`` naming it: the module is then imported only when the
    env is first made, so registering costs no import of the env's code (or of torch).
    """
    if isinstance(vec_cls, str):
        if vec_cls.count(":") != 1:
            raise ValueError(f"register_env({env_id!r}, {vec_cls!r}): name the class as 'module:Class'")
        if not isinstance(_VEC_ENVS.get(env_id), type):  # a class already imported stays
            _VEC_ENVS[env_id] = vec_cls
    else:
        vec_cls.env_id = env_id
        _VEC_ENVS[env_id] = vec_cls
    if env_id not in gym.registry:
        gym.register(id=env_id, entry_point="rlcourse.single_env:SingleEnv", kwargs={"vec_env_id": env_id})


def vec_env_class(env_id: str) -> type[TensorVecEnv]:
    """The batched class registered as ``env_id`` (imported now if it was registered by name)."""
    if env_id not in _VEC_ENVS:
        hint = did_you_mean(env_id, _VEC_ENVS)
        raise ValueError(
            f"{env_id!r} is not a batched rlcourse env; {hint + ' ' if hint else ''}registered: {', '.join(list_envs())}"
        )
    vec_cls = _VEC_ENVS[env_id]
    if isinstance(vec_cls, str):
        module_name, _, class_name = vec_cls.partition(":")
        vec_cls = getattr(importlib.import_module(module_name), class_name)
        vec_cls.env_id = env_id
        _VEC_ENVS[env_id] = vec_cls
    return vec_cls


def list_envs() -> list[str]:
    """Ids of the batched rlcourse envs."""
    return sorted(_VEC_ENVS)


def make_vec(env_id: str, num_envs: int = 1, device: str | torch.device = "cpu", **kwargs: Any) -> TensorVecEnv:
    """Make ``num_envs`` copies of ``env_id`` behind the :class:`TensorVecEnv` contract.

    rlcourse ids build the batched tensor env directly on ``device``; any other Gymnasium id is run
    by Gymnasium's vector env and converted to tensors. ``kwargs`` go to the env's constructor.
    """
    from rlcourse.device import resolve_device

    device = resolve_device(device)
    if env_id in _VEC_ENVS:
        vec_cls = vec_env_class(env_id)
        accepted = _options_of(vec_cls.__init__, skip=("self", "num_envs", "device"))
        unknown = sorted(set(kwargs) - set(kwargs if accepted is None else accepted))  # None: it takes **kwargs
        if unknown:
            hint = did_you_mean(unknown[0], accepted or [])
            raise ValueError(
                f"{env_id} has no option {unknown[0]!r}; {hint + ' ' if hint else ''}"
                f"its options: {', '.join(accepted) or 'none'}"
            )
        try:
            return vec_cls(num_envs=num_envs, device=device, **kwargs)
        except TypeError as error:  # an option of the wrong type (e.g. dtype="float16" where a torch dtype is due)
            raise ValueError(
                f"bad option value for {env_id} ({', '.join(f'{k}={v!r}' for k, v in kwargs.items())}): {error}"
            ) from None
    if env_id not in gym.registry:
        raise ValueError(_unknown_env(env_id))
    from rlcourse.gym_vec import GymVecEnv

    # GymVecEnv's own options pass through; every other option goes to gym.make (as --env-opt g=9.81 on Pendulum-v1).
    own = {key: kwargs.pop(key) for key in _GYM_VEC_OPTIONS if key in kwargs}
    if kwargs:
        _check_gym_options(env_id, kwargs)
        own["env_kwargs"] = {**own.get("env_kwargs", {}), **kwargs}
    return GymVecEnv(env_id, num_envs=num_envs, device=device, **own)


def _options_of(function: Any, skip: tuple[str, ...] = ()) -> list[str] | None:
    """The keyword options ``function`` takes, or None where it takes any (``**kwargs``) or cannot be inspected."""
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):
        return None
    if any(parameter.kind is inspect.Parameter.VAR_KEYWORD for parameter in parameters):
        return None
    keyword = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return [p.name for p in parameters if p.kind in keyword and p.name not in skip]


def _check_gym_options(env_id: str, options: dict[str, Any]) -> None:
    """Name an option that a Gymnasium env's constructor does not take, with the closest one it does."""
    entry_point = gym.spec(env_id).entry_point
    try:
        creator = entry_point if callable(entry_point) else gym.envs.registration.load_env_creator(entry_point)
    except Exception:  # an env that cannot even be loaded: gym.make gives the real reason
        return
    accepted = _options_of(creator)
    if accepted is None:
        return
    # gym.make's own options (max_episode_steps, ...); its **kwargs are the constructor's, checked here
    make_options = [name for name in inspect.signature(gym.make).parameters if name not in ("id", "kwargs")]
    accepted = sorted({*accepted, *make_options})
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        hint = did_you_mean(unknown[0], accepted)
        raise ValueError(
            f"{env_id} does not take the options {unknown}; {hint + ' ' if hint else ''}its options: {', '.join(accepted)}"
        )


def _unknown_env(env_id: str) -> str:
    """Why ``env_id`` is no env: Gymnasium's advice on versions (``Taxi-v3`` -> ``Taxi-v4``), else the closest id."""
    namespace_error = None
    try:
        with warnings.catch_warnings():  # for an id without its version, Gymnasium warns that it picks the latest
            warnings.simplefilter("ignore")
            spec = gym.spec(env_id)
    except _GYM_VERSION_ERRORS as error:
        return f"unknown env {env_id!r}: {error}"
    except gym.error.NamespaceNotFound as error:
        namespace_error = error
    except gym.error.Error:
        pass
    else:
        return f"unknown env {env_id!r}; did you mean {spec.id!r}? (an id ends in its version)"
    hint = did_you_mean(env_id, gym.registry)
    if hint:
        return f"unknown env {env_id!r}; {hint}"
    if namespace_error is not None:  # e.g. ALE/Pong-v5 without the package that registers ALE's envs
        return f"unknown env {env_id!r}: {namespace_error}"
    return (
        f"unknown env {env_id!r}; rlcourse envs: {', '.join(list_envs())}; "
        "or any registered Gymnasium id such as CartPole-v1, Acrobot-v1 or Pendulum-v1"
    )
