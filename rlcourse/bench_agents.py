"""``rlcourse bench --suite agents``: every agent on its task, with SB3 side by side (issue 4).

One line of the table per (algorithm, env, implementation), aggregated over seeds:

* **rlcourse** (:func:`rlcourse_run`): the agent built from ``rlcourse/presets/<algo>.yml`` (its
  ``num_envs``, ``total_timesteps`` and hyperparameters), trained for the whole budget under
  :func:`rlcourse.bench.learn_to_target` (the env steps and training time at which a deterministic
  evaluation of 20 episodes first reaches the row's target; evaluation is paused out of the clock),
  a final deterministic evaluation of 100 episodes, then steady-state throughput on the same agent
  (:func:`rlcourse.bench.measure_throughput`: fixed iterations after a warm-up, no evaluation).
* **SB3** (:func:`sb3_run`), where Stable-Baselines3 has the algorithm (DQN, A2C, DDPG and PPO): RL
  Zoo's published hyperparameters and budget for that env, timed with the same
  :class:`~rlcourse.bench.TrainingClock`, evaluated at the same interval in env steps with
  ``evaluate_policy``, a final 100-episode evaluation, then steady-state throughput measured the same
  way (more ``learn`` on the trained model, after a warm-up). SB3 always runs on the CPU.

Each row's target is the issue's: CartPole ≥ 475 (A2C: 500, RL Zoo's budget of 500k steps),
Pendulum-v1 ≥ −200. A row whose algorithm is not in :data:`rlcourse.agents.ALGOS` yet, that has no
shipped preset for its env, or that cannot run on the device (A3C's workers are CPU processes) is
kept in the table as a skipped line with the reason.

* **rlcourse (large batch)** (on by default on CUDA): the same runs with :data:`LARGE_BATCH`'s settings,
  many envs and big update batches, the way a GPU wants it.

A3C: evaluation runs in the main process while the workers keep training, so its "steps to target"
may be a little early and its time to target a little short; its throughput is one ``learn`` call
timed between worker reports (spawning the workers is left out), not :func:`measure_throughput`,
which would time a fresh spawn for every call.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import torch

from rlcourse.bench import (
    EVAL_EPISODES,
    EVAL_INTERVAL_STEPS,
    FINAL_EVAL_EPISODES,
    MAX_EVALS_PER_RUN,
    THROUGHPUT_MIN_ITERATIONS,
    THROUGHPUT_WARMUP_ITERATIONS,
    TrainingClock,
    _learn,
    _now,
    _sb3_watcher,
    _spread,
    default_eval_every,
    large_batch_hparams,
    learn_to_target,
    measure_throughput,
)
from rlcourse.config import RUN_KEYS, load_preset
from rlcourse.device import resolve_device

Say = Callable[[str], None]


class AgentRow(NamedTuple):
    """Which algorithm is measured on which env, and the deterministic mean return that counts as solved."""

    algo: str
    env_id: str
    target: float


#: Every row of the suite, in table order. ``tests/test_bench_agents.py`` checks that every algorithm
#: in ``rlcourse.agents.ALGOS`` has one.
ROWS: tuple[AgentRow, ...] = (
    AgentRow("dqn", "rlcourse/CartPole-v1", 475.0),
    AgentRow("rainbow", "rlcourse/CartPole-v1", 475.0),
    AgentRow("a2c", "rlcourse/CartPole-v1", 500.0),
    AgentRow("reinforce", "rlcourse/CartPole-v1", 475.0),
    AgentRow("a3c", "rlcourse/CartPole-v1", 475.0),
    AgentRow("ddpg", "rlcourse/Pendulum-v1", -200.0),
    AgentRow("ppo", "rlcourse/CartPole-v1", 475.0),
)

class ZooSetup(NamedTuple):
    """An SB3 counterpart: the Gymnasium env, RL Zoo's env count, budget and hyperparameters."""

    sb3_class: str
    env_id: str
    n_envs: int
    n_timesteps: int
    hparams: dict[str, Any]


#: SB3's side of a row, with RL Zoo's hyperparameters (``hyperparams/<algo>.yml``) for the env. Learning
#: rates and clip ranges written ``lin_x`` in the Zoo are ``("linear", x)``; ``noise_std`` becomes a
#: ``NormalActionNoise`` of that σ per action dimension.
SB3_ZOO: dict[str, ZooSetup] = {
    "dqn": ZooSetup("DQN", "CartPole-v1", 1, 50_000, {
        "learning_rate": 2.3e-3, "batch_size": 64, "buffer_size": 100_000, "learning_starts": 1000, "gamma": 0.99,
        "target_update_interval": 10, "train_freq": 256, "gradient_steps": 128, "exploration_fraction": 0.16,
        "exploration_final_eps": 0.04, "policy_kwargs": {"net_arch": [256, 256]}}),
    "a2c": ZooSetup("A2C", "CartPole-v1", 8, 500_000, {"ent_coef": 0.0}),
    "ddpg": ZooSetup("DDPG", "Pendulum-v1", 1, 20_000, {
        "learning_rate": 1e-3, "gamma": 0.98, "buffer_size": 200_000, "learning_starts": 10_000, "noise_std": 0.1,
        "train_freq": 1, "gradient_steps": 1, "policy_kwargs": {"net_arch": [400, 300]}}),
    "ppo": ZooSetup("PPO", "CartPole-v1", 8, 100_000, {
        "n_steps": 32, "batch_size": 256, "gae_lambda": 0.8, "gamma": 0.98, "n_epochs": 20, "ent_coef": 0.0,
        "learning_rate": ("linear", 1e-3), "clip_range": ("linear", 0.2)}),
}

#: The large-batch rows (``--large-batch``, on by default on CUDA): each algorithm with many envs and
#: big update batches, the way a GPU wants it, trained on the same task to the same target. Settings
#: were picked by a sweep of a few candidates per algorithm on an NVIDIA H200 (2026-11-21, before the
#: optimizer-state fix: to be swept again), for the shortest wall time to the target; keys as in a preset.
#: PPO's are the cartpole suite's 4,096-env ones.
LARGE_BATCH: dict[str, dict[str, Any]] = {
    "dqn": {"num_envs": 16, "total_timesteps": 200_000, "learning_rate": 2.3e-3, "anneal_lr": True, "batch_size": 512,
            "buffer_size": 100_000, "learning_starts": 1000, "gamma": 0.98, "target_update_interval": 256, "train_freq": 16,
            "gradient_steps": 64, "exploration_fraction": 0.16, "exploration_final_eps": 0.04, "net_arch": [256, 256]},
    "rainbow": {"num_envs": 64, "total_timesteps": 300_000, "learning_rate": 1e-3, "anneal_lr": True, "batch_size": 1024,
                "buffer_size": 100_000, "learning_starts": 5000, "target_update_interval": 64, "train_freq": 4,
                "gradient_steps": 16, "net_arch": [256, 256], "v_min": 0.0, "v_max": 100.0},
    "a2c": {"num_envs": 1024, "total_timesteps": 10_000_000, "n_steps": 8, "optimizer": "adam", "learning_rate": 3e-3,
            "anneal_lr": True, "ent_coef": 0.0},
    "reinforce": {"num_envs": 1024, "total_timesteps": 20_000_000, "n_steps": 64, "baseline": "value",
                  "learning_rate": 3e-3, "anneal_lr": True},
    "ddpg": {"num_envs": 256, "total_timesteps": 1_000_000, "learning_rate": 1e-3, "net_arch": [400, 300], "gamma": 0.98,
             "buffer_size": 1_000_000, "learning_starts": 10_000, "action_noise": "normal", "noise_std": 0.1,
             "train_freq": 1, "gradient_steps": 2, "batch_size": 512},
    "ppo": {"num_envs": 4096, "total_timesteps": 20_000_000, **large_batch_hparams(4096)},
}

SB3_IMPLEMENTATION = "SB3 (RL Zoo)"
RLCOURSE_IMPLEMENTATION = "rlcourse (preset)"
LARGE_BATCH_IMPLEMENTATION = "rlcourse (large batch)"


def _row_for(algo: str) -> AgentRow:
    for row in ROWS:
        if row.algo == algo:
            return row
    raise ValueError(f"unknown algorithm {algo!r} for the agents bench; choose from {', '.join(r.algo for r in ROWS)}")


def _scaled(steps: int, scale: float) -> int:
    return max(1, round(steps * scale))


# --------------------------------------------------------------------------- rlcourse
def skip_reason(algo: str, env_id: str, device: torch.device) -> str | None:
    """Why a row cannot run here (algorithm not in ``ALGOS`` yet, no preset, wrong device), or None."""
    from rlcourse.agents import ALGOS

    if algo not in ALGOS:
        return f"{algo} is not in rlcourse.agents.ALGOS yet: skipped"
    if not load_preset(algo, env_id):
        return f"no preset for {env_id} in rlcourse/presets/{algo}.yml: skipped"
    if ALGOS[algo].cpu_only and device.type != "cpu":
        return f"{algo} runs its workers as CPU processes only: skipped on {device.type} (see the CPU table)"
    return None


def _async_throughput(agent: Any, seconds: float, pace: float | None) -> tuple[float | None, int]:
    """A3C's steady-state steps/s: one ``learn`` of about ``seconds`` at ``pace``, timed between worker reports.

    The first ``2 × num_workers`` reports are left out as warm-up (the workers start one by one).
    Returns ``(steps_per_s, timed_reports)``.
    """
    marks: list[tuple[float, int]] = []
    workers = agent.config.num_workers
    steps = max(int(seconds * (pace or 0.0)), 50 * workers * agent.steps_per_iteration)
    _learn(agent, steps, reset_num_timesteps=False,
           callbacks=[lambda a: marks.append((_now(a.device), a.num_timesteps))])
    if len(marks) < 2:
        return None, 0
    skip = min(len(marks) - 2, 2 * workers)
    (t0, s0), (t1, s1) = marks[skip], marks[-1]
    return (s1 - s0) / max(t1 - t0, 1e-9), len(marks) - 1 - skip


def rlcourse_run(algo: str, env_id: str, seed: int, device: str | torch.device, target: float, compile: bool = False,
                 budget: int | None = None, throughput_seconds: float = 2.0,
                 settings: dict[str, Any] | None = None) -> dict[str, Any]:
    """One seed of an rlcourse row: the shipped preset (or ``settings``, keyed like a preset) trained for
    its budget (or ``budget`` env steps).

    Returns the per-seed measurements: ``steps_per_s`` (steady state), ``steps_to_target`` and
    ``time_to_target_s`` (None if never reached), ``final_mean``/``final_std`` over 100 deterministic
    episodes, and :func:`~rlcourse.bench.learn_to_target`'s fields.
    """
    from rlcourse.agents import ALGOS

    if algo not in ALGOS:
        raise ValueError(f"unknown algorithm {algo!r}; rlcourse.agents.ALGOS has {', '.join(ALGOS)}")
    preset = settings if settings is not None else load_preset(algo, env_id)
    if not preset:
        raise ValueError(f"no preset for {env_id} in rlcourse/presets/{algo}.yml")
    hparams = {key: value for key, value in preset.items() if key not in RUN_KEYS}
    steps = int(budget or preset["total_timesteps"])
    agent = ALGOS[algo](env_id, num_envs=preset["num_envs"], device=device, seed=seed, compile=compile, **hparams)
    result = learn_to_target(agent, steps, target, default_eval_every(agent.steps_per_iteration, steps))
    final = agent.evaluate(n_episodes=FINAL_EVAL_EPISODES, deterministic=True)
    if ALGOS[algo].cpu_only:
        steps_per_s, iterations = _async_throughput(agent, throughput_seconds, result["train_steps_per_s"])
    else:
        steps_per_s, iterations = measure_throughput(agent, throughput_seconds)
    return {"seed": seed, "steps_per_s": steps_per_s, "throughput_iterations": iterations, **result,
            "final_mean": final["mean_reward"], "final_std": final["std_reward"]}


# --------------------------------------------------------------------------- SB3
def _sb3_model(algo: str, env: Any, seed: int) -> Any:
    """SB3's model for ``algo`` on ``env`` with RL Zoo's hyperparameters (CPU)."""
    import numpy as np
    import stable_baselines3
    from stable_baselines3.common.noise import NormalActionNoise
    from stable_baselines3.common.utils import LinearSchedule

    setup = SB3_ZOO[algo]
    kwargs: dict[str, Any] = {}
    for key, value in setup.hparams.items():
        if key == "noise_std":
            dims = env.action_space.shape[-1]
            kwargs["action_noise"] = NormalActionNoise(np.zeros(dims), value * np.ones(dims))
        elif isinstance(value, tuple) and value[0] == "linear":
            kwargs[key] = LinearSchedule(value[1], 0.0, 1.0)
        else:
            kwargs[key] = value
    return getattr(stable_baselines3, setup.sb3_class)("MlpPolicy", env, device="cpu", seed=seed, verbose=0, **kwargs)


def _sb3_rollout_steps(model: Any) -> int:
    """Env steps (over all envs) SB3 collects between two updates: ``n_steps`` or ``train_freq`` per env."""
    from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm

    # (Not hasattr(model, "n_steps"): SB3's DQN has one too, for n-step returns.)
    per_env = model.n_steps if isinstance(model, OnPolicyAlgorithm) else model.train_freq.frequency
    return per_env * model.n_envs


def sb3_throughput(model: Any, seconds: float) -> tuple[float, int]:
    """SB3's steady-state steps/s, measured as :func:`~rlcourse.bench.measure_throughput` does ours.

    Warm-up rollouts, then one ``learn`` of a number of rollouts fixed from the warm-up's pace
    (at least :data:`~rlcourse.bench.THROUGHPUT_MIN_ITERATIONS`). Returns ``(steps_per_s, rollouts)``.
    """
    chunk = _sb3_rollout_steps(model)
    start = time.perf_counter()
    model.learn(THROUGHPUT_WARMUP_ITERATIONS * chunk, reset_num_timesteps=False)
    pace = (time.perf_counter() - start) / THROUGHPUT_WARMUP_ITERATIONS
    rollouts = max(THROUGHPUT_MIN_ITERATIONS, math.ceil(seconds / max(pace, 1e-9)))
    before = model.num_timesteps
    start = time.perf_counter()
    model.learn(rollouts * chunk, reset_num_timesteps=False)
    return (model.num_timesteps - before) / (time.perf_counter() - start), rollouts


def sb3_run(algo: str, env_id: str | None, seed: int, budget: int | None = None, target: float | None = None,
            throughput_seconds: float = 2.0) -> dict[str, Any]:
    """One seed of an SB3 row: RL Zoo's settings for ``budget`` env steps (default: the Zoo's ``n_timesteps``).

    ``env_id`` is the Gymnasium id (default: the Zoo setup's); ``target`` defaults to the row's. The
    per-seed fields match :func:`rlcourse_run`'s; ``train_steps_per_s`` is over the whole run
    (including SB3's random warm-up steps), ``steps_per_s`` the steady state after it.
    """
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.evaluation import evaluate_policy

    if algo not in SB3_ZOO:
        raise ValueError(f"SB3 has no counterpart here for {algo!r}; SB3 rows exist for {', '.join(SB3_ZOO)}")
    setup = SB3_ZOO[algo]
    env_id = env_id or setup.env_id
    target = _row_for(algo).target if target is None else target
    steps = int(budget or setup.n_timesteps)
    env = make_vec_env(env_id, n_envs=setup.n_envs, seed=seed)
    eval_env = make_vec_env(env_id, n_envs=EVAL_EPISODES, seed=seed + 1_000_003)
    model = _sb3_model(algo, env, seed)
    every = default_eval_every(_sb3_rollout_steps(model), steps)
    clock = TrainingClock(torch.device("cpu"), target)
    model.learn(steps, callback=_sb3_watcher(clock, eval_env, every))
    steps_trained = int(model.num_timesteps)
    final_mean, final_std = evaluate_policy(model, eval_env, n_eval_episodes=FINAL_EVAL_EPISODES, deterministic=True)
    steps_per_s, rollouts = sb3_throughput(model, throughput_seconds)
    env.close()
    eval_env.close()
    return {"seed": seed, "steps_per_s": steps_per_s, "throughput_iterations": rollouts, "setup_s": None,
            "train_s": clock.elapsed, "train_steps_per_s": steps_trained / clock.elapsed if clock.elapsed > 0 else None,
            "time_to_target_s": clock.time_to_target, "steps_to_target": clock.steps_to_target,
            "steps_trained": steps_trained, "eval_every": every,
            "final_mean": float(final_mean), "final_std": float(final_std)}


# --------------------------------------------------------------------------- the suite
def _mean(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.fmean(present) if present else None


def _make_row(row: AgentRow, implementation: str, device: str, num_envs: int | None, budget: int | None,
              runs: list[dict[str, Any]], note: str | None = None, workers: int | None = None) -> dict[str, Any]:
    return {"algo": row.algo, "env_id": row.env_id, "target": row.target, "implementation": implementation,
            "device": device, "num_envs": num_envs, "workers": workers, "budget": budget, "note": note, "runs": runs,
            "steps_per_s": _mean([r["steps_per_s"] for r in runs]),
            "reached": sum(r["steps_to_target"] is not None for r in runs),
            "speed_vs_sb3": None}


def _progress_line(name: str, target: float, run: dict[str, Any]) -> str:
    reached = ("not reached" if run["steps_to_target"] is None
               else f"{run['steps_to_target']:,} steps / {run['time_to_target_s']:.2f} s")
    speed = "—" if run["steps_per_s"] is None else f"{run['steps_per_s']:,.0f}"
    return (f"{name} seed={run['seed']}: {speed} steps/s, to ≥{target:g}: {reached}, "
            f"final {run['final_mean']:.1f} ± {run['final_std']:.1f}")


def run_agents_bench(device: str | torch.device = "auto", algos: list[str] | tuple[str, ...] | None = None,
                     seeds: int = 5, sb3_seeds: int | None = None, compile: bool = False, say: Say | None = None,
                     budget_scale: float = 1.0, budgets: dict[str, int] | None = None,
                     sb3_budgets: dict[str, int] | None = None,
                     throughput_seconds: float = 2.0, large_batch: bool | None = None,
                     presets: bool = True) -> dict[str, list[dict[str, Any]]]:
    """Run the agents suite; returns ``{"rows": [...]}`` as plain dicts (JSON-ready).

    Args:
        device: device of the rlcourse rows (SB3 always runs on the CPU).
        algos: which rows to run, by algorithm name (default: every row of :data:`ROWS`, in its order);
            an unknown name is a ``ValueError``.
        seeds: rlcourse seeds ``0..seeds-1`` per row.
        sb3_seeds: SB3 seeds per row that has an SB3 counterpart (default: ``seeds``; 0: no SB3 rows).
        compile: build the rlcourse agents with ``compile=True``.
        say: called with a line of text as each run finishes.
        budget_scale: multiplies every budget (the preset's ``total_timesteps``, the Zoo's ``n_timesteps``);
            ``budgets`` / ``sb3_budgets`` (algo -> env steps) override it per row.
        throughput_seconds: about how long each steady-state throughput measurement runs.
        large_batch: also run each algorithm with its :data:`LARGE_BATCH` settings (default: on CUDA only),
            for the same seeds; ``budget_scale`` and ``budgets`` apply to these rows too.
        presets: run the shipped-preset rows (False: only the large-batch and SB3 rows).

    Each row: ``algo``, ``env_id``, ``target``, ``implementation``, ``device``, ``num_envs``, ``budget``,
    ``workers`` (A3C's worker processes, each with ``num_envs`` envs; else None),
    ``note`` (why it was skipped, else None), ``runs`` (per-seed dicts of :func:`rlcourse_run` /
    :func:`sb3_run`), ``steps_per_s`` (mean), ``reached`` (seeds that reached the target) and
    ``speed_vs_sb3`` (rlcourse rows: our steps/s ÷ SB3's on the same algorithm).
    """
    say = say or (lambda line: None)
    dev = resolve_device(device)
    names = [row.algo for row in ROWS] if algos is None else list(algos)
    for name in names:
        _row_for(name)  # an unknown name fails before anything runs
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise ValueError(f"seeds must be a positive integer, got {seeds!r}")
    sb3_seeds = seeds if sb3_seeds is None else sb3_seeds
    large_batch = dev.type == "cuda" if large_batch is None else large_batch
    if not presets and not large_batch:
        raise ValueError("nothing to run for rlcourse: the preset rows are off and so are the large-batch rows "
                         "(they are on by default on CUDA only; turn them on with large_batch=True / --large-batch)")
    budgets, sb3_budgets = budgets or {}, sb3_budgets or {}
    rows: list[dict[str, Any]] = []
    for row in (r for r in ROWS if r.algo in names):
        reason = skip_reason(row.algo, row.env_id, dev)
        if reason is not None:
            rows.append(_make_row(row, RLCOURSE_IMPLEMENTATION, dev.type, None, None, [], note=reason))
            say(f"{row.algo} on {row.env_id}: {reason}")
        else:
            if presets:
                preset = load_preset(row.algo, row.env_id)
                budget = budgets.get(row.algo) or _scaled(preset["total_timesteps"], budget_scale)
                runs = []
                for seed in range(seeds):
                    runs.append(rlcourse_run(row.algo, row.env_id, seed, dev, row.target, compile, budget, throughput_seconds))
                    say(_progress_line(f"{row.algo} rlcourse {dev.type}", row.target, runs[-1]))
                rows.append(_make_row(row, RLCOURSE_IMPLEMENTATION, dev.type, preset["num_envs"], budget, runs,
                                      workers=preset.get("num_workers")))
            if large_batch and row.algo in LARGE_BATCH:
                settings = LARGE_BATCH[row.algo]
                budget = budgets.get(row.algo) or _scaled(settings["total_timesteps"], budget_scale)
                runs = []
                for seed in range(seeds):
                    runs.append(rlcourse_run(row.algo, row.env_id, seed, dev, row.target, compile, budget,
                                             throughput_seconds, settings=settings))
                    say(_progress_line(f"{row.algo} large batch {dev.type}", row.target, runs[-1]))
                rows.append(_make_row(row, LARGE_BATCH_IMPLEMENTATION, dev.type, settings["num_envs"], budget, runs))
        if sb3_seeds and row.algo in SB3_ZOO:
            setup = SB3_ZOO[row.algo]
            budget = sb3_budgets.get(row.algo) or _scaled(setup.n_timesteps, budget_scale)
            runs = []
            for seed in range(sb3_seeds):
                runs.append(sb3_run(row.algo, setup.env_id, seed, budget, row.target, throughput_seconds))
                say(_progress_line(f"{row.algo} SB3 cpu", row.target, runs[-1]))
            rows.append(_make_row(row._replace(env_id=setup.env_id), SB3_IMPLEMENTATION, "cpu", setup.n_envs, budget, runs))
    _add_speed_ratios(rows)
    return {"rows": rows}


def _add_speed_ratios(rows: list[dict[str, Any]]) -> None:
    """Each rlcourse row's steps/s ÷ the steps/s of the SB3 row of the same algorithm."""
    sb3 = {r["algo"]: r["steps_per_s"] for r in rows if r["implementation"] == SB3_IMPLEMENTATION}
    for row in rows:
        theirs = sb3.get(row["algo"])
        if row["implementation"] != SB3_IMPLEMENTATION and row["steps_per_s"] and theirs:
            row["speed_vs_sb3"] = row["steps_per_s"] / theirs


# --------------------------------------------------------------------------- the report
HEADER = ("algorithm", "env", "target", "implementation", "device", "envs", "seeds", "steps/s",
          "steps to target (reached)", "time to target (s)", f"final eval ({FINAL_EVAL_EPISODES} ep)", "budget",
          "steps/s vs SB3")


def _table_line(row: dict[str, Any]) -> list[str]:
    runs = row["runs"]
    head = [row["algo"], row["env_id"], f"≥ {row['target']:g}", row["implementation"], row["device"]]
    if not runs:
        return head + ["—", "0", f"skipped: {row['note']}" if row["note"] else "—"] + ["—"] * 5
    reached = [r for r in runs if r["steps_to_target"] is not None]
    to_target = f"{_spread([r['steps_to_target'] for r in reached]) if reached else 'never'} ({len(reached)}/{len(runs)})"
    envs = f"{row['num_envs']:,}" if row.get("workers") is None else f"{row['workers']} × {row['num_envs']:,}"
    return head + [
        envs, str(len(runs)), _spread([r["steps_per_s"] for r in runs]), to_target,
        _spread([r["time_to_target_s"] for r in reached], 2) if reached else "—",
        _spread([r["final_mean"] for r in runs], 1), f"{row['budget']:,}",
        "—" if row["speed_vs_sb3"] is None else f"{row['speed_vs_sb3']:.2f}×",
    ]


def render_agents_markdown(report: dict[str, list[dict[str, Any]]], meta: dict[str, Any]) -> str:
    """The suite's report: a header with the machine and settings, one table, and notes on skipped rows."""
    start, end = meta.get("load_average"), meta.get("load_average_end")
    load = f"{'—' if start is None else f'{start:.2f}'} at start, {'—' if end is None else f'{end:.2f}'} at end"
    out = [
        "# rlcourse bench: every agent on its task, SB3 side by side",
        "",
        (f"- device: {meta['device_name']} ({meta['device']}); date: {meta['date']}; torch {meta['torch']}, "
         f"stable-baselines3 {meta.get('stable_baselines3')}, gymnasium {meta.get('gymnasium')}; "
         f"compile={bool(meta.get('compile'))}, TF32={bool(meta.get('tf32'))}"),
        f"- 1-min load average: {load}",
        (f"- target: deterministic mean return over {EVAL_EPISODES} episodes, evaluated about every "
         f"{EVAL_INTERVAL_STEPS:,} env steps (at most {MAX_EVALS_PER_RUN} times a run); final eval: "
         f"{FINAL_EVAL_EPISODES} deterministic episodes after the whole budget"),
        "",
        "| " + " | ".join(HEADER) + " |",
        "|" + "---|" * len(HEADER),
    ]
    out += ["| " + " | ".join(_table_line(row)) + " |" for row in report["rows"]]
    out += [
        "",
        ("steps/s: steady-state training throughput of the trained agent (a fixed number of iterations or rollouts "
         "after a warm-up, no evaluation), for both implementations; SB3 runs on the CPU. Times to target exclude "
         "evaluation. rlcourse rows use the shipped preset (`rlcourse/presets/<algo>.yml`: envs, budget, "
         "hyperparameters); SB3 rows use RL Zoo's hyperparameters and budget for the env. steps/s vs SB3 = ours ÷ "
         "SB3's on the same algorithm. Several seeds: mean [min–max]; (k/n) = seeds that reached the target."),
    ]
    from rlcourse.agents import ALGOS

    if any(row["runs"] and row["algo"] in ALGOS and ALGOS[row["algo"]].cpu_only for row in report["rows"]):
        out.append("A3C: evaluations run while its workers keep training, so its steps and time to target can read "
                   "slightly early; its steps/s is one training call timed between worker reports.")
    if any(row["implementation"] == LARGE_BATCH_IMPLEMENTATION for row in report["rows"]):
        out.append("rlcourse (large batch): the same task and target with many envs and big update batches "
                   "(`rlcourse.bench_agents.LARGE_BATCH`), the way a GPU wants it; its budget is in env steps too.")
    notes = [f"- {row['algo']} on {row['env_id']}: {row['note']}" for row in report["rows"] if row["note"]]
    if notes:
        out += ["", "Skipped:"] + notes
    return "\n".join(out) + "\n"


__all__ = ["LARGE_BATCH", "ROWS", "SB3_ZOO", "AgentRow", "ZooSetup", "render_agents_markdown", "rlcourse_run", "run_agents_bench",
           "sb3_run", "sb3_throughput", "skip_reason"]
