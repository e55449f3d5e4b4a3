"""An agent's checkpoint: what goes in, and how it is checked and loaded back.

A checkpoint (written by :mod:`rlcourse.checkpoint`: plain tensors and data, atomically) holds the
networks, the optimizers' state, every RNG state (torch, numpy, Python, the agent's and the env's
generators), the env's state and current observations, the episode sums, the counters, the config,
the env id, options, normalisation, wrappers and spaces, and the state of stateful callbacks.
:func:`load_agent_state` checks everything that must fit before it changes anything, so a mismatched
file leaves the agent as it was.

Wrapped envs: the env state and the learned statistics nest one level per wrapper, and ``wrappers``
lists the levels (:func:`rlcourse.wrappers.wrapper_levels`). A checkpoint loads onto an env under the
same wrappers (``--resume``), or onto one under only the levels that learn statistics (``Agent.load``
without ``env``: ``rlcourse eval`` and ``play`` of a plug-in run): the levels that learn nothing (a
plug-in's reward) are left out, and every level that learns must be there, in order, with its settings.

Data-parallel runs: the networks, optimizers and counters are the same on every rank, but each rank has its
own RNG streams, env, observations, episode sums, extra tensors and callback states (:data:`RANK_ENTRIES`).
Rank 0's are the checkpoint's own entries, so the file loads as any other (``rlcourse eval``, ``play``), and
``distributed`` records the world size and, in the run's ``checkpoint.pt``, every rank's entries
(:func:`with_rank_states`); ``Agent.load(..., distributed=True)`` gives each rank its own back.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from gymnasium import spaces

from rlcourse.agents.optimizer_state import load_optimizer_keeping_setup
from rlcourse.checkpoint import CheckpointError, capture_global_rng, restore_global_rng
from rlcourse.config import NORMALIZE_KEY
from rlcourse.supervised.storage import KIND as PLUGIN_KIND
from rlcourse.supervised.storage import space_from_spec, space_spec
from rlcourse.wrappers import wrapper_levels

if TYPE_CHECKING:
    from rlcourse.agents.base import Agent

#: Entries every agent checkpoint has besides its description (algo, env, config, ...).
STATE_ENTRIES = ("modules", "optimizers", "extra", "counters", "rng", "obs", "episodes")
#: The entries that differ between the ranks of a data-parallel run (everything else is the same on every rank).
RANK_ENTRIES = ("rng", "env", "env_statistics", "obs", "episodes", "extra", "callbacks")
#: The checkpoint entry of a data-parallel run: ``{"world_size": W, "ranks": [per-rank entries] or None}``.
DISTRIBUTED_KEY = "distributed"


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
        NORMALIZE_KEY: agent.normalize.record(),
        "wrappers": wrapper_levels(agent.env),
        "num_envs": agent.num_envs,
        "seed": agent.seed,
        "config": agent._config_record(),
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


def per_rank_state(state: dict[str, Any]) -> dict[str, Any]:
    """The :data:`RANK_ENTRIES` of an agent's state, in host memory (what each rank sends rank 0 to save)."""
    return {key: _to_host(state[key]) for key in RANK_ENTRIES}


def with_rank_states(state: dict[str, Any], world_size: int, ranks: list[dict[str, Any]] | None) -> dict[str, Any]:
    """A data-parallel run's checkpoint: rank 0's ``state`` plus the world size and every rank's entries
    (None: rank 0's alone, a file to evaluate or warm-start from but not to resume every rank from)."""
    return {**state, DISTRIBUTED_KEY: {"world_size": int(world_size), "ranks": ranks}}


def check_rank_states(payload: dict[str, Any], world_size: int, source: str) -> None:
    """Raise :class:`CheckpointError` unless ``payload`` can continue a data-parallel run of ``world_size`` ranks."""
    record = payload.get(DISTRIBUTED_KEY)
    if not isinstance(record, dict):
        raise CheckpointError(
            f"{source} was written by a single-process run, so it cannot continue data-parallel; "
            "resume it without torchrun, or warm-start a new data-parallel run from it (Agent.init_from)"
        )
    saved = record.get("world_size")
    if saved != world_size:
        raise CheckpointError(
            f"{source} was written by a data-parallel run of {saved} ranks and continues only on {saved} "
            f"({saved} torchrun processes), not on {world_size}: each rank resumes its own envs and streams"
        )
    ranks = record.get("ranks")
    if not isinstance(ranks, list) or len(ranks) != world_size:
        raise CheckpointError(
            f"{source} holds rank 0's state only (written by save(), e.g. best.pt); resume a data-parallel run "
            "from its checkpoint.pt"
        )


def _for_rank_of(agent: Agent, payload: dict[str, Any]) -> dict[str, Any]:
    """The checkpoint as this rank loads it: with its own :data:`RANK_ENTRIES` when the file holds every rank's
    and the agent trains data-parallel (checked by :func:`check_rank_states` first); as saved otherwise."""
    record = payload.get(DISTRIBUTED_KEY)
    if not getattr(agent, "distributed", False) or not isinstance(record, dict) or not record.get("ranks"):
        return payload
    if record.get("world_size") != agent.world_size or len(record["ranks"]) != agent.world_size:
        raise ValueError(f"its ranks ({record.get('world_size')}) are not this run's ({agent.world_size})")
    return {**payload, **record["ranks"][agent.rank]}


def _to_host(tree: Any) -> Any:
    if isinstance(tree, torch.Tensor):
        return tree.detach().cpu()
    if isinstance(tree, dict):
        return {key: _to_host(value) for key, value in tree.items()}
    if isinstance(tree, (list, tuple)):
        return type(tree)(_to_host(value) for value in tree)
    return tree


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
    try:
        payload = _for_rank_of(agent, payload)
    except ValueError as error:
        raise CheckpointError(f"{source} does not fit this data-parallel run: {error}") from None
    payload = _for_env_of(agent, payload, source)
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
        if restores_env:
            _check_wrapping(agent, payload)
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


def _saved_depth(state: Any) -> int:
    depth = 0
    while isinstance(state, dict) and set(state) == {"env", "wrapper"}:
        state, depth = state["env"], depth + 1
    return depth


def _chain(levels: list[dict[str, Any]]) -> str:
    return " > ".join(level["wrapper"] for level in levels) or "no wrapper"


def _check_wrapping(agent: Agent, payload: dict[str, Any]) -> None:
    """Raise unless the env state to restore has the agent's env's wrapper levels: a plug-in run's env rebuilt
    with other plug-ins is named as such, instead of failing inside the innermost env's own check."""
    saved, live = _saved_depth(payload["env"]), wrapper_levels(agent.env)
    if saved != len(live):
        raise ValueError(
            f"its env state is under {saved} wrapper(s), this env under {len(live)}"
            + (f" ({_chain(live)})" if live else "")
            + ": the run's plug-ins or wrappers differ from the checkpoint's"
        )
    recorded = payload.get("wrappers")
    if recorded is not None and [level["wrapper"] for level in recorded] != [level["wrapper"] for level in live]:
        raise ValueError(
            f"its env is under {_chain(recorded)}, this env under {_chain(live)}: the run's plug-ins or "
            "wrappers differ from the checkpoint's"
        )


def _for_env_of(agent: Agent, payload: dict[str, Any], source: str) -> dict[str, Any]:
    """The checkpoint as it loads onto ``agent``'s env: as saved when the env has the same wrappers, or when it
    has a wrapper that learns nothing (a caller that rebuilt plug-ins: every level must match, checked later);
    else without the saved levels that learn nothing (``rlcourse eval`` of a plug-in run, whose env
    ``Agent.load`` rebuilds under its normalisation only), whose statistics-bearing levels must then be the
    env's, in order and with the same settings (a :class:`CheckpointError` otherwise)."""
    recorded, live = payload.get("wrappers"), wrapper_levels(agent.env)
    if recorded is None:  # written before checkpoints listed their wrappers: onto a bare env, as saved otherwise
        depth = _saved_depth(payload.get("env"))
        return {**payload, "env": _keep_levels(payload.get("env"), [False] * depth)} if depth and not live else payload
    if not recorded or recorded == live or any(not level["statistics"] for level in live):
        return payload
    learned = [level for level in recorded if level["statistics"]]
    if learned != live:
        same_names = [level["wrapper"] for level in learned] == [level["wrapper"] for level in live]
        need, have = (f"{_chain(levels)}{_settings(levels) if same_names else ''}" for levels in (learned, live))
        raise CheckpointError(
            f"{source} needs an env under {need} for its learned statistics, but this env is under {have}"
            + (f" (the run trained under {_chain(recorded)})" if learned != recorded else "")
        )
    keep = [level["statistics"] for level in recorded]
    return {
        **payload,
        "wrappers": learned,
        "env": _keep_levels(payload.get("env"), keep),
        "env_statistics": _keep_statistics(payload.get("env_statistics") or {}, keep),
    }


def _settings(levels: list[dict[str, Any]]) -> str:
    shown = [f"{level['wrapper']}{level['options']}" for level in levels if level["options"]]
    return f" ({', '.join(shown)})" if shown else ""


def _keep_levels(state: Any, keep: list[bool]) -> Any:
    """An env state (one ``{"env", "wrapper"}`` level per wrapper, outermost first) with the levels whose
    ``keep`` is false left out; None (an env that cannot be restored) stays None."""
    if not keep or not isinstance(state, dict):
        return state
    inner = _keep_levels(state["env"], keep[1:])
    return {"env": inner, "wrapper": state["wrapper"]} if keep[0] else inner


def _keep_statistics(state: dict[str, Any], keep: list[bool]) -> dict[str, Any]:
    """:meth:`~rlcourse.TensorVecEnv.statistics_state` with levels left out, nested as the remaining wrappers
    give it (a level with nothing learned from it inwards is ``{}``)."""
    if not keep or not state:
        return state
    inner = _keep_statistics(state["env"], keep[1:])
    if not keep[0]:
        return inner
    return {"env": inner, "wrapper": state["wrapper"]} if state["wrapper"] or inner else {}


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
    A plug-in file (a pre-trained language model) goes through :func:`load_plugin_warm_start`.
    """
    if payload.get("kind") == PLUGIN_KIND:
        load_plugin_warm_start(agent, payload, source)
        return
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


def load_plugin_warm_start(agent: Agent, payload: dict[str, Any], source: str) -> None:
    """Warm-start from a plug-in file (a pre-trained language model): its weights go into every network of the agent
    that holds all of them under the same names and shapes (the token policy's GRU and its reference's), and the
    rest (the value head) keeps its initialisation."""
    env = agent.env
    config = payload.get("config")
    recorded = config.get("tokenizer", "") if isinstance(config, dict) else ""
    # A chat plug-in records its tokenizer, checked first: another tokenizer is the likelier cause of other spaces,
    # and equal spaces can still hide another vocabulary.
    if recorded:
        from rlcourse.supervised.chat.scorer import check_tokenizer

        try:
            check_tokenizer(recorded, env, f"{source} (a {payload.get('plugin')!r} plug-in)")
        except ValueError as error:
            raise CheckpointError(str(error)) from None
    for which, space in (("observation", env.single_observation_space), ("action", env.single_action_space)):
        if payload.get(f"{which}_space") != space_spec(space):
            try:
                saved = space_from_spec(payload.get(f"{which}_space"))
            except (KeyError, TypeError, ValueError):
                saved = "an unreadable space"
            raise CheckpointError(
                f"{source} is a {payload.get('plugin')!r} plug-in built for the {which} space {saved}, but "
                f"{agent.env_id} has {space} (for a chat language model: fit it with the env's context and reply "
                "lengths and corpus)"
            )
    weights = payload.get("state")
    if not isinstance(weights, dict) or not weights:
        raise CheckpointError(f"{source} holds no plug-in weights")
    fitting = {}
    for name, module in agent._modules().items():
        live = module.state_dict()
        if set(weights) <= set(live) and all(tuple(live[k].shape) == tuple(w.shape) for k, w in weights.items()):
            fitting[name] = module
    if not fitting:
        raise CheckpointError(
            f"{source} (a {payload.get('plugin')!r} plug-in with weights {sorted(weights)[:4]}...) fits none of "
            f"{agent.algo.upper()}'s networks; a chat language model warm-starts policy_network=token_gru with "
            "net_arch = [embed_dim, hidden_dim] of the model"
        )
    with torch.no_grad():
        for module in fitting.values():
            module.load_state_dict(weights, strict=False)


def _weight_shapes(state: dict[str, torch.Tensor]) -> list[tuple[int, ...]]:
    """The shapes of a network's weight matrices, in order (what differs when the layer sizes do)."""
    return [tuple(tensor.shape) for key, tensor in state.items() if key.endswith("weight")]
