"""Data-parallel training across the processes ``torchrun`` starts: ranks, collectives, gradient averaging.

``torchrun --nproc_per_node N -m rlcourse train ... --distributed`` starts N copies of the same program and
tells each its place through environment variables (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, and the
rendezvous address). :func:`setup` joins them into one ``torch.distributed`` process group: the ``gloo``
backend when the ranks train on the CPU, ``nccl`` on CUDA, where rank r uses ``cuda:LOCAL_RANK``. The
agents' side (what is split, what is averaged, who writes) is in :class:`rlcourse.agents.base.Agent`;
this module knows no agent.

Data parallelism here means:

* every rank runs the same networks on its own share of the envs, with its own env and sampling streams
  (:func:`rank_seed`: rank 0's are a single-process run's, the others derived from the seed and the rank);
* the parameters start equal (:func:`broadcast_tensors` from rank 0), and every backward pass ends with
  the gradients averaged over the ranks (:class:`GradientAverager`), so every optimizer step, gradient
  clipping included, sees the same averaged gradient on every rank and the parameters stay equal bit for bit;
* the few host-side decisions that must agree (stop on a signal, write a timed checkpoint) are taken
  together (:func:`host_max`), over a ``gloo`` group even when the tensors travel through NCCL, so
  agreeing never waits for the GPU.

Everything that runs inside a training iteration (the gradient all-reduce, :func:`all_reduce_sum`,
:func:`any_rank`) is a device collective without a host sync, so a whole iteration still captures as a
CUDA graph (NCCL collectives can be captured).
"""

from __future__ import annotations

import atexit
import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from rlcourse.device import resolve_device

#: The environment variables torchrun sets for every process it starts.
TORCHRUN_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK")
#: How to start data-parallel training, for error messages.
LAUNCH_HINT = "torchrun --nproc_per_node N -m rlcourse train ALGO ENV ... --distributed"


class DistributedError(ValueError):
    """Data-parallel training cannot start as asked (not under torchrun, a device that does not fit, ...)."""


@dataclass(frozen=True)
class Ranks:
    """This process's place among the ranks, and the device and backend it trains with."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    backend: str

    @property
    def is_main(self) -> bool:
        """Rank 0: the one that logs, prints and writes files."""
        return self.rank == 0


_ranks: Ranks | None = None
_control_group: Any = None  # gloo group for host-side agreement (the default group when it is gloo already)


def launched_by_torchrun() -> bool:
    """Whether this process was started by torchrun (its environment variables are set)."""
    return all(name in os.environ for name in TORCHRUN_VARIABLES)


def torchrun_ranks() -> tuple[int, int, int]:
    """``(rank, world_size, local_rank)`` from torchrun's environment variables, or :class:`DistributedError`."""
    if not launched_by_torchrun():
        missing = [name for name in TORCHRUN_VARIABLES if name not in os.environ]
        raise DistributedError(
            f"data-parallel training runs under torchrun ({', '.join(missing)} not set): {LAUNCH_HINT}"
        )
    values = []
    for name in TORCHRUN_VARIABLES:
        text = os.environ[name]
        if not text.isdigit():
            raise DistributedError(f"{name}={text!r} is not a non-negative integer")
        values.append(int(text))
    rank, world_size, local_rank = values
    if world_size < 1 or rank >= world_size:
        raise DistributedError(f"RANK={rank} does not fit WORLD_SIZE={world_size}")
    return rank, world_size, local_rank


def setup(device: str | torch.device = "auto") -> Ranks:
    """Join the process group (once per process) and return this rank's :class:`Ranks`.

    ``device``: ``auto`` (CUDA when present), ``cpu``, or ``cuda`` (rank r then trains on ``cuda:LOCAL_RANK``;
    an explicit other index is an error). The backend is ``nccl`` for CUDA and ``gloo`` for the CPU. A process
    group that the caller initialised already is used as it is, if its backend fits the device.
    """
    global _ranks, _control_group
    if not dist.is_available():
        raise DistributedError("this torch build has no torch.distributed")
    wanted = _rank_device(device)
    if _ranks is not None:
        if wanted != _ranks.device:
            raise DistributedError(
                f"this process trains data-parallel on {_ranks.device} already; it cannot also use {wanted}"
            )
        return _ranks
    backend = "nccl" if wanted.type == "cuda" else "gloo"
    if dist.is_initialized():
        backend = str(dist.get_backend()).lower()
        if (wanted.type == "cuda") != ("nccl" in backend):
            raise DistributedError(
                f"the process group's backend is {backend}, which does not fit training on {wanted} "
                "(use nccl for CUDA, gloo for the CPU)"
            )
    else:
        torchrun_ranks()  # a clear error outside torchrun (init_process_group would ask for RANK itself)
        if wanted.type == "cuda":
            torch.cuda.set_device(wanted)
            dist.init_process_group("nccl", device_id=wanted)
        else:
            dist.init_process_group("gloo")
        atexit.register(shutdown)
    _control_group = dist.new_group(backend="gloo") if "nccl" in backend else dist.group.WORLD
    local_rank = int(os.environ.get("LOCAL_RANK", dist.get_rank()))
    _ranks = Ranks(dist.get_rank(), dist.get_world_size(), local_rank, wanted, backend)
    return _ranks


def _rank_device(device: str | torch.device) -> torch.device:
    """The device this rank trains on: the CPU, or ``cuda:LOCAL_RANK``."""
    requested = str(device).strip().lower()
    if requested == "auto":
        requested = "cuda" if torch.cuda.is_available() else "cpu"
    resolved = torch.device(requested) if requested.startswith("cuda") else resolve_device(requested)
    if resolved.type == "cpu":
        return resolved
    resolve_device("cuda")  # a clear error when there is no CUDA
    local_rank = int(os.environ.get("LOCAL_RANK", dist.get_rank() if dist.is_initialized() else 0))
    if resolved.index is not None and resolved.index != local_rank:
        raise DistributedError(
            f"device {requested!r}: under torchrun each rank trains on cuda:LOCAL_RANK (this one on "
            f"cuda:{local_rank}); pass cuda or auto"
        )
    if local_rank >= torch.cuda.device_count():
        raise DistributedError(
            f"LOCAL_RANK={local_rank}, but this machine has {torch.cuda.device_count()} CUDA device(s): "
            "start at most that many processes per node"
        )
    return torch.device("cuda", local_rank)


def current() -> Ranks | None:
    """This process's :class:`Ranks` once :func:`setup` ran, else None (a single-process run)."""
    return _ranks


def is_main_process() -> bool:
    """True outside data-parallel training, and on rank 0 within it."""
    return _ranks is None or _ranks.is_main


def shutdown() -> None:
    """Leave the process group (at exit, or when the CLI is done); nothing happens when it was never joined."""
    global _ranks, _control_group
    if _ranks is not None and dist.is_initialized():
        dist.destroy_process_group()
    _ranks, _control_group = None, None


def rank_seed(seed: int, rank: int) -> int:
    """The seed of rank ``rank``'s RNG streams: ``seed`` itself on rank 0 (so rank 0 plays what a single-process
    run of that seed plays), an unrelated 32-bit seed derived from ``(seed, rank)`` on every other rank."""
    if rank == 0:
        return int(seed)
    return int(np.random.SeedSequence([int(seed), int(rank)]).generate_state(1)[0])


# --------------------------------------------------------------------------- device collectives
def broadcast_tensors(tensors: Iterable[torch.Tensor], src: int = 0) -> None:
    """Overwrite every tensor, in place, with rank ``src``'s (parameters and buffers at the start of training)."""
    with torch.no_grad():
        for tensor in tensors:
            dist.broadcast(tensor, src=src)


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum ``tensor`` over the ranks, in place (no host sync on CUDA); returns it."""
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def any_rank(flag: torch.Tensor) -> torch.Tensor:
    """A 0-d bool tensor that is true on every rank when ``flag`` is true on any (a device collective)."""
    as_number = flag.to(torch.int32).reshape(1).clone()
    dist.all_reduce(as_number, op=dist.ReduceOp.MAX)
    return as_number[0].bool()


def average_in_place(tensors: list[torch.Tensor]) -> None:
    """Replace each tensor by its mean over the ranks, with one all-reduce per dtype and device."""
    world_size = dist.get_world_size()
    groups: dict[tuple[torch.dtype, torch.device], list[torch.Tensor]] = {}
    for tensor in tensors:
        groups.setdefault((tensor.dtype, tensor.device), []).append(tensor)
    for group in groups.values():
        flat = torch.cat([tensor.reshape(-1) for tensor in group])
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
        flat.div_(world_size)
        offset = 0
        for tensor in group:
            tensor.copy_(flat[offset : offset + tensor.numel()].view_as(tensor))
            offset += tensor.numel()


class GradientAverager:
    """Averages the gradients of ``parameters`` over the ranks at the end of every backward pass through them.

    Why the end of backward, not the optimizer step: agents clip the gradient norm between ``backward()`` and
    ``step()``, and the clip must see the averaged gradient (else each rank would clip its own, and the ranks'
    steps, hence their parameters, would differ). A ``register_step_pre_hook`` runs after the clip; a hook per
    parameter would cost one collective per tensor. So each parameter's post-accumulate-grad hook only notes
    that its gradient is ready, and the first one of a backward pass queues one callback for the end of that
    pass (the autograd engine runs it on the caller's stream once every gradient is accumulated), which averages
    the noted gradients in one all-reduce. Averaging is linear, so gradients accumulated over several backward
    passes (without ``zero_grad`` between) come out as the average of the sums.

    Every rank runs the same code on the same shapes, so every rank's backward reaches the same parameters and
    the all-reduces match. Nothing reads a tensor on the host: the hooks and the callback are host-side Python
    that enqueue device work, so a captured CUDA graph replays the all-reduce with the rest of the iteration.
    """

    def __init__(self, parameters: Iterable[torch.nn.Parameter]):
        unique: dict[int, torch.nn.Parameter] = {}
        for parameter in parameters:
            if parameter.requires_grad:
                unique.setdefault(id(parameter), parameter)
        self.parameters = list(unique.values())
        self._ready: set[int] = set()
        self._queued = False
        self._handles = [parameter.register_post_accumulate_grad_hook(self._on_grad) for parameter in self.parameters]

    def _on_grad(self, parameter: torch.Tensor) -> None:
        self._ready.add(id(parameter))
        if not self._queued:
            self._queued = True
            torch.autograd.Variable._execution_engine.queue_callback(self._average)

    def _average(self) -> None:
        ready = [parameter for parameter in self.parameters if id(parameter) in self._ready]  # one order on all ranks
        self._ready.clear()
        self._queued = False
        average_in_place([parameter.grad for parameter in ready if parameter.grad is not None])

    def remove(self) -> None:
        """Take the hooks off (the parameters then train as in a single process)."""
        for handle in self._handles:
            handle.remove()
        self._handles = []


# --------------------------------------------------------------------------- host-side agreement and data
def host_max(values: list[int]) -> list[int]:
    """Each value's maximum over the ranks, through the gloo group (host memory; never waits for a GPU)."""
    tensor = torch.tensor(values, dtype=torch.int64)
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX, group=_control_group)
    return tensor.tolist()


def barrier() -> None:
    """Wait until every rank is here (host side: after rank 0 wrote a file, the others may read it)."""
    dist.barrier(group=_control_group)


def gather_to_main(obj: Any) -> list[Any] | None:
    """Every rank's ``obj`` (picklable, host memory), as a list on rank 0 and None on the others."""
    gathered: list[Any] | None = [None] * dist.get_world_size() if dist.get_rank() == 0 else None
    dist.gather_object(obj, gathered, dst=0, group=_control_group)
    return gathered


def broadcast_object(obj: Any) -> Any:
    """Rank 0's ``obj`` on every rank (a run folder's path, say)."""
    holder = [obj]
    dist.broadcast_object_list(holder, src=0, group=_control_group)
    return holder[0]


__all__ = [
    "LAUNCH_HINT",
    "TORCHRUN_VARIABLES",
    "DistributedError",
    "GradientAverager",
    "Ranks",
    "all_reduce_sum",
    "any_rank",
    "barrier",
    "average_in_place",
    "broadcast_object",
    "broadcast_tensors",
    "current",
    "gather_to_main",
    "host_max",
    "is_main_process",
    "launched_by_torchrun",
    "rank_seed",
    "setup",
    "shutdown",
    "torchrun_ranks",
]
