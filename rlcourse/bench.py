"""``rlcourse bench``: SB3's PPO and rlcourse's PPO on CartPole-v1, in one process on one machine.

What is measured (DESIGN.md, "Performance practice"):

* **SB3**: ``stable_baselines3.PPO`` with the RL Zoo CartPole-v1 hyperparameters on 8 Gymnasium
  envs on the CPU, for the RL Zoo budget (100k steps).
* **rlcourse**: :class:`rlcourse.agents.PPO` on ``rlcourse/CartPole-v1`` with
  :func:`large_batch_hparams` for each ``num_envs``, trained until a deterministic evaluation
  reaches the target (or the budget runs out), then a steady-state **throughput** measurement on the
  same agent: a fixed number of iterations with no evaluation. That throughput is the headline steps/s.
* **quality** (optional): the shipped ``ppo.yml`` preset and SB3's RL Zoo run, 100k steps each, over
  several seeds: does each seed reach the target, and how good is the final policy.

Clocks: ``time.perf_counter``, after ``torch.cuda.synchronize`` on CUDA. Evaluation never counts as
training time. rlcourse's first iteration (where ``torch.compile`` and CUDA-graph capture happen) is
timed on its own and reported as "setup"; the training clock starts after it, but its env steps
count towards the steps to target.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import math
import os
import platform
import re
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
import torch

from rlcourse.config import RUN_KEYS, load_preset
from rlcourse.device import resolve_device

ENV_ID = "rlcourse/CartPole-v1"
GYM_ENV_ID = "CartPole-v1"
#: Episodes of the periodic evaluation that decides whether the target is reached.
EVAL_EPISODES = 20
#: Episodes of the final evaluation in the table.
FINAL_EVAL_EPISODES = 100
#: Default evaluation interval, in env steps (rounded up to whole iterations, at least one).
EVAL_INTERVAL_STEPS = 2048
#: Evaluations of one rlcourse run at most (at huge batches an iteration is millions of steps).
MAX_EVALS_PER_RUN = 50
#: SB3 envs and budget: RL Zoo's CartPole-v1 run.
SB3_NUM_ENVS = 8
RL_ZOO_STEPS = 100_000
#: ``learn``'s ``log_interval`` that never logs mid-run (stats are read once, at the end).
_NO_LOGGING = sys.maxsize
#: Throughput: warm-up iterations, then at least this many timed ones.
THROUGHPUT_WARMUP_ITERATIONS = 2
THROUGHPUT_MIN_ITERATIONS = 5

Progress = Callable[[str], None]


#: Settings by batch size, each measured to reach the target and end at 500 on every seed: 64 and
#: 1024 envs on a 2-core CPU (5 seeds), 4096 on the CPU too (5 seeds, the GPU rows' budget) and 262144
#: on an H200 (5 seeds, before the optimizer-state fix of 2026-11-21). As the batch grows, an
#: iteration needs more minibatch updates (or fewer epochs over fresher data). The smallest tier uses
#: RL Zoo's CartPole discount (γ 0.98, λ 0.8): with γ 0.99, λ 0.95 one seed in five collapsed to ~170.
#: The 4,096 tier clips at 0.1: with 0.2 and an optimizer state carried across iterations, seed 0
#: reached 475 and then fell to ~210-310 (learning rate 1e-3 or 2 epochs did not help); with 0.1 all
#: five seeds reached 475 within 2.4M-3.9M steps and ended at 500.
LARGE_BATCH_TIERS = (
    {"up_to_envs": 256, "n_steps": 16, "minibatches": 4, "n_epochs": 4, "learning_rate": 1e-3, "gamma": 0.98, "gae_lambda": 0.8},
    {"up_to_envs": 2048, "n_steps": 16, "minibatches": 8, "n_epochs": 4, "learning_rate": 3e-3, "gamma": 0.99, "gae_lambda": 0.95},
    {"up_to_envs": 16384, "n_steps": 32, "minibatches": 4, "n_epochs": 4, "learning_rate": 3e-3, "gamma": 0.99, "gae_lambda": 0.95,
     "clip_range": 0.1},
)
#: Above the tiers: fixed 65,536-sample minibatches, 8-step rollouts, 2 epochs.
HUGE_BATCH = {"n_steps": 8, "minibatch_size": 65536, "n_epochs": 2, "learning_rate": 3e-3, "gamma": 0.99, "gae_lambda": 0.95}


def large_batch_hparams(num_envs: int) -> dict[str, Any]:
    """PPO hyperparameters for CartPole-v1 with ``num_envs`` parallel envs (every rlcourse speed row).

    Short rollouts, so an iteration is cheap; the number of minibatch updates per iteration grows with
    the batch (see :data:`LARGE_BATCH_TIERS`). The learning rate decays linearly over the run: with a
    constant 3e-3, one seed in three at 4,096 envs collapsed to ~265 by the end of its budget (H200).
    """
    common = {"ent_coef": 0.0, "anneal_lr": True, "anneal_clip_range": False}
    tier = next((t for t in LARGE_BATCH_TIERS if num_envs <= t["up_to_envs"]), None)
    if tier is None:
        batch = num_envs * HUGE_BATCH["n_steps"]
        minibatch = math.gcd(batch, HUGE_BATCH["minibatch_size"])
        settings = {k: v for k, v in HUGE_BATCH.items() if k != "minibatch_size"}
    else:
        batch = num_envs * tier["n_steps"]
        minibatch = max(2, batch // tier["minibatches"])
        settings = {k: v for k, v in tier.items() if k not in ("up_to_envs", "minibatches")}
    return {**settings, "batch_size": minibatch, **common}


def default_num_envs(device: torch.device) -> list[int]:
    """Batch sizes benchmarked when ``--num-envs`` is not given (64: fastest to the target on a CPU; 1024: most steps/s)."""
    return [4096, 262_144] if device.type == "cuda" else [64, 1024]


def default_max_steps(num_envs: int) -> int:
    """Env-step budget of an rlcourse speed run when ``--max-steps`` is not given: room to converge, not just to touch the target."""
    return max(300_000, 2_000 * num_envs)


def default_eval_every(steps_per_iteration: int, budget: int) -> int:
    """Iterations between evaluations: about every :data:`EVAL_INTERVAL_STEPS` env steps, but at most ~50 per run."""
    iterations = max(1, budget // steps_per_iteration)
    return max(1, math.ceil(EVAL_INTERVAL_STEPS / steps_per_iteration), math.ceil(iterations / MAX_EVALS_PER_RUN))


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


def _now(device: torch.device) -> float:
    """``perf_counter`` once the device has finished the queued work."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


# --------------------------------------------------------------------------- clocks and callbacks
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
        self._since = _now(self.device)

    def pause(self) -> None:
        if self._since is not None:
            self.elapsed += _now(self.device) - self._since
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

    def __init__(self, clock: TrainingClock, eval_every: int, metric: str = "mean_reward", eval_episodes: int = EVAL_EPISODES):
        self.clock = clock
        self.eval_every = eval_every
        self.metric = metric
        self.eval_episodes = eval_episodes
        self.setup_s: float | None = None
        self.first_iteration_steps = 0
        self._started = 0.0

    def start(self) -> None:
        """Call right before ``learn``."""
        self._started = _now(self.clock.device)

    def __call__(self, agent: Any) -> bool:
        if self.setup_s is None:
            self.setup_s = _now(self.clock.device) - self._started
            self.first_iteration_steps = agent.num_timesteps
        else:
            self.clock.pause()
        if agent.iteration % self.eval_every == 0:
            result = agent.evaluate(n_episodes=self.eval_episodes, deterministic=True)
            self.clock.record_eval(result[self.metric], agent.num_timesteps)
        self.clock.resume()
        return True


def _sb3_watcher(clock: TrainingClock, eval_env: Any, eval_every: int) -> Any:
    """An SB3 callback that evaluates before every ``eval_every``-th rollout, off the training clock.

    Evaluating at the start of a rollout scores the policy after its last update, on exactly the
    env steps it was trained on (the analogue of rlcourse's after-iteration callback). Once the
    target is reached it stops evaluating; training goes on to the end of the budget.
    """
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.evaluation import evaluate_policy

    class SB3Watcher(BaseCallback):
        def __init__(self) -> None:
            super().__init__()
            self.rollouts = 0

        def _on_training_start(self) -> None:
            clock.resume()

        def _on_rollout_start(self) -> None:
            if self.rollouts > 0 and self.rollouts % eval_every == 0 and clock.steps_to_target is None:
                clock.pause()
                mean, _ = evaluate_policy(self.model, eval_env, n_eval_episodes=EVAL_EPISODES, deterministic=True)
                clock.record_eval(float(mean), self.model.num_timesteps)
                clock.resume()
            self.rollouts += 1

        def _on_step(self) -> bool:
            return True

        def _on_training_end(self) -> None:
            clock.pause()

    return SB3Watcher()


# --------------------------------------------------------------------------- single runs
def run_sb3(seed: int, max_steps: int, target: float, eval_every: int | None) -> dict[str, Any]:
    """One SB3 PPO run with RL Zoo's CartPole-v1 settings; returns the per-seed measurements."""
    from stable_baselines3 import PPO as SB3PPO
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.evaluation import evaluate_policy
    from stable_baselines3.common.utils import LinearSchedule

    env = make_vec_env(GYM_ENV_ID, n_envs=SB3_NUM_ENVS, seed=seed)
    eval_env = make_vec_env(GYM_ENV_ID, n_envs=EVAL_EPISODES, seed=seed + 1_000_003)
    model = SB3PPO("MlpPolicy", env, n_steps=32, batch_size=256, gae_lambda=0.8, gamma=0.98, n_epochs=20, ent_coef=0.0,
                   learning_rate=LinearSchedule(1e-3, 0.0, 1.0), clip_range=LinearSchedule(0.2, 0.0, 1.0),
                   device="cpu", seed=seed, verbose=0)
    every = eval_every or default_eval_every(model.n_steps * SB3_NUM_ENVS, max_steps)
    clock = TrainingClock(torch.device("cpu"), target)
    model.learn(max_steps, callback=_sb3_watcher(clock, eval_env, every))
    final_mean, final_std = evaluate_policy(model, eval_env, n_eval_episodes=FINAL_EVAL_EPISODES, deterministic=True)
    env.close()
    eval_env.close()
    return {
        "seed": seed,
        "steps_per_s": model.num_timesteps / clock.elapsed,
        "train_steps_per_s": model.num_timesteps / clock.elapsed,
        "setup_s": None,
        "train_s": clock.elapsed,
        "time_to_target_s": clock.time_to_target,
        "steps_to_target": clock.steps_to_target,
        "steps_trained": int(model.num_timesteps),
        "final_mean": float(final_mean),
        "final_std": float(final_std),
        "eval_every": every,
    }


def _learn(agent: Any, steps: int, **kwargs: Any) -> None:
    """``agent.learn`` without mid-run logging; a Ctrl-C/SIGTERM that stopped it ends the whole bench."""
    agent.learn(steps, log_interval=_NO_LOGGING, **kwargs)
    if agent.interrupted_by is not None:
        raise SystemExit(128 + agent.interrupted_by)


def learn_to_target(agent: Any, max_steps: int, target: float, eval_every: int, metric: str = "mean_reward",
                    eval_episodes: int = EVAL_EPISODES) -> dict[str, Any]:
    """Train ``agent`` for ``max_steps`` env steps under a :class:`RlcourseWatcher` (``metric`` of ``evaluate`` vs ``target``)."""
    clock = TrainingClock(agent.device, target)
    watcher = RlcourseWatcher(clock, eval_every, metric, eval_episodes)
    watcher.start()
    _learn(agent, max_steps, callbacks=[watcher])
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


def measure_throughput(agent: Any, seconds: float) -> tuple[float, int]:
    """Steady-state training steps/s: warm up, then time a fixed number of iterations with no evaluation.

    The number of timed iterations is fixed beforehand from the warm-up's pace, so that the
    measurement lasts about ``seconds`` (at least :data:`THROUGHPUT_MIN_ITERATIONS` iterations).
    Returns ``(steps_per_s, timed_iterations)``.
    """
    per_iteration = agent.steps_per_iteration
    start = _now(agent.device)
    _learn(agent, THROUGHPUT_WARMUP_ITERATIONS * per_iteration, reset_num_timesteps=False)
    pace = (_now(agent.device) - start) / THROUGHPUT_WARMUP_ITERATIONS
    iterations = max(THROUGHPUT_MIN_ITERATIONS, math.ceil(seconds / max(pace, 1e-9)))
    start = _now(agent.device)
    _learn(agent, iterations * per_iteration, reset_num_timesteps=False)
    return iterations * per_iteration / (_now(agent.device) - start), iterations


def run_rlcourse(num_envs: int, seed: int, device: torch.device, target: float, max_steps: int,
                 eval_every: int | None, compile: bool, throughput_seconds: float) -> dict[str, Any]:
    """One rlcourse speed run: the whole budget (timing the first evaluation that reaches the target), a final
    evaluation, then throughput on the same agent. Like SB3's run, it trains its full budget, so the final
    evaluations compare converged policies."""
    from rlcourse.agents import PPO

    agent = PPO(ENV_ID, num_envs=num_envs, device=device, seed=seed, compile=compile, **large_batch_hparams(num_envs))
    every = eval_every or default_eval_every(agent.steps_per_iteration, max_steps)
    result = learn_to_target(agent, max_steps, target, every)
    final = agent.evaluate(n_episodes=FINAL_EVAL_EPISODES, deterministic=True)
    steps_per_s, iterations = measure_throughput(agent, throughput_seconds)
    return {"seed": seed, "steps_per_s": steps_per_s, "throughput_iterations": iterations, **result,
            "final_mean": final["mean_reward"], "final_std": final["std_reward"]}


def run_preset(seed: int, device: torch.device, target: float, eval_every: int | None, compile: bool) -> dict[str, Any]:
    """One rlcourse run with the shipped ``ppo.yml`` preset (RL Zoo settings) for its full budget."""
    from rlcourse.agents import PPO

    preset = load_preset("ppo", ENV_ID)
    hparams = {key: value for key, value in preset.items() if key not in RUN_KEYS}
    agent = PPO(ENV_ID, num_envs=preset["num_envs"], device=device, seed=seed, compile=compile, **hparams)
    every = eval_every or default_eval_every(agent.steps_per_iteration, preset["total_timesteps"])
    result = learn_to_target(agent, preset["total_timesteps"], target, every)
    final = agent.evaluate(n_episodes=FINAL_EVAL_EPISODES, deterministic=True)
    return {"seed": seed, "steps_per_s": result["train_steps_per_s"], **result,
            "final_mean": final["mean_reward"], "final_std": final["std_reward"]}


# --------------------------------------------------------------------------- rows
def _mean(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.fmean(present) if present else None


@dataclass
class BenchRow:
    """One line of the table: an implementation at one batch size, aggregated over seeds (``runs``)."""

    implementation: str
    suite: str  # "speed" or "quality"
    device: str
    num_envs: int
    runs: list[dict[str, Any]] = field(repr=False)
    steps_per_s: float | None = None
    setup_s: float | None = None
    time_to_target_s: float | None = None  # mean over the seeds that reached the target
    steps_to_target: float | None = None
    reached: int = 0
    final_mean: float | None = None
    final_std: float | None = None
    speed_vs_sb3: float | None = None  # our steps/s ÷ SB3's
    time_to_target_vs_sb3: float | None = None  # SB3's time to target ÷ ours (> 1: we get there sooner)

    def __post_init__(self) -> None:
        self.steps_per_s = _mean([r["steps_per_s"] for r in self.runs])
        self.setup_s = _mean([r.get("setup_s") for r in self.runs])
        self.time_to_target_s = _mean([r["time_to_target_s"] for r in self.runs])
        self.steps_to_target = _mean([r["steps_to_target"] for r in self.runs])
        self.reached = sum(r["steps_to_target"] is not None for r in self.runs)
        self.final_mean = _mean([r["final_mean"] for r in self.runs])
        self.final_std = _mean([r["final_std"] for r in self.runs])


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or denominator is None or denominator <= 0:
        return None
    return numerator / denominator


def add_sb3_ratios(rows: list[BenchRow]) -> None:
    """Fill each rlcourse row's ratios against the SB3 row of the same suite."""
    for suite in ("speed", "quality"):
        sb3 = next((r for r in rows if r.suite == suite and r.implementation.startswith("SB3")), None)
        if sb3 is None:
            continue
        for row in rows:
            if row.suite == suite and row is not sb3:
                row.speed_vs_sb3 = _ratio(row.steps_per_s, sb3.steps_per_s)
                row.time_to_target_vs_sb3 = _ratio(sb3.time_to_target_s, row.time_to_target_s)


def run_bench(device: str = "auto", num_envs: list[int] | tuple[int, ...] | None = None, seeds: int | None = None,
              target: float = 475.0, max_steps: int | None = None, sb3: bool = True, sb3_max_steps: int = RL_ZOO_STEPS,
              quality: bool = False, eval_every: int | None = None, compile: bool = False,
              throughput_seconds: float = 2.0, progress: Progress | None = None) -> list[dict[str, Any]]:
    """Run the benchmark and return its rows as plain dicts (see :class:`BenchRow`).

    Args:
        device: ``auto``, ``cpu`` or ``cuda`` for the rlcourse rows (SB3 always runs on the CPU).
        num_envs: batch sizes of the rlcourse rows (default: 64 on the CPU, 4096 and 262144 on CUDA).
        seeds: number of seeds 0..n-1 (default: 1 for the speed rows, 5 for the quality suite).
        target: the mean deterministic return that counts as solved.
        max_steps: env-step budget per rlcourse run (default: 3M on the CPU, 20M on CUDA).
        sb3: include SB3's rows; ``sb3_max_steps`` is its budget (RL Zoo: 100k).
        quality: also run the learning-quality suite (shipped preset and SB3, 100k steps each).
        eval_every: iterations (SB3: rollouts) between evaluations (default: about every 2048 env steps).
        compile: build the rlcourse agents with ``compile=True``.
        throughput_seconds: about how long each throughput measurement runs.
        progress: called with a line of text as each run finishes.
    """
    say = progress or (lambda line: None)
    dev = resolve_device(device)
    batch_sizes = list(num_envs) if num_envs else default_num_envs(dev)
    if any(isinstance(n, bool) or not isinstance(n, int) or n <= 0 for n in batch_sizes):
        raise ValueError(f"num_envs must be positive integers, got {batch_sizes!r}")
    speed_seeds = range(seeds or 1)
    sb3_runs: dict[tuple[int, int], dict[str, Any]] = {}

    def sb3_run(seed: int, steps: int) -> dict[str, Any]:
        if (seed, steps) not in sb3_runs:  # the quality suite reuses the speed runs when the budgets match
            sb3_runs[seed, steps] = run_sb3(seed, steps, target, eval_every)
            say(_progress_line("SB3 PPO", "cpu", SB3_NUM_ENVS, sb3_runs[seed, steps]))
        return sb3_runs[seed, steps]

    rows: list[BenchRow] = []
    if sb3:
        rows.append(BenchRow("SB3 PPO", "speed", "cpu", SB3_NUM_ENVS, [sb3_run(s, sb3_max_steps) for s in speed_seeds]))
    for n in batch_sizes:
        runs = []
        for seed in speed_seeds:
            budget = max_steps if max_steps is not None else default_max_steps(n)
            runs.append(run_rlcourse(n, seed, dev, target, budget, eval_every, compile, throughput_seconds))
            say(_progress_line("rlcourse PPO", dev.type, n, runs[-1]))
        rows.append(BenchRow("rlcourse PPO", "speed", dev.type, n, runs))
    if quality:
        quality_seeds = range(seeds or 5)
        preset_envs = load_preset("ppo", ENV_ID)["num_envs"]
        if sb3:
            rows.append(BenchRow("SB3 PPO (RL Zoo)", "quality", "cpu", SB3_NUM_ENVS,
                                 [sb3_run(s, RL_ZOO_STEPS) for s in quality_seeds]))
        runs = []
        for seed in quality_seeds:
            runs.append(run_preset(seed, dev, target, eval_every, compile))
            say(_progress_line("rlcourse PPO (preset)", dev.type, preset_envs, runs[-1]))
        rows.append(BenchRow("rlcourse PPO (preset)", "quality", dev.type, preset_envs, runs))
    add_sb3_ratios(rows)
    return [dataclasses.asdict(row) for row in rows]


# --------------------------------------------------------------------------- the report
def _num(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "—"
    return f"{value:,.{digits}f}"


def _spread(values: list[float | None], digits: int = 0) -> str:
    """``mean`` for one seed; ``mean [min–max]`` for several; notes how many seeds had no value."""
    present = [v for v in values if v is not None]
    if not present:
        return "never" if values else "—"
    text = _num(statistics.fmean(present), digits)
    if len(present) > 1:
        text += f" [{_num(min(present), digits)}–{_num(max(present), digits)}]"
    if len(present) < len(values):
        text += f" ({len(present)}/{len(values)} seeds)"
    return text


def _final_eval(runs: list[dict[str, Any]]) -> str:
    means = [r["final_mean"] for r in runs]
    text = f"{statistics.fmean(means):.1f} ± {statistics.fmean(r['final_std'] for r in runs):.1f}"
    if len(runs) > 1:
        text += f" [{min(means):.1f}–{max(means):.1f}]"
    return text


def _ratio_cell(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}×"


def _progress_line(name: str, device: str, num_envs: int, run: dict[str, Any]) -> str:
    ttt = "not reached" if run["time_to_target_s"] is None else f"{run['time_to_target_s']:.2f} s / {run['steps_to_target']:,} steps"
    return (f"{name} {device} envs={num_envs} seed={run['seed']}: {run['steps_per_s']:,.0f} steps/s, "
            f"target {ttt}, final {run['final_mean']:.1f} ± {run['final_std']:.1f}")


def bench_meta(device: str, target: float, **settings: Any) -> dict[str, Any]:
    """Where and when: device description, date, library versions, CPU load, and the settings used."""
    import gymnasium

    dev = resolve_device(device)
    now = datetime.datetime.now().astimezone()
    meta = {
        "device": dev.type,
        "device_name": describe_device(dev),
        "date": now.date().isoformat(),
        "time": now.isoformat(timespec="seconds"),
        "torch": torch.__version__,
        "gymnasium": gymnasium.__version__,
        "python": platform.python_version(),
        "torch_threads": torch.get_num_threads(),
        "load_average": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "target": target,
    }
    try:
        import stable_baselines3

        meta["stable_baselines3"] = stable_baselines3.__version__
    except ImportError:  # pragma: no cover - a dependency, but keep the report working without it
        meta["stable_baselines3"] = None
    meta.update(settings)
    return meta


SPEED_HEADER = ("implementation", "device", "envs", "steps/s (training)", "setup s", "time to ≥{target} (s)",
                "steps to target", f"final eval ({FINAL_EVAL_EPISODES} ep)", "steps/s vs SB3", "time to target vs SB3")
QUALITY_HEADER = ("implementation", "device", "envs", "seed", f"final eval ({FINAL_EVAL_EPISODES} ep)",
                  "reached ≥{target}", "steps to target", "time to target (s)")


def _table(header: tuple[str, ...], lines: list[list[str]], target: float) -> list[str]:
    cells = [h.format(target=f"{target:g}") for h in header]
    return ["| " + " | ".join(cells) + " |", "|" + "---|" * len(cells)] + ["| " + " | ".join(line) + " |" for line in lines]


def _budget_text(max_steps: Any) -> str:
    return _num(max_steps) if isinstance(max_steps, (int, float)) else "max(300,000, 2,000 × envs)"


def render_markdown(rows: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    """The report: a header with the machine and settings, the speed table and, if run, the quality table."""
    target = meta["target"]
    out = [
        "# rlcourse bench: PPO on CartPole-v1",
        "",
        f"- device: {meta['device_name']} ({meta['device']})",
        f"- date: {meta['date']}; torch {meta['torch']}, stable-baselines3 {meta['stable_baselines3']}, "
        f"gymnasium {meta['gymnasium']}, Python {meta['python']}; 1-min load average {_num(meta.get('load_average'), 2)} at start, {_num(meta.get('load_average_end'), 2)} at end",
        f"- target: deterministic mean return ≥ {target:g} over {EVAL_EPISODES} episodes; seeds 0..{meta.get('seeds', 1) - 1}",
        f"- rlcourse settings: compile={bool(meta.get('compile'))}, CUDA graphs={meta['device'] == 'cuda'}, "
        f"TF32 matmuls={bool(meta.get('tf32'))}; SB3 runs on the CPU of the same machine",
    ]
    speed = [r for r in rows if r["suite"] == "speed"]
    if speed:
        lines = [[r["implementation"], r["device"], f"{r['num_envs']:,}", _spread([x["steps_per_s"] for x in r["runs"]]),
                  _spread([x["setup_s"] for x in r["runs"]], 2) if r["setup_s"] is not None else "—",
                  _spread([x["time_to_target_s"] for x in r["runs"]], 2), _spread([x["steps_to_target"] for x in r["runs"]]),
                  _final_eval(r["runs"]), _ratio_cell(r["speed_vs_sb3"]), _ratio_cell(r["time_to_target_vs_sb3"])]
                 for r in speed]
        out += ["", "## Speed", ""] + _table(SPEED_HEADER, lines, target) + [
            "",
            "steps/s: rlcourse = steady-state training throughput (a fixed number of iterations after warm-up, no "
            "evaluation); SB3 = env steps ÷ training time of its learning run. Times exclude evaluation. setup s = "
            "rlcourse's first iteration (compile / CUDA-graph capture), not counted in its time to target (its steps are). "
            "Both train their whole budget and are evaluated at the end: rlcourse "
            f"{_budget_text(meta.get('max_steps'))} steps with hyperparameters from `rlcourse.bench.large_batch_hparams`, "
            f"SB3 {_num(meta.get('sb3_max_steps'))} steps with RL Zoo's settings. Ratios: steps/s vs SB3 = ours ÷ SB3's; "
            "time to target vs SB3 = SB3's ÷ ours (> 1: we get there sooner). Several seeds: mean [min–max].",
        ]
    quality = [r for r in rows if r["suite"] == "quality"]
    if quality:
        lines = [[r["implementation"], r["device"], str(r["num_envs"]), str(x["seed"]),
                  f"{x['final_mean']:.1f} ± {x['final_std']:.1f}", "yes" if x["steps_to_target"] is not None else "no",
                  _num(x["steps_to_target"]), _num(x["time_to_target_s"], 2)]
                 for r in quality for x in r["runs"]]
        summary = [f"{r['implementation']}: reached {r['reached']}/{len(r['runs'])} seeds, final "
                   f"{_final_eval(r['runs'])}" for r in quality]
        out += ["", f"## Learning quality: RL Zoo settings, {RL_ZOO_STEPS:,} steps", ""] + _table(QUALITY_HEADER, lines, target)
        out += [""] + [f"- {line}" for line in summary]
    return "\n".join(out) + "\n"


def write_report(rows: list[dict[str, Any]], meta: dict[str, Any], out_dir: str | Path) -> tuple[Path, Path]:
    """Write ``<out_dir>/bench-<device>-<date>.md`` and ``.json``; returns both paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    slug = re.sub(r"[^A-Za-z0-9]+", "-", meta["device_name"].split(",")[0].split(" (")[0]).strip("-").lower()
    stem = out_dir / f"bench-{meta['device']}-{slug}-{meta['date']}"
    md_path, json_path = stem.with_suffix(".md"), stem.with_suffix(".json")
    md_path.write_text(render_markdown(rows, meta))
    json_path.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    return md_path, json_path


# --------------------------------------------------------------------------- the command
@click.command("bench")
@click.option("--suite", type=click.Choice(["cartpole", "dialogue", "agents"]), default="cartpole", show_default=True,
              help="cartpole: PPO vs SB3 on CartPole-v1; dialogue: rlcourse/SlotFilling-v0 (env, rule expert, PPO, SB3); "
                   "agents: every algorithm on its preset task, next to SB3's where SB3 has it.")
@click.option("--algo", "algos", multiple=True, help="agents suite: algorithms to run (default: all).")
@click.option("--nlu", "nlu_presets", multiple=True, help="dialogue suite: NLU presets of the PPO rows (default: clean, tcbot).")
@click.option("--env-num-envs", "env_num_envs", type=click.IntRange(min=1), multiple=True,
              help="dialogue suite: batch sizes of the raw env throughput rows (default: 4096 on CPU, 1048576 on CUDA).")
@click.option("--sb3-seeds", type=click.IntRange(min=0), default=1, show_default=True, help="dialogue suite: SB3 seeds (0: no SB3 row).")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True,
              help="Device of the rlcourse rows (SB3 always runs on the CPU).")
@click.option("--num-envs", "num_envs", type=click.IntRange(min=1), multiple=True,
              help="Parallel envs of an rlcourse row; repeat for several (default: 64 on CPU, 4096 and 262144 on CUDA).")
@click.option("--seeds", type=click.IntRange(min=1), default=None,
              help="Number of seeds, 0..N-1 (default: 1; 5 for --quality).")
@click.option("--target", type=float, default=475.0, show_default=True,
              help="Deterministic mean return that counts as solved.")
@click.option("--max-steps", type=click.IntRange(min=1), default=None,
              help="Env-step budget per rlcourse run (default: 20,000,000 on CUDA, 3,000,000 on CPU).")
@click.option("--sb3/--no-sb3", default=True, show_default=True, help="Include Stable-Baselines3's PPO.")
@click.option("--sb3-max-steps", type=click.IntRange(min=1), default=RL_ZOO_STEPS, show_default=True,
              help="SB3's env-step budget (RL Zoo's is 100,000).")
@click.option("--quality/--no-quality", default=False, show_default=True,
              help="Also run the learning-quality suite: the shipped preset (and SB3) for 100k steps per seed.")
@click.option("--eval-every", type=click.IntRange(min=1), default=None,
              help=f"Iterations (SB3: rollouts) between evaluations (default: about every {EVAL_INTERVAL_STEPS} env steps).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("bench_results"), show_default=True,
              help="Folder for the .md and .json reports.")
@click.option("--compile", "compile_", is_flag=True, help="Run rlcourse's hot functions through torch.compile.")
@click.option("--large-batch/--no-large-batch", "large_batch", default=None,
              help="agents suite: also run each algorithm with its large-batch GPU settings (default: on CUDA only).")
@click.option("--preset-rows/--no-preset-rows", "preset_rows", default=True, show_default=True,
              help="agents suite: run each algorithm with its shipped preset.")
@click.option("--tf32", is_flag=True, help="Let CUDA float32 matmuls use TF32 tensor cores (torch.backends.cuda.matmul.allow_tf32).")
def bench_command(suite: str, algos: tuple[str, ...], nlu_presets: tuple[str, ...], env_num_envs: tuple[int, ...], sb3_seeds: int, device: str,
                  num_envs: tuple[int, ...], seeds: int | None, target: float, max_steps: int | None,
                  sb3: bool, sb3_max_steps: int, quality: bool, eval_every: int | None, out: Path, compile_: bool,
                  large_batch: bool | None, preset_rows: bool, tf32: bool) -> None:
    """Benchmark rlcourse against Stable-Baselines3 (same process, same machine).

    The cartpole suite runs PPO on CartPole-v1; the dialogue suite measures rlcourse/SlotFilling-v0.
    Prints the device, the date and markdown tables, and writes <out>/bench-<device>-<...>-<date>.md and .json.
    """
    if suite == "agents":
        _agents_suite(device, algos, seeds, sb3_seeds if sb3 else 0, out, compile_, tf32, large_batch, preset_rows)
        return
    if suite == "dialogue":
        _dialogue_suite(device, nlu_presets, env_num_envs, sb3_seeds if sb3 else 0, num_envs, seeds, max_steps, out, compile_, tf32)
        return
    if not math.isfinite(target):
        raise click.BadParameter(f"must be a finite number, got {target!r}", param_hint="--target")
    dev = _bench_device(device, tf32)
    meta = bench_meta(device, target, seeds=seeds or 1, quality_seeds=(seeds or 5) if quality else None, num_envs=list(num_envs) or default_num_envs(dev),
                      max_steps=max_steps, sb3=sb3, sb3_max_steps=sb3_max_steps,
                      quality=quality, eval_every=eval_every, compile=compile_, tf32=tf32)
    click.echo(f"device: {meta['device_name']}")
    click.echo(f"date: {meta['date']}")
    rows = run_bench(device=device, num_envs=num_envs, seeds=seeds, target=target, max_steps=max_steps, sb3=sb3,
                     sb3_max_steps=sb3_max_steps, quality=quality, eval_every=eval_every, compile=compile_,
                     progress=lambda line: click.echo(line, err=True))
    meta["load_average_end"] = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    md_path, json_path = write_report(rows, meta, out)
    click.echo(render_markdown(rows, meta))
    click.echo(f"wrote {md_path} and {json_path}")


def _bench_device(device: str, tf32: bool) -> torch.device:
    """The ``--device`` option as a device (a click error when it is unusable), with TF32 set as asked."""
    try:
        dev = resolve_device(device)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--device") from None
    torch.backends.cuda.matmul.allow_tf32 = tf32
    return dev


def _finish_suite(suite: str, report: dict[str, Any], meta: dict[str, Any], render: Callable[[Any, Any], str],
                  out: Path) -> None:
    """Print a suite's markdown (``render(report, meta)``) and write it with the raw report to
    ``<out>/bench-<suite>-<device>-<date>.md/.json``."""
    meta["load_average_end"] = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    markdown = render(report, meta)
    out.mkdir(parents=True, exist_ok=True)
    slug = re.sub(r"[^A-Za-z0-9]+", "-", meta["device_name"].split(",")[0].split(" (")[0]).strip("-").lower()
    stem = out / f"bench-{suite}-{meta['device']}-{slug}-{meta['date']}"
    stem.with_suffix(".md").write_text(markdown)
    stem.with_suffix(".json").write_text(json.dumps({"meta": meta, **report}, indent=2))
    click.echo(markdown)
    click.echo(f"wrote {stem.with_suffix('.md')} and {stem.with_suffix('.json')}")


def _dialogue_suite(device: str, nlu_presets: tuple[str, ...], env_num_envs: tuple[int, ...], sb3_seeds: int,
                    num_envs: tuple[int, ...], seeds: int | None, max_steps: int | None, out: Path, compile_: bool,
                    tf32: bool) -> None:
    from rlcourse.bench_dialogue import render_dialogue_markdown, run_dialogue_bench
    from rlcourse.envs.dialogue.nlu import NLU_PRESETS

    for nlu in nlu_presets:
        if nlu not in NLU_PRESETS:
            raise click.BadParameter(f"unknown NLU preset {nlu!r}; choose from {', '.join(NLU_PRESETS)}", param_hint="--nlu")
    dev = _bench_device(device, tf32)
    batch_sizes = list(num_envs) or ([4096, 65536] if dev.type == "cuda" else [64])
    env_sizes = list(env_num_envs) or ([1 << 20] if dev.type == "cuda" else [4096])
    meta = bench_meta(device, 0.9, suite="dialogue", seeds=seeds or 5, num_envs=batch_sizes, env_num_envs=env_sizes,
                      nlu=list(nlu_presets) or ["clean", "tcbot"], sb3_seeds=sb3_seeds, max_steps=max_steps, compile=compile_, tf32=tf32)
    click.echo(f"device: {meta['device_name']}")
    click.echo(f"date: {meta['date']}")
    report = run_dialogue_bench(dev, batch_sizes, seeds or 5, list(nlu_presets) or ["clean", "tcbot"], env_sizes, max_steps,
                                sb3_seeds, compile_, say=lambda line: click.echo(line, err=True))
    _finish_suite("dialogue", report, meta, render_dialogue_markdown, out)


def _agents_suite(device: str, algos: tuple[str, ...], seeds: int | None, sb3_seeds: int, out: Path, compile_: bool,
                  tf32: bool, large_batch: bool | None, preset_rows: bool = True) -> None:
    from rlcourse.bench_agents import render_agents_markdown, run_agents_bench

    dev = _bench_device(device, tf32)
    large_batch = dev.type == "cuda" if large_batch is None else large_batch
    if not preset_rows and not large_batch:
        raise click.BadParameter("with --no-preset-rows there is nothing to run unless --large-batch is on "
                                 "(it is on by default on CUDA only)", param_hint="--no-preset-rows")
    meta = bench_meta(device, 0.0, suite="agents", algos=list(algos) or None, seeds=seeds or 5, sb3_seeds=sb3_seeds,
                      compile=compile_, tf32=tf32, large_batch=large_batch, preset_rows=preset_rows)
    click.echo(f"device: {meta['device_name']}")
    click.echo(f"date: {meta['date']}")
    report = run_agents_bench(dev, algos=list(algos) or None, seeds=seeds or 5, sb3_seeds=sb3_seeds, compile=compile_,
                              say=lambda line: click.echo(line, err=True), large_batch=large_batch, presets=preset_rows)
    _finish_suite("agents", report, meta, render_agents_markdown, out)
