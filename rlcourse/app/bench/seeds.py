"""The seeds suite (``rlcourse bench --suite seeds``): N PPO CartPole agents trained at once, against N plain runs.

Rows, all on ``--device`` in one process:

* **population**: ``PPOPopulation`` of seeds 0..N-1 (``--seeds N``; default 1,024 on CUDA, 8 on the CPU), each
  member with ``--num-envs`` envs (default: the preset's) and the preset's budget (``--max-steps`` per member),
  trained as one batched computation (CUDA graphs on CUDA, as the plain agent). Reported: the wall time of
  building and training, and of the evaluation apart; every member's deterministic evaluation (100 episodes);
  the fraction of members at or above ``--target``; IQM, min and max of their mean returns.
  ``--streams batch`` draws each kind of random number for the whole batch in one call (one kernel instead of N;
  see :class:`~rlcourse.agents.population.Population`).
* **plain runs**: a few plain ``PPO`` runs (seeds 0, 1, ...) with the same settings on the same device, timed, and
  their mean wall time × N: the projected time of N sequential runs, and its ratio to the population's.

The settings are the shipped preset variant for CartPole (``--preset``, default ``default``: RL Zoo's settings,
which suit a member's small batch). The numbers come from the run itself, never from the code.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch

from rlcourse.app.bench.report import num, ratio_cell, table
from rlcourse.config import RUN_KEYS, load_preset

ENV_ID = "rlcourse/CartPole-v1"
#: Members when none are given: the issue's 1,024 on a GPU, a handful on the CPU.
DEFAULT_MEMBERS = {"cuda": 1024, "cpu": 8}
#: Plain runs timed for the projection of N sequential runs.
PLAIN_RUNS = 3
#: Episodes of each member's (and each plain run's) final evaluation.
EVAL_EPISODES = 100


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_seeds_bench(
    device: torch.device,
    members: int | None,
    num_envs: int | None,
    max_steps: int | None,
    target: float,
    say: Callable[[str], None],
    variant: str = "default",
    plain_runs: int = PLAIN_RUNS,
    eval_episodes: int = EVAL_EPISODES,
    streams: str = "member",
) -> dict[str, Any]:
    """Train the population and the plain runs; returns ``{"population": row, "plain": row, "settings": ...}``."""
    from rlcourse.agents import PPO
    from rlcourse.agents.population import PPOPopulation, interquartile_mean

    preset = load_preset("ppo", ENV_ID, variant)
    hparams = {key: value for key, value in preset.items() if key not in RUN_KEYS}
    count = members or DEFAULT_MEMBERS.get(device.type, DEFAULT_MEMBERS["cpu"])
    envs = num_envs or preset.get("num_envs", 8)
    budget = max_steps or preset.get("total_timesteps", 100_000)
    say(f"population: {count} PPO members x {envs} envs, {budget:,} steps each, {streams} streams, on {device}")
    _synchronize(device)
    start = time.perf_counter()
    population = PPOPopulation(
        ENV_ID, seeds=range(count), num_envs=envs, streams=streams, device=device, preset=None, **hparams
    )
    built = time.perf_counter()
    population.learn(budget)
    _synchronize(device)
    trained = time.perf_counter()
    population.evaluate(eval_episodes)
    evaluated = time.perf_counter()
    returns = [member["mean_reward"] for member in population.member_eval]
    solved = sum(value >= target for value in returns)
    population_row = {
        "members": count,
        "envs_per_member": envs,
        "steps_per_member": population.num_timesteps,
        "build_s": built - start,
        "train_s": trained - built,
        "wall_s": trained - start,
        "eval_s": evaluated - trained,
        "steps_per_s": population.num_timesteps * count / (trained - built),
        "solved": solved,
        "solved_fraction": solved / count,
        "return_iqm": interquartile_mean(returns),
        "return_min": min(returns),
        "return_max": max(returns),
        "returns": returns,
    }
    say(f"population: {population_row['wall_s']:.1f} s, {solved}/{count} members >= {target}")
    del population
    walls, plain_returns = [], []
    for seed in range(plain_runs):
        _synchronize(device)
        start = time.perf_counter()
        agent = PPO(ENV_ID, num_envs=envs, device=device, seed=seed, preset=None, **hparams).learn(budget)
        _synchronize(device)
        walls.append(time.perf_counter() - start)
        plain_returns.append(agent.evaluate(eval_episodes)["mean_reward"])
        say(f"plain run seed {seed}: {walls[-1]:.1f} s, return {plain_returns[-1]:.1f}")
    mean_wall = sum(walls) / len(walls)
    plain_row = {
        "runs": plain_runs,
        "wall_s": walls,
        "mean_wall_s": mean_wall,
        "projected_s": mean_wall * count,
        "returns": plain_returns,
        "speedup": mean_wall * count / population_row["wall_s"],
    }
    settings = {
        "variant": variant,
        "hparams": hparams,
        "target": target,
        "eval_episodes": eval_episodes,
        "streams": streams,
    }
    return {"population": population_row, "plain": plain_row, "settings": settings}


def render_seeds_markdown(report: dict[str, Any], meta: dict[str, Any]) -> str:
    """The suite's tables: the population's row, and the plain runs with the projection of N of them."""
    pop, plain, settings = report["population"], report["plain"], report["settings"]
    lines = [
        f"# rlcourse bench: {pop['members']:,} PPO CartPole agents at once ({meta['date']}, {meta['device_name']})",
        "",
        f"Preset variant `{settings['variant']}`, {pop['envs_per_member']} envs and {pop['steps_per_member']:,} env "
        f"steps per member; deterministic evaluation over {settings['eval_episodes']} episodes per member; "
        f"solved: mean return >= {settings['target']:g}; random streams: {settings['streams']} (per member: each "
        "member is the plain run of its seed; batch: one stream per kind for the whole batch).",
        "",
    ]
    lines += table(
        ["row", "members", "wall s (build + train)", "steps/s", "solved", "return IQM [min–max]", "eval s"],
        [
            [
                "population (one batched run)",
                num(pop["members"]),
                f"{pop['wall_s']:.1f} ({pop['build_s']:.1f} + {pop['train_s']:.1f})",
                num(pop["steps_per_s"]),
                f"{pop['solved']}/{pop['members']} ({100 * pop['solved_fraction']:.1f}%)",
                f"{pop['return_iqm']:.1f} [{pop['return_min']:.1f}–{pop['return_max']:.1f}]",
                f"{pop['eval_s']:.1f}",
            ]
        ],
    )
    lines += [""]
    lines += table(
        ["row", "runs timed", "mean wall s per run", f"projected s for {pop['members']:,} runs", "speed-up"],
        [
            [
                "plain PPO runs, one after another",
                num(plain["runs"]),
                f"{plain['mean_wall_s']:.1f}",
                num(plain["projected_s"]),
                ratio_cell(plain["speedup"]),
            ]
        ],
    )
    return "\n".join(lines) + "\n"
