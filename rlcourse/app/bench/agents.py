"""``rlcourse bench --suite agents``: every agent on its task, with SB3 side by side.

One line of the table per (algorithm, env, implementation), aggregated over seeds:

* **rlcourse** (:func:`rlcourse_run`): the agent built from the ``default`` preset of
  ``rlcourse/presets/<algo>.yml`` (its ``num_envs``, ``total_timesteps`` and hyperparameters), trained
  for the whole budget under :func:`~rlcourse.app.bench.harness.learn_to_target` (the env steps and
  training time at which a deterministic evaluation of 20 episodes first reaches the row's target;
  evaluation is paused out of the clock), a final deterministic evaluation of 100 episodes, then
  steady-state throughput on the same agent (:func:`~rlcourse.app.bench.harness.measure_throughput`:
  fixed iterations after a warm-up, no evaluation).
* **SB3** (:func:`sb3_run`), where Stable-Baselines3 has the algorithm (DQN, A2C, DDPG and PPO): RL
  Zoo's published hyperparameters and budget for that env (``sb3_zoo.yml``), timed with the same
  :class:`~rlcourse.app.bench.harness.TrainingClock`, evaluated at the same interval in env steps with
  ``evaluate_policy``, a final 100-episode evaluation, then steady-state throughput measured the same
  way (more ``learn`` on the trained model, after a warm-up). SB3 always runs on the CPU.
* **rlcourse (large batch)** (on by default on CUDA): the same runs with the row's large-batch preset
  variant (:attr:`AgentRow.large_batch`, e.g. ``large_batch_4096``): many envs and big update
  batches, the way a GPU wants it.

Each row's target: CartPole ≥ 475 (A2C: 500, RL Zoo's budget of 500k steps), Pendulum-v1 ≥ −200. A row
whose algorithm is not in :data:`rlcourse.agents.ALGOS` yet, that has no shipped preset for its env, or
that cannot run on the device (A3C's workers are CPU processes) is kept in the table as a skipped line
with the reason.

A3C: evaluation runs in the main process while the workers keep training, so its "steps to target"
may be a little early and its time to target a little short; its throughput is one ``learn`` call
timed between worker reports (spawning the workers is left out), not ``measure_throughput``,
which would time a fresh spawn for every call.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any, NamedTuple

import torch

from rlcourse.app.bench.harness import (
    default_eval_every,
    mean_present,
    measure_async_throughput,
    measure_throughput,
    run_row,
)
from rlcourse.app.bench.sb3 import SB3_ZOO, sb3_learn_to_target
from rlcourse.config import RUN_KEYS, load_preset
from rlcourse.device import resolve_device

Say = Callable[[str], None]


class AgentRow(NamedTuple):
    """Which algorithm is measured on which env, the deterministic mean return that counts as solved, and the
    preset variant of its large-batch row (None: no such row)."""

    algo: str
    env_id: str
    target: float
    large_batch: str | None = None


#: Every row of the suite, in table order. ``tests/test_bench_agents.py`` checks that every algorithm
#: in ``rlcourse.agents.ALGOS`` has one.
ROWS: tuple[AgentRow, ...] = (
    AgentRow("dqn", "rlcourse/CartPole-v1", 475.0, "large_batch_16"),
    AgentRow("rainbow", "rlcourse/CartPole-v1", 475.0, "large_batch_64"),
    AgentRow("a2c", "rlcourse/CartPole-v1", 500.0, "large_batch_1024"),
    AgentRow("reinforce", "rlcourse/CartPole-v1", 475.0, "large_batch_1024"),
    AgentRow("a3c", "rlcourse/CartPole-v1", 475.0),
    AgentRow("ddpg", "rlcourse/Pendulum-v1", -200.0, "large_batch_256"),
    AgentRow("ppo", "rlcourse/CartPole-v1", 475.0, "large_batch_4096"),
    AgentRow("pqn", "rlcourse/CartPole-v1", 475.0, "large_batch_4096"),
)

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


def large_batch_settings(row: AgentRow) -> dict[str, Any]:
    """The settings of a row's large-batch variant, keyed like a preset (run keys and hyperparameters)."""
    return load_preset(row.algo, row.env_id, row.large_batch)


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


def rlcourse_run(
    algo: str,
    env_id: str,
    seed: int,
    device: str | torch.device,
    target: float,
    compile: bool = False,
    budget: int | None = None,
    throughput_seconds: float = 2.0,
    settings: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One seed of an rlcourse row: the shipped preset (or ``settings``, keyed like a preset) trained for
    its budget (or ``budget`` env steps).

    Returns the per-seed measurements: ``steps_per_s`` (steady state), ``steps_to_target`` and
    ``time_to_target_s`` (None if never reached), ``final_mean``/``final_std`` over 100 deterministic
    episodes, and :func:`~rlcourse.app.bench.harness.learn_to_target`'s fields.
    """
    from rlcourse.agents import ALGOS

    if algo not in ALGOS:
        raise ValueError(f"unknown algorithm {algo!r}; rlcourse.agents.ALGOS has {', '.join(ALGOS)}")
    preset = settings if settings is not None else load_preset(algo, env_id)
    if not preset:
        raise ValueError(f"no preset for {env_id} in rlcourse/presets/{algo}.yml")
    hparams = {key: value for key, value in preset.items() if key not in RUN_KEYS}
    steps = int(budget or preset["total_timesteps"])
    agent = ALGOS[algo](
        env_id, num_envs=preset["num_envs"], device=device, seed=seed, compile=compile, preset=None, **hparams
    )

    def throughput(result: dict[str, Any]) -> tuple[float | None, int]:
        if ALGOS[algo].cpu_only:
            return measure_async_throughput(agent, throughput_seconds, result["train_steps_per_s"])
        return measure_throughput(agent, throughput_seconds)

    every = default_eval_every(agent.steps_per_iteration, steps)
    return run_row(agent, seed, steps, target, every, throughput)


# --------------------------------------------------------------------------- SB3
def sb3_run(
    algo: str,
    env_id: str | None,
    seed: int,
    budget: int | None = None,
    target: float | None = None,
    throughput_seconds: float = 2.0,
) -> dict[str, Any]:
    """One seed of an SB3 row: RL Zoo's settings for ``budget`` env steps (default: the Zoo's ``n_timesteps``).

    ``env_id`` is the Gymnasium id (default: the Zoo setup's); ``target`` defaults to the row's. The
    per-seed fields match :func:`rlcourse_run`'s; ``train_steps_per_s`` is over the whole run
    (including SB3's random warm-up steps), ``steps_per_s`` the steady state after it.
    """
    if algo not in SB3_ZOO:
        raise ValueError(f"SB3 has no counterpart here for {algo!r}; SB3 rows exist for {', '.join(SB3_ZOO)}")
    steps = int(budget or SB3_ZOO[algo].n_timesteps)
    target = _row_for(algo).target if target is None else target
    return sb3_learn_to_target(
        algo, env_id or SB3_ZOO[algo].env_id, seed, steps, target, throughput_seconds=throughput_seconds
    )


# --------------------------------------------------------------------------- the suite
def _make_row(
    row: AgentRow,
    implementation: str,
    device: str,
    num_envs: int | None,
    budget: int | None,
    runs: list[dict[str, Any]],
    note: str | None = None,
    workers: int | None = None,
) -> dict[str, Any]:
    return {
        "algo": row.algo,
        "env_id": row.env_id,
        "target": row.target,
        "implementation": implementation,
        "device": device,
        "num_envs": num_envs,
        "workers": workers,
        "budget": budget,
        "note": note,
        "runs": runs,
        "steps_per_s": mean_present([r["steps_per_s"] for r in runs]),
        "reached": sum(r["steps_to_target"] is not None for r in runs),
        "speed_vs_sb3": None,
    }


def _progress_line(name: str, target: float, run: dict[str, Any]) -> str:
    reached = (
        "not reached"
        if run["steps_to_target"] is None
        else f"{run['steps_to_target']:,} steps / {run['time_to_target_s']:.2f} s"
    )
    speed = "—" if run["steps_per_s"] is None else f"{run['steps_per_s']:,.0f}"
    return (
        f"{name} seed={run['seed']}: {speed} steps/s, to ≥{target:g}: {reached}, "
        f"final {run['final_mean']:.1f} ± {run['final_std']:.1f}"
    )


def run_agents_bench(
    device: str | torch.device = "auto",
    algos: list[str] | tuple[str, ...] | None = None,
    seeds: int = 5,
    sb3_seeds: int | None = None,
    compile: bool = False,
    say: Say | None = None,
    budget_scale: float = 1.0,
    budgets: dict[str, int] | None = None,
    sb3_budgets: dict[str, int] | None = None,
    throughput_seconds: float = 2.0,
    large_batch: bool | None = None,
    presets: bool = True,
) -> dict[str, list[dict[str, Any]]]:
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
        large_batch: also run each algorithm with its large-batch preset variant (:attr:`AgentRow.large_batch`) (default: on CUDA only),
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
        raise ValueError(
            "nothing to run for rlcourse: the preset rows are off and so are the large-batch rows "
            "(they are on by default on CUDA only; turn them on with large_batch=True / --large-batch)"
        )
    budgets, sb3_budgets = budgets or {}, sb3_budgets or {}

    def seeded(count: int, label: str, target: float, run: Callable[..., dict[str, Any]]) -> list[dict[str, Any]]:
        """``run(seed=seed)`` for seeds 0..count-1, saying how each went."""
        runs = []
        for seed in range(count):
            runs.append(run(seed=seed))
            say(_progress_line(label, target, runs[-1]))
        return runs

    rows: list[dict[str, Any]] = []
    for row in (r for r in ROWS if r.algo in names):
        reason = skip_reason(row.algo, row.env_id, dev)
        if reason is not None:
            rows.append(_make_row(row, RLCOURSE_IMPLEMENTATION, dev.type, None, None, [], note=reason))
            say(f"{row.algo} on {row.env_id}: {reason}")
        else:
            kinds = []
            if presets:
                kinds.append((RLCOURSE_IMPLEMENTATION, "rlcourse", load_preset(row.algo, row.env_id)))
            if large_batch and row.large_batch is not None:
                kinds.append((LARGE_BATCH_IMPLEMENTATION, "large batch", large_batch_settings(row)))
            for implementation, label, settings in kinds:
                budget = budgets.get(row.algo) or _scaled(settings["total_timesteps"], budget_scale)
                run = partial(
                    rlcourse_run,
                    row.algo,
                    row.env_id,
                    device=dev,
                    target=row.target,
                    compile=compile,
                    budget=budget,
                    throughput_seconds=throughput_seconds,
                    settings=settings,
                )
                runs = seeded(seeds, f"{row.algo} {label} {dev.type}", row.target, run)
                rows.append(
                    _make_row(
                        row,
                        implementation,
                        dev.type,
                        settings["num_envs"],
                        budget,
                        runs,
                        workers=settings.get("num_workers"),
                    )
                )
        if sb3_seeds and row.algo in SB3_ZOO:
            setup = SB3_ZOO[row.algo]
            budget = sb3_budgets.get(row.algo) or _scaled(setup.n_timesteps, budget_scale)
            run = partial(
                sb3_run, row.algo, setup.env_id, budget=budget, target=row.target, throughput_seconds=throughput_seconds
            )
            runs = seeded(sb3_seeds, f"{row.algo} SB3 cpu", row.target, run)
            rows.append(
                _make_row(row._replace(env_id=setup.env_id), SB3_IMPLEMENTATION, "cpu", setup.n_envs, budget, runs)
            )
    _add_speed_ratios(rows)
    return {"rows": rows}


def _add_speed_ratios(rows: list[dict[str, Any]]) -> None:
    """Each rlcourse row's steps/s ÷ the steps/s of the SB3 row of the same algorithm."""
    sb3 = {r["algo"]: r["steps_per_s"] for r in rows if r["implementation"] == SB3_IMPLEMENTATION}
    for row in rows:
        theirs = sb3.get(row["algo"])
        if row["implementation"] != SB3_IMPLEMENTATION and row["steps_per_s"] and theirs:
            row["speed_vs_sb3"] = row["steps_per_s"] / theirs


__all__ = [
    "ROWS",
    "AgentRow",
    "large_batch_settings",
    "rlcourse_run",
    "run_agents_bench",
    "sb3_run",
    "skip_reason",
]
