"""The measuring harness every bench suite shares: clocks, learn-to-target, throughput, settings per batch size, metadata.

How rlcourse is measured (DESIGN.md, "Performance practice"):

* **Clocks**: ``time.perf_counter``, after ``torch.cuda.synchronize`` on CUDA (:func:`now`). Evaluation
  never counts as training time (:class:`TrainingClock` is paused around it).
* **Learn to target** (:func:`learn_to_target`): an agent trains its whole budget while a deterministic
  evaluation runs every few iterations; the env steps and training time of the first evaluation that
  reaches the target are recorded. The first iteration (where ``torch.compile`` and CUDA-graph capture
  happen) is timed on its own as "setup"; the training clock starts after it, but its env steps count
  towards the steps to target.
* **Throughput** (:func:`measure_throughput`): steady-state steps/s of a trained agent, a fixed number of
  iterations after a warm-up, with no evaluation. That is the headline steps/s.

The suites import this module, :mod:`~rlcourse.app.bench.report` and :mod:`~rlcourse.app.bench.sb3`;
none of these imports a suite.
"""

from __future__ import annotations

import datetime
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch

from rlcourse.config import RUN_KEYS, load_preset
from rlcourse.device import resolve_device

#: Episodes of the periodic evaluation that decides whether the target is reached.
EVAL_EPISODES = 20
#: Episodes of the final evaluation in the table.
FINAL_EVAL_EPISODES = 100
#: Default evaluation interval, in env steps (rounded up to whole iterations, at least one).
EVAL_INTERVAL_STEPS = 2048
#: Evaluations of one rlcourse run at most (at huge batches an iteration is millions of steps).
MAX_EVALS_PER_RUN = 50
#: Throughput: warm-up iterations, then at least this many timed ones.
THROUGHPUT_WARMUP_ITERATIONS = 2
THROUGHPUT_MIN_ITERATIONS = 5
#: ``learn``'s ``log_interval`` that never logs mid-run (stats are read once, at the end).
NO_LOGGING = sys.maxsize


# --------------------------------------------------------------------------- the machine
def now(device: torch.device) -> float:
    """``perf_counter`` once the device has finished the queued work."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


def describe_device(device: torch.device) -> str:
    """A human name for the machine: the GPU's name, or the CPU's model and core count."""
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (CUDA {torch.version.cuda})"
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} CPUs, {torch.get_num_threads()} torch threads"


def load_average() -> float | None:
    """The 1-minute load average (None where the OS has none): a busy machine reads slower."""
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else None


def bench_meta(device: str, target: float, **settings: Any) -> dict[str, Any]:
    """Where and when: device description, date, library versions, CPU load, and the settings used."""
    import gymnasium

    dev = resolve_device(device)
    moment = datetime.datetime.now().astimezone()
    meta = {
        "device": dev.type,
        "device_name": describe_device(dev),
        "date": moment.date().isoformat(),
        "time": moment.isoformat(timespec="seconds"),
        "torch": torch.__version__,
        "gymnasium": gymnasium.__version__,
        "python": platform.python_version(),
        "torch_threads": torch.get_num_threads(),
        "load_average": load_average(),
        "target": target,
    }
    try:
        import stable_baselines3

        meta["stable_baselines3"] = stable_baselines3.__version__
    except ImportError:  # pragma: no cover - a dependency, but keep the report working without it
        meta["stable_baselines3"] = None
    meta.update(settings)
    return meta


# --------------------------------------------------------------------------- settings per batch size
@dataclass(frozen=True)
class Tier:
    """Rows of up to ``up_to_envs`` envs run the preset variant ``variant``.

    At an env count other than the variant's, ``batch_size`` follows ``keep``: ``"minibatches"`` keeps the
    number of minibatches per epoch (the minibatch grows with the batch), ``"minibatch_size"`` keeps the
    minibatch (the largest size that divides the rollout, at most the variant's).
    """

    up_to_envs: float
    variant: str
    keep: Literal["minibatches", "minibatch_size"]


#: Which ``ppo.yml`` variant a PPO row of ``num_envs`` envs runs on each env the suites train: the first tier
#: that holds it. Shared here because the cartpole, dialogue and scale suites all read them.
PPO_TIERS_BY_ENV = {
    "rlcourse/CartPole-v1": (
        Tier(256, "large_batch_64", keep="minibatches"),
        Tier(2048, "large_batch_1024", keep="minibatches"),
        Tier(16384, "large_batch_4096", keep="minibatches"),
        Tier(float("inf"), "large_batch_262144", keep="minibatch_size"),
    ),
    "rlcourse/SlotFilling-v0": (
        Tier(256, "default", keep="minibatch_size"),
        Tier(16384, "large_batch_4096", keep="minibatches"),
        Tier(float("inf"), "large_batch_65536", keep="minibatches"),
    ),
}


def tier_hparams(algo: str, env_id: str, tiers: tuple[Tier, ...], num_envs: int) -> dict[str, Any]:
    """The hyperparameters (no run keys) of the first tier that holds ``num_envs``, fitted to ``num_envs`` envs."""
    tier = next(t for t in tiers if num_envs <= t.up_to_envs)
    preset = load_preset(algo, env_id, tier.variant)
    hparams = {key: value for key, value in preset.items() if key not in RUN_KEYS}
    rollout = hparams["n_steps"] * num_envs
    if tier.keep == "minibatches":
        minibatches = hparams["n_steps"] * preset["num_envs"] // hparams["batch_size"]
        hparams["batch_size"] = max(2, rollout // minibatches)
    else:
        hparams["batch_size"] = math.gcd(rollout, hparams["batch_size"])
    return hparams


def default_eval_every(steps_per_iteration: int, budget: int) -> int:
    """Iterations between evaluations: about every :data:`EVAL_INTERVAL_STEPS` env steps, but at most ~50 per run."""
    iterations = max(1, budget // steps_per_iteration)
    return max(1, math.ceil(EVAL_INTERVAL_STEPS / steps_per_iteration), math.ceil(iterations / MAX_EVALS_PER_RUN))


def mean_present(values: list[float | None]) -> float | None:
    """The mean of the values that are there (None if none is): seeds that never reached a target have no time."""
    present = [v for v in values if v is not None]
    return statistics.fmean(present) if present else None


# --------------------------------------------------------------------------- clocks
class TrainingClock:
    """Training wall time with evaluation paused out, and the point where an evaluation first reached the target."""

    def __init__(self, device: torch.device, target: float):
        self.device = device
        self.target = target
        self.elapsed = 0.0
        self.time_to_target: float | None = None
        self.steps_to_target: int | None = None
        self._since: float | None = None

    def resume(self) -> None:
        self._since = now(self.device)

    def pause(self) -> None:
        if self._since is not None:
            self.elapsed += now(self.device) - self._since
            self._since = None

    def record_eval(self, mean_return: float, num_timesteps: int) -> bool:
        """Note an evaluation (taken while paused); returns whether it reached the target."""
        reached = mean_return >= self.target
        if reached and self.steps_to_target is None:
            self.time_to_target, self.steps_to_target = self.elapsed, int(num_timesteps)
        return reached


class RlcourseWatcher:
    """``Agent.learn`` callback: times the first iteration as setup, evaluates every ``eval_every`` iterations.

    The training clock starts after the first iteration; evaluation time is paused out of it.
    """

    def __init__(
        self, clock: TrainingClock, eval_every: int, metric: str = "mean_reward", eval_episodes: int = EVAL_EPISODES
    ):
        self.clock = clock
        self.eval_every = eval_every
        self.metric = metric
        self.eval_episodes = eval_episodes
        self.setup_s: float | None = None
        self.first_iteration_steps = 0
        self._started = 0.0

    def start(self) -> None:
        """Call right before ``learn``."""
        self._started = now(self.clock.device)

    def __call__(self, agent: Any) -> bool:
        if self.setup_s is None:
            self.setup_s = now(self.clock.device) - self._started
            self.first_iteration_steps = agent.num_timesteps
        else:
            self.clock.pause()
        if agent.iteration % self.eval_every == 0:
            result = agent.evaluate(n_episodes=self.eval_episodes, deterministic=True)
            self.clock.record_eval(result[self.metric], agent.num_timesteps)
        self.clock.resume()
        return True


# --------------------------------------------------------------------------- training an rlcourse agent
def learn_quietly(agent: Any, steps: int, **kwargs: Any) -> None:
    """``agent.learn`` without mid-run logging; a Ctrl-C/SIGTERM that stopped it ends the whole bench."""
    agent.learn(steps, log_interval=NO_LOGGING, **kwargs)
    if agent.interrupted_by is not None:
        raise SystemExit(128 + agent.interrupted_by)


def learn_to_target(
    agent: Any,
    max_steps: int,
    target: float,
    eval_every: int,
    metric: str = "mean_reward",
    eval_episodes: int = EVAL_EPISODES,
    callbacks: Sequence[Any] = (),
) -> dict[str, Any]:
    """Train ``agent`` for ``max_steps`` env steps under a :class:`RlcourseWatcher` (``metric`` of ``evaluate`` vs
    ``target``); ``callbacks`` (a plug-in's training, say) run before the watcher at each iteration's end."""
    clock = TrainingClock(agent.device, target)
    watcher = RlcourseWatcher(clock, eval_every, metric, eval_episodes)
    watcher.start()
    learn_quietly(agent, max_steps, callbacks=[*callbacks, watcher])
    steps_after_setup = agent.num_timesteps - watcher.first_iteration_steps
    return {
        "setup_s": watcher.setup_s,
        "train_s": clock.elapsed,
        "train_steps_per_s": steps_after_setup / clock.elapsed if clock.elapsed > 0 else None,
        "time_to_target_s": clock.time_to_target,
        "steps_to_target": clock.steps_to_target,
        "steps_trained": int(agent.num_timesteps),
        "eval_every": eval_every,
    }


def run_row(
    agent: Any,
    seed: int,
    budget: int,
    target: float,
    every: int,
    throughput: Callable[[dict[str, Any]], tuple[float | None, int]] | None = None,
) -> dict[str, Any]:
    """One seed's row: learn for the whole ``budget`` (noting when ``target`` is first reached), a final
    deterministic evaluation, then the steady-state throughput by ``throughput(result)`` (None: the learning
    run's own training steps/s)."""
    result = learn_to_target(agent, budget, target, every)
    final = agent.evaluate(n_episodes=FINAL_EVAL_EPISODES, deterministic=True)
    row: dict[str, Any] = {"seed": seed, "steps_per_s": result["train_steps_per_s"]}
    if throughput is not None:
        row["steps_per_s"], row["throughput_iterations"] = throughput(result)
    return {**row, **result, "final_mean": final["mean_reward"], "final_std": final["std_reward"]}


def measure_throughput(agent: Any, seconds: float) -> tuple[float, int]:
    """Steady-state training steps/s: warm up, then time a fixed number of iterations with no evaluation.

    The number of timed iterations is fixed beforehand from the warm-up's pace, so that the
    measurement lasts about ``seconds`` (at least :data:`THROUGHPUT_MIN_ITERATIONS` iterations).
    Returns ``(steps_per_s, timed_iterations)``.
    """
    per_iteration = agent.steps_per_iteration
    start = now(agent.device)
    learn_quietly(agent, THROUGHPUT_WARMUP_ITERATIONS * per_iteration, reset_num_timesteps=False)
    pace = (now(agent.device) - start) / THROUGHPUT_WARMUP_ITERATIONS
    iterations = max(THROUGHPUT_MIN_ITERATIONS, math.ceil(seconds / max(pace, 1e-9)))
    start = now(agent.device)
    learn_quietly(agent, iterations * per_iteration, reset_num_timesteps=False)
    return iterations * per_iteration / (now(agent.device) - start), iterations


def measure_async_throughput(agent: Any, seconds: float, pace: float | None) -> tuple[float | None, int]:
    """An asynchronous agent's (A3C's) steady-state steps/s: one ``learn`` of about ``seconds`` at ``pace``, timed
    between worker reports (timing a fresh ``learn`` per iteration would time a spawn of the workers each time).

    The first ``2 × num_workers`` reports are left out as warm-up (the workers start one by one).
    Returns ``(steps_per_s, timed_reports)``.
    """
    marks: list[tuple[float, int]] = []
    workers = agent.config.num_workers
    steps = max(int(seconds * (pace or 0.0)), 50 * workers * agent.steps_per_iteration)
    learn_quietly(
        agent, steps, reset_num_timesteps=False, callbacks=[lambda a: marks.append((now(a.device), a.num_timesteps))]
    )
    if len(marks) < 2:
        return None, 0
    skip = min(len(marks) - 2, 2 * workers)
    (t0, s0), (t1, s1) = marks[skip], marks[-1]
    return (s1 - s0) / max(t1 - t0, 1e-9), len(marks) - 1 - skip


def steps_per_s(run: Callable[[], None], steps_per_run: int, device: torch.device, seconds: float) -> float:
    """Env steps/s of ``run`` (``steps_per_run`` steps a call): one warm-up call, one to pace, then enough calls
    to last about ``seconds`` (at least 3)."""
    run()
    start = now(device)
    run()
    pace = max(now(device) - start, 1e-9)
    calls = max(3, math.ceil(seconds / pace))
    start = now(device)
    for _ in range(calls):
        run()
    return calls * steps_per_run / (now(device) - start)
