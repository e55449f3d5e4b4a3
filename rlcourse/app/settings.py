"""Where a training run's settings come from, and in which order they win.

Lowest first: the algorithm's defaults (its config dataclass, and :data:`DEFAULT_RUN` for the run keys),
the preset variant (``rlcourse/presets/<algo>.yml``, ``--preset``), ``--config FILE``, ``--hp`` and
``--env-opt``, then ``--num-envs`` and ``--total-steps``. Everything is checked here or by
:func:`rlcourse.config.make_config` before any env is built.

Besides hyperparameters, each source may set the env: ``env_kwargs`` (merged key by key) and ``normalize``
(the last source's wins; :func:`rlcourse.config.parse_normalize`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rlcourse.app.inputs import positive_int
from rlcourse.config import (
    ENV_KEYS,
    ENV_KWARGS_KEY,
    NORMALIZE_KEY,
    RUN_KEYS,
    ConfigError,
    load_config_file,
    load_preset,
    parse_hp,
    parse_normalize,
    preset_names,
)

#: Run settings used when neither a preset nor the command line sets them.
DEFAULT_RUN = {"num_envs": 8, "total_timesteps": 100_000}
#: ``--preset`` value that applies no preset at all.
NO_PRESET = "none"
#: Settings that have their own flag; in a --config file or --hp they are a mistake worth naming.
FLAG_KEYS = {
    "seed": "--seed",
    "device": "--device",
    "compile": "--compile",
    "tf32": "--tf32",
    "name": "--name",
    "run_dir": "--runs-root/--name",
    "preset": "--preset",
    "eval_freq": "--eval-freq",
    "eval_episodes": "--eval-episodes",
    "checkpoint_freq": "--checkpoint-freq",
    "init_from": "--init-from",
}


def _check_not_flag_keys(values: dict[str, Any], source: str) -> None:
    for key in values:
        if key in FLAG_KEYS:
            raise ConfigError(f"{key!r} (from {source}) is not a hyperparameter; set it with {FLAG_KEYS[key]}")


def _config_file_settings(path: str, algo: str) -> dict[str, Any]:
    """A ``--config`` file as one flat mapping of run keys and hyperparameters.

    Besides a flat ``key: value`` file, a run's own ``config.yaml`` is accepted, so a run can be
    repeated with other flags: its ``num_envs``, ``total_timesteps``, env options, ``normalize`` and
    ``hyperparameters`` are used, while seed, device and compile still come from the command line.
    """
    data = load_config_file(path)
    if isinstance(data.get("hyperparameters"), dict):
        if data.get("algo", algo) != algo:
            raise ConfigError(f"config file {path!r} is a {data['algo']} run's config, not one for {algo}")
        return {**{k: data[k] for k in (*RUN_KEYS, *ENV_KEYS) if k in data}, **data["hyperparameters"]}
    return data


def applied_preset(algo: str, env_id: str, preset: str) -> str | None:
    """The variant ``--preset`` applies (None: ``none``, or ``default`` for an env that has no presets)."""
    if preset == NO_PRESET:
        return None
    load_preset(algo, env_id, preset)  # an unknown variant fails here, listing the ones there are
    return preset if preset in preset_names(algo, env_id) else None


def run_settings(
    algo: str,
    env_id: str,
    preset: str | None,
    config_file: str | None,
    hp_assignments: Sequence[str],
    num_envs: int | None,
    total_steps: int | None,
    env_opts: Sequence[str] = (),
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Merge the sources, lowest first: defaults < preset < --config < --hp/--env-opt < --num-envs/--total-steps.

    ``preset`` is a variant name (None: no preset). Returns the run keys, the hyperparameters and the env's options;
    the run keys hold ``normalize`` too (as :meth:`~rlcourse.config.Normalization.record` writes it) when a source
    sets it.
    """
    sources = [(f"preset {preset!r}", load_preset(algo, env_id, preset) if preset else {})]
    if config_file is not None:
        sources.append((f"config file {config_file!r}", _config_file_settings(config_file, algo)))
    sources.append(("--hp", parse_hp(hp_assignments)))
    sources.append(("--env-opt", {ENV_KWARGS_KEY: parse_hp(env_opts, flag="--env-opt")}))
    run: dict[str, Any] = dict(DEFAULT_RUN)
    normalize = None
    hparams: dict[str, Any] = {}
    env_kwargs: dict[str, Any] = {}
    origin = dict.fromkeys(DEFAULT_RUN, "the defaults")
    for source, values in sources:
        _check_not_flag_keys(values, source)
        for key, value in values.items():
            if key == ENV_KWARGS_KEY:
                if not isinstance(value, dict):
                    raise ConfigError(
                        f"{ENV_KWARGS_KEY} (from {source}) must be a mapping of env options, got {value!r}"
                    )
                env_kwargs.update(value)
            elif key == NORMALIZE_KEY:
                normalize = parse_normalize(value, source)
            elif key in RUN_KEYS:
                run[key], origin[key] = value, source
            else:
                hparams[key] = value
    if num_envs is not None:
        run["num_envs"], origin["num_envs"] = num_envs, "--num-envs"
    if total_steps is not None:
        run["total_timesteps"], origin["total_timesteps"] = total_steps, "--total-steps"
    run = {key: positive_int(key, value, origin[key]) for key, value in run.items()}
    if normalize is not None:
        run[NORMALIZE_KEY] = normalize.record()
    return run, hparams, env_kwargs
