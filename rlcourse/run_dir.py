"""The run folder, ``runs/<env>/<algo>/<name>/``: the one object that knows its layout and file names.

A run folder holds ``config.yaml`` (written before training), TensorBoard event files,
``checkpoint.pt`` (the latest state), ``best.pt`` (the best evaluation so far, with an eval callback)
and ``eval.json`` (the final evaluation). The CLI, the agents and the bench all go through
:class:`RunDir`, and neither ever reuses a folder that already holds a run.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import yaml


class RunDirError(ValueError):
    """A run folder is missing, taken, not a run folder, or cannot be created."""


#: Keys every ``config.yaml`` written by ``rlcourse train`` has.
REQUIRED_CONFIG_KEYS = ("algo", "env", "seed", "total_timesteps")


def env_folder(env_id: str) -> str:
    """The folder name of an env id (``rlcourse/CartPole-v1`` -> ``rlcourse_CartPole-v1``)."""
    return env_id.replace("/", "_").replace(os.sep, "_")


def check_run_name(name: str) -> None:
    """Raise unless ``name`` is one folder name."""
    if not name.strip() or name in (".", "..") or "/" in name or os.sep in name:
        raise RunDirError(f"bad run name {name!r}: it must be one folder name (no '/', not '.' or '..')")


class RunDir:
    """A run folder and the names of the files in it.

    Make one with :meth:`create` (a fresh folder under a runs root), :meth:`claim` (a folder the
    caller names, which must be absent or empty) or :meth:`open` (an existing run, to resume or evaluate).
    """

    CONFIG = "config.yaml"
    CHECKPOINT = "checkpoint.pt"
    BEST = "best.pt"
    EVAL = "eval.json"
    EVENTS_PATTERN = "events.out.tfevents.*"

    def __init__(self, path: str | Path):
        self.path = Path(path)

    # ----------------------------------------------------------------- the files
    @property
    def config(self) -> Path:
        return self.path / self.CONFIG

    @property
    def checkpoint(self) -> Path:
        return self.path / self.CHECKPOINT

    @property
    def best(self) -> Path:
        return self.path / self.BEST

    @property
    def eval(self) -> Path:
        return self.path / self.EVAL

    def eval_for(self, checkpoint: str | Path) -> Path:
        """Where an evaluation of ``checkpoint`` goes: ``eval.json`` for the run's checkpoint, ``eval-best.json``
        for ``best.pt`` and so on, so evaluating another file never overwrites the run's final evaluation."""
        name = Path(checkpoint).name
        return self.eval if name == self.CHECKPOINT else self.path / f"eval-{Path(name).stem}.json"

    def event_files(self) -> list[Path]:
        return sorted(self.path.glob(self.EVENTS_PATTERN))

    # ----------------------------------------------------------------- making and finding runs
    @classmethod
    def create(cls, runs_root: str | Path, env_id: str, algo: str, name: str | None = None, seed: int = 0) -> RunDir:
        """Claim ``runs_root/<env>/<algo>/<name>`` with an exclusive ``mkdir``, so two runs never share one.

        Without ``name`` it is ``seed<SEED>-<YYYYmmdd-HHMMSS>``, with ``-1``, ``-2``, ... when taken; a taken
        ``name`` is an error unless the folder is empty.
        """
        if name is not None:
            check_run_name(name)
        parent = Path(runs_root) / env_folder(env_id) / algo
        base = name or f"seed{seed}-{time.strftime('%Y%m%d-%H%M%S')}"
        try:
            parent.mkdir(parents=True, exist_ok=True)
            for suffix in range(1000):
                path = parent / (base if suffix == 0 else f"{base}-{suffix}")
                try:
                    path.mkdir()
                    return cls(path)
                except FileExistsError:
                    if name is not None:
                        return cls.claim(path)
        except OSError as error:
            raise RunDirError(
                f"cannot create the run folder under {str(parent)!r}: {error.strerror or error}"
            ) from None
        raise RunDirError(f"too many runs named {base!r} under {str(parent)!r}")

    @classmethod
    def claim(cls, path: str | Path) -> RunDir:
        """A folder for a new run: created if absent, accepted if empty, refused if it holds anything."""
        path = Path(path)
        if path.exists() and not path.is_dir():
            raise RunDirError(f"run folder {str(path)!r} is a file, not a folder")
        if path.is_dir() and any(path.iterdir()):
            raise RunDirError(
                f"run folder {str(path)!r} already exists and is not empty; choose another folder "
                "(runs are never overwritten; to continue a run, load its checkpoint)"
            )
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise RunDirError(f"cannot create the run folder {str(path)!r}: {error.strerror or error}") from None
        return cls(path)

    @classmethod
    def open(cls, path: str | Path) -> RunDir:
        """An existing run folder (one with a ``config.yaml`` or a checkpoint)."""
        run = cls(path)
        if not run.path.is_dir():
            raise RunDirError(f"no run folder at {str(run.path)!r}")
        if not run.config.is_file() and not run.checkpoint.is_file():
            raise RunDirError(
                f"{str(run.path)!r} has no {cls.CONFIG} or {cls.CHECKPOINT}, so it is not an rlcourse run folder"
            )
        return run

    def runs_root(self, env_id: str, algo: str) -> Path:
        """The runs root this folder was made under (the folder itself if it was moved elsewhere)."""
        if self.path.parent.name == algo and self.path.parent.parent.name == env_folder(env_id):
            return self.path.parent.parent.parent
        return self.path

    # ----------------------------------------------------------------- reading and writing
    def read_config(self) -> dict[str, Any]:
        """The run's ``config.yaml``, checked to be one that ``rlcourse train`` wrote."""
        if not self.config.is_file():
            raise RunDirError(f"{str(self.path)!r} has no {self.CONFIG}, so it is not an rlcourse run folder")
        try:
            data = yaml.safe_load(self.config.read_text())
        except yaml.YAMLError as error:
            raise RunDirError(f"{str(self.config)!r} is not valid YAML: {str(error).splitlines()[0]}") from None
        missing = [key for key in REQUIRED_CONFIG_KEYS if not isinstance(data, dict) or key not in data]
        if missing:
            raise RunDirError(f"{str(self.config)!r} is not an rlcourse run config (it lacks {', '.join(missing)})")
        return data

    def write_config(self, config: dict[str, Any]) -> None:
        _atomic_write_text(self.config, yaml.safe_dump(config, sort_keys=False))

    def write_eval(self, result: dict[str, Any], path: str | Path | None = None) -> Path:
        """Write an evaluation to ``eval.json`` (or ``path``, e.g. :meth:`eval_for`)."""
        target = self.eval if path is None else Path(path)
        _atomic_write_text(target, json.dumps(result, indent=2))
        return target

    def read_eval(self) -> dict[str, Any]:
        return json.loads(self.eval.read_text())

    def __truediv__(self, name: str | Path) -> Path:
        """``run / "file"`` is a path inside the folder, as with a ``Path``."""
        return self.path / name

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RunDir) and other.path == self.path

    def __hash__(self) -> int:
        return hash(self.path)

    def __fspath__(self) -> str:
        return str(self.path)

    def __str__(self) -> str:
        return str(self.path)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"


def _atomic_write_text(path: Path, text: str) -> None:
    """Write beside ``path`` and rename over it, so a reader never sees half a file."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
