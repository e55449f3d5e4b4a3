"""Choosing the torch device: ``auto`` means CUDA when it exists, else the CPU."""

from __future__ import annotations

import torch


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """Turn ``auto``/``cpu``/``cuda``/``cuda:N`` into a usable ``torch.device``, or raise a clear ``ValueError``."""
    if isinstance(device, torch.device):
        name = str(device)
    else:
        name = str(device).strip().lower()
    if name == "auto":
        return canonical_device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(name)
    except RuntimeError:
        raise ValueError(f"unknown device {device!r}; use auto, cpu, cuda or cuda:N") from None
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"device {name!r} was asked for, but CUDA is not available on this machine "
                '(use device="cpu", or device="auto" for CUDA where there is one)'
            )
        if resolved.index is not None and resolved.index >= torch.cuda.device_count():
            raise ValueError(
                f"device {name!r} does not exist: this machine has {torch.cuda.device_count()} CUDA device(s)"
            )
    elif resolved.type != "cpu":
        raise ValueError(f"unsupported device {device!r}; use auto, cpu, cuda or cuda:N")
    return canonical_device(resolved)


def canonical_device(device: str | torch.device) -> torch.device:
    """``cuda`` -> ``cuda:<current>``, so that devices compare equal to the ones tensors report."""
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        return torch.device("cuda", torch.cuda.current_device())
    return device


#: torch's CPU thread count that agents set unless told otherwise. rlcourse's networks are small, so one
#: thread is as fast as many on an idle machine and is not slowed by other busy processes, while torch's
#: default (one thread per core) is (docs/results.md, "CPU threads").
DEFAULT_THREADS = 1


def set_threads(threads: int | None) -> None:
    """``torch.set_num_threads(threads)`` for this process; None leaves torch's setting as it is."""
    if threads is None:
        return
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads must be a positive integer or None, got {threads!r}")
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
