"""What every ``rlcourse`` command checks on its input, and the one error type a bad input becomes.

A bad input is a :class:`BadInput`: :func:`rlcourse.app.cli.main` prints it as one line and exits 2.
The library's own ``ValueError``s (``ConfigError``, ``CheckpointError``, ``RunDirError``, device errors)
end the same way, so a check here only has to exist where the library's message would not name the flag.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from rlcourse.config import ConfigError, did_you_mean
from rlcourse.run_dir import RunDirError

#: click settings every command shares: ``-h`` as well as ``--help``, and help text up to 100 columns.
CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


class BadInput(click.UsageError):
    """A bad argument found by rlcourse itself (its message says what to do; no ``--help`` hint)."""


#: Python arguments of the library whose value the CLI takes from a flag of its own.
ARGUMENT_FLAGS = {
    "device": "--device",
    "preset": "--preset",
    "seed": "--seed",
    "num_envs": "--num-envs",
    "demos": "--demos",
    "expert": "--expert",
}
_ARGUMENT = re.compile(rf"\b({'|'.join(ARGUMENT_FLAGS)})=(['\"]?)([^'\"\s,;)]*)\2")


def cli_wording(message: str) -> str:
    """A library error in the CLI's words: ``use device="cpu"`` becomes ``use --device cpu``.

    The library's messages name Python arguments, since Python is where they are raised; the CLI user sets the
    same values with flags, so the line the CLI prints names those.
    """
    return _ARGUMENT.sub(lambda match: f"{ARGUMENT_FLAGS[match.group(1)]} {match.group(3)}", message)


@contextmanager
def run_dir_errors(flag: str | None = None) -> Iterator[None]:
    """Turn a :class:`~rlcourse.run_dir.RunDirError` inside the block into a :class:`BadInput` (naming ``flag``)."""
    try:
        yield
    except RunDirError as error:
        raise BadInput(f"{flag}: {error}" if flag else str(error)) from None


def positive_int(key: str, value: Any, source: str) -> int:
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


def algo_class(algo: str) -> type:
    """The agent class of an algorithm name (``ppo`` -> :class:`rlcourse.agents.PPO`)."""
    from rlcourse.agents import ALGOS

    if algo not in ALGOS:
        hint = did_you_mean(algo, ALGOS)
        raise BadInput(f"unknown algorithm {algo!r}; {hint + ' ' if hint else ''}available: {', '.join(sorted(ALGOS))}")
    return ALGOS[algo]


def device_of(device: str, context: str = "", agent_class: Any = None) -> Any:
    """``--device`` as a torch device; ``auto`` is the CPU for an agent that only runs there (A3C)."""
    from rlcourse.device import resolve_device  # imports torch, which a command only pays for when it runs

    if agent_class is not None and agent_class.cpu_only and str(device).strip().lower() == "auto":
        device = "cpu"
    try:
        return resolve_device(device)
    except ValueError as error:
        raise BadInput(cli_wording(f"{context}{error}")) from None


#: ``--runs-root``, the folder every command that writes runs puts them under (``train``, ``fit``).
runs_root_option = click.option(
    "--runs-root",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("runs"),
    show_default=True,
    help="Root folder of the runs (point TensorBoard here).",
)
