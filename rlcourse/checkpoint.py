"""Checkpoints as plain tensors and data: written atomically, read with ``torch.load(weights_only=True)`` only.

A checkpoint is a dict with a ``format`` marker, the versions that wrote it and the agent's state
(networks, optimizers, every RNG state, counters, config, env id and spaces). It can never execute
code when loaded; a foreign, corrupt or pickle-carrying file gets a :class:`CheckpointError`.
"""

from __future__ import annotations

import os
import pickle
import random
import re
import tempfile
import warnings
from pathlib import Path
from typing import Any

import gymnasium
import numpy as np
import torch

FORMAT = "rlcourse-checkpoint"
FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint file is missing, corrupt, foreign, unsafe or does not match what loads it."""


def versions() -> dict[str, str]:
    from rlcourse import __version__

    # str(): torch.__version__ is a str subclass that weights_only loading rejects.
    return {
        "rlcourse": str(__version__),
        "torch": str(torch.__version__),
        "gymnasium": str(gymnasium.__version__),
        "numpy": str(np.__version__),
    }


def atomic_torch_save(payload: dict[str, Any], path: str | Path) -> Path:
    """Write ``payload`` to a temp file beside ``path``, fsync it, then rename it over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, 0o666 & ~_current_umask())  # mkstemp makes 0600; give it the mode any other run file gets
        with os.fdopen(fd, "wb") as handle:
            torch.save(payload, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


#: What a checkpoint may hold besides tensors and containers of them: what ``weights_only=True`` reads back.
PLAIN_TYPES = (str, int, float, bool, type(None), torch.Size)


def check_plain(value: Any, where: str = "the checkpoint") -> None:
    """Raise :class:`CheckpointError` if ``value`` holds anything but tensors and plain data, naming where:
    such a file would be written, then refused when read (it could run code), so it is refused now."""
    if isinstance(value, (torch.Tensor, *PLAIN_TYPES)):
        return
    if isinstance(value, dict):
        for key, item in value.items():
            check_plain(key, where)
            check_plain(item, f"{where}[{key!r}]")
        return
    if isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            check_plain(item, f"{where}[{index}]")
        return
    raise CheckpointError(
        f"cannot save {where}: it is a {type(value).__name__}, and a checkpoint holds only tensors and plain data "
        "(pass objects such as a tagger by path, e.g. nlu='learned:PATH')"
    )


def save_checkpoint(state: dict[str, Any], path: str | Path) -> Path:
    """Save an agent's state with the format marker and versions (tensors and plain data only: :func:`check_plain`)."""
    check_plain(state)
    return atomic_torch_save(
        {"format": FORMAT, "format_version": FORMAT_VERSION, "versions": versions(), **state}, path
    )


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint safely, or raise :class:`CheckpointError` saying what is wrong with it.

    The error names the problem (missing, empty, corrupt, not an rlcourse checkpoint, holding objects that
    could run code) and never passes on torch's advice to retry with unsafe loading.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {str(path)!r}")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{str(path)!r} is empty, so it is not a readable checkpoint (corrupt or truncated)")
    try:
        with warnings.catch_warnings():  # torch warns about the pickle protocol of foreign files; the error says more
            warnings.filterwarnings("ignore", message="Detected pickle protocol", category=UserWarning)
            payload = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        refused = _REFUSED_GLOBAL.search(str(error))
        if refused:  # the file names a class or function to call: what an rlcourse checkpoint never does
            raise CheckpointError(
                f"{str(path)!r} holds objects other than tensors and plain data ({refused.group(1)}), so it is "
                "refused: an rlcourse checkpoint never does, and unpickling them could run code "
                "(checkpoints are read with weights_only=True only)"
            ) from None
        raise CheckpointError(f"{str(path)!r} {_unreadable(path)}") from None
    except OSError as error:  # the file could not be read at all: say why, it may well be a good checkpoint
        raise CheckpointError(f"cannot read {str(path)!r}: {error.strerror or error}") from None
    except Exception:  # any other failure to parse the bytes means the file is damaged or not ours
        raise CheckpointError(f"{str(path)!r} {_unreadable(path)}") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(
            f"{str(path)!r} is not an rlcourse checkpoint (a torch file without rlcourse's format marker)"
        )
    if payload.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{str(path)!r} has checkpoint format {payload.get('format_version')!r}; this rlcourse reads {FORMAT_VERSION}"
        )
    return payload


#: torch's wording when a file asks to load a global (``GLOBAL __main__.Model was not an allowed global``).
_REFUSED_GLOBAL = re.compile(r"GLOBAL ([\w.]+)")
#: The first bytes of a zip archive, the container ``torch.save`` writes.
_ZIP_MAGIC = b"PK\x03\x04"


def _unreadable(path: Path) -> str:
    """Why a file torch could not read is no checkpoint, from its first bytes (torch's own message is not shown:
    it advises loading the file unsafely)."""
    with path.open("rb") as handle:
        is_zip = handle.read(len(_ZIP_MAGIC)) == _ZIP_MAGIC
    if is_zip:
        return "is not a readable checkpoint (corrupt or truncated, or a zip archive that torch.save did not write)"
    return "is not an rlcourse checkpoint (not a file that torch.save wrote, or corrupt)"


def capture_global_rng() -> dict[str, Any]:
    """The global RNG states of torch (CPU and CUDA), numpy and Python, as tensors and plain data."""
    _, numpy_key, numpy_pos, numpy_has_gauss, numpy_cached_gauss = np.random.get_state(legacy=True)
    _, python_key, python_gauss = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": [
            torch.from_numpy(numpy_key.astype(np.int64)),
            int(numpy_pos),
            int(numpy_has_gauss),
            float(numpy_cached_gauss),
        ],
        "python": [torch.tensor(python_key, dtype=torch.int64), python_gauss],
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_global_rng(state: dict[str, Any]) -> None:
    """Put back what :func:`capture_global_rng` returned."""
    torch.set_rng_state(state["torch"])
    numpy_key, numpy_pos, numpy_has_gauss, numpy_cached_gauss = state["numpy"]
    np.random.set_state(
        ("MT19937", numpy_key.numpy().astype(np.uint32), numpy_pos, numpy_has_gauss, numpy_cached_gauss)
    )
    python_key, python_gauss = state["python"]
    random.setstate((3, tuple(python_key.tolist()), python_gauss))
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])
