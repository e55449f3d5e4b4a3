"""``rlcourse bench`` (``--suite cartpole``): SB3's PPO and rlcourse's PPO on CartPole-v1, in one process on one machine.

What is measured (see :mod:`~rlcourse.app.bench.harness` for the clocks):

* **SB3**: ``stable_baselines3.PPO`` with the RL Zoo CartPole-v1 hyperparameters on 8 Gymnasium
  envs on the CPU, for the RL Zoo budget (100k steps).
* **rlcourse**: :class:`rlcourse.agents.PPO` on ``rlcourse/CartPole-v1`` with the ``large_batch_*``
  variant of ``rlcourse/presets/ppo.yml`` for each ``num_envs`` (:func:`large_batch_hparams`), trained
  until a deterministic evaluation reaches the target (or the budget runs out), then a steady-state
  **throughput** measurement on the same agent: a fixed number of iterations with no evaluation. That
  throughput is the headline steps/s.
* **quality** (optional): the shipped ``default`` preset and SB3's RL Zoo run, 100k steps each, over
  several seeds: does each seed reach the target, and how good is the final policy.
"""

from __future__ import annotations

import dataclasses
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from rlcourse.app.bench.harness import (
    EVAL_EPISODES,
    FINAL_EVAL_EPISODES,
    PPO_TIERS_BY_ENV,
    default_eval_every,
    mean_present,
    measure_throughput,
    run_row,
    tier_hparams,
)
from rlcourse.app.bench.report import num, ratio_cell, spread, table
from rlcourse.app.bench.sb3 import SB3_ZOO, sb3_learn_to_target
from rlcourse.config import load_preset
from rlcourse.device import resolve_device

ENV_ID = "rlcourse/CartPole-v1"
GYM_ENV_ID = SB3_ZOO["ppo"].env_id
#: SB3 envs and budget: RL Zoo's CartPole-v1 run.
SB3_NUM_ENVS = SB3_ZOO["ppo"].n_envs
RL_ZOO_STEPS = SB3_ZOO["ppo"].n_timesteps
#: Which ``ppo.yml`` variant a row of ``num_envs`` envs runs: the first tier that holds it.
LARGE_BATCH_TIERS = PPO_TIERS_BY_ENV[ENV_ID]

Progress = Callable[[str], None]


def large_batch_hparams(num_envs: int) -> dict[str, Any]:
    """PPO hyperparameters for CartPole-v1 with ``num_envs`` parallel envs (every rlcourse speed row)."""
    return tier_hparams("ppo", ENV_ID, LARGE_BATCH_TIERS, num_envs)


def default_num_envs(device: torch.device) -> list[int]:
    """Batch sizes benchmarked when ``--num-envs`` is not given (64: fastest to the target on a CPU; 1024: most steps/s)."""
    return [4096, 262_144] if device.type == "cuda" else [64, 1024]


def default_max_steps(num_envs: int) -> int:
    """Env-step budget of an rlcourse speed run when ``--max-steps`` is not given: room to converge, not just to touch the target."""
    return max(300_000, 2_000 * num_envs)


# --------------------------------------------------------------------------- single runs
def run_sb3(seed: int, max_steps: int, target: float, eval_every: int | None) -> dict[str, Any]:
    """One SB3 PPO run with RL Zoo's CartPole-v1 settings; returns the per-seed measurements."""
    return sb3_learn_to_target("ppo", GYM_ENV_ID, seed, max_steps, target, eval_every)


def run_rlcourse(
    num_envs: int,
    seed: int,
    device: torch.device,
    target: float,
    max_steps: int,
    eval_every: int | None,
    compile: bool,
    throughput_seconds: float,
    precision: str = "fp32",
) -> dict[str, Any]:
    """One rlcourse speed run: the whole budget (timing the first evaluation that reaches the target), a final
    evaluation, then throughput on the same agent. Like SB3's run, it trains its full budget, so the final
    evaluations compare converged policies."""
    from rlcourse.agents import PPO

    agent = PPO(
        ENV_ID,
        num_envs=num_envs,
        device=device,
        seed=seed,
        compile=compile,
        preset=None,
        **large_batch_hparams(num_envs),
        precision=precision,
    )
    every = eval_every or default_eval_every(agent.steps_per_iteration, max_steps)
    return run_row(agent, seed, max_steps, target, every, lambda _: measure_throughput(agent, throughput_seconds))


def run_preset(seed: int, device: torch.device, target: float, eval_every: int | None, compile: bool) -> dict[str, Any]:
    """One rlcourse run with the shipped ``ppo.yml`` default preset (RL Zoo settings) for its full budget."""
    from rlcourse.agents import PPO

    agent = PPO(
        ENV_ID, device=device, seed=seed, compile=compile
    )  # the API applies the default preset, as the CLI does
    budget = agent.preset_timesteps
    every = eval_every or default_eval_every(agent.steps_per_iteration, budget)
    return run_row(agent, seed, budget, target, every)


# --------------------------------------------------------------------------- rows
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
        self.steps_per_s = mean_present([r["steps_per_s"] for r in self.runs])
        self.setup_s = mean_present([r.get("setup_s") for r in self.runs])
        self.time_to_target_s = mean_present([r["time_to_target_s"] for r in self.runs])
        self.steps_to_target = mean_present([r["steps_to_target"] for r in self.runs])
        self.reached = sum(r["steps_to_target"] is not None for r in self.runs)
        self.final_mean = mean_present([r["final_mean"] for r in self.runs])
        self.final_std = mean_present([r["final_std"] for r in self.runs])


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


def run_bench(
    device: str = "auto",
    num_envs: list[int] | tuple[int, ...] | None = None,
    seeds: int | None = None,
    target: float = 475.0,
    max_steps: int | None = None,
    sb3: bool = True,
    sb3_max_steps: int = RL_ZOO_STEPS,
    quality: bool = False,
    eval_every: int | None = None,
    compile: bool = False,
    throughput_seconds: float = 2.0,
    progress: Progress | None = None,
    precision: str = "fp32",
) -> list[dict[str, Any]]:
    """Run the benchmark and return its rows as plain dicts (see :class:`BenchRow`).

    Args:
        device: ``auto``, ``cpu`` or ``cuda`` for the rlcourse rows (SB3 always runs on the CPU).
        num_envs: batch sizes of the rlcourse rows (default: 64 and 1024 on the CPU, 4096 and 262144 on CUDA).
        seeds: number of seeds 0..n-1 (default: 1 for the speed rows, 5 for the quality suite).
        target: the mean deterministic return that counts as solved.
        max_steps: env-step budget per rlcourse run (default: :func:`default_max_steps`).
        sb3: include SB3's rows; ``sb3_max_steps`` is its budget (RL Zoo: 100k).
        quality: also run the learning-quality suite (shipped preset and SB3, 100k steps each).
        eval_every: iterations (SB3: rollouts) between evaluations (default: about every 2048 env steps).
        compile: build the rlcourse agents with ``compile=True``.
        throughput_seconds: about how long each throughput measurement runs.
        progress: called with a line of text as each run finishes.
        precision: the speed rows' forward passes, ``fp32`` or ``bf16`` (PPO's ``precision``).
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
            runs.append(run_rlcourse(n, seed, dev, target, budget, eval_every, compile, throughput_seconds, precision))
            say(_progress_line("rlcourse PPO", dev.type, n, runs[-1]))
        rows.append(BenchRow("rlcourse PPO", "speed", dev.type, n, runs))
    if quality:
        quality_seeds = range(seeds or 5)
        preset_envs = load_preset("ppo", ENV_ID)["num_envs"]
        if sb3:
            rows.append(
                BenchRow(
                    "SB3 PPO (RL Zoo)",
                    "quality",
                    "cpu",
                    SB3_NUM_ENVS,
                    [sb3_run(s, RL_ZOO_STEPS) for s in quality_seeds],
                )
            )
        runs = []
        for seed in quality_seeds:
            runs.append(run_preset(seed, dev, target, eval_every, compile))
            say(_progress_line("rlcourse PPO (preset)", dev.type, preset_envs, runs[-1]))
        rows.append(BenchRow("rlcourse PPO (preset)", "quality", dev.type, preset_envs, runs))
    add_sb3_ratios(rows)
    return [dataclasses.asdict(row) for row in rows]


def _progress_line(name: str, device: str, num_envs: int, run: dict[str, Any]) -> str:
    ttt = (
        "not reached"
        if run["time_to_target_s"] is None
        else f"{run['time_to_target_s']:.2f} s / {run['steps_to_target']:,} steps"
    )
    return (
        f"{name} {device} envs={num_envs} seed={run['seed']}: {run['steps_per_s']:,.0f} steps/s, "
        f"target {ttt}, final {run['final_mean']:.1f} ± {run['final_std']:.1f}"
    )


# --------------------------------------------------------------------------- the report
SPEED_HEADER = (
    "implementation",
    "device",
    "envs",
    "steps/s (training)",
    "setup s",
    "time to ≥{target} (s)",
    "steps to target",
    f"final eval ({FINAL_EVAL_EPISODES} ep)",
    "steps/s vs SB3",
    "time to target vs SB3",
)
QUALITY_HEADER = (
    "implementation",
    "device",
    "envs",
    "seed",
    f"final eval ({FINAL_EVAL_EPISODES} ep)",
    "reached ≥{target}",
    "steps to target",
    "time to target (s)",
)


def _final_eval(runs: list[dict[str, Any]]) -> str:
    means = [r["final_mean"] for r in runs]
    text = f"{statistics.fmean(means):.1f} ± {statistics.fmean(r['final_std'] for r in runs):.1f}"
    if len(runs) > 1:
        text += f" [{min(means):.1f}–{max(means):.1f}]"
    return text


def _budget_text(max_steps: Any) -> str:
    return num(max_steps) if isinstance(max_steps, (int, float)) else "max(300,000, 2,000 × envs)"


def render_markdown(rows: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    """The report: a header with the machine and settings, the speed table and, if run, the quality table."""
    target = meta["target"]

    def header(cells: tuple[str, ...]) -> list[str]:
        return [cell.format(target=f"{target:g}") for cell in cells]

    out = [
        "# rlcourse bench: PPO on CartPole-v1",
        "",
        f"- device: {meta['device_name']} ({meta['device']})",
        f"- date: {meta['date']}; torch {meta['torch']}, stable-baselines3 {meta['stable_baselines3']}, "
        f"gymnasium {meta['gymnasium']}, Python {meta['python']}; 1-min load average {num(meta.get('load_average'), 2)} at start, {num(meta.get('load_average_end'), 2)} at end",
        f"- target: deterministic mean return ≥ {target:g} over {EVAL_EPISODES} episodes; seeds 0..{meta.get('seeds', 1) - 1}",
        f"- rlcourse settings: compile={bool(meta.get('compile'))}, CUDA graphs={meta['device'] == 'cuda'}, "
        f"TF32 matmuls={bool(meta.get('tf32'))}, forward passes {meta.get('precision', 'fp32')}; SB3 runs on the CPU "
        "of the same machine",
    ]
    speed = [r for r in rows if r["suite"] == "speed"]
    if speed:
        lines = [
            [
                r["implementation"],
                r["device"],
                f"{r['num_envs']:,}",
                spread([x["steps_per_s"] for x in r["runs"]]),
                spread([x["setup_s"] for x in r["runs"]], 2) if r["setup_s"] is not None else "—",
                spread([x["time_to_target_s"] for x in r["runs"]], 2),
                spread([x["steps_to_target"] for x in r["runs"]]),
                _final_eval(r["runs"]),
                ratio_cell(r["speed_vs_sb3"]),
                ratio_cell(r["time_to_target_vs_sb3"]),
            ]
            for r in speed
        ]
        out += (
            ["", "## Speed", ""]
            + table(header(SPEED_HEADER), lines)
            + [
                "",
                "steps/s: rlcourse = steady-state training throughput (a fixed number of iterations after warm-up, no "
                "evaluation); SB3 = env steps ÷ training time of its learning run. Times exclude evaluation. setup s = "
                "rlcourse's first iteration (compile / CUDA-graph capture), not counted in its time to target (its steps are). "
                "Both train their whole budget and are evaluated at the end: rlcourse "
                f"{_budget_text(meta.get('max_steps'))} steps with the `large_batch_*` variants of `rlcourse/presets/ppo.yml`, "
                f"SB3 {num(meta.get('sb3_max_steps'))} steps with RL Zoo's settings. Ratios: steps/s vs SB3 = ours ÷ SB3's; "
                "time to target vs SB3 = SB3's ÷ ours (> 1: we get there sooner). Several seeds: mean [min–max].",
            ]
        )
    quality = [r for r in rows if r["suite"] == "quality"]
    if quality:
        lines = [
            [
                r["implementation"],
                r["device"],
                str(r["num_envs"]),
                str(x["seed"]),
                f"{x['final_mean']:.1f} ± {x['final_std']:.1f}",
                "yes" if x["steps_to_target"] is not None else "no",
                num(x["steps_to_target"]),
                num(x["time_to_target_s"], 2),
            ]
            for r in quality
            for x in r["runs"]
        ]
        summary = [
            f"{r['implementation']}: reached {r['reached']}/{len(r['runs'])} seeds, final {_final_eval(r['runs'])}"
            for r in quality
        ]
        out += ["", f"## Learning quality: RL Zoo settings, {RL_ZOO_STEPS:,} steps", ""] + table(
            header(QUALITY_HEADER), lines
        )
        out += [""] + [f"- {line}" for line in summary]
    return "\n".join(out) + "\n"


__all__ = [
    "ENV_ID",
    "LARGE_BATCH_TIERS",
    "BenchRow",
    "add_sb3_ratios",
    "large_batch_hparams",
    "render_markdown",
    "run_bench",
    "run_preset",
    "run_rlcourse",
    "run_sb3",
]
