"""``rlcourse train --resume RUN_DIR``: a stopped run rebuilt from its folder, to continue where it stopped.

``config.yaml`` says what the run is (algorithm, env and its options, plug-ins, callbacks, device, threads);
``checkpoint.pt`` says where it stopped. The run is rebuilt in the order a new one is built:

1. the env, wrapped by the run's plug-ins and normalisation (:func:`rlcourse.app.plugins.build_env`), the
   demonstrations read back from the dataset folder the run recorded, and checked against the digest it recorded
   (a run without plug-ins gets its env, normalisation included, from its checkpoint: ``Agent.load``);
2. the agent, loaded from the checkpoint onto that env: networks, optimizers, RNG streams, and the env's
   state with every wrapper's (a wrapper the checkpoint lacks, or one it has and the run does not, fails);
3. the callbacks, in the run's order (:func:`training_callbacks`): the plug-ins' training first, then periodic
   evaluation and checkpoints. The checkpoint must hold the state of exactly these callbacks, and each state
   must fit (a discriminator of other layers is named), so nothing loads in part.

On the CPU, with the run's thread count, the resumed run ends bit-identical to one that never stopped.

A data-parallel run (``distributed`` in its config.yaml) resumes under torchrun with as many ranks as it had,
each rank from its own saved envs and streams; anything else is a one-line error saying how to resume it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import gymnasium
import torch
from click.core import ParameterSource

from rlcourse import distributed as parallel
from rlcourse.app import plugins as plugin_runs
from rlcourse.app.inputs import BadInput, algo_class, device_of, positive_int, run_dir_errors
from rlcourse.callbacks import CallbackList
from rlcourse.checkpoint import CheckpointError
from rlcourse.config import ENV_KWARGS_KEY, NORMALIZE_KEY
from rlcourse.run_dir import RunDir

#: Episodes of each evaluation when ``--eval-episodes`` is not given.
DEFAULT_EVAL_EPISODES = 100
#: Flags that set what a run is; ``--resume`` takes them from the run's config.yaml instead.
RUN_DEFINING_FLAGS = (
    ("--hp", "hp_assignments"),
    ("--env-opt", "env_opts"),
    ("--config", "config_file"),
    ("--num-envs", "num_envs"),
    ("--total-steps", "total_steps"),
    ("--name", "name"),
    ("--seed", "seed"),
    ("--runs-root", "runs_root"),
    ("--preset", "preset"),
    ("--eval-freq", "eval_freq"),
    ("--checkpoint-freq", "checkpoint_freq"),
    ("--threads", "threads"),
    ("--demos", "demos"),
    ("--expert", "expert"),
    ("--init-from", "init_from"),
)


def training_callbacks(config: dict[str, Any]) -> list[Any]:
    """The callbacks a run's config asks for, always in the same order, so a resumed run gets its saved states back."""
    from rlcourse.callbacks import CheckpointCallback, EvalCallback

    callbacks: list[Any] = []
    if config.get("eval_freq"):
        callbacks.append(EvalCallback(int(config["eval_freq"]), n_eval_episodes=int(config["eval_episodes"])))
    if config.get("checkpoint_freq"):
        callbacks.append(CheckpointCallback(int(config["checkpoint_freq"])))
    return callbacks


@dataclass
class ResumedRun:
    """A run rebuilt from its folder: train ``remaining`` more steps of ``total`` with ``callbacks``."""

    agent: Any
    run_dir: RunDir
    total: int
    remaining: int
    eval_episodes: int
    callbacks: list[Any]


def reopen_run(
    ctx: click.Context,
    algo: str | None,
    env: str | None,
    resume: str,
    device: str,
    use_compile: bool,
    tf32: bool,
    eval_episodes: int,
    distributed: bool = False,
) -> ResumedRun:
    """The run in ``resume`` with its own settings, from its config.yaml and checkpoint, ready to continue.

    ``distributed``: whether ``--distributed`` was given; the run's config.yaml decides (it must agree when given).
    """
    given = (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT)
    conflicting = [flag for flag, param in RUN_DEFINING_FLAGS if ctx.get_parameter_source(param) in given]
    if conflicting:
        raise BadInput(
            f"--resume continues a run with the settings it was started with; "
            f"it cannot be combined with {', '.join(conflicting)}"
        )
    with run_dir_errors("--resume"):
        run_dir = RunDir.open(resume)
        config = run_dir.read_config()
    for flag_value, key in ((algo, "algo"), (env, "env")):
        if flag_value is not None and flag_value != config[key]:
            raise BadInput(f"{str(run_dir)!r} is a run of {key} {config[key]!r}, not {flag_value!r}")
    agent_algo, plugins = plugin_runs.plugins_of(config)
    agent_class = algo_class(agent_algo)
    if config.get("population"):  # a --seeds run: the batch of its seeds (rlcourse.agents.population)
        from rlcourse.agents.population import population_class

        agent_class = population_class(agent_algo)
    data_parallel = _check_ranks(run_dir, config, distributed)
    if ctx.get_parameter_source("device") is ParameterSource.DEFAULT and "device" in config:
        resolved_device = device_of(str(config["device"]), context=f"the run was trained on {config['device']}: ")
    else:
        resolved_device = device_of(device, agent_class=agent_class)
    where = str(run_dir.config)
    total = positive_int("total_timesteps", config["total_timesteps"], where)
    # The periodic evaluation keeps the run's own episode count (best.pt compares like with like); the final
    # one takes --eval-episodes when it is given.
    config.setdefault("eval_episodes", DEFAULT_EVAL_EPISODES)
    if ctx.get_parameter_source("eval_episodes") not in given:
        eval_episodes = positive_int("eval_episodes", config["eval_episodes"], where)
    torch.backends.cuda.matmul.allow_tf32 = tf32 or bool(config.get("tf32", False))
    # CPU float sums are split across threads: the same thread count makes the resumed run bit-identical.
    threads = positive_int("torch_threads", config["torch_threads"], where) if "torch_threads" in config else None
    env_instance, plugin_callbacks = None, []
    if plugins.active:  # the plug-ins' env and callbacks, built as the run's first session built them
        env_instance, plugin_callbacks = _rebuild_plugins(plugins, config, resolved_device, where)
    agent = agent_class.load(
        run_dir.checkpoint,
        device=resolved_device.type if data_parallel else resolved_device,  # each rank takes cuda:LOCAL_RANK
        run_dir=run_dir,
        env=env_instance,
        threads=threads,
        compile=use_compile or bool(config.get("compile", False)),
        distributed=data_parallel,
    )
    if agent.env_id != config["env"]:
        raise CheckpointError(
            f"{str(run_dir.checkpoint)!r} is for env {agent.env_id!r}, but {RunDir.CONFIG} says {config['env']!r}"
        )
    plugin_runs.attach_generator(plugins, agent, plugin_callbacks)
    callbacks = [*plugin_callbacks, *training_callbacks(config)]
    check_callback_states(callbacks, agent.checkpoint_state()["callbacks"], repr(str(run_dir.checkpoint)))
    remaining = total - agent.num_timesteps
    where = f"{agent.world_size} ranks ({agent.device.type})" if agent.distributed else f"{agent.device}"
    if not agent.is_main:  # rank 0 speaks for the run
        return ResumedRun(agent, run_dir, total, remaining, eval_episodes, callbacks)
    if remaining > 0:
        note = "" if agent.env.restorable else " (Gymnasium envs restart their episodes on resume)"
        click.echo(
            f"Resuming {config['algo']} on {agent.env_id} at step {agent.num_timesteps:,} of {total:,} "
            f"on {where} -> {run_dir}{note}"
        )
    else:
        click.echo(f"{run_dir} already finished its {total:,} steps ({agent.num_timesteps:,} done); evaluating it")
    return ResumedRun(agent, run_dir, total, remaining, eval_episodes, callbacks)


def _check_ranks(run_dir: RunDir, config: dict[str, Any], distributed: bool) -> bool:
    """Whether the run resumes data-parallel; a :class:`BadInput` unless this process can resume it as it trained."""
    record = config.get("distributed")
    if not record:
        if distributed:
            raise BadInput(f"--distributed: {str(run_dir)!r} is a single-process run; resume it without --distributed")
        return False
    world_size = record.get("world_size") if isinstance(record, dict) else None
    if not isinstance(world_size, int) or world_size < 1:
        raise BadInput(f"{str(run_dir.config)!r} has a bad distributed entry {record!r} (no world_size)")
    how = f"torchrun --nproc_per_node {world_size} -m rlcourse train --resume {run_dir}"
    if not parallel.launched_by_torchrun():
        raise BadInput(f"{str(run_dir)!r} trained data-parallel on {world_size} ranks; resume it under torchrun: {how}")
    _, ranks, _ = parallel.torchrun_ranks()
    if ranks != world_size:
        raise BadInput(
            f"{str(run_dir)!r} trained data-parallel on {world_size} ranks and resumes on {world_size} "
            f"(each rank continues its own envs and streams), not on {ranks}: {how}"
        )
    return True


def _rebuild_plugins(
    plugins: plugin_runs.Plugins, config: dict[str, Any], device: Any, where: str
) -> tuple[Any, list[Any]]:
    """The run's wrapped env and plug-in callbacks; demonstrations that are gone or changed are a :class:`BadInput`."""
    if plugins.method is not None and plugins.demos_path is not None and not Path(plugins.demos_path).exists():
        raise BadInput(
            f"this {plugins.method} run learns from the demonstrations {plugins.demos!r}, which are gone from "
            f"{plugins.demos_path}; put the dataset back there to resume it"
        )
    num_envs = positive_int("num_envs", config["num_envs"], where)
    env_kwargs = config.get(ENV_KWARGS_KEY) or {}
    hyperparameters = config.get("hyperparameters") or {}
    try:
        return plugin_runs.build_env(
            plugins,
            config["env"],
            num_envs,
            device,
            env_kwargs,
            int(config["seed"]),
            normalize=config.get(NORMALIZE_KEY),  # a run recorded before normalize was a setting: none
            gamma=hyperparameters.get("gamma"),
        )
    except gymnasium.error.Error as error:
        raise BadInput(f"cannot make env {config['env']!r}: {error}") from None
    except ValueError as error:  # demonstrations unreadable or for other spaces
        raise BadInput(f"cannot rebuild this run's plug-ins: {str(error).splitlines()[0]}") from None


def check_callback_states(callbacks: list[Any], saved: dict[str, Any], source: str) -> None:
    """Raise :class:`CheckpointError` unless ``saved`` holds the state of exactly ``callbacks``' stateful ones, and
    each plug-in's state fits its model and optimizer (nothing is loaded here: ``learn`` loads them)."""
    from rlcourse.supervised.training import ModelTraining

    expected = list(CallbackList(callbacks).state_dicts())
    if set(saved) != set(expected):
        raise CheckpointError(
            f"{source} holds the state of the callbacks {sorted(saved) or 'none'}, but the run's {RunDir.CONFIG} "
            f"rebuilds {expected or 'none'} (another run's checkpoint, or an edited {RunDir.CONFIG}?)"
        )
    stateful = [callback for callback in callbacks if callback.state_dict()]  # in the order of the keys
    for key, callback in zip(expected, stateful):
        if isinstance(callback, ModelTraining):
            try:
                callback.check_state_dict(saved[key])
            except ValueError as error:
                raise CheckpointError(f"{source} does not fit this run's {key.split(':', 1)[1]}: {error}") from None


__all__ = [
    "DEFAULT_EVAL_EPISODES",
    "RUN_DEFINING_FLAGS",
    "ResumedRun",
    "check_callback_states",
    "reopen_run",
    "training_callbacks",
]
