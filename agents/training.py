"""The bookkeeping between training iterations, written once for every agent (A3C's workers included).

After each iteration :class:`TrainingLoop` counts the steps, reads the statistics from the device
once per log interval (the loop's one host-device sync) and logs them with the steps/s, runs the
callbacks, notices SIGINT/SIGTERM and writes the timed checkpoint. An agent's own loop only says
what an iteration is: :meth:`Agent._train_loop <rlcourse.agents.base.Agent._train_loop>` runs
``_train_iteration`` on the device; A3C turns its workers' reports into iterations.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch

from rlcourse.callbacks import CallbackList, RolloutBatch
from rlcourse.logger import RunLogger

if TYPE_CHECKING:
    from rlcourse.agents.base import Agent


class StopOnSignal:
    """Turns SIGINT/SIGTERM into a flag the loop checks between iterations (so a checkpoint gets written)."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopOnSignal:
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signum is not None:  # a second signal: stop now, without a checkpoint
            raise SystemExit(128 + signum)
        self.signum = signum

    def __exit__(self, *exc: Any) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)


#: Statistics of an iteration: on-device 0-d tensors, or a function that gives them (read only when logging).
Stats = dict[str, torch.Tensor] | Callable[[], dict[str, torch.Tensor]]


class TrainingLoop:
    """What happens between two iterations of ``learn``; see the module docstring."""

    def __init__(
        self,
        agent: Agent,
        logger: RunLogger,
        stop: StopOnSignal,
        callbacks: CallbackList,
        log_interval: int,
        checkpoint_interval_s: float,
    ):
        self.agent, self.logger, self.stop, self.callbacks = agent, logger, stop, callbacks
        self.log_interval, self.checkpoint_interval_s = log_interval, checkpoint_interval_s
        self.stopped = False
        self._last_log_time, self._last_log_steps = time.perf_counter(), agent.num_timesteps
        self._last_checkpoint = time.monotonic()

    def check_signal(self) -> bool:
        """Note a SIGINT/SIGTERM that arrived (the run then stops, ``interrupted_by`` says why); whether stopped."""
        if not self.stopped and self.stop.signum is not None:
            self.agent.interrupted_by = self.stop.signum
            self.stopped = True
        return self.stopped

    def iteration_done(self, steps: int, stats: Stats, batch: RolloutBatch | None = None) -> bool:
        """Account for an iteration of ``steps`` env steps; whether training goes on.

        Once it has said stop (a callback returned ``False``, or a signal arrived) it keeps logging and
        checkpointing what still comes in (A3C's workers finish their rollouts) but runs no more callbacks.
        """
        agent = self.agent
        agent.num_timesteps += steps
        agent.iteration += 1
        if agent.iteration % self.log_interval == 0 or agent.num_timesteps >= agent.total_timesteps:
            fps = (agent.num_timesteps - self._last_log_steps) / max(time.perf_counter() - self._last_log_time, 1e-9)
            scalars = agent._log(self.logger, stats() if callable(stats) else stats, fps)
            self.callbacks.log(scalars)
            self._last_log_time, self._last_log_steps = time.perf_counter(), agent.num_timesteps
        if not self.stopped and not self.callbacks.rollout_end(batch):
            self.stopped = True
        self.check_signal()
        if agent.run_dir is not None and time.monotonic() - self._last_checkpoint > self.checkpoint_interval_s:
            agent.save_checkpoint()
            self._last_checkpoint = time.monotonic()
        return not self.stopped
