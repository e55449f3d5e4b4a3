"""Algorithm configs: dataclasses with a one-line doc per field, YAML presets and ``key=value`` overrides.

Every config class is a dataclass whose fields are declared with :func:`hp`. Values from presets,
``--config`` files and ``--hp key=value`` go through :func:`make_config`, which rejects unknown keys
and values of the wrong type with a :class:`ConfigError` that names the key.

Presets ship in ``rlcourse/presets/<algo>.yml``: each env id maps to named variants of complete
settings, ``default`` (applied unless told otherwise) and others such as ``large_batch_4096``
(:func:`load_preset`, :func:`preset_names`).
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
import types
import typing
from collections.abc import Iterable
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml


class _Yaml12FloatLoader(yaml.SafeLoader):
    """A safe YAML loader that also reads ``1e-3`` as a float (YAML 1.2; PyYAML's 1.1 rules need a dot)."""


_Yaml12FloatLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?(?:[eE][-+]?[0-9]+)$|^[-+]?\.[0-9_]+(?:[eE][-+]?[0-9]+)?$"),
    list("-+0123456789."),
)


def yaml_load(text: str) -> Any:
    """Parse YAML safely, with ``1e-3`` read as a number."""
    return yaml.load(text, Loader=_Yaml12FloatLoader)


class ConfigError(ValueError):
    """A hyperparameter, preset or config file is unknown or has a bad value."""


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """``"did you mean 'gamma'?"`` naming the one or two of ``choices`` closest to a mistyped ``word``, else ``""``.

    Case is ignored in the comparison (``rlcourse/Cartpole-v1`` finds ``rlcourse/CartPole-v1``); every error
    about an unknown name (algorithm, env, hyperparameter, env option, preset, command) uses it.
    """
    by_lower: dict[str, str] = {}
    for choice in choices:
        by_lower.setdefault(str(choice).lower(), str(choice))
    matches = difflib.get_close_matches(str(word).lower(), by_lower, n=2, cutoff=0.6)
    if not matches:
        return ""
    return "did you mean " + " or ".join(repr(by_lower[match]) for match in matches) + "?"


def hp(default: Any, doc: str) -> Any:
    """A config field with its default and a one-line description (shown by ``rlcourse list``)."""
    if isinstance(default, (list, dict)):
        raise TypeError("use tuples for sequence defaults")
    return dataclasses.field(default=default, metadata={"doc": doc})


def field_docs(config_cls: type) -> dict[str, str]:
    """``{name: one-line doc}`` for a config class."""
    return {f.name: f.metadata.get("doc", "") for f in dataclasses.fields(config_cls)}


def _coerce(key: str, value: Any, annotation: Any) -> Any:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(annotation)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _coerce(key, value, option)
            except ConfigError as error:
                errors.append(str(error))
        raise ConfigError(errors[0] if len(errors) == 1 else f"bad value {value!r} for {key}")
    if origin is Literal:
        choices = typing.get_args(annotation)
        if value not in choices:
            raise ConfigError(f"bad value {value!r} for {key}: choose one of {', '.join(map(repr, choices))}")
        return value
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"bad value {value!r} for {key}: expected a list such as [64, 64]")
        (item_type, *_rest) = typing.get_args(annotation)
        return tuple(_coerce(key, item, item_type) for item in value)
    if annotation is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"bad value {value!r} for {key}: expected true or false")
        return value
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise ConfigError(f"bad value {value!r} for {key}: expected an integer")
        return value
    if annotation is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"bad value {value!r} for {key}: expected a number")
        if not math.isfinite(value):
            raise ConfigError(f"bad value {value!r} for {key}: expected a finite number")
        return float(value)
    if annotation is str:
        if not isinstance(value, str):
            raise ConfigError(f"bad value {value!r} for {key}: expected a string")
        return value
    raise TypeError(f"config field {key} has an unsupported annotation {annotation!r}")


def make_config(config_cls: type, overrides: dict[str, Any] | None = None) -> Any:
    """Build ``config_cls`` from its defaults and ``overrides``, checking every key and value."""
    overrides = dict(overrides or {})
    hints = typing.get_type_hints(config_cls)
    names = [f.name for f in dataclasses.fields(config_cls)]
    unknown = sorted(set(overrides) - set(names))
    if unknown:
        hint = did_you_mean(unknown[0], names)
        raise ConfigError(
            f"unknown hyperparameter {unknown[0]!r} for {config_cls.__name__}; "
            f"{hint + ' ' if hint else ''}valid: {', '.join(names)}"
        )
    values = {key: _coerce(key, value, hints[key]) for key, value in overrides.items()}
    try:
        return config_cls(**values)
    except ValueError as error:
        raise ConfigError(str(error)) from None


def check_fields(
    config: Any,
    positive: tuple[str, ...] = (),
    nonnegative: tuple[str, ...] = (),
    positive_or_none: tuple[str, ...] = (),
    net_arch: str | None = "net_arch",
) -> None:
    """The range checks every algorithm config shares, raising ``ValueError`` that names the field.

    ``positive``: > 0; ``nonnegative``: >= 0; ``positive_or_none``: > 0 or null; ``net_arch``: the name of a
    field that must be a non-empty list of positive layer sizes (None: no such field).
    """
    for name in positive:
        if not getattr(config, name) > 0:
            raise ValueError(f"{name} must be > 0, got {getattr(config, name)!r}")
    for name in nonnegative:
        if not getattr(config, name) >= 0:
            raise ValueError(f"{name} must be >= 0, got {getattr(config, name)!r}")
    for name in positive_or_none:
        if getattr(config, name) is not None and not getattr(config, name) > 0:
            raise ValueError(f"{name} must be > 0 or null, got {getattr(config, name)!r}")
    if net_arch is not None:
        sizes = getattr(config, net_arch)
        if not sizes or any(size <= 0 for size in sizes):
            raise ValueError(f"{net_arch} must be a non-empty list of positive sizes, got {list(sizes)!r}")


def config_to_dict(config: Any) -> dict[str, Any]:
    """Plain YAML/JSON-ready values (tuples become lists)."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(config).items()}


def parse_hp(assignments: list[str] | tuple[str, ...], flag: str = "--hp") -> dict[str, Any]:
    """Parse ``["key=value", ...]``; values are YAML (``0.1``, ``true``, ``[64, 64]``, ``null``)."""
    parsed: dict[str, Any] = {}
    for item in assignments:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"bad {flag} {item!r}: expected key=value")
        try:
            parsed[key.strip()] = yaml_load(raw)
        except yaml.YAMLError:
            raise ConfigError(f"bad {flag} {item!r}: the value is not valid YAML") from None
    return parsed


#: Keys of a preset that configure the run rather than the algorithm.
RUN_KEYS = ("num_envs", "total_timesteps")
#: The preset/config key holding the env's constructor options (``{nlu: tcbot}``); ``--env-opt`` sets them too.
ENV_KWARGS_KEY = "env_kwargs"
#: The preset/config key saying which of the env's observations and rewards are normalised (:func:`parse_normalize`).
NORMALIZE_KEY = "normalize"
#: Keys of a preset that set up the env rather than the algorithm; with :data:`RUN_KEYS`, what is not a hyperparameter.
ENV_KEYS = (ENV_KWARGS_KEY, NORMALIZE_KEY)


@dataclasses.dataclass(frozen=True)
class Normalization:
    """Which of an env's observations and rewards are normalised (SB3's ``VecNormalize(norm_obs, norm_reward)``).

    ``observation``: ``rlcourse.wrappers.NormalizeObservation``; ``reward``: ``NormalizeReward`` with the
    algorithm's γ. ``bool(setting)`` is whether anything is normalised.
    """

    observation: bool = False
    reward: bool = False

    def __bool__(self) -> bool:
        return self.observation or self.reward

    def record(self) -> dict[str, bool]:
        """The mapping a run's ``config.yaml`` and a checkpoint hold (:func:`parse_normalize` reads it back)."""
        return {"observation": self.observation, "reward": self.reward}


#: What :func:`parse_normalize` accepts, for its error messages.
NORMALIZE_FORMS = (
    "true (observations and rewards, as RL Zoo's normalize: true), false, "
    "or a mapping {observation: true|false, reward: true|false}"
)
#: RL Zoo's names for the two settings (``normalize: "{'norm_obs': True, 'norm_reward': False}"``).
_NORMALIZE_ALIASES = {"norm_obs": "observation", "norm_reward": "reward"}


def parse_normalize(value: Any, source: str | None = None) -> Normalization:
    """The ``normalize`` setting of a preset, config file, run record, ``--hp normalize=...`` or ``Agent(normalize=)``.

    ``true`` normalises observations and rewards (as RL Zoo's ``normalize: true``), ``false`` neither; a
    mapping names each: ``{observation: true, reward: false}`` (a key left out is false; RL Zoo's
    ``norm_obs``/``norm_reward`` are read as ``observation``/``reward``). Anything else is a
    :class:`ConfigError` naming the key, ``source`` (where the value came from) and the accepted forms.
    """
    where = f"{NORMALIZE_KEY} (from {source})" if source else NORMALIZE_KEY
    if isinstance(value, Normalization):
        return value
    if isinstance(value, bool):
        return Normalization(observation=value, reward=value)
    if isinstance(value, dict):
        settings: dict[str, bool] = {}
        for key, flag in value.items():
            name = _NORMALIZE_ALIASES.get(key, key)
            if name not in ("observation", "reward"):
                hint = did_you_mean(str(key), ("observation", "reward"))
                raise ConfigError(
                    f"unknown key {key!r} in {where}; {hint + ' ' if hint else ''}expected {NORMALIZE_FORMS}"
                )
            if not isinstance(flag, bool):
                raise ConfigError(f"bad value {flag!r} for {where}.{name}: expected true or false")
            if name in settings:
                raise ConfigError(f"{where} sets {name} twice ({key!r} is RL Zoo's name for {name})")
            settings[name] = flag
        return Normalization(**settings)
    raise ConfigError(f"bad value {value!r} for {where}: expected {NORMALIZE_FORMS}")


#: The variant of an env's presets that is applied unless another is asked for.
DEFAULT_PRESET = "default"


def _presets(algo: str) -> dict[str, dict[str, dict[str, Any]]]:
    """``rlcourse/presets/<algo>.yml``: env id -> variant name -> complete settings ({} if the file is absent).

    The shape is checked here, so a malformed shipped file fails with its name rather than deep in a run.
    """
    path = resources.files("rlcourse") / "presets" / f"{algo}.yml"
    if not path.is_file():
        return {}
    data = yaml_load(path.read_text()) or {}
    where = f"rlcourse/presets/{algo}.yml"
    if not isinstance(data, dict):
        raise ConfigError(f"{where} must map env ids to their presets")
    for env_id, variants in data.items():
        if not isinstance(variants, dict) or not all(isinstance(v, dict) for v in variants.values()):
            raise ConfigError(f"{where}: {env_id} must map preset names to mappings of settings")
    return data


def preset_names(algo: str, env_id: str) -> list[str]:
    """The preset variants shipped for ``(algo, env_id)``: ``default`` first, then the others in the file's order."""
    names = list(_presets(algo).get(env_id, {}))
    return sorted(names, key=lambda name: name != DEFAULT_PRESET)


def load_preset(algo: str, env_id: str, name: str = DEFAULT_PRESET) -> dict[str, Any]:
    """The preset variant ``name`` for ``(algo, env_id)`` from ``rlcourse/presets/<algo>.yml``.

    A variant is complete (no inheritance from ``default``), so what the file shows is what runs.
    Returns {} when the env has no presets and ``name`` is ``default``; any other missing variant is a
    :class:`ConfigError` that lists the variants there are.
    """
    variants = _presets(algo).get(env_id, {})
    if name in variants:
        return dict(variants[name])
    if name == DEFAULT_PRESET and not variants:
        return {}
    names = preset_names(algo, env_id)
    hint = did_you_mean(name, names)
    raise ConfigError(
        f"unknown preset {name!r} for {algo} on {env_id}; {hint + ' ' if hint else ''}"
        f"available: {', '.join(names) or 'none'}"
    )


def list_presets(algo: str) -> list[str]:
    """Env ids that have shipped presets for ``algo``."""
    return sorted(_presets(algo))


def load_config_file(path: str | Path) -> dict[str, Any]:
    """A user's YAML config: a flat mapping of run keys and hyperparameters."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} does not exist")
    try:
        data = yaml_load(path.read_text())
    except yaml.YAMLError as error:
        raise ConfigError(f"config file {str(path)!r} is not valid YAML: {str(error).splitlines()[0]}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {str(path)!r} must hold a mapping of key: value")
    return data
