"""``rlcourse train ALGO ENV --seeds 0-1023``: one agent per seed trained as one batched run (a population).

The settings come from the same sources as a plain run's (:func:`rlcourse.app.settings.run_settings`); ``--seeds``
replaces ``--seed``, ``--num-envs`` counts each seed's envs and ``--total-steps`` each seed's steps, and ``--vary
NAME=V1,V2,...`` gives a plain-number hyperparameter one value per seed. Every input is checked before the run
folder is claimed. The run folder holds the aggregate logs, ``seed_<k>/`` each seed's, and ``eval.json`` the
aggregate with a table of the seeds (:mod:`rlcourse.agents.population`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click
import torch

from rlcourse.app.inputs import BadInput, device_of, run_dir_errors
from rlcourse.app.plugins import PLUGIN_KEYS
from rlcourse.app.resume import training_callbacks
from rlcourse.app.settings import applied_preset, run_settings
from rlcourse.config import NORMALIZE_KEY, make_config
from rlcourse.run_dir import RunDir, check_run_name


def parse_vary(assignments: Sequence[str], count: int) -> dict[str, list[float]]:
    """``["learning_rate=0.001,0.0003"]`` → ``{"learning_rate": [0.001, 0.0003]}`` (``count`` values each)."""
    varied: dict[str, list[float]] = {}
    for item in assignments:
        name, sep, raw = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise ValueError(f"--vary {item!r}: expected NAME=V1,V2,... (one value per seed)")
        if name in varied:
            raise ValueError(f"--vary {name} is given twice: give each setting once, one value per seed")
        values = []
        for text in raw.split(","):
            try:
                values.append(float(text))
            except ValueError:
                raise ValueError(f"--vary {name}: {text.strip()!r} is not a number") from None
        if len(values) != count:
            raise ValueError(f"--vary {name} has {len(values)} values for {count} seeds: give one value per seed")
        varied[name] = values
    return varied


def train_population(
    ctx: click.Context,
    algo: str,
    env: str,
    seeds_text: str | None,
    vary: tuple[str, ...],
    refused: dict[str, Any],
    *,
    preset: str,
    num_envs: int | None,
    total_steps: int | None,
    device: str,
    name: str | None,
    hp_assignments: tuple[str, ...],
    env_opts: tuple[str, ...],
    config_file: str | None,
    use_compile: bool,
    tf32: bool,
    runs_root: Path,
    eval_freq: int | None,
    eval_episodes: int,
    checkpoint_freq: int | None,
    threads: int,
    progress: bool,
) -> None:
    """Check everything, build the population, claim its folder, train, evaluate every seed and summarise."""
    from rlcourse.agents.population import POPULATIONS, parse_seeds, population_class
    from rlcourse.app.train import _learn_and_finish, run_record

    if seeds_text is None:
        raise BadInput("--vary needs --seeds (one value per seed)")
    if ctx.get_parameter_source("seed") is click.core.ParameterSource.COMMANDLINE:
        refused = {"--seed": True, **refused}
    for flag, value in refused.items():
        if value:
            raise BadInput(f"--seeds cannot be combined with {flag}")
    if algo not in POPULATIONS:
        raise BadInput(f"--seeds is supported by {' and '.join(POPULATIONS)}, not {algo}")
    try:
        population_type = population_class(algo)
        seeds = parse_seeds(seeds_text)
        member_hparams = parse_vary(vary, len(seeds))
    except ValueError as error:
        raise BadInput(str(error)) from None
    resolved_device = device_of(device, agent_class=population_type)
    preset_used = applied_preset(algo, env, preset)
    run, hparams, env_kwargs = run_settings(
        algo, env, preset_used, config_file, hp_assignments, num_envs, total_steps, env_opts
    )
    plugin_keys = sorted(set(hparams) & set(PLUGIN_KEYS))
    if plugin_keys:
        raise BadInput(f"--seeds trains plain agents: plug-ins ({', '.join(plugin_keys)}) are not supported with it")
    make_config(population_type.config_class, hparams)  # names a bad key or value before any env is built
    torch.backends.cuda.matmul.allow_tf32 = tf32
    if name is not None:
        with run_dir_errors("--name"):
            check_run_name(name)
    try:
        agent = population_type(
            env,
            seeds=seeds,
            num_envs=run["num_envs"],
            member_hparams=member_hparams or None,
            device=resolved_device,
            compile=use_compile,
            env_kwargs=env_kwargs,
            preset=None,  # run_settings has merged the preset under the flags already
            normalize=run.get(NORMALIZE_KEY),
            threads=threads,
            **hparams,
        )
    except ValueError as error:  # what a population cannot train (the env, a setting), said before any folder exists
        raise BadInput(str(error)) from None
    default_name = f"seeds{seeds[0]}-{seeds[-1]}-{time.strftime('%Y%m%d-%H%M%S')}"
    with run_dir_errors():
        run_dir = agent.run_dir = RunDir.create(runs_root, agent.env_id, algo, name or default_name, seeds[0])
    population = {"seeds": seeds_text, "members": len(seeds), "member_hparams": member_hparams}
    config = run_record(
        algo,
        agent,
        preset=preset_used,
        total_timesteps=run["total_timesteps"],
        seed=seeds[0],
        eval_freq=eval_freq,
        eval_episodes=eval_episodes,
        use_compile=use_compile,
        tf32=tf32,
        checkpoint_freq=checkpoint_freq,
        extra={"num_envs": agent.envs_per_member, "hyperparameters": agent._config_record(), "population": population},
    )
    run_dir.write_config(config)
    click.echo(
        f"Training {algo} on {agent.env_id}: {len(seeds)} seeds ({seeds_text}) as one batched run, "
        f"{run['total_timesteps']:,} steps and {agent.envs_per_member} envs per seed"
        + (f", varying {', '.join(member_hparams)}" if member_hparams else "")
        + f", {agent.device} -> {run_dir}"
    )
    _learn_and_finish(
        ctx,
        agent,
        run_dir,
        run["total_timesteps"],
        run["total_timesteps"],
        reset=True,
        eval_episodes=eval_episodes,
        progress=progress,
        callbacks=training_callbacks(config),
    )


def population_summary(agent: Any, eval_path: Path) -> str | None:
    """The line ``rlcourse train`` prints of a population's per-seed evaluation (None for a single agent)."""
    from rlcourse.agents.population import Population, interquartile_mean

    if not isinstance(agent, Population) or not agent.member_eval:
        return None
    means = [member["mean_reward"] for member in agent.member_eval]
    return (
        f"  per seed: mean return IQM {interquartile_mean(means):.2f}, min {min(means):.2f}, max {max(means):.2f} "
        f"over {len(means)} seeds (table in {eval_path})"
    )
