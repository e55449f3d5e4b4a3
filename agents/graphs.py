"""Capturing a whole training iteration as one CUDA graph.

A graph replays a fixed sequence of kernels on fixed memory, with one launch from Python. This
only works when the captured function keeps every tensor it reads and writes at a fixed address
(preallocated storage, in-place updates), never syncs with the host, and draws its randomness from
generators registered with the graph. The agents are written to those rules on every device, so
the same code runs eagerly on the CPU and captured on CUDA.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Callable, Iterator
from typing import Any

import torch


def capture(
    fn: Callable[[], Any],
    snapshot: Callable[[], Any],
    restore: Callable[[Any], None],
    generators: list[torch.Generator],
    warmup: int = 2,
) -> tuple[torch.cuda.CUDAGraph, Any]:
    """Capture ``fn`` and return ``(graph, outputs)``; ``graph.replay()`` reruns it and refreshes ``outputs``.

    ``fn`` runs ``warmup`` times first on a side stream (cuBLAS workspaces, lazily created optimizer
    state, autograd buffers). Those runs change parameters and RNG streams, so the state taken by
    ``snapshot()`` beforehand is put back with ``restore()`` before capture, and training starts
    from where it was. Replays draw random numbers through the graph's own Philox offsets, so a
    captured run is reproducible for a seed but not bitwise equal to an eager run, nor to a run
    captured again mid-way (after a checkpoint is loaded): it continues statistically the same.
    """
    saved = _clone_tree(snapshot())  # state_dict()s hold references; warm-up would change them in place
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(warmup):
            fn()
    torch.cuda.current_stream().wait_stream(side)
    restore(saved)
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    for generator in generators:
        graph.register_generator_state(generator)
    with no_garbage_collection(), torch.cuda.graph(graph):
        outputs = fn()
    return graph, outputs


@contextlib.contextmanager
def no_garbage_collection() -> Iterator[None]:
    """Collect garbage now, then keep the collector off until the block ends.

    An agent that is no longer used is often only freed by the cyclic collector (its bound methods and
    compiled functions refer back to it). Were the collector to run during another agent's capture, it
    would destroy the dead agent's graph, a CUDA call that is illegal while a stream captures and that
    invalidates the capture (``cudaErrorStreamCaptureInvalidated``). So nothing is collected inside one.
    """
    gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _clone_tree(tree: Any) -> Any:
    if isinstance(tree, torch.Tensor):
        return tree.detach().clone()
    if isinstance(tree, dict):
        return {key: _clone_tree(value) for key, value in tree.items()}
    if isinstance(tree, (list, tuple)):
        return type(tree)(_clone_tree(value) for value in tree)
    return tree
