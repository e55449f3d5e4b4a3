"""The ``rlcourse`` command line: ``train``, ``eval``, ``play``, ``list`` and ``bench``.

Error policy: every bad input (unknown algorithm, env or hyperparameter, bad value, missing file,
unusable checkpoint, absent CUDA, unknown option) ends the program with exit code 2 and exactly one
line ``rlcourse: error: <reason>`` on stderr, never a traceback. :func:`main` gets this by running the
click group with ``standalone_mode=False`` and turning click's usage errors and the library's
``ValueError``s (``ConfigError``, ``CheckpointError``, device errors) into that line. Inputs are all
checked before training starts; a ``ValueError`` raised *during* training is a defect, so it is
re-raised as a ``RuntimeError`` and keeps its traceback.

Torch-heavy modules (agents, TensorBoard, the SB3-based bench) are imported inside the commands,
so ``rlcourse --help`` stays quick and never imports Stable-Baselines3.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import os
import shlex
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click
import gymnasium
import torch
import yaml
from click.core import ParameterSource

import rlcourse
from rlcourse.checkpoint import CheckpointError
from rlcourse.config import (ENV_KWARGS_KEY, RUN_KEYS, ConfigError, config_to_dict, field_docs, list_presets, load_config_file, load_preset,
                             make_config, parse_hp)
from rlcourse.device import resolve_device
from rlcourse.registry import list_envs

#: Run settings used when neither a preset nor the command line sets them.
DEFAULT_RUN = {"num_envs": 8, "total_timesteps": 100_000}
CONFIG_NAME = "config.yaml"
EVAL_NAME = "eval.json"
#: Settings that have their own flag; in a --config file or --hp they are a mistake worth naming.
_FLAG_KEYS = {"seed": "--seed", "device": "--device", "compile": "--compile", "tf32": "--tf32", "name": "--name",
              "run_dir": "--runs-root/--name"}
_CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


# --------------------------------------------------------------------------- the group
class RLCourseGroup(click.Group):
    """A click group whose heavy commands (``bench``, which imports SB3) are imported only when run."""

    #: name -> (module, attribute, one-line help shown by ``rlcourse --help`` without importing it)
    lazy_commands = {
        "bench": ("rlcourse.bench", "bench_command", "Benchmark rlcourse against Stable-Baselines3 on the same task."),
    }

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy_commands})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in self.lazy_commands:
            return super().get_command(ctx, name)
        module_name, attribute, _ = self.lazy_commands[name]
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as error:
            if error.name != module_name:  # the module exists but one of its dependencies is missing
                raise click.ClickException(f"'rlcourse {name}' needs the package {error.name!r}, which is not installed") from None
            raise click.ClickException(f"'rlcourse {name}' is not available in this installation ({module_name} is missing)") from None
        return getattr(module, attribute)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """Like click's, but lazy commands are described from :attr:`lazy_commands`, without importing them."""
        names = self.list_commands(ctx)
        limit = formatter.width - 6 - max(len(name) for name in names)
        rows = []
        for name in names:
            if name in self.lazy_commands:
                rows.append((name, self.lazy_commands[name][2]))
                continue
            command = super().get_command(ctx, name)
            if command is not None and not command.hidden:
                rows.append((name, command.get_short_help_str(limit)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


@click.group("rlcourse", cls=RLCourseGroup, context_settings=_CONTEXT)
@click.version_option(rlcourse.__version__, "--version", prog_name="rlcourse", message="%(prog)s %(version)s")
def cli() -> None:
    """rlcourse: batched on-device Gymnasium environments and course-style RL agents.

    \b
    rlcourse train ppo rlcourse/SlotFilling-v0       train the dialogue policy (preset)
    rlcourse train ppo rlcourse/CartPole-v1          train with the shipped preset
    rlcourse eval runs/rlcourse_CartPole-v1/ppo/NAME  evaluate a run's checkpoint
    rlcourse play RUN_DIR                            print sample dialogues of a run
    rlcourse list [--hp ppo]                         algorithms, envs, presets, hyperparameters
    tensorboard --logdir runs                        watch the runs
    """


# --------------------------------------------------------------------------- small helpers
class BadInput(click.UsageError):
    """A bad argument found by rlcourse itself (its message says what to do; no ``--help`` hint)."""


def _positive_int(key: str, value: Any, source: str) -> int:
    """A run setting (num_envs, total_timesteps) as a positive int; accepts 1e5-style numbers from YAML."""
    number = value
    if isinstance(value, str):
        try:
            number = float(value.replace("_", ""))
        except ValueError:
            number = None
    if isinstance(number, float) and number.is_integer():
        number = int(number)
    if isinstance(number, bool) or not isinstance(number, int) or number <= 0:
        raise ConfigError(f"bad value {value!r} for {key} (from {source}): expected a positive integer")
    return number


def _check_not_flag_keys(values: dict[str, Any], source: str) -> None:
    for key in values:
        if key in _FLAG_KEYS:
            raise ConfigError(f"{key!r} (from {source}) is not a hyperparameter; set it with {_FLAG_KEYS[key]}")


def _algo_class(algo: str) -> type:
    from rlcourse.agents import ALGOS

    if algo not in ALGOS:
        raise BadInput(f"unknown algorithm {algo!r}; available: {', '.join(sorted(ALGOS))}")
    return ALGOS[algo]


def _env_path(env_id: str) -> str:
    """The run-folder component for an env id (``rlcourse/CartPole-v1`` -> ``rlcourse_CartPole-v1``)."""
    return env_id.replace("/", "_")


def _config_file_settings(path: str, algo: str) -> dict[str, Any]:
    """A ``--config`` file as one flat mapping of run keys and hyperparameters.

    Besides a flat ``key: value`` file, a run's own ``config.yaml`` is accepted, so a run can be
    repeated with other flags: its ``num_envs``, ``total_timesteps`` and ``hyperparameters`` are used,
    while seed, device and compile still come from the command line.
    """
    data = load_config_file(path)
    if isinstance(data.get("hyperparameters"), dict):
        if data.get("algo", algo) != algo:
            raise ConfigError(f"config file {path!r} is a {data['algo']} run's config, not one for {algo}")
        return {**{k: data[k] for k in (*RUN_KEYS, ENV_KWARGS_KEY) if k in data}, **data["hyperparameters"]}
    return data


def _run_settings(algo: str, env_id: str, config_file: str | None, hp_assignments: Sequence[str],
                  num_envs: int | None, total_steps: int | None,
                  env_opts: Sequence[str] = ()) -> tuple[dict[str, int], dict[str, Any], dict[str, Any]]:
    """Merge the sources, lowest first: defaults < preset < --config < --hp/--env-opt < --num-envs/--total-steps.

    Returns the run keys, the hyperparameters and the env's options.
    """
    sources = [("the preset", load_preset(algo, env_id))]
    if config_file is not None:
        sources.append((f"config file {config_file!r}", _config_file_settings(config_file, algo)))
    sources.append(("--hp", parse_hp(hp_assignments)))
    sources.append(("--env-opt", {ENV_KWARGS_KEY: parse_hp(env_opts, flag="--env-opt")}))
    run: dict[str, Any] = dict(DEFAULT_RUN)
    hparams: dict[str, Any] = {}
    env_kwargs: dict[str, Any] = {}
    origin = dict.fromkeys(DEFAULT_RUN, "the defaults")
    for source, values in sources:
        _check_not_flag_keys(values, source)
        for key, value in values.items():
            if key == ENV_KWARGS_KEY:
                if not isinstance(value, dict):
                    raise ConfigError(f"{ENV_KWARGS_KEY} (from {source}) must be a mapping of env options, got {value!r}")
                env_kwargs.update(value)
            elif key in RUN_KEYS:
                run[key], origin[key] = value, source
            else:
                hparams[key] = value
    if num_envs is not None:
        run["num_envs"], origin["num_envs"] = num_envs, "--num-envs"
    if total_steps is not None:
        run["total_timesteps"], origin["total_timesteps"] = total_steps, "--total-steps"
    return {key: _positive_int(key, value, origin[key]) for key, value in run.items()}, hparams, env_kwargs


def _new_run_dir(runs_root: Path, env_id: str, algo: str, name: str | None, seed: int) -> Path:
    """Create and return ``runs_root/<env>/<algo>/<name>``; a taken name is an error, never an overwrite.

    The folder is claimed with an exclusive ``mkdir``, so two runs started at once never share one.
    """
    parent = runs_root / _env_path(env_id) / algo
    base = name or f"seed{seed}-{time.strftime('%Y%m%d-%H%M%S')}"
    try:
        parent.mkdir(parents=True, exist_ok=True)
        for suffix in range(1000):
            run_dir = parent / (base if suffix == 0 else f"{base}-{suffix}")
            try:
                run_dir.mkdir()
                return run_dir
            except FileExistsError:
                if name is not None and not (run_dir.is_dir() and not any(run_dir.iterdir())):
                    raise BadInput(f"run folder {str(run_dir)!r} already exists and is not empty; "
                                   "choose another --name (runs are never overwritten)") from None
                if name is not None:  # an empty folder of that name: use it
                    return run_dir
    except OSError as error:
        raise BadInput(f"cannot create the run folder under {str(parent)!r}: {error.strerror or error}") from None
    raise BadInput(f"too many runs named {base!r} under {str(parent)!r}")


def _check_run_name(name: str | None) -> None:
    if name is not None and (not name.strip() or name in (".", "..") or "/" in name or os.sep in name):
        raise BadInput(f"bad --name {name!r}: it must be one folder name (no '/', not '.' or '..')")


def _read_run_config(run_dir: Path) -> dict[str, Any]:
    """A run folder's ``config.yaml`` (what ``train`` wrote before training)."""
    if not run_dir.is_dir():
        raise BadInput(f"no run folder at {str(run_dir)!r}")
    path = run_dir / CONFIG_NAME
    if not path.is_file():
        raise BadInput(f"{str(run_dir)!r} has no {CONFIG_NAME}, so it is not an rlcourse run folder")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise BadInput(f"{str(path)!r} is not valid YAML: {str(error).splitlines()[0]}") from None
    missing = [key for key in ("algo", "env", "seed", "total_timesteps") if not isinstance(data, dict) or key not in data]
    if missing:
        raise BadInput(f"{str(path)!r} is not an rlcourse run config (it lacks {', '.join(missing)})")
    return data


def _runs_root_of(run_dir: Path, env_id: str, algo: str) -> Path:
    """The ``--runs-root`` a run folder was made under (the run folder itself if it was moved)."""
    if run_dir.parent.name == algo and run_dir.parent.parent.name == _env_path(env_id):
        return run_dir.parent.parent.parent
    return run_dir


def _format_value(value: Any) -> str:
    """A default as one would write it in YAML or ``--hp``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(_format_value(v) for v in value) + "]"
    return str(value)


def _first_line(text: str | None) -> str:
    return (text or "").strip().splitlines()[0] if (text or "").strip() else ""


def _describe_eval(result: dict[str, Any]) -> str:
    text = (f"{result['mean_reward']:.2f} ± {result['std_reward']:.2f} over {result['n_episodes']} episodes "
            f"(deterministic; mean length {result['mean_length']:.1f}")
    if "success_rate" in result:
        text += f"; success rate {100 * result['success_rate']:.1f}%"
    return text + ")"


def _resolve_device(device: str, context: str = "", agent_class: Any = None) -> Any:
    """``--device`` as a torch device; ``auto`` is the CPU for an agent that only runs there (A3C)."""
    if agent_class is not None and agent_class.cpu_only and str(device).strip().lower() == "auto":
        device = "cpu"
    try:
        return resolve_device(device)
    except ValueError as error:
        raise BadInput(f"{context}{error}") from None


# --------------------------------------------------------------------------- train
@cli.command(context_settings=_CONTEXT)
@click.argument("algo", required=False)
@click.argument("env", required=False)
@click.option("--num-envs", type=click.IntRange(min=1), default=None,
              help="Parallel envs (default: the preset's, else 8).")
@click.option("--total-steps", type=click.IntRange(min=1), default=None,
              help="Env steps to train, summed over envs (default: the preset's, else 100000).")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, help="Seeds networks, envs and sampling.")
@click.option("--device", default="auto", show_default=True, help="auto (CUDA when present, else CPU), cpu, cuda or cuda:N.")
@click.option("--name", default=None, help="Run folder name (default: seed<SEED>-<YYYYmmdd-HHMMSS>).")
@click.option("--hp", "hp_assignments", multiple=True, metavar="KEY=VALUE",
              help="Set a hyperparameter; repeatable; values are YAML (0.2, true, [64, 64], null).")
@click.option("--env-opt", "env_opts", multiple=True, metavar="KEY=VALUE",
              help="Set an env option; repeatable (rlcourse/SlotFilling-v0: nlu=tcbot, reward=pydial, domain=restaurant, max_turns=20).")
@click.option("--config", "config_file", metavar="FILE",
              help="YAML file of hyperparameters and run keys (or a run's config.yaml); --hp overrides it.")
@click.option("--compile", "use_compile", is_flag=True, help="Run the hot functions through torch.compile.")
@click.option("--tf32", is_flag=True, help="Let CUDA float32 matmuls use TF32 tensor cores (faster on large batches; slightly less precise).")
@click.option("--resume", "resume", metavar="RUN_DIR", help="Continue a stopped run from RUN_DIR/checkpoint.pt.")
@click.option("--runs-root", type=click.Path(file_okay=False, path_type=Path), default=Path("runs"), show_default=True,
              help="Root folder of the runs (point TensorBoard here).")
@click.option("--eval-episodes", type=click.IntRange(min=1), default=100, show_default=True,
              help="Episodes of the final deterministic evaluation.")
@click.option("--no-progress", is_flag=True, help="Hide the progress bar.")
@click.pass_context
def train(ctx: click.Context, algo: str | None, env: str | None, num_envs: int | None, total_steps: int | None,
          seed: int, device: str, name: str | None, hp_assignments: tuple[str, ...], env_opts: tuple[str, ...], config_file: str | None,
          use_compile: bool, tf32: bool, resume: str | None, runs_root: Path, eval_episodes: int, no_progress: bool) -> None:
    """Train ALGO on ENV and evaluate it.

    ALGO is one of `rlcourse list`'s algorithms; ENV an rlcourse env id (rlcourse/CartPole-v1) or any
    Gymnasium id (Pendulum-v1). Settings, later ones winning: the algorithm's defaults, the shipped
    preset for (ALGO, ENV), --config FILE, --hp KEY=VALUE, --num-envs/--total-steps.

    The run is written to RUNS_ROOT/<env>/<algo>/<name>/: config.yaml, TensorBoard events,
    checkpoint.pt and eval.json. Ctrl-C (or SIGTERM) stops after the current iteration and saves a
    checkpoint; `rlcourse train --resume RUN_DIR` continues it.
    """
    if resume is not None:
        _resume(ctx, algo, env, resume, device, use_compile, tf32, eval_episodes, no_progress)
        return
    if algo is None or env is None:
        missing = "ALGO and ENV" if algo is None else "ENV"
        raise BadInput(f"missing {missing}: use 'rlcourse train ALGO ENV' (or --resume RUN_DIR); "
                       f"rlcourse envs: {', '.join(list_envs())}")
    agent_class = _algo_class(algo)
    resolved_device = _resolve_device(device, agent_class=agent_class)
    run, hparams, env_kwargs = _run_settings(algo, env, config_file, hp_assignments, num_envs, total_steps, env_opts)
    make_config(agent_class.config_class, hparams)  # names a bad key or value before any env is built
    torch.backends.cuda.matmul.allow_tf32 = tf32
    _check_run_name(name)
    try:
        agent = agent_class(env, num_envs=run["num_envs"], device=resolved_device, seed=seed,
                            compile=use_compile, env_kwargs=env_kwargs, **hparams)
    except gymnasium.error.Error as error:  # e.g. an env whose optional dependency is not installed
        raise BadInput(f"cannot make env {env!r}: {error}") from None
    # Claimed only once everything is valid, so bad input leaves no folder behind.
    run_dir = agent.run_dir = _new_run_dir(runs_root, agent.env_id, algo, name, seed)
    config = {"algo": algo, "env": agent.env_id, ENV_KWARGS_KEY: agent.env.options(), "num_envs": agent.num_envs, "total_timesteps": run["total_timesteps"],
              "seed": seed, "device": str(agent.device), "compile": use_compile, "tf32": tf32,
              "torch_threads": torch.get_num_threads(), "rlcourse_version": rlcourse.__version__}
    config["hyperparameters"] = config_to_dict(agent.config)
    (run_dir / CONFIG_NAME).write_text(yaml.safe_dump(config, sort_keys=False))
    click.echo(f"Training {algo} on {agent.env_id}: {run['total_timesteps']:,} steps, {agent.num_envs} envs, "
               f"seed {seed}, {agent.device} -> {run_dir}")
    _learn_and_finish(ctx, agent, run_dir, runs_root, run["total_timesteps"], run["total_timesteps"],
                      reset=True, eval_episodes=eval_episodes, progress=not no_progress)


def _resume(ctx: click.Context, algo: str | None, env: str | None, resume: str, device: str, use_compile: bool,
            tf32: bool, eval_episodes: int, no_progress: bool) -> None:
    """``train --resume RUN_DIR``: the run's own settings, from its config.yaml and checkpoint."""
    conflicting = [flag for flag, param in (("--hp", "hp_assignments"), ("--env-opt", "env_opts"), ("--config", "config_file"),
                                            ("--num-envs", "num_envs"), ("--total-steps", "total_steps"),
                                            ("--name", "name"), ("--seed", "seed"), ("--runs-root", "runs_root"))
                   if ctx.get_parameter_source(param) in (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT)]
    if conflicting:
        raise BadInput(f"--resume continues a run with the settings it was started with; "
                       f"it cannot be combined with {', '.join(conflicting)}")
    run_dir = Path(resume)
    config = _read_run_config(run_dir)
    for given, key in ((algo, "algo"), (env, "env")):
        if given is not None and given != config[key]:
            raise BadInput(f"{str(run_dir)!r} is a run of {key} {config[key]!r}, not {given!r}")
    agent_class = _algo_class(config["algo"])
    if ctx.get_parameter_source("device") is ParameterSource.DEFAULT and "device" in config:
        resolved_device = _resolve_device(str(config["device"]), context=f"the run was trained on {config['device']}: ")
    else:
        resolved_device = _resolve_device(device, agent_class=agent_class)
    total = _positive_int("total_timesteps", config["total_timesteps"], str(run_dir / CONFIG_NAME))
    torch.backends.cuda.matmul.allow_tf32 = tf32 or bool(config.get("tf32", False))
    if "torch_threads" in config:
        # CPU float sums are split across threads: the same thread count makes the resumed run bit-identical.
        torch.set_num_threads(_positive_int("torch_threads", config["torch_threads"], str(run_dir / CONFIG_NAME)))
    from rlcourse.agents.base import CHECKPOINT_NAME

    agent = agent_class.load(run_dir / CHECKPOINT_NAME, device=resolved_device, run_dir=run_dir,
                             compile=use_compile or bool(config.get("compile", False)))
    if agent.env_id != config["env"]:
        raise CheckpointError(f"{str(run_dir / CHECKPOINT_NAME)!r} is for env {agent.env_id!r}, "
                              f"but {CONFIG_NAME} says {config['env']!r}")
    runs_root = _runs_root_of(run_dir, agent.env_id, config["algo"])
    remaining = total - agent.num_timesteps
    if remaining > 0:
        note = "" if agent.env.restorable else " (Gymnasium envs restart their episodes on resume)"
        click.echo(f"Resuming {config['algo']} on {agent.env_id} at step {agent.num_timesteps:,} of {total:,} "
                   f"on {agent.device} -> {run_dir}{note}")
    else:
        click.echo(f"{run_dir} already finished its {total:,} steps ({agent.num_timesteps:,} done); evaluating it")
    _learn_and_finish(ctx, agent, run_dir, runs_root, total, remaining, reset=False,
                      eval_episodes=eval_episodes, progress=not no_progress)


def _learn_and_finish(ctx: click.Context, agent: Any, run_dir: Path, runs_root: Path, total: int, steps: int,
                      reset: bool, eval_episodes: int, progress: bool) -> None:
    """Train ``steps`` more steps (if any), then handle an interruption or evaluate and summarise."""
    start_steps, start_time = agent.num_timesteps, time.perf_counter()
    if steps > 0:
        try:
            agent.learn(steps, progress_bar=progress, reset_num_timesteps=reset)
        except ValueError as error:  # every input was checked above: this is a defect, keep its traceback
            raise RuntimeError(f"training failed: {error}") from error
    wall = time.perf_counter() - start_time
    if agent.interrupted_by is not None:
        from rlcourse.agents.base import CHECKPOINT_NAME

        signame = signal.Signals(agent.interrupted_by).name
        click.echo(f"rlcourse: stopped by {signame} at step {agent.num_timesteps:,} of {total:,}; checkpoint saved to "
                   f"{run_dir / CHECKPOINT_NAME}; resume with: rlcourse train --resume {shlex.quote(str(run_dir))}", err=True)
        ctx.exit(128 + agent.interrupted_by)
    try:
        result = agent.write_eval(eval_episodes)
    except ValueError as error:
        raise RuntimeError(f"evaluation failed: {error}") from error
    from torch.utils.tensorboard import SummaryWriter

    with SummaryWriter(log_dir=str(run_dir)) as writer:
        writer.add_scalar("eval/mean_reward", result["mean_reward"], agent.num_timesteps)
        if "success_rate" in result:
            writer.add_scalar("eval/success_rate", result["success_rate"], agent.num_timesteps)
    trained = agent.num_timesteps - start_steps
    if trained == 0:
        click.echo(f"Done: {agent.num_timesteps:,} env steps (nothing left to train)")
    else:
        resumed = f" ({trained:,} in this session)" if start_steps else ""
        click.echo(f"Done: {agent.num_timesteps:,} env steps{resumed} in {wall:.1f} s ({trained / max(wall, 1e-9):,.0f} steps/s)")
        train_return = agent.last_log.get("rollout/ep_rew_mean")
        click.echo("  training mean return (last log): "
                   + (f"{train_return:.2f}" if train_return is not None else "n/a (no episode ended in the last log interval)"))
    click.echo(f"  evaluation: {_describe_eval(result)}")
    click.echo(f"  run folder: {run_dir}")
    click.echo(f"TensorBoard: tensorboard --logdir {shlex.quote(str(runs_root))}")


# --------------------------------------------------------------------------- eval
@cli.command("eval", context_settings=_CONTEXT)
@click.argument("run_dir")
@click.option("--episodes", type=click.IntRange(min=1), default=100, show_default=True, help="Episodes to play.")
@click.option("--device", default="auto", show_default=True, help="auto (CUDA when present, else CPU), cpu, cuda or cuda:N.")
def eval_command(run_dir: str, episodes: int, device: str) -> None:
    """Evaluate a run's checkpoint deterministically and write eval.json.

    RUN_DIR is a run folder (its checkpoint.pt is used) or a checkpoint file (eval.json is written
    beside it).
    """
    _resolve_device(device)  # a bad --device fails before the checkpoint is read
    agent = _load_run_agent(Path(run_dir), device)
    result = agent.write_eval(episodes)
    click.echo(f"{agent.algo} on {agent.env_id} after {agent.num_timesteps:,} steps: {_describe_eval(result)}")
    click.echo(f"  written to {agent.run_dir / EVAL_NAME}")


# --------------------------------------------------------------------------- play
@cli.command("play", context_settings=_CONTEXT)
@click.argument("run_dir", required=False)
@click.option("--episodes", type=click.IntRange(min=1, max=1000), default=3, show_default=True, help="Dialogues to print.")
@click.option("--expert", "expert_env", metavar="ENV", help="Play the env's rule expert instead of a run (rlcourse/SlotFilling-v0).")
@click.option("--env-opt", "env_opts", multiple=True, metavar="KEY=VALUE", help="With --expert: an env option (nlu=tcbot); repeatable.")
@click.option("--stochastic", is_flag=True, help="Sample the policy's actions instead of taking the most likely one.")
@click.option("--seed", type=click.IntRange(min=0), default=None, help="Seed of the dialogues (default: fixed per run).")
@click.option("--device", default="auto", show_default=True, help="auto (CUDA when present, else CPU), cpu, cuda or cuda:N.")
def play_command(run_dir: str | None, episodes: int, expert_env: str | None, env_opts: tuple[str, ...], stochastic: bool,
                 seed: int | None, device: str) -> None:
    """Print sample dialogues played by a run's policy (or by a rule expert).

    RUN_DIR is a run folder or a checkpoint file of a text env such as rlcourse/SlotFilling-v0.
    Lines in parentheses show where the NLU misheard the user.
    """
    resolved_device = _resolve_device(device)
    if (run_dir is None) == (expert_env is None):
        raise BadInput("give either RUN_DIR or --expert ENV")
    if expert_env is not None:
        from rlcourse.registry import make_vec

        env = make_vec(expert_env, episodes, resolved_device, **parse_hp(env_opts, flag="--env-opt"), record_acts=True)
        if not hasattr(env, "rule_expert"):
            raise BadInput(f"{expert_env} has no rule expert")
        expert = env.rule_expert()
        texts = env.play_transcripts(lambda obs, masks: expert(obs), seed=0 if seed is None else seed)
        title = f"rule expert on {expert_env} {env.options()}"
    else:
        if env_opts:
            raise BadInput("--env-opt goes with --expert; a run plays on the env it was trained on")
        agent = _load_run_agent(Path(run_dir), device)
        texts = agent.transcripts(episodes, deterministic=not stochastic, seed=seed)
        title = f"{agent.algo} on {agent.env_id} {agent.env.options()} after {agent.num_timesteps:,} steps"
    click.echo(f"# {title}")
    for index, text in enumerate(texts):
        click.echo(f"\n--- dialogue {index + 1} ---\n{text}")


def _load_run_agent(path: Path, device: str) -> Any:
    """The agent saved in a run folder (its checkpoint.pt) or a checkpoint file, on ``--device``."""
    from rlcourse.agents import ALGOS
    from rlcourse.agents.base import CHECKPOINT_NAME
    from rlcourse.checkpoint import load_checkpoint

    checkpoint = path / CHECKPOINT_NAME if path.is_dir() else path
    algo = load_checkpoint(checkpoint).get("algo")
    if algo not in ALGOS:
        raise CheckpointError(f"{str(checkpoint)!r} was written by algorithm {algo!r}, which this rlcourse does not have "
                              f"(available: {', '.join(sorted(ALGOS))})")
    return ALGOS[algo].load(checkpoint, device=_resolve_device(device, agent_class=ALGOS[algo]), run_dir=checkpoint.parent)


# --------------------------------------------------------------------------- list
@cli.command("list", context_settings=_CONTEXT)
@click.option("--hp", "hp_algo", metavar="ALGO", help="Show every hyperparameter of ALGO with its default and meaning.")
def list_command(hp_algo: str | None) -> None:
    """List algorithms, envs and presets; with --hp ALGO, its hyperparameters."""
    from rlcourse.agents import ALGOS

    if hp_algo is not None:
        config_class = _algo_class(hp_algo).config_class
        docs = field_docs(config_class)
        rows = [(f.name, _format_value(f.default), docs[f.name]) for f in dataclasses.fields(config_class)]
        click.echo(f"{hp_algo} hyperparameters ({config_class.__name__}); set them with --hp KEY=VALUE or --config FILE:")
        name_width = max(len(r[0]) for r in rows)
        default_width = max(len(r[1]) for r in rows)
        for name, default, doc in rows:
            click.echo(f"  {name:<{name_width}}  {default:<{default_width}}  {doc}")
        presets = list_presets(hp_algo)
        if presets:
            click.echo(f"Presets in rlcourse/presets/{hp_algo}.yml override these for: {', '.join(presets)}")
        return
    click.echo("Algorithms (rlcourse train ALGO ENV):")
    width = max(len(name) for name in ALGOS)
    for name, agent_class in sorted(ALGOS.items()):
        click.echo(f"  {name:<{width}}  {_first_line(inspect.getmodule(agent_class).__doc__) or _first_line(agent_class.__doc__)}")
    click.echo("Batched rlcourse envs (any registered Gymnasium id works too, e.g. Pendulum-v1):")
    for env_id in list_envs():
        click.echo(f"  {env_id}")
    click.echo("Presets (used automatically for these envs):")
    for name in sorted(ALGOS):
        click.echo(f"  {name:<{width}}  {', '.join(list_presets(name)) or '(none)'}")
    click.echo("Hyperparameters: rlcourse list --hp ALGO")


# --------------------------------------------------------------------------- entry point
def _error(message: str) -> None:
    """The one stderr line of a failed command."""
    lines = [line.strip() for line in str(message).splitlines() if line.strip()]
    click.echo(f"rlcourse: error: {' '.join(lines) or 'failed'}", err=True)


_NO_ARGS_IS_HELP = getattr(click.exceptions, "NoArgsIsHelpError", None)  # click >= 8.2


def main(args: Sequence[str] | None = None) -> int:
    """Run the CLI and return its exit code (the console script ``rlcourse`` and ``python -m rlcourse``)."""
    try:
        result = cli.main(args=list(args) if args is not None else None, prog_name="rlcourse", standalone_mode=False)
    except click.exceptions.UsageError as error:
        if _NO_ARGS_IS_HELP is not None and isinstance(error, _NO_ARGS_IS_HELP):
            click.echo(error.format_message())  # plain `rlcourse`: show the help, as `rlcourse --help` does
            return 0
        usage = error.ctx is not None and not isinstance(error, BadInput)  # click's own parse errors
        hint = f" (see '{error.ctx.command_path} --help')" if usage else ""
        _error(error.format_message() + hint)
        return error.exit_code
    except click.exceptions.ClickException as error:
        _error(error.format_message())
        return error.exit_code
    except click.exceptions.Abort:
        _error("interrupted")
        return 130
    except ValueError as error:  # ConfigError, CheckpointError, device and env errors: all bad input
        _error(str(error))
        return 2
    except BrokenPipeError:  # `rlcourse list | head -1`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    return result if isinstance(result, int) and not isinstance(result, bool) else 0


__all__ = ["cli", "main"]
