"""An agent's checkpoint: what goes in, and how it is checked and loaded back.

A checkpoint (written by :mod:`rlcourse.checkpoint`: plain tensors and data, atomically) holds the
networks, the optimizers' state, every RNG state (torch, numpy, Python, the agent's and the env's
generators), the env's state and current observations, the episode sums, the counters, the config,
the env id, options and spaces, and the state of stateful callbacks. :func:`load_agent_state` checks
everything that must fit before it changes anything, so a mismatched file leaves the agent as it was.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from gymnasium import spaces

from rlcourse.agents.optimizer_state import load_optimizer_keeping_setup
from rlcourse.checkpoint import CheckpointError, capture_global_rng, restore_global_rng
from rlcourse.config import config_to_dict
from rlcourse.wrappers import TensorVecEnvWrapper

if TYPE_CHECKING:
    from rlcourse.agents.base import Agent

#: Entries every agent checkpoint has besides its description (algo, env, config, ...).
STATE_ENTRIES = ("modules", "optimizers", "extra", "counters", "rng", "obs", "episodes")


def space_summary(space: spaces.Space) -> dict[str, Any]:
    """What must match for a checkpoint to fit an env: the space's type, shape, dtype and bounds or sizes."""
    summary: dict[str, Any] = {
        "type": type(space).__name__,
        "shape": list(space.shape or ()),
        "dtype": str(space.dtype),
    }
    if isinstance(space, spaces.Box):
        summary["low"], summary["high"] = space.low.flatten().tolist(), space.high.flatten().tolist()
    elif isinstance(space, spaces.Discrete):
        summary["n"], summary["start"] = int(space.n), int(space.start)
    elif isinstance(space, spaces.MultiDiscrete):
        summary["nvec"] = space.nvec.flatten().tolist()
    return summary


def env_spaces(agent: Agent) -> dict[str, Any]:
    return {
        "observation": space_summary(agent.env.single_observation_space),
        "action": space_summary(agent.env.single_action_space),
    }


def agent_state(agent: Agent) -> dict[str, Any]:
    """Everything needed to continue ``agent``'s run exactly."""
    return {
        "algo": agent.algo,
        "device_type": agent.device.type,
        "env_id": agent.env_id,
        "env_kwargs": agent.env.options(),
        "num_envs": agent.num_envs,
        "seed": agent.seed,
        "config": config_to_dict(agent.config),
        "spaces": env_spaces(agent),
        "counters": {
            "num_timesteps": int(agent.num_timesteps),
            "iteration": int(agent.iteration),
            "total_timesteps": int(agent.total_timesteps),
        },
        "modules": {name: module.state_dict() for name, module in agent._modules().items()},
        "optimizers": {name: opt.state_dict() for name, opt in agent._optimizers().items()},
        "extra": {name: value.detach().clone() for name, value in agent._extra_state().items()},
        "rng": {"global": capture_global_rng(), "agent": agent.generator.get_state()},
        "env": agent.env.state_dict() if agent.env.restorable else None,
        "env_statistics": agent.env.statistics_state(),
        "obs": agent.obs.clone(),
        "episodes": agent.episodes.sums.clone(),
        "callbacks": agent._callback_states(),
    }


def check_networks_fit(agent: Agent, payload: dict[str, Any]) -> None:
    """Raise if an entry is missing or a network's tensors differ in names or shapes."""
    missing = [key for key in STATE_ENTRIES if key not in payload]
    if missing:
        raise KeyError(missing[0])
    for name, module in agent._modules().items():
        saved, live = payload["modules"][name], module.state_dict()
        if set(saved) != set(live):
            raise ValueError(
                f"network {name!r} has entries {sorted(set(live) ^ set(saved))} that the checkpoint does not share"
            )
        for key, tensor in live.items():
            if tuple(saved[key].shape) != tuple(tensor.shape):
                raise ValueError(
                    f"{name}.{key} has shape {tuple(saved[key].shape)} in the checkpoint, {tuple(tensor.shape)} here"
                )


def load_agent_state(agent: Agent, payload: dict[str, Any], source: str) -> None:
    """Load ``payload`` into an already built ``agent``, checking that it fits first.

    Networks, optimizer state and counters always load. The RNG streams, the env's state and the
    current observations load only when the checkpoint comes from the same device type and batch
    size (a CUDA generator's state means nothing to a CPU one): then training continues exactly;
    otherwise the env keeps its fresh episodes and the streams their fresh seeds.
    """
    payload = _for_env_of(agent, payload)
    expected = env_spaces(agent)
    if payload.get("spaces") != expected:
        raise CheckpointError(
            f"{source} was saved for spaces {payload.get('spaces')}, but {agent.env_id} has {expected}"
        )
    try:
        restores_env = (
            payload.get("device_type") == agent.device.type
            and payload["env"] is not None
            and agent.env.restorable
            and payload["num_envs"] == agent.num_envs
        )
        agent._check_fits(payload, restores_env)
        statistics = _to_device(payload.get("env_statistics") or {}, agent.env.device)
        agent.env.check_statistics(statistics)
        agent.episodes.check(payload["episodes"])
        for name, module in agent._modules().items():
            module.load_state_dict(payload["modules"][name])
        for name, optimizer in agent._optimizers().items():
            load_optimizer_keeping_setup(optimizer, payload["optimizers"][name])
        agent._load_extra_state(payload["extra"])
        counters = payload["counters"]
        agent.num_timesteps, agent.iteration = int(counters["num_timesteps"]), int(counters["iteration"])
        agent.total_timesteps = int(counters["total_timesteps"])
        agent._saved_callback_states = dict(payload.get("callbacks") or {})
        if payload.get("device_type") == agent.device.type:
            restore_global_rng(payload["rng"]["global"])
            agent.generator.set_state(payload["rng"]["agent"])
            if restores_env:
                agent.env.load_state_dict(_to_device(payload["env"], agent.env.device))
                agent.obs.copy_(payload["obs"])
                agent.episodes.load(payload["episodes"])
        # Learned statistics (a NormalizeObservation's) hold for any batch size and device: they always load.
        agent.env.load_statistics(statistics)
    except (KeyError, RuntimeError, ValueError, TypeError, AttributeError, IndexError) as error:
        raise CheckpointError(
            f"{source} does not fit this {agent.algo.upper()} agent: {str(error).splitlines()[0]}"
        ) from None


def _wrapping_depth(env: Any) -> int:
    depth = 0
    while isinstance(env, TensorVecEnvWrapper):
        env, depth = env.env, depth + 1
    return depth


def _for_env_of(agent: Agent, payload: dict[str, Any]) -> dict[str, Any]:
    """The checkpoint of an agent trained on a wrapped env, as it loads into one on the bare env (``rlcourse eval``
    of a run whose env a plug-in's reward wrapped): the wrappers' state is left out, the env's kept. Learned
    statistics (a ``NormalizeObservation``'s) are checked apart, so a run that needs them still fails to load."""
    state, extra = payload.get("env"), 0
    while isinstance(state, dict) and set(state) == {"env", "wrapper"}:
        state, extra = state["env"], extra + 1
    if extra == 0 or _wrapping_depth(agent.env) > 0:  # onto a wrapped env, every level must match (checked later)
        return payload
    state = payload["env"]
    for _ in range(extra):
        state = state["env"]
    return {**payload, "env": state}


def _to_device(state: Any, device: Any) -> Any:
    """An env state (nested for wrapped envs) with its tensors on ``device``; generator states stay as saved."""
    if isinstance(state, dict):
        return {key: value if key == "generator" else _to_device(value, device) for key, value in state.items()}
    return state.to(device) if isinstance(state, torch.Tensor) else state


def load_warm_start(agent: Agent, payload: dict[str, Any], source: str) -> None:
    """Copy the network weights of ``payload`` into ``agent`` (a warm start): not its optimizers, counters or RNGs.

    Each of the agent's networks takes the checkpoint's network of the same name, or of the name its
    ``warm_start_aliases`` give (DQN's target Q̂ starts as the loaded Q). Everything is checked before
    anything is copied: the env's spaces, a network for every one of the agent's, and every tensor's shape.
    """
    expected = env_spaces(agent)
    if payload.get("spaces") != expected:
        raise CheckpointError(
            f"{source} was saved for spaces {payload.get('spaces')}, but {agent.env_id} has {expected}"
        )
    saved = payload.get("modules")
    if not isinstance(saved, dict):
        raise CheckpointError(f"{source} holds no networks")
    algo = str(payload.get("algo")).upper()
    plan = {}
    for name, module in agent._modules().items():
        source_name = name if name in saved else agent.warm_start_aliases.get(name)
        if source_name not in saved:
            raise CheckpointError(
                f"{source} ({algo}) has the networks {sorted(saved)}, but {agent.algo.upper()} needs {name!r}; "
                f"warm-start from a run whose network fits (for {agent.algo.upper()}: "
                f"{agent.warm_start_hint})"
            )
        weights, live = saved[source_name], module.state_dict()
        if set(weights) != set(live):
            raise CheckpointError(
                f"{source} ({algo}) has a {source_name!r} network with weights of shapes {_weight_shapes(weights)}, "
                f"but {agent.algo.upper()}'s {name!r} has {_weight_shapes(live)} (match net_arch and the other "
                "network settings to the checkpoint's)"
            )
        for key, tensor in live.items():
            if tuple(weights[key].shape) != tuple(tensor.shape):
                raise CheckpointError(
                    f"{source} ({algo}) has {source_name}.{key} of shape {tuple(weights[key].shape)}, but "
                    f"{agent.algo.upper()}'s {name}.{key} has shape {tuple(tensor.shape)} (match net_arch and the other "
                    "network settings to the checkpoint's)"
                )
        plan[name] = weights
    with torch.no_grad():
        for name, module in agent._modules().items():
            module.load_state_dict(plan[name])


def _weight_shapes(state: dict[str, torch.Tensor]) -> list[tuple[int, ...]]:
    """The shapes of a network's weight matrices, in order (what differs when the layer sizes do)."""
    return [tuple(tensor.shape) for key, tensor in state.items() if key.endswith("weight")]
