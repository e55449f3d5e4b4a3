"""``rlcourse train``: claim a run folder, train, evaluate; the settings come from :mod:`rlcourse.app.settings`.

Every input is checked before the run folder is claimed, so a bad one leaves nothing behind. The run's
``config.yaml`` records everything ``--resume`` needs to continue it the same way, plug-ins, periodic
evaluation and checkpoint callbacks included; :mod:`rlcourse.app.resume` rebuilds a run from it.

``--distributed`` trains data-parallel in the processes torchrun starts (``torchrun --nproc_per_node N -m rlcourse
train ... --distributed``): every rank runs this command; rank 0 claims the run folder, writes it and prints,
the other ranks only train (docs/distributed.md).
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import sys
import time
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click
import gymnasium
import torch

import rlcourse
from rlcourse import distributed as parallel
from rlcourse.app.inputs import CONTEXT, BadInput, algo_class, device_of, run_dir_errors, runs_root_option
from rlcourse.app.resume import DEFAULT_EVAL_EPISODES, reopen_run, training_callbacks
from rlcourse.app.runs import describe_eval, log_eval
from rlcourse.app.settings import applied_preset, run_settings
from rlcourse.config import DEFAULT_PRESET, ENV_KWARGS_KEY, NORMALIZE_KEY, config_to_dict, make_config
from rlcourse.device import DEFAULT_THREADS
from rlcourse.registry import list_envs
from rlcourse.run_dir import RunDir, check_run_name

#: Why ``--distributed`` refuses plug-in runs.
_NO_PLUGINS = "--distributed does not run plug-ins ({what}) yet: their models would train apart on each rank"
#: Flags that set a hyperparameter of the algorithms that have it: flag -> config field.
IMITATION_FLAGS = {"--demos": "demos", "--expert": "expert"}


# --------------------------------------------------------------------------- the command
@click.command(context_settings=CONTEXT)
@click.argument("algo", required=False)
@click.argument("env", required=False)
@click.option(
    "--preset",
    default=DEFAULT_PRESET,
    show_default=True,
    metavar="NAME",
    help="Preset variant for (ALGO, ENV) from rlcourse/presets/ALGO.yml (see `rlcourse list`); 'none' for no preset.",
)
@click.option(
    "--num-envs", type=click.IntRange(min=1), default=None, help="Parallel envs (default: the preset's, else 8)."
)
@click.option(
    "--total-steps",
    type=click.IntRange(min=1),
    default=None,
    help="Env steps to train, summed over envs (default: the preset's, else 100000).",
)
@click.option(
    "--seed", type=click.IntRange(min=0), default=0, show_default=True, help="Seeds networks, envs and sampling."
)
@click.option(
    "--device", default="auto", show_default=True, help="auto (CUDA when present, else CPU), cpu, cuda or cuda:N."
)
@click.option("--name", default=None, help="Run folder name (default: seed<SEED>-<YYYYmmdd-HHMMSS>).")
@click.option(
    "--hp",
    "hp_assignments",
    multiple=True,
    metavar="KEY=VALUE",
    help="Set a hyperparameter; repeatable; values are YAML (0.2, true, [64, 64], null).",
)
@click.option(
    "--env-opt",
    "env_opts",
    multiple=True,
    metavar="KEY=VALUE",
    help="Set an env option; repeatable (rlcourse/SlotFilling-v0: nlu=tcbot, reward=pydial, domain=restaurant, max_turns=20).",
)
@click.option(
    "--config",
    "config_file",
    metavar="FILE",
    help="YAML file of hyperparameters and run keys (or a run's config.yaml); --hp overrides it.",
)
@click.option("--compile", "use_compile", is_flag=True, help="Run the hot functions through torch.compile.")
@click.option(
    "--tf32",
    is_flag=True,
    help="Let CUDA float32 matmuls use TF32 tensor cores (faster on large batches; slightly less precise).",
)
@click.option("--resume", "resume", metavar="RUN_DIR", help="Continue a stopped run from RUN_DIR/checkpoint.pt.")
@runs_root_option
@click.option(
    "--eval-freq",
    type=click.IntRange(min=1),
    default=None,
    metavar="N",
    help="Also evaluate every N env steps (logged as eval/*) and keep the best policy in best.pt.",
)
@click.option(
    "--eval-episodes",
    type=click.IntRange(min=1),
    default=DEFAULT_EVAL_EPISODES,
    show_default=True,
    help="Episodes of each deterministic evaluation (the final one, and every --eval-freq steps).",
)
@click.option(
    "--checkpoint-freq",
    type=click.IntRange(min=1),
    default=None,
    metavar="N",
    help="Also write checkpoint.pt every N env steps (it is always written every 5 minutes and at the end).",
)
@click.option(
    "--threads",
    type=click.IntRange(min=1),
    default=DEFAULT_THREADS,
    show_default=True,
    help="torch's CPU threads (small networks train fastest on one, and a busy machine cannot slow it down).",
)
@click.option(
    "--demos",
    metavar="DATASET",
    help="bc, gail, airl: the demonstrations, a Minari dataset id (under MINARI_DATASETS_PATH) or dataset folder "
    "(`rlcourse collect` writes them).",
)
@click.option(
    "--expert",
    metavar="NAME",
    help="dagger: who labels the learner's states: 'expert' (the env's rule expert), or a run folder or checkpoint.",
)
@click.option(
    "--init-from",
    metavar="RUN_OR_CHECKPOINT",
    help="Warm start: load the network weights (not optimizer or counters) of a run folder or checkpoint, "
    "e.g. a bc run into ppo.",
)
@click.option(
    "--distributed",
    is_flag=True,
    help="Train data-parallel under torchrun (torchrun --nproc_per_node N -m rlcourse train ... --distributed): "
    "--num-envs in total, split over the ranks; gradients averaged; rank 0 writes the run.",
)
@click.option(
    "--seeds",
    "seeds_text",
    metavar="SEEDS",
    default=None,
    help="Train one agent per seed as one batched run (ppo, a2c): 0-1023, 0,3,7 or 0-3,10-11; replaces --seed, "
    "--num-envs is per seed, and each seed's run equals its plain run; logs go to RUN/seed_<k>/ and eval.json "
    "gets a table of the seeds.",
)
@click.option(
    "--vary",
    "vary",
    multiple=True,
    metavar="NAME=V1,V2,...",
    help="With --seeds: a plain-number hyperparameter that differs per seed, one value per seed (learning_rate, "
    "clip_range, ent_coef, vf_coef, gamma, gae_lambda, max_grad_norm); repeatable.",
)
@click.option("--no-progress", is_flag=True, help="Hide the progress bar.")
@click.pass_context
def train(
    ctx: click.Context,
    algo: str | None,
    env: str | None,
    preset: str,
    num_envs: int | None,
    total_steps: int | None,
    seed: int,
    device: str,
    name: str | None,
    hp_assignments: tuple[str, ...],
    env_opts: tuple[str, ...],
    config_file: str | None,
    use_compile: bool,
    tf32: bool,
    resume: str | None,
    runs_root: Path,
    eval_freq: int | None,
    eval_episodes: int,
    checkpoint_freq: int | None,
    threads: int,
    demos: str | None,
    expert: str | None,
    init_from: str | None,
    distributed: bool,
    seeds_text: str | None,
    vary: tuple[str, ...],
    no_progress: bool,
) -> None:
    """Train ALGO on ENV and evaluate it.

    ALGO is one of `rlcourse list`'s algorithms; ENV an rlcourse env id (rlcourse/CartPole-v1) or any
    Gymnasium id (Pendulum-v1). Settings, later ones winning: the algorithm's defaults, the shipped
    preset variant for (ALGO, ENV) (--preset), --config FILE, --hp KEY=VALUE, --num-envs/--total-steps.

    The run is written to RUNS_ROOT/<env>/<algo>/<name>/: config.yaml, TensorBoard events,
    checkpoint.pt (and best.pt with --eval-freq) and eval.json. Ctrl-C (or SIGTERM) stops after the
    current iteration and saves a checkpoint; `rlcourse train --resume RUN_DIR` continues it.
    """
    if parallel.launched_by_torchrun() and os.environ.get("RANK") != "0":
        warnings.simplefilter("ignore")  # rank 0 says what there is to say, once
    if resume is not None and (seeds_text is not None or vary):
        raise BadInput("--resume continues a run with the seeds it was started with: leave out --seeds and --vary")
    if resume is not None:
        run = reopen_run(ctx, algo, env, resume, device, use_compile, tf32, eval_episodes, distributed=distributed)
        _learn_and_finish(
            ctx,
            run.agent,
            run.run_dir,
            run.total,
            run.remaining,
            reset=False,
            eval_episodes=run.eval_episodes,
            progress=not no_progress,
            callbacks=run.callbacks,
        )
        return
    if algo is None or env is None:
        missing = "ALGO and ENV" if algo is None else "ENV"
        raise BadInput(
            f"missing {missing}: use 'rlcourse train ALGO ENV' (or --resume RUN_DIR); "
            f"rlcourse envs: {', '.join(list_envs())}"
        )
    if seeds_text is not None or vary:  # a population: one agent per seed, as one batched run
        from rlcourse.app.train_seeds import train_population

        refused = {"--distributed": distributed, "--demos": demos, "--expert": expert, "--init-from": init_from}
        train_population(
            ctx,
            algo,
            env,
            seeds_text,
            vary,
            refused,
            preset=preset,
            num_envs=num_envs,
            total_steps=total_steps,
            device=device,
            name=name,
            hp_assignments=hp_assignments,
            env_opts=env_opts,
            config_file=config_file,
            use_compile=use_compile,
            tf32=tf32,
            runs_root=runs_root,
            eval_freq=eval_freq,
            eval_episodes=eval_episodes,
            checkpoint_freq=checkpoint_freq,
            threads=threads,
            progress=not no_progress,
        )
        return
    from rlcourse.app import plugins as plugin_runs

    adversarial = algo in plugin_runs.ADVERSARIAL
    agent_class = None if adversarial else algo_class(algo)
    if distributed and agent_class is not None and agent_class.data_parallel_refusal() is not None:
        raise BadInput(agent_class.data_parallel_refusal())
    if distributed and adversarial:
        raise BadInput(_NO_PLUGINS.format(what=f"{algo}'s discriminator"))
    resolved_device = device_of(device, agent_class=agent_class)
    preset_used = applied_preset(algo, env, preset)
    run, hparams, env_kwargs = run_settings(
        algo, env, preset_used, config_file, hp_assignments, num_envs, total_steps, env_opts
    )
    agent_algo, plugins = plugin_runs.split_plugins(algo, hparams, demos if adversarial else None)
    if distributed and plugins.active:
        raise BadInput(_NO_PLUGINS.format(what="curiosity"))
    if distributed and not parallel.launched_by_torchrun():
        raise BadInput(f"--distributed runs under torchrun: {parallel.LAUNCH_HINT}")
    if adversarial:  # the generator trains with its own preset for the env, under the method's settings
        agent_class = algo_class(agent_algo)
        hparams = {**(plugin_runs.generator_preset(agent_algo, env) if preset_used else {}), **hparams}
    flags = {"--expert": expert} if adversarial else {"--demos": demos, "--expert": expert}
    hparams.update(_imitation_hparams(algo, agent_class, flags))
    agent_config = make_config(agent_class.config_class, hparams)  # names a bad key or value before any env is built
    torch.backends.cuda.matmul.allow_tf32 = tf32
    if name is not None:
        with run_dir_errors("--name"):
            check_run_name(name)
    plugin_callbacks: list[Any] = []
    try:
        if plugins.active:  # the plug-ins wrap the env (normalised as run_settings says), so the agent gets it built
            env_instance, plugin_callbacks = plugin_runs.build_env(
                plugins,
                env,
                run["num_envs"],
                resolved_device,
                env_kwargs,
                seed,
                normalize=run.get(NORMALIZE_KEY),
                gamma=getattr(agent_config, "gamma", None),
            )
            agent = agent_class(
                env_instance,
                device=resolved_device,
                seed=seed,
                compile=use_compile,
                preset=None,
                threads=threads,
                **hparams,
            )
            plugin_runs.attach_generator(plugins, agent, plugin_callbacks)
        else:
            agent = agent_class(
                env,
                num_envs=run["num_envs"],
                # each rank picks its own GPU (cuda:LOCAL_RANK), so only the device type is passed on
                device=resolved_device.type if distributed else resolved_device,
                seed=seed,
                compile=use_compile,
                env_kwargs=env_kwargs,
                preset=None,  # run_settings has merged the preset under the flags already
                normalize=run.get(NORMALIZE_KEY),
                threads=threads,
                distributed=distributed,
                **hparams,
            )
    except gymnasium.error.Error as error:  # e.g. an env whose optional dependency is not installed
        raise BadInput(f"cannot make env {env!r}: {error}") from None
    if init_from is not None:
        with run_dir_errors("--init-from"):
            agent.init_from(init_from)
    # Claimed only once everything is valid (building the agent checks the batch against the envs too),
    # so bad input leaves no folder behind; hence the agent gets its RunDir after it is built.
    with run_dir_errors():
        run_dir = agent.run_dir = _claim_run_dir(agent, runs_root, algo, name, seed)
    config = run_record(
        algo,
        agent,
        preset=preset_used,
        total_timesteps=run["total_timesteps"],
        seed=seed,
        eval_freq=eval_freq,
        eval_episodes=eval_episodes,
        use_compile=use_compile,
        tf32=tf32,
        checkpoint_freq=checkpoint_freq,
        init_from=init_from,
        extra=plugins.record() if plugins.active else None,
    )
    if agent.is_main:
        run_dir.write_config(config)
    from rlcourse.agents.base import MAX_STEPS_VARIABLE, capped_budget  # agents load only once a run starts

    preset_note = f", preset {preset_used}" if preset_used else ""
    if capped_budget(run["total_timesteps"], warn=False) < run["total_timesteps"]:
        preset_note += f", capped at {capped_budget(run['total_timesteps'], warn=False):,} by {MAX_STEPS_VARIABLE}"
    where = f"{agent.device}"
    if agent.distributed:
        where = f"{agent.world_size} ranks ({agent.num_envs} envs each, {agent.device.type})"
    if agent.is_main:
        click.echo(
            f"Training {algo} on {agent.env_id}: {run['total_timesteps']:,} steps, {agent.num_envs * agent.world_size} "
            f"envs, seed {seed}{preset_note}, {where} -> {run_dir}"
        )
    _learn_and_finish(
        ctx,
        agent,
        run_dir,
        run["total_timesteps"],
        run["total_timesteps"],
        reset=True,
        eval_episodes=eval_episodes,
        progress=not no_progress,
        callbacks=[*plugin_callbacks, *training_callbacks(config)],
    )


def _claim_run_dir(agent: Any, runs_root: Path, algo: str, name: str | None, seed: int) -> RunDir:
    """A fresh run folder; in data-parallel training rank 0 claims it and tells the other ranks its path (they
    write nothing into it, but name it to checkpoint together)."""
    if not agent.distributed:
        return RunDir.create(runs_root, agent.env_id, algo, name, seed)
    path = str(RunDir.create(runs_root, agent.env_id, algo, name, seed)) if agent.is_main else None
    return RunDir(parallel.broadcast_object(path))


def run_record(
    algo: str,
    agent: Any,
    *,
    preset: str | None,
    total_timesteps: int,
    seed: int,
    eval_freq: int | None,
    eval_episodes: int,
    use_compile: bool = False,
    tf32: bool = False,
    checkpoint_freq: int | None = None,
    init_from: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """What a run's ``config.yaml`` holds: the run's settings and the built ``agent``'s (env id, options and
    normalisation, envs, device, threads, every hyperparameter), then ``extra`` (plug-ins, a tune trial's study).

    ``rlcourse train`` and each ``rlcourse tune`` trial write it; ``--resume`` (:mod:`rlcourse.app.resume`) and
    ``--config`` read it back.
    """
    return {
        "algo": algo,
        "env": agent.env_id,
        "preset": preset,
        ENV_KWARGS_KEY: agent.env.options(),
        NORMALIZE_KEY: agent.normalize.record(),
        "num_envs": agent.num_envs * agent.world_size,
        "total_timesteps": total_timesteps,
        "seed": seed,
        # a data-parallel run's ranks each train on their own device of this type (cuda:LOCAL_RANK)
        "device": agent.device.type if agent.distributed else str(agent.device),
        "compile": use_compile,
        "tf32": tf32,
        "eval_freq": eval_freq,
        "eval_episodes": eval_episodes,
        "checkpoint_freq": checkpoint_freq,
        "init_from": init_from,
        "torch_threads": torch.get_num_threads(),
        "rlcourse_version": rlcourse.__version__,
        "hyperparameters": config_to_dict(agent.config),
        **({"distributed": distributed_record(agent)} if agent.distributed else {}),
        **(extra or {}),
    }


def distributed_record(agent: Any) -> dict[str, Any]:
    """What ``config.yaml`` says of a data-parallel run (``--resume`` needs the same number of ranks)."""
    ranks = parallel.current()
    return {
        "world_size": agent.world_size,
        "backend": ranks.backend if ranks is not None else None,
        "num_envs_per_rank": agent.num_envs,
    }


def _imitation_hparams(algo: str, agent_class: Any, flags: dict[str, str | None]) -> dict[str, str]:
    """``--demos``/``--expert`` as the hyperparameters they set, for the algorithms whose config has the field."""
    import dataclasses

    fields = {field.name for field in dataclasses.fields(agent_class.config_class)}
    values = {}
    for flag, value in flags.items():
        if value is None:
            continue
        name = IMITATION_FLAGS[flag]
        if name not in fields:
            users = sorted(
                a for a, c in _algos().items() if name in {f.name for f in dataclasses.fields(c.config_class)}
            )
            raise BadInput(f"{flag} is for {', '.join(users)}; {algo} does not take it")
        values[name] = value
    return values


def _algos() -> dict[str, Any]:
    from rlcourse.agents import ALGOS

    return ALGOS


def _learn_and_finish(
    ctx: click.Context,
    agent: Any,
    run_dir: RunDir,
    total: int,
    steps: int,
    reset: bool,
    eval_episodes: int,
    progress: bool,
    callbacks: list[Any],
) -> None:
    """Train ``steps`` more steps (if any), then handle an interruption or evaluate and summarise.

    The other ranks of a data-parallel run only train: rank 0 evaluates, writes and prints.
    """
    start_steps, start_time = agent.num_timesteps, time.perf_counter()
    if steps > 0:
        try:
            agent.learn(steps, progress_bar=progress, reset_num_timesteps=reset, callbacks=callbacks)
        except ValueError as error:  # every input was checked above: this is a defect, keep its traceback
            raise RuntimeError(f"training failed: {error}") from error
    wall = time.perf_counter() - start_time
    if not agent.is_main:
        parallel.shutdown()
        if agent.interrupted_by is not None:
            ctx.exit(128 + agent.interrupted_by)
        return
    if agent.interrupted_by is not None:
        signame = signal.Signals(agent.interrupted_by).name
        command = f"{script_command('rlcourse')} train"
        if agent.distributed:
            command = f"{script_command('torchrun')} --nproc_per_node {agent.world_size} -m rlcourse train"
        click.echo(
            f"rlcourse: stopped by {signame} at step {agent.num_timesteps:,} of {total:,}; checkpoint saved to "
            f"{run_dir.checkpoint}; resume with: {command} --resume {shlex.quote(str(run_dir))}",
            err=True,
        )
        ctx.exit(128 + agent.interrupted_by)
    trained = agent.num_timesteps - start_steps
    # A finished run resumed is evaluated again, but keeps its eval.json (if any) and gets no new event file.
    keep = trained == 0 and run_dir.eval.is_file()
    try:
        result = agent.evaluate(eval_episodes) if keep else agent.write_eval(eval_episodes)
    except ValueError as error:
        raise RuntimeError(f"evaluation failed: {error}") from error
    if trained > 0:
        log_eval(run_dir, result, agent.num_timesteps)
    if trained == 0:
        click.echo(f"Done: {agent.num_timesteps:,} env steps (nothing left to train)")
    else:
        resumed = f" ({trained:,} in this session)" if start_steps else ""
        click.echo(
            f"Done: {agent.num_timesteps:,} env steps{resumed} in {wall:.1f} s ({trained / max(wall, 1e-9):,.0f} steps/s)"
        )
        train_return = agent.last_log.get("rollout/ep_rew_mean")
        click.echo(
            "  training mean return (last log): "
            + (f"{train_return:.2f}" if train_return is not None else "n/a (no episode ended in the last log interval)")
        )
    click.echo(f"  evaluation: {describe_eval(result)}" + (f" ({run_dir.eval} kept as it was)" if keep else ""))
    from rlcourse.app.train_seeds import population_summary

    members = population_summary(agent, run_dir.eval)
    if members is not None:
        click.echo(members)
    if agent.distributed:
        click.echo(f"  data-parallel: {agent.world_size} ranks of {agent.num_envs} envs")
    if run_dir.best.is_file():
        click.echo(f"  best policy so far (periodic evaluation): {run_dir.best}")
    click.echo(f"  run folder: {run_dir}")
    if agent.env.has_transcripts:
        click.echo(
            "  sample dialogues: TensorBoard's TEXT tab (transcripts/0..2), or "
            f"{script_command('rlcourse')} play {shlex.quote(str(run_dir))}"
        )
    click.echo(f"TensorBoard: {script_command('tensorboard')} --logdir {shlex.quote(str(run_dir))}")
    parallel.shutdown()


def script_command(name: str) -> str:
    """How to type the console script ``name`` of this installation: the bare name when the shell finds this
    very script on PATH, else its path (``.venv/bin/tensorboard`` when the venv is not active)."""
    script = Path(sys.executable).parent / name
    if not script.is_file():
        return name  # not installed beside this Python (an unusual layout): the best guess is PATH
    on_path = shutil.which(name)
    if on_path is not None and Path(on_path).resolve() == script.resolve():
        return name
    try:
        shown = Path(os.path.relpath(script))
        shown = shown if not str(shown).startswith("..") else script
    except ValueError:  # another drive (Windows)
        shown = script
    text = str(shown) if shown.is_absolute() or str(shown).startswith(".") else f"./{shown}"
    return shlex.quote(text)
