"""``rlcourse tune ALGO ENV``'s engine: hyperparameter search with Optuna, as RL Zoo's ``--optimize`` does.

Each trial trains ALGO on ENV with the shipped preset (as ``rlcourse train`` does) under values drawn from the
algorithm's search space (``rlcourse/presets/tune/<algo>.yml``, or ``--space FILE``; the format is
:func:`rlcourse.app.tune_space.parse_space`'s). A :class:`TrialEval` callback evaluates it every ``eval_freq``
steps, reports the objective to Optuna and stops ``learn`` through the callback protocol (``on_rollout_end``
returns ``False``) when the pruner says so. The **objective** is the final deterministic evaluation:
``mean_reward``, or for an env that declares ``outcome_keys`` the rate of its first outcome (``success_rate`` for
the dialogue, ``win_rate`` for battles); :func:`objective_metric`.

Layout: ``RUNS_ROOT/<env>/<algo>/tune-<study>/`` holds ``study.db`` (the default SQLite storage), one run folder
per trial (``trial-<n>``: config.yaml, TensorBoard events, checkpoints, eval.json) and ``best.yml``, the best
trial's settings as a file that ``rlcourse train ALGO ENV --config best.yml`` accepts. Any Optuna RDB URL
(``postgresql://``, ``mysql://``) may hold the study instead, so that processes on several machines add trials
to one study (each keeps its trial folders locally). A study remembers the settings it was started with, and
a worker with other settings is refused rather than mixing incomparable trials.

This module is the Python API (:func:`tune`, :func:`prepare`); the search space lives in
:mod:`rlcourse.app.tune_space`, the click command in :mod:`rlcourse.app.tune_command`.
"""

from __future__ import annotations

import json
import os
import shlex
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium
import optuna
import sqlalchemy.exc
import yaml

from rlcourse.agents import ALGOS
from rlcourse.app.plugins import ADVERSARIAL
from rlcourse.app.runs import log_eval
from rlcourse.app.settings import FLAG_KEYS, applied_preset, run_settings
from rlcourse.app.train import run_record
from rlcourse.app.tune_space import Param, check_space, load_space
from rlcourse.callbacks import EvalCallback
from rlcourse.config import (
    DEFAULT_PRESET,
    ENV_KWARGS_KEY,
    NORMALIZE_KEY,
    RUN_KEYS,
    ConfigError,
    did_you_mean,
    make_config,
    parse_normalize,
)
from rlcourse.device import DEFAULT_THREADS, resolve_device
from rlcourse.run_dir import RunDir, check_run_name, env_folder

#: Trials one ``tune`` call runs when not told.
DEFAULT_TRIALS = 20
#: Episodes of each evaluation of a trial (periodic and final): fewer than ``train``'s 100, since a study runs many.
DEFAULT_EVAL_EPISODES = 20
#: Evaluations per trial when ``eval_freq`` is not given (the pruner's decision points).
DEFAULT_EVALUATIONS = 5
#: The median pruner waits for this many finished trials, and prunes no evaluation in this first part of a trial.
MEDIAN_STARTUP_TRIALS, MEDIAN_WARMUP_FRACTION = 5, 1 / 3
SAMPLERS, PRUNERS = ("tpe", "random"), ("median", "none")
#: The study's user attribute that records the settings it was started with.
SETTINGS_ATTR = "rlcourse"
#: The keys of a trial's config.yaml that its Optuna trial records too (with ``run_dir``), for :func:`best_config`.
TRIAL_ATTRS = ("seed", "num_envs", "total_timesteps", ENV_KWARGS_KEY, NORMALIZE_KEY, "hyperparameters")


# --------------------------------------------------------------------------- storage and study
def open_storage(storage: Any) -> Any:
    """An Optuna storage from a database URL (or a storage object), with every failure a one-line ``ConfigError``."""
    if isinstance(storage, optuna.storages.BaseStorage):
        return storage
    if not isinstance(storage, str) or "://" not in storage:
        raise ConfigError(
            f"bad storage {storage!r}: expected a database URL such as sqlite:///study.db, "
            "postgresql://USER:PASSWORD@HOST/DB or mysql://USER:PASSWORD@HOST/DB"
        )
    shown = _masked(storage)
    # SQLite serialises writers: wait for a busy database (workers sharing a file) instead of failing at once.
    engine_kwargs = {"connect_args": {"timeout": 60}} if storage.startswith("sqlite") else None
    for attempt in range(3):
        try:
            return optuna.storages.RDBStorage(storage, engine_kwargs=engine_kwargs)
        except ImportError as error:
            raise ConfigError(
                f"cannot open storage {shown}: its database driver {error.name!r} is not installed"
            ) from None
        except (sqlalchemy.exc.SQLAlchemyError, ValueError) as error:
            if attempt == 2 or not _is_race(error):
                raise ConfigError(f"cannot open storage {shown}: {_first_line(error)}") from None
            time.sleep(0.5 + attempt)  # workers that start together raced to create the tables: they exist now
    raise AssertionError("unreachable")


def _is_race(error: Exception) -> bool:
    """Whether creating Optuna's tables failed because another worker was creating them at the same moment."""
    if isinstance(error, (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError)):
        return True
    return isinstance(error, sqlalchemy.exc.OperationalError) and any(
        words in str(error) for words in ("already exists", "database is locked")
    )


def _masked(url: str) -> str:
    try:
        from sqlalchemy.engine import make_url

        return repr(make_url(url).render_as_string(hide_password=True))
    except Exception:  # an unparsable URL is reported by RDBStorage itself
        return repr(url)


def _first_line(error: BaseException) -> str:
    text = str(getattr(error, "orig", None) or error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def objective_metric(outcome_keys: tuple[str, ...]) -> str:
    """The evaluation key a study maximises: the first outcome's rate where the env declares outcomes."""
    return f"{outcome_keys[0]}_rate" if outcome_keys else "mean_reward"


# --------------------------------------------------------------------------- the trial's callback
class InvalidSample(ValueError):
    """A drawn combination that the algorithm refuses (``batch_size`` not dividing the rollout): the trial fails."""


class TrialEval(EvalCallback):
    """:class:`~rlcourse.callbacks.EvalCallback` that reports each evaluation's ``metric`` to an Optuna trial and
    stops training through the callback protocol (``on_rollout_end`` returns ``False``) when it should be pruned.

    Optuna's step is the evaluation's number (1, 2, ...), as in RL Zoo, not the env step: trials whose iterations
    differ in size (another ``n_steps``) evaluate at slightly different env steps, and the pruner compares trials
    at equal steps only.
    """

    def __init__(self, trial: optuna.Trial, metric: str, eval_freq: int, n_eval_episodes: int):
        super().__init__(eval_freq, n_eval_episodes=n_eval_episodes)
        self.trial, self.metric = trial, metric
        self.evaluations = 0
        self.pruned_at: int | None = None

    def on_rollout_end(self, batch: Any) -> bool | None:
        evaluated_before = self.last_eval_step
        super().on_rollout_end(batch)
        if self.last_eval_step == evaluated_before:
            return None
        self.evaluations += 1
        self.trial.report(float(self.last_result[self.metric]), step=self.evaluations)
        if self.trial.should_prune():
            self.pruned_at = self.run.num_timesteps
            return False
        return None


# --------------------------------------------------------------------------- the study
@dataclass
class Tuning:
    """The checked settings of one ``tune`` call and its study (:func:`prepare`); :meth:`optimize` runs trials."""

    algo: str
    agent_class: type
    env_id: str
    device: Any
    seed: int
    threads: int | None
    preset: str | None
    run: dict[str, int]
    base: dict[str, Any]
    env_kwargs: dict[str, Any]
    space: dict[str, Param]
    metric: str
    eval_freq: int
    eval_episodes: int
    folder: Path
    study: Any
    storage_shown: str
    echo: Callable[[str], None] = field(default=lambda line: None)

    def settings(self, fixed: dict[str, Any]) -> dict[str, Any]:
        """What makes two workers' trials comparable: recorded by the study, checked on every join."""
        return json.loads(
            json.dumps(
                {
                    "algo": self.algo,
                    "env": self.env_id,
                    "preset": self.preset,
                    ENV_KWARGS_KEY: self.env_kwargs,
                    **self.run,
                    "eval_freq": self.eval_freq,
                    "eval_episodes": self.eval_episodes,
                    "objective": self.metric,
                    "fixed": fixed,
                    "space": {name: param.spec() for name, param in self.space.items()},
                }
            )
        )

    def objective(self, trial: Any) -> float:
        hparams = {**self.base, **{name: param.suggest(trial) for name, param in self.space.items()}}
        try:
            agent = self._agent(hparams)
        except ValueError as error:
            trial.set_user_attr("failed_because", str(error))
            raise InvalidSample(str(error)) from None
        run_dir = agent.run_dir = RunDir.claim(self.folder / f"trial-{trial.number}")
        config = run_record(
            self.algo,
            agent,
            preset=self.preset,
            total_timesteps=self.run["total_timesteps"],
            seed=self.seed,
            eval_freq=self.eval_freq,
            eval_episodes=self.eval_episodes,
            extra={"tune": {"study": trial.study.study_name, "trial": trial.number, "storage": self.storage_shown}},
        )
        trial.set_user_attr("run_dir", str(run_dir))
        for key in TRIAL_ATTRS:
            trial.set_user_attr(key, config[key])
        run_dir.write_config(config)
        callback = TrialEval(trial, self.metric, self.eval_freq, self.eval_episodes)
        try:
            agent.learn(self.run["total_timesteps"], callbacks=[callback])
            if agent.interrupted_by is not None:  # Ctrl-C or SIGTERM: the checkpoint is saved; end the study
                raise KeyboardInterrupt
            if callback.pruned_at is not None:
                trial.set_user_attr("pruned_at", callback.pruned_at)
                raise optuna.TrialPruned(f"pruned at step {callback.pruned_at}")
            result = agent.write_eval(self.eval_episodes)
        except ValueError as error:  # every input was checked before the study began: this is a defect
            raise RuntimeError(f"trial {trial.number} failed: {error}") from error
        log_eval(run_dir, result, agent.num_timesteps)
        trial.set_user_attr("eval", result)
        return float(result[self.metric])

    def _agent(self, hparams: dict[str, Any]) -> Any:
        try:
            return self.agent_class(
                self.env_id,
                num_envs=self.run["num_envs"],
                device=self.device,
                seed=self.seed,
                env_kwargs=self.env_kwargs,
                preset=None,  # the preset is merged into self.base (and the run's normalize) already
                normalize=self.run.get(NORMALIZE_KEY),
                threads=self.threads,
                **hparams,
            )
        except gymnasium.error.Error as error:
            raise ConfigError(f"cannot make env {self.env_id!r}: {error}") from None

    def report_trial(self, study: Any, trial: Any) -> None:
        """One line per finished trial (an Optuna ``optimize`` callback)."""
        state = trial.state.name.lower()
        if state == "complete":
            line = f"{self.metric} {trial.value:.3f}  {format_params(trial.params)}  -> {trial.user_attrs['run_dir']}"
        elif state == "pruned":
            step, values = trial.user_attrs.get("pruned_at"), trial.intermediate_values
            last = f"{self.metric} {values[max(values)]:.3f} at evaluation {max(values)}" if values else "no evaluation"
            line = f"pruned at step {step:,} ({last})" if step is not None else "pruned"
        else:
            line = f"{state}: {trial.user_attrs.get('failed_because', 'see the error above')}"
        self.echo(f"trial {trial.number}: {line}")

    def optimize(self, n_trials: int) -> Any:
        self.study.optimize(self.objective, n_trials=n_trials, catch=(InvalidSample,), callbacks=[self.report_trial])
        return self.study


def format_params(params: dict[str, Any]) -> str:
    return ", ".join(f"{k}={f'{v:.3g}' if isinstance(v, float) else v}" for k, v in params.items())


def _make_sampler(sampler: Any, seed: int) -> Any:
    if isinstance(sampler, optuna.samplers.BaseSampler):
        return sampler
    if sampler == "tpe":  # constant_liar: parallel workers steer away from each other's running trials
        with warnings.catch_warnings():  # experimental before Optuna 5, where it became the default
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.samplers.TPESampler(seed=seed, constant_liar=True)
    if sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    raise ValueError(f"sampler must be one of {', '.join(SAMPLERS)} or an optuna sampler, got {sampler!r}")


def _make_pruner(pruner: Any, evaluations: int) -> Any:
    if isinstance(pruner, optuna.pruners.BasePruner):
        return pruner
    if pruner == "median":
        warmup = int(evaluations * MEDIAN_WARMUP_FRACTION) + 1  # Optuna's steps below n_warmup_steps are safe
        return optuna.pruners.MedianPruner(n_startup_trials=MEDIAN_STARTUP_TRIALS, n_warmup_steps=warmup)
    if pruner == "none":
        return optuna.pruners.NopPruner()
    raise ValueError(f"pruner must be one of {', '.join(PRUNERS)} or an optuna pruner, got {pruner!r}")


def _positive(name: str, value: Any, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


def prepare(
    algo: str,
    env: str,
    *,
    storage: Any = None,
    study_name: str | None = None,
    sampler: Any = "tpe",
    pruner: Any = "median",
    eval_freq: int | None = None,
    eval_episodes: int = DEFAULT_EVAL_EPISODES,
    total_timesteps: int | None = None,
    num_envs: int | None = None,
    seed: int = 0,
    device: str = "auto",
    threads: int | None = DEFAULT_THREADS,
    space: str | Path | Mapping[str, Any] | None = None,
    hparams: Mapping[str, Any] | None = None,
    env_kwargs: Mapping[str, Any] | None = None,
    preset: str | None = DEFAULT_PRESET,
    runs_root: str | Path = "runs",
    echo: Callable[[str], None] | None = None,
) -> Tuning:
    """Check every setting of :func:`tune`, then create or join the study; nothing is written before all are valid."""
    if algo in ADVERSARIAL:
        raise ConfigError(f"tune does not support {algo} (adversarial imitation); tune its generator instead")
    if algo not in ALGOS:
        hint = did_you_mean(algo, ALGOS)
        raise ConfigError(
            f"unknown algorithm {algo!r}; {hint + ' ' if hint else ''}available: {', '.join(sorted(ALGOS))}"
        )
    agent_class = ALGOS[algo]
    _positive("eval_episodes", eval_episodes)
    _positive("seed", seed, minimum=0)
    resolved = resolve_device("cpu" if agent_class.cpu_only and str(device).lower() == "auto" else device)
    preset_used = applied_preset(algo, env, preset) if preset is not None else None
    run, base, options = run_settings(algo, env, preset_used, None, (), num_envs, total_timesteps)
    fixed = dict(hparams or {})
    if NORMALIZE_KEY in fixed:  # the env's normalisation, fixed like a hyperparameter (--hp normalize=true)
        run[NORMALIZE_KEY] = parse_normalize(fixed.pop(NORMALIZE_KEY), "hparams (--hp)").record()
    for key in fixed:
        if key in FLAG_KEYS or key in RUN_KEYS:
            raise ConfigError(f"{key!r} is not a hyperparameter; tune sets it with its own argument (flag)")
    base.update(fixed)
    options.update(env_kwargs or {})
    make_config(agent_class.config_class, base)
    searched = {n: p for n, p in load_space(algo, agent_class.config_class, space).items() if n not in fixed}
    if not searched:
        raise ConfigError("every hyperparameter of the search space is fixed by hparams (--hp): nothing to tune")
    check_space(searched, agent_class.config_class, base)
    if eval_freq is None:
        eval_freq = max(run["total_timesteps"] // DEFAULT_EVALUATIONS, 1)
    _positive("eval_freq", eval_freq)
    sampler_obj = _make_sampler(sampler, seed)
    pruner_obj = _make_pruner(pruner, run["total_timesteps"] // eval_freq)
    tuning = Tuning(
        algo=algo,
        agent_class=agent_class,
        env_id=env,
        device=resolved,
        seed=seed,
        threads=threads,
        preset=preset_used,
        run=run,
        base=base,
        env_kwargs=options,
        space=searched,
        metric="",
        eval_freq=eval_freq,
        eval_episodes=eval_episodes,
        folder=Path(),
        study=None,
        storage_shown="",
        echo=echo or (lambda line: None),
    )
    probe = tuning._agent(base)  # the env id, its outcomes, and the batch geometry, checked before anything is written
    tuning.env_id, tuning.metric = probe.env_id, objective_metric(tuple(probe.env.outcome_keys))
    probe.env.close()
    if storage is not None:
        storage = open_storage(storage)  # a bad URL fails before any folder exists
    tuning.folder, name, created = _tune_folder(Path(runs_root) / env_folder(tuning.env_id) / algo, study_name)
    try:
        if storage is None:
            storage = open_storage(f"sqlite:///{(tuning.folder / 'study.db').resolve()}")
        tuning.storage_shown = _masked(storage.url) if hasattr(storage, "url") else type(storage).__name__
        tuning.study = optuna.create_study(
            storage=storage,
            sampler=sampler_obj,
            pruner=pruner_obj,
            study_name=name,
            direction="maximize",
            load_if_exists=study_name is not None,
        )
        _check_settings(tuning.study, tuning.settings(fixed))
    except ValueError:
        if created and not any(tuning.folder.iterdir()):
            tuning.folder.rmdir()  # joining a shared study failed: leave no empty folder behind
        raise
    return tuning


def _tune_folder(parent: Path, study_name: str | None) -> tuple[Path, str, bool]:
    """``tune-<study>`` under ``parent``: a named study's (joined if it exists), or a fresh one named by the time."""
    if study_name is not None:
        check_run_name(f"tune-{study_name}")
        folder = parent / f"tune-{study_name}"
        created = not folder.exists()
        folder.mkdir(parents=True, exist_ok=True)
        return folder, study_name, created
    parent.mkdir(parents=True, exist_ok=True)
    base = time.strftime("%Y%m%d-%H%M%S")
    for suffix in range(1000):
        name = base if suffix == 0 else f"{base}-{suffix}"
        try:
            (parent / f"tune-{name}").mkdir()
            return parent / f"tune-{name}", name, True
        except FileExistsError:
            continue
    raise ConfigError(f"too many studies named {base!r} under {str(parent)!r}")


def _check_settings(study: Any, settings: dict[str, Any]) -> None:
    """Record the settings in a new study; refuse to add trials of other settings to an existing one."""
    recorded = study.user_attrs.get(SETTINGS_ATTR)
    if recorded is None:
        study.set_user_attr(SETTINGS_ATTR, settings)
        return
    if recorded != settings:
        key = next(k for k in {**recorded, **settings} if recorded.get(k) != settings.get(k))
        raise ConfigError(
            f"study {study.study_name!r} was started with {key} {recorded.get(key)!r}, not {settings.get(key)!r}; "
            "join it with the same settings, or start another study (another study name)"
        )


def tune(algo: str, env: str, n_trials: int = DEFAULT_TRIALS, *, output: str | Path | None = None, **kwargs: Any):
    """Run ``n_trials`` Optuna trials of ``algo`` on ``env`` and return the study.

    ``kwargs`` are :func:`prepare`'s: ``storage`` (an Optuna RDB URL; default: ``study.db`` in the tune folder),
    ``study_name`` (a name joins or creates that study; None starts a new one named by the time), ``sampler``
    (``"tpe"``, ``"random"`` or an Optuna sampler), ``pruner`` (``"median"``, ``"none"`` or an Optuna pruner),
    ``eval_freq``, ``eval_episodes``, ``total_timesteps``, ``num_envs``, ``seed``, ``device``, ``threads``,
    ``space`` (a file or mapping replacing the shipped space), ``hparams`` (fixed values; a fixed hyperparameter
    is not searched), ``env_kwargs``, ``preset``, ``runs_root`` and ``echo`` (called with one line per trial).
    Once a trial is complete, the best trial's settings are written to ``output`` (default: ``best.yml`` in the
    tune folder, ``runs_root/<env>/<algo>/tune-<study>/``; :func:`write_best`).
    """
    _positive("n_trials", n_trials)
    tuning = prepare(algo, env, **kwargs)
    study = tuning.optimize(n_trials)
    if any(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials):
        write_best(study, Path(output) if output is not None else tuning.folder / "best.yml")
    return study


# --------------------------------------------------------------------------- the result
def best_config(study: Any) -> dict[str, Any]:
    """The best trial's settings as a ``--config`` file holds them: run keys, env options and normalisation, every
    hyperparameter."""
    attrs = study.best_trial.user_attrs
    config = {"num_envs": attrs["num_envs"], "total_timesteps": attrs["total_timesteps"]}
    if attrs.get(ENV_KWARGS_KEY):
        config[ENV_KWARGS_KEY] = attrs[ENV_KWARGS_KEY]
    if attrs.get(NORMALIZE_KEY) is not None:  # even none: a --config file's normalize overrides the preset's
        config[NORMALIZE_KEY] = attrs[NORMALIZE_KEY]
    return {**config, **attrs["hyperparameters"]}


def write_best(study: Any, path: Path) -> Path:
    """Write :func:`best_config` to ``path`` with a header saying where it came from and how to use it."""
    best, settings = study.best_trial, study.user_attrs.get(SETTINGS_ATTR, {})
    algo, env = settings.get("algo", "ALGO"), settings.get("env", "ENV")
    header = [
        f"# rlcourse tune: trial {best.number} of study {study.study_name!r}, the best so far "
        f"({settings.get('objective', 'objective')} {best.value:.4g}, seed {best.user_attrs.get('seed')}).",
        f"# Tuned: {format_params(best.params)}",
        "# total_timesteps is each trial's budget; --total-steps gives the run another.",
        f"# Train with it: rlcourse train {algo} {env} --config {shlex.quote(str(path))}",
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")  # written beside it, then renamed: never half a file
    temporary.write_text(
        "\n".join(header) + "\n" + yaml.safe_dump(best_config(study), sort_keys=False, default_flow_style=None)
    )
    os.replace(temporary, path)
    return path
