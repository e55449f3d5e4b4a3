"""The report of ``rlcourse bench --suite agents``: one table of every row, and notes on what reads differently.

The rows come from :func:`rlcourse.app.bench.agents.run_agents_bench`.
"""

from __future__ import annotations

from typing import Any

from rlcourse.app.bench.agents import LARGE_BATCH_IMPLEMENTATION
from rlcourse.app.bench.harness import EVAL_EPISODES, EVAL_INTERVAL_STEPS, FINAL_EVAL_EPISODES, MAX_EVALS_PER_RUN
from rlcourse.app.bench.report import ratio_cell, spread, table

HEADER = (
    "algorithm",
    "env",
    "target",
    "implementation",
    "device",
    "envs",
    "seeds",
    "steps/s",
    "steps to target (reached)",
    "time to target (s)",
    f"final eval ({FINAL_EVAL_EPISODES} ep)",
    "budget",
    "steps/s vs SB3",
)


def _table_line(row: dict[str, Any]) -> list[str]:
    runs = row["runs"]
    head = [row["algo"], row["env_id"], f"≥ {row['target']:g}", row["implementation"], row["device"]]
    if not runs:
        return head + ["—", "0", f"skipped: {row['note']}" if row["note"] else "—"] + ["—"] * 5
    reached = [r for r in runs if r["steps_to_target"] is not None]
    to_target = (
        f"{spread([r['steps_to_target'] for r in reached]) if reached else 'never'} ({len(reached)}/{len(runs)})"
    )
    envs = f"{row['num_envs']:,}" if row.get("workers") is None else f"{row['workers']} × {row['num_envs']:,}"
    return head + [
        envs,
        str(len(runs)),
        spread([r["steps_per_s"] for r in runs]),
        to_target,
        spread([r["time_to_target_s"] for r in reached], 2) if reached else "—",
        spread([r["final_mean"] for r in runs], 1),
        f"{row['budget']:,}",
        ratio_cell(row["speed_vs_sb3"]),
    ]


def render_agents_markdown(report: dict[str, list[dict[str, Any]]], meta: dict[str, Any]) -> str:
    """The suite's report: a header with the machine and settings, one table, and notes on skipped rows."""
    start, end = meta.get("load_average"), meta.get("load_average_end")
    load = f"{'—' if start is None else f'{start:.2f}'} at start, {'—' if end is None else f'{end:.2f}'} at end"
    out = [
        "# rlcourse bench: every agent on its task, SB3 side by side",
        "",
        (
            f"- device: {meta['device_name']} ({meta['device']}); date: {meta['date']}; torch {meta['torch']}, "
            f"stable-baselines3 {meta.get('stable_baselines3')}, gymnasium {meta.get('gymnasium')}; "
            f"compile={bool(meta.get('compile'))}, TF32={bool(meta.get('tf32'))}"
        ),
        f"- 1-min load average: {load}",
        (
            f"- target: deterministic mean return over {EVAL_EPISODES} episodes, evaluated about every "
            f"{EVAL_INTERVAL_STEPS:,} env steps (at most {MAX_EVALS_PER_RUN} times a run); final eval: "
            f"{FINAL_EVAL_EPISODES} deterministic episodes after the whole budget"
        ),
        "",
        *table(HEADER, [_table_line(row) for row in report["rows"]]),
    ]
    out += [
        "",
        (
            "steps/s: steady-state training throughput of the trained agent (a fixed number of iterations or rollouts "
            "after a warm-up, no evaluation), for both implementations; SB3 runs on the CPU. Times to target exclude "
            "evaluation. rlcourse rows use the shipped preset (`rlcourse/presets/<algo>.yml`: envs, budget, "
            "hyperparameters); SB3 rows use RL Zoo's hyperparameters and budget for the env. steps/s vs SB3 = ours ÷ "
            "SB3's on the same algorithm. Several seeds: mean [min–max]; (k/n) = seeds that reached the target."
        ),
    ]
    from rlcourse.agents import ALGOS

    if any(row["runs"] and row["algo"] in ALGOS and ALGOS[row["algo"]].cpu_only for row in report["rows"]):
        out.append(
            "A3C: evaluations run while its workers keep training, so its steps and time to target can read "
            "slightly early; its steps/s is one training call timed between worker reports."
        )
    if any(row["implementation"] == LARGE_BATCH_IMPLEMENTATION for row in report["rows"]):
        out.append(
            "rlcourse (large batch): the same task and target with many envs and big update batches "
            "(the `large_batch_*` variants of `rlcourse/presets/<algo>.yml`), the way a GPU wants it; its budget is in env steps too."
        )
    notes = [f"- {row['algo']} on {row['env_id']}: {row['note']}" for row in report["rows"] if row["note"]]
    if notes:
        out += ["", "Skipped:"] + notes
    return "\n".join(out) + "\n"


__all__ = ["HEADER", "render_agents_markdown"]
