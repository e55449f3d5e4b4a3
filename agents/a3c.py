"""Asynchronous Advantage Actor-Critic (A3C): A2C's update, run by asynchronous workers (notes:13760-13772 [Actor-Critic]).

The notes' picture: one **global network** (policy and value heads on tied lower layers, θ1) and
many **workers**, each on its own CPU ("open 8 workers, at least 8 CPUs", notes:13770 [Actor-Critic]). A worker

1. copies the global parameters;
2. plays with its own envs (different starting states give diverse data);
3. computes a gradient of the actor-critic loss on what it saw (:mod:`rlcourse.agents.a2c`);
4. sends the gradient back, and the global network is updated with it at once — even if another
   worker has meanwhile moved the parameters from θ1 to θ2 ("don't mind such details").

Here a worker is a process (``torch.multiprocessing``, spawn start method) that runs an
:class:`~rlcourse.agents.a2c.A2C` agent on its own batch of ``num_envs`` CPU envs and its own seed.
The global network's parameters live in shared memory (``share_memory()``); so does the state of
the optimizer (RMSprop's running mean square, or Adam's moments and step count), which every worker
updates in place: the shared optimizer of the A3C paper. Nothing is locked (Hogwild-style), as in
the notes: updates from different workers can interleave. The main process only starts the workers,
collects their statistics through a queue, logs them under the usual SB3 names, runs callbacks,
writes checkpoints and stops the workers (after their current rollout) on a callback, SIGINT or
SIGTERM. A global step counter hands out rollouts until ``total_timesteps`` is reached.

CPU only, by design: the workers are processes that each own a core, and the asynchronous
parameter server is shared host memory. On a GPU use A2C, the synchronous form (notes:13772 [Actor-Critic]): one
large batch of envs on the device is what the GPU is good at. ``device="cuda"`` is refused.

Checkpoints hold the global network and the shared optimizer state, like any agent; ``save``,
``load``, ``predict``, ``evaluate`` and ``rlcourse train --resume`` work as usual. A resumed run
continues from the saved parameters, optimizer state and step count with freshly seeded workers;
it is **not** bit-identical to an uninterrupted run (nor is one A3C run to another with the same
seed): the order in which asynchronous workers apply their gradients depends on OS scheduling.

Scripts that train A3C must guard their entry point with ``if __name__ == "__main__":``, because
spawned workers import the main module (the ``rlcourse`` command already does).
"""

from __future__ import annotations

import dataclasses
import os
import queue as queue_module
import signal
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.multiprocessing as mp

from rlcourse.agents.a2c import A2C, A2CConfig
from rlcourse.agents.training import TrainingLoop
from rlcourse.callbacks import RolloutBatch
from rlcourse.config import DEFAULT_PRESET, hp, parse_normalize
from rlcourse.device import DEFAULT_THREADS
from rlcourse.run_dir import RunDir
from rlcourse.vec_env import TensorVecEnv
from rlcourse.wrappers import TensorVecEnvWrapper

#: Seconds the main process waits for the workers to finish their rollout once asked to stop.
SHUTDOWN_GRACE_S = 30.0


@dataclass
class A3CConfig(A2CConfig):
    """A3C hyperparameters: A2C's (per worker) plus the workers."""

    num_workers: int = hp(
        8, "worker processes, one CPU each (notes:13770 [Actor-Critic]: 8 workers need at least 8 CPUs)"
    )
    worker_threads: int = hp(1, "torch intra-op threads per worker")

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("num_workers", "worker_threads"):
            if not getattr(self, name) >= 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)!r}")


def share_optimizer_state(optimizer: torch.optim.Optimizer) -> None:
    """Create the optimizer's per-parameter state now and move it to shared memory.

    PyTorch creates that state lazily on the first ``step``; a step with zero gradients creates it
    without moving anything (no weight decay: RMSprop's and Adam's running averages stay 0, the
    update is 0), and the step counters are then set back to 0.
    """
    for group in optimizer.param_groups:
        for param in group["params"]:
            param.grad = torch.zeros_like(param)
    optimizer.step()
    for group in optimizer.param_groups:
        for param in group["params"]:
            param.grad = None
    for state in optimizer.state.values():
        if "step" in state:
            state["step"].zero_()
        for value in state.values():
            if isinstance(value, torch.Tensor):
                value.share_memory_()


class A3C(A2C):
    """A3C: ``num_workers`` CPU processes, each an A2C learner on ``num_envs`` envs, updating one shared network."""

    algo = "a3c"
    config_class = A3CConfig
    config: A3CConfig
    cpu_only = True
    default_num_envs = 1  # per worker

    def __init__(
        self,
        env: str | TensorVecEnv,
        num_envs: int | None = None,
        device: str | torch.device = "cpu",
        seed: int = 0,
        run_dir: str | Path | RunDir | None = None,
        compile: bool = False,
        cuda_graphs: bool | None = None,
        env_kwargs: dict[str, Any] | None = None,
        preset: str | None = DEFAULT_PRESET,
        threads: int | None = DEFAULT_THREADS,
        **hparams: Any,
    ):
        try:
            requested = torch.device("cpu" if str(device) == "auto" else str(device))
        except RuntimeError:  # not a device name at all: the usual device check below says so
            requested = None
        if requested is not None and requested.type != "cpu":
            raise ValueError(
                f"A3C runs its workers as CPU processes (notes:13760-13772 [Actor-Critic]), so device {str(device)!r} is not "
                "supported; use device='cpu', or A2C, the synchronous form, on a GPU"
            )
        if cuda_graphs:
            raise ValueError("A3C does not capture CUDA graphs: its workers run on the CPU")
        if isinstance(env, TensorVecEnv) and env.device.type != "cpu":
            raise ValueError(f"A3C needs an env on the CPU, got one on {env.device}")
        if isinstance(env, TensorVecEnvWrapper):
            raise ValueError(
                f"A3C's workers build their own envs from the env id, so a wrapped env ({type(env).__name__}) "
                "would train unwrapped; use A2C for wrapped envs"
            )
        if parse_normalize(hparams.get("normalize") or False):  # a checkpoint records {observation: false, ...}
            raise ValueError(
                "A3C's workers build their own envs from the env id, so normalize would not reach them; use A2C"
            )
        super().__init__(
            env,
            num_envs=num_envs,
            device="cpu" if requested is not None else device,
            seed=seed,
            run_dir=run_dir,
            compile=compile,
            cuda_graphs=False,
            env_kwargs=env_kwargs,
            preset=preset,
            threads=threads,
            **hparams,
        )

    def _build(self) -> None:
        super()._build()
        self.policy.share_memory()
        share_optimizer_state(self.optimizer)

    def _on_state_loaded(self) -> None:
        super()._on_state_loaded()
        # The network loads in place (still shared); the optimizer keeps its state tensors too, unless the loaded
        # state has other entries (see agents/base.py), so make sure whatever it holds now is shared.
        for state in self.optimizer.state.values():
            for value in state.values():
                if isinstance(value, torch.Tensor):
                    value.share_memory_()

    # ----------------------------------------------------------------- training: the main process
    def _allocate_batch(self) -> RolloutBatch:
        raise ValueError(
            "A3C's rollouts happen in its worker processes, so a callback cannot read them "
            "(needs_batch); use A2C, whose rollouts the main process makes"
        )

    def _train_loop(self, loop: TrainingLoop) -> None:
        c = self.config
        ctx = mp.get_context("spawn")
        messages = ctx.Queue()
        stop_event = ctx.Event()
        counter = ctx.Value("q", self.num_timesteps)  # env steps handed out to workers so far
        a2c_fields = {f.name for f in dataclasses.fields(A2CConfig)}
        spec = _WorkerSpec(
            env=self.env_id if self.env_id is not None else type(self.env),
            env_kwargs=self.env.options(),
            num_envs=self.num_envs,
            hparams={k: v for k, v in dataclasses.asdict(c).items() if k in a2c_fields},
            total_timesteps=self.total_timesteps,
            threads=c.worker_threads,
            compile=self.compile,
        )
        # Fresh, independent streams per worker, and per training session (a resumed run does not replay its start).
        seeds = [
            int(s.generate_state(1)[0])
            for s in np.random.SeedSequence([self.seed, self.num_timesteps, 0xA3C]).spawn(c.num_workers)
        ]
        shared_state = [self.optimizer.state[p] for p in self.policy.parameters()]
        workers = [
            ctx.Process(
                target=_worker_main,
                name=f"a3c-worker-{rank}",
                daemon=True,
                args=(rank, seeds[rank], spec, self.policy, shared_state, counter, stop_event, messages, os.getpid()),
            )
            for rank in range(c.num_workers)
        ]
        try:
            _start_ignoring_ctrl_c(workers)
            self._drive_workers(workers, messages, stop_event, loop)
        finally:
            stop_event.set()
            _shut_down(workers, messages)

    def _drive_workers(self, workers: list[Any], messages: Any, stop_event: Any, loop: TrainingLoop) -> None:
        """Turn worker reports into iterations of the shared training loop until every worker is done.

        Each report is one worker's rollout and update; the loop logs (the mean of each statistic over the
        reports since the last log), runs the callbacks and writes the timed checkpoints (while the workers
        keep writing: a Hogwild snapshot). When it says stop, the workers finish their current rollout.
        """
        running = set(range(len(workers)))
        stat_sums: dict[str, float] = {}
        stat_counts: dict[str, int] = {}

        def mean_stats() -> dict[str, torch.Tensor]:
            means = {tag: torch.tensor(stat_sums[tag] / stat_counts[tag]) for tag in stat_sums}
            stat_sums.clear()
            stat_counts.clear()
            return means

        while running:
            if loop.check_signal():
                stop_event.set()
            try:
                message = messages.get(timeout=0.2)
            except queue_module.Empty:
                for rank in list(running):
                    if not workers[rank].is_alive():
                        try:  # a worker that exited has flushed its reports; read them before judging it
                            message = messages.get(timeout=1.0)
                            break
                        except queue_module.Empty:
                            if loop.stopped:  # e.g. a SIGTERM sent to the whole process group: it is over anyway
                                running.discard(rank)
                                continue
                            raise RuntimeError(
                                f"A3C worker {rank} exited without finishing (exit code {workers[rank].exitcode})"
                            ) from None
                else:
                    continue
            kind, rank = message["kind"], message["rank"]
            if kind == "error":
                raise RuntimeError(f"A3C worker {rank} failed:\n{message['traceback']}")
            if kind == "done":
                running.discard(rank)
                continue
            for tag, value in message["stats"].items():
                stat_sums[tag] = stat_sums.get(tag, 0.0) + value
                stat_counts[tag] = stat_counts.get(tag, 0) + 1
            self.episodes.add(message["episodes"])
            loop.iteration_done(message["steps"], mean_stats)


@dataclass
class _WorkerSpec:
    """What a worker needs to build its own A2C learner (sent once, at spawn)."""

    env: str | type[TensorVecEnv]
    env_kwargs: dict[str, Any]
    num_envs: int
    hparams: dict[str, Any]
    total_timesteps: int
    threads: int
    compile: bool


class _Worker(A2C):
    """An A2C learner whose gradients go to the shared network and its shared optimizer."""

    def attach(self, shared_policy: torch.nn.Module, shared_state: list[dict[str, torch.Tensor]]) -> None:
        self.shared_policy = shared_policy
        self.optimizer = self._make_optimizer(shared_policy.parameters())
        for param, state in zip(shared_policy.parameters(), shared_state):
            self.optimizer.state[param] = state  # the tensors live in shared memory: every worker updates the same ones

    def iterate(self) -> tuple[dict[str, float], list[float]]:
        """Copy the global parameters, play one rollout, send the gradient; return the statistics."""
        with torch.no_grad():
            for local, shared in zip(self.policy.parameters(), self.shared_policy.parameters()):
                local.copy_(shared)
        stats = self._train_iteration()
        episodes = self.episodes.sums.tolist()
        self.episodes.sums.zero_()
        return {tag: float(value) for tag, value in stats.items()}, episodes

    def _apply_gradients(self) -> None:
        # The gradient was computed on the local copy (θ1); it is applied to the global θ, whatever it is now.
        for local, shared in zip(self.policy.parameters(), self.shared_policy.parameters()):
            shared.grad = local.grad
        self.optimizer.step()


def _worker_main(
    rank: int,
    seed: int,
    spec: _WorkerSpec,
    shared_policy: torch.nn.Module,
    shared_state: list[dict[str, torch.Tensor]],
    counter: Any,
    stop_event: Any,
    messages: Any,
    parent_pid: int,
) -> None:
    """A worker process: take rollouts from the global counter until the budget is spent or the main process says stop."""
    # Ctrl-C reaches the whole process group; the main process decides when to stop and tells the workers.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    terminated = []
    signal.signal(signal.SIGTERM, lambda signum, frame: terminated.append(signum))
    try:
        torch.set_num_threads(spec.threads)
        if isinstance(spec.env, str):
            env, env_kwargs = spec.env, spec.env_kwargs
        else:  # an unregistered env class, built here as evaluate() builds one
            env, env_kwargs = spec.env(num_envs=spec.num_envs, device="cpu", **spec.env_kwargs), None
        worker = _Worker(
            env,
            num_envs=spec.num_envs,
            device="cpu",
            seed=seed,
            compile=spec.compile,
            env_kwargs=env_kwargs,
            **spec.hparams,
        )
        worker.attach(shared_policy, shared_state)
        while not (stop_event.is_set() or terminated or os.getppid() != parent_pid):
            with counter.get_lock():
                start = counter.value
                if start >= spec.total_timesteps:
                    break
                counter.value = start + worker.steps_per_iteration
            worker.num_timesteps, worker.total_timesteps = start, spec.total_timesteps  # for the learning-rate schedule
            stats, episodes = worker.iterate()
            messages.put(
                {
                    "kind": "iteration",
                    "rank": rank,
                    "steps": worker.steps_per_iteration,
                    "stats": stats,
                    "episodes": episodes,
                }
            )
        messages.put({"kind": "done", "rank": rank})
    except BaseException:
        messages.put({"kind": "error", "rank": rank, "traceback": traceback.format_exc()})
    # Deliver the reports, then leave without the interpreter's teardown of torch (seconds per worker, nothing to save).
    messages.close()
    messages.join_thread()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _start_ignoring_ctrl_c(workers: list[Any]) -> None:
    """Start the workers with SIGINT ignored from their first instruction (an ignored signal survives exec).

    A terminal's Ctrl-C goes to the whole process group; the workers must not die of it while they
    import torch, before ``_worker_main`` can say so itself. The main process's own handler is back
    as soon as the workers are started.
    """
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if in_main_thread else None
    try:
        for worker in workers:
            worker.start()
    finally:
        if in_main_thread:
            signal.signal(signal.SIGINT, previous)


def _shut_down(workers: list[Any], messages: Any) -> None:
    """Wait for the workers to exit (reading the queue, which a worker must flush before it can exit); kill stragglers."""
    deadline = time.monotonic() + SHUTDOWN_GRACE_S
    for worker in workers:
        while worker.is_alive() and time.monotonic() < deadline:
            try:
                while True:
                    messages.get_nowait()
            except queue_module.Empty:
                pass
            worker.join(timeout=0.1)
    for worker in workers:
        if worker.is_alive():
            worker.terminate()
            worker.join()
    messages.close()
    messages.cancel_join_thread()
