"""The search space of ``rlcourse tune``: how each hyperparameter of a study is drawn.

A space maps config fields to :class:`Param` entries, read from the algorithm's shipped file
(``rlcourse/presets/tune/<algo>.yml``), a ``--space FILE`` or a mapping (:func:`load_space`); :func:`parse_space`
gives the format and names a bad entry, and :func:`check_space` makes sure every end of every range and every
choice makes a valid config before any trial runs.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import optuna

from rlcourse.config import ConfigError, did_you_mean, load_config_file, make_config, yaml_load

#: The keys each type of entry takes besides ``type``.
SPACE_TYPES = {"float": ("low", "high", "log"), "int": ("low", "high", "log"), "categorical": ("choices",)}


@dataclass(frozen=True)
class Param:
    """How one hyperparameter is drawn: ``float``/``int`` in [low, high] (log-uniform with ``log``) or a choice."""

    name: str
    type: str
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    choices: tuple[Any, ...] = ()

    def suggest(self, trial: optuna.Trial) -> Any:
        if self.type == "float":
            return trial.suggest_float(self.name, self.low, self.high, log=self.log)
        if self.type == "int":
            return trial.suggest_int(self.name, self.low, self.high, log=self.log)
        # Optuna stores scalar choices only: a list (a net_arch) is drawn as its JSON text.
        encoded = trial.suggest_categorical(self.name, [_encode(choice) for choice in self.choices])
        return next(choice for choice in self.choices if _encode(choice) == encoded)

    def candidates(self) -> tuple[Any, ...]:
        """The values to check against the config: both ends of a range, every choice."""
        return (self.low, self.high) if self.type != "categorical" else self.choices

    def spec(self) -> dict[str, Any]:
        """The entry as written in a space file (what a study records)."""
        if self.type == "categorical":
            return {"type": self.type, "choices": list(self.choices)}
        return {"type": self.type, "low": self.low, "high": self.high, "log": self.log}


def _encode(choice: Any) -> Any:
    return json.dumps(choice) if isinstance(choice, list) else choice


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, (bool, int, float, str))


def shipped_spaces() -> list[str]:
    """The algorithms with a search space in ``rlcourse/presets/tune/``."""
    folder = resources.files("rlcourse") / "presets" / "tune"
    return sorted(item.name.removesuffix(".yml") for item in folder.iterdir() if item.name.endswith(".yml"))


def load_space(algo: str, config_class: type, space: str | Path | Mapping[str, Any] | None = None) -> dict[str, Param]:
    """The search space: ``algo``'s shipped one, a YAML file, or a mapping in the same format (:func:`parse_space`)."""
    if space is None:
        path = resources.files("rlcourse") / "presets" / "tune" / f"{algo}.yml"
        if not path.is_file():
            raise ConfigError(
                f"no search space ships for {algo} (there are: {', '.join(shipped_spaces())}); "
                "give one with --space FILE (space= in Python)"
            )
        return parse_space(yaml_load(path.read_text()), config_class, f"rlcourse/presets/tune/{algo}.yml")
    if isinstance(space, Mapping):
        return parse_space(dict(space), config_class, "space")
    if not isinstance(space, (str, Path)):
        raise TypeError(f"space must be a file path, a mapping or None, got {type(space).__name__}")
    return parse_space(load_config_file(space), config_class, f"search space {str(space)!r}")


def parse_space(data: Any, config_class: type, where: str = "space") -> dict[str, Param]:
    """Check a search space and return its :class:`Param` per hyperparameter.

    The format: a mapping of config fields to ``{type: float|int, low: L, high: H, log: false}`` or
    ``{type: categorical, choices: [...]}``. A choice is a YAML scalar or a list of them (``[64, 64]``).
    Any other key, type or shape is a :class:`ConfigError` that names the entry.
    """
    fields = [f.name for f in dataclasses.fields(config_class)]
    if not isinstance(data, dict) or not data:
        raise ConfigError(
            f"{where} must map hyperparameters to how they are drawn, such as "
            "'learning_rate: {type: float, low: 1.0e-5, high: 1.0e-2, log: true}'"
        )
    space = {}
    for name, entry in data.items():
        if name not in fields:
            hint = did_you_mean(str(name), fields)
            raise ConfigError(
                f"{where}: unknown hyperparameter {name!r} for {config_class.__name__}; "
                f"{hint + ' ' if hint else ''}valid: {', '.join(fields)}"
            )
        space[name] = _parse_param(name, entry, f"{where}: {name}")
    return space


def _parse_param(name: str, entry: Any, where: str) -> Param:
    kind = entry.get("type") if isinstance(entry, dict) else None
    if kind not in SPACE_TYPES:
        raise ConfigError(f"{where} must be a mapping with type float, int or categorical, got {entry!r}")
    allowed = SPACE_TYPES[kind]
    extra = sorted(set(entry) - {"type", *allowed})
    if extra:
        raise ConfigError(f"{where}: unknown key {extra[0]!r} for type {kind} (it takes {', '.join(allowed)})")
    if kind == "categorical":
        choices = entry.get("choices")
        if not isinstance(choices, list) or not choices:
            raise ConfigError(f"{where}: choices must be a non-empty list, got {choices!r}")
        for choice in choices:
            if not (_scalar(choice) or (isinstance(choice, list) and all(_scalar(item) for item in choice))):
                raise ConfigError(f"{where}: a choice must be a scalar or a list of scalars, got {choice!r}")
        if len({json.dumps(_encode(choice)) for choice in choices}) < len(choices):
            raise ConfigError(f"{where}: choices has a duplicate: {choices!r}")
        return Param(name, kind, choices=tuple(choices))
    number = int if kind == "int" else (int, float)
    for key in ("low", "high"):
        value = entry.get(key)
        if isinstance(value, bool) or not isinstance(value, number) or not math.isfinite(value):
            raise ConfigError(f"{where}: {key} must be {'an integer' if kind == 'int' else 'a number'}, got {value!r}")
    low, high, log = entry["low"], entry["high"], entry.get("log", False)
    if not isinstance(log, bool):
        raise ConfigError(f"{where}: log must be true or false, got {log!r}")
    if not low < high:
        raise ConfigError(f"{where}: low must be below high, got low={low!r}, high={high!r} (fix a value with --hp)")
    if log and low <= 0:
        raise ConfigError(f"{where}: log: true needs low > 0, got low={low!r}")
    return Param(name, kind, float(low) if kind == "float" else low, float(high) if kind == "float" else high, log)


def check_space(space: dict[str, Param], config_class: type, base: dict[str, Any]) -> None:
    """Every end of every range and every choice must make a valid config on top of ``base`` (types, bounds)."""
    for param in space.values():
        for value in param.candidates():
            try:
                make_config(config_class, {**base, param.name: value})
            except ConfigError as error:
                raise ConfigError(f"search space: {param.name}: {error}") from None
