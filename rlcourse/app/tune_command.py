"""The ``rlcourse tune ALGO ENV`` command: click options over :func:`rlcourse.app.tune.prepare`, and the report.

It runs the trials with one line each, then prints the study's :func:`summary`, writes the best settings
(:func:`rlcourse.app.tune.write_best`) and says how to train with them and how to add trials to the study.
:mod:`rlcourse.app.cli` imports it only when the command runs, so ``rlcourse --help`` never loads Optuna.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import optuna

from rlcourse.app.inputs import CONTEXT, runs_root_option
from rlcourse.app.settings import NO_PRESET
from rlcourse.app.train import script_command
from rlcourse.app.tune import (
    DEFAULT_EVAL_EPISODES,
    DEFAULT_EVALUATIONS,
    DEFAULT_TRIALS,
    PRUNERS,
    SAMPLERS,
    SETTINGS_ATTR,
    format_params,
    prepare,
    write_best,
)
from rlcourse.config import DEFAULT_PRESET, parse_hp
from rlcourse.device import DEFAULT_THREADS


def _option(flag: str, help: str, *names: str, **kwargs: Any) -> Callable[[Any], Any]:
    """A click option; a ``default`` is shown in the help."""
    return click.option(flag, *names, help=help, show_default="default" in kwargs, **kwargs)


POSITIVE = click.IntRange(min=1)


@click.command("tune", context_settings=CONTEXT)
@click.argument("algo")
@click.argument("env")
@_option(
    "--trials", "Trials this process runs (added to the study's earlier ones).", type=POSITIVE, default=DEFAULT_TRIALS
)
@_option(
    "--storage",
    "Optuna database URL that workers share (postgresql://USER:PASS@HOST/DB, mysql://..., "
    "sqlite:///FILE); default: study.db in the tune folder.",
    metavar="URL",
)
@_option("--study-name", "Create or join this study (default: a new one named by the time).", metavar="NAME")
@_option("--sampler", "Optuna's sampler.", type=click.Choice(SAMPLERS), default="tpe")
@_option(
    "--pruner",
    "median: stop a trial whose evaluation is below the median of the earlier trials' at that step.",
    type=click.Choice(PRUNERS),
    default="median",
)
@_option(
    "--eval-freq",
    f"Evaluate every N env steps (default: {DEFAULT_EVALUATIONS} times a trial).",
    type=POSITIVE,
    metavar="N",
)
@_option("--eval-episodes", "Episodes of each deterministic evaluation.", type=POSITIVE, default=DEFAULT_EVAL_EPISODES)
@_option("--total-steps", "Env steps of each trial (default: the preset's).", "total_timesteps", type=POSITIVE)
@_option("--num-envs", "Parallel envs of each trial (default: the preset's).", type=POSITIVE)
@_option(
    "--seed",
    "Seeds every trial's agent and the sampler (give each worker its own).",
    type=click.IntRange(min=0),
    default=0,
)
@_option("--device", "auto (CUDA when present, else CPU), cpu, cuda or cuda:N.", default="auto")
@_option("--threads", "torch's CPU threads.", type=POSITIVE, default=DEFAULT_THREADS)
@_option("--space", "Search space YAML replacing rlcourse/presets/tune/ALGO.yml (docs/tune.md).", metavar="FILE")
@_option("--output", "Where the best trial's settings go (default: best.yml in the tune folder).", metavar="FILE")
@_option(
    "--hp",
    "Fix a hyperparameter in every trial (it is not searched); repeatable.",
    "hparams",
    multiple=True,
    metavar="KEY=VALUE",
)
@_option("--env-opt", "Set an env option; repeatable.", "env_kwargs", multiple=True, metavar="KEY=VALUE")
@_option(
    "--preset", "The preset variant the trials start from ('none' for none).", default=DEFAULT_PRESET, metavar="NAME"
)
@runs_root_option
def tune_command(algo: str, env: str, trials: int, output: str | None, **options: Any) -> None:
    """Tune ALGO's hyperparameters on ENV with Optuna.

    Each trial trains ALGO on ENV with the shipped preset and values drawn from the search space
    (rlcourse/presets/tune/ALGO.yml or --space FILE), is evaluated every --eval-freq steps and pruned when
    it falls behind. The objective is the final evaluation's mean return, or the success (win) rate of envs
    that report one. Trials go to RUNS_ROOT/<env>/<algo>/tune-<study>/trial-<n>; the best settings to
    best.yml there, for `rlcourse train ALGO ENV --config best.yml`. Workers that share --storage and
    --study-name add trials to one study.
    """
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # report_trial prints one line per trial instead
    options["hparams"] = parse_hp(options["hparams"])
    options["env_kwargs"] = parse_hp(options["env_kwargs"], flag="--env-opt")
    options["preset"] = None if options["preset"] == NO_PRESET else options["preset"]
    tuning = prepare(algo, env, echo=click.echo, **options)
    name, env_id, rlcourse_command = tuning.study.study_name, shlex.quote(tuning.env_id), script_command("rlcourse")
    click.echo(
        f"Tuning {algo} on {tuning.env_id}: {trials} trials of {tuning.run['total_timesteps']:,} steps, "
        f"objective {tuning.metric}, study {name!r} in {tuning.storage_shown} -> {tuning.folder}"
    )
    study = tuning.optimize(trials)
    for line in summary(study):
        click.echo(line)
    if not any(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials):
        raise click.ClickException(f"no trial of study {name!r} is complete yet, so there are no best settings")
    path = write_best(study, Path(output) if output is not None else tuning.folder / "best.yml")
    best = study.best_trial
    click.echo(f"Best settings (trial {best.number}) written to {path}; train with them:")
    click.echo(
        f"  {rlcourse_command} train {algo} {env_id} --config {shlex.quote(str(path))} --seed {best.user_attrs['seed']}"
    )
    where = (
        f"--storage {tuning.storage_shown}"
        if options["storage"]
        else f"--runs-root {shlex.quote(str(options['runs_root']))}"
    )
    click.echo(
        f"More trials: {rlcourse_command} tune {algo} {env_id} --study-name {shlex.quote(name)} {where} --seed N"
    )


def summary(study: Any, top: int = 5) -> list[str]:
    """The study's trial counts and a table of its ``top`` best complete trials."""
    states = [t.state.name.lower() for t in study.trials]
    counts = ", ".join(f"{states.count(s)} {s}" for s in ("complete", "pruned", "fail", "running") if s in states)
    metric = study.user_attrs.get(SETTINGS_ATTR, {}).get("objective", "value")
    complete = sorted((t for t in study.trials if t.state.name == "COMPLETE"), key=lambda t: -t.value)[:top]
    lines = [f"Study {study.study_name!r}: {len(states)} trials ({counts})"]
    if complete:
        width = max(len(metric), 8)
        lines.append(f"  {'trial':>5}  {metric:>{width}}  parameters")
        lines += [f"  {t.number:>5}  {t.value:>{width}.3f}  {format_params(t.params)}" for t in complete]
    return lines
