"""The scale suite (``rlcourse bench --suite scale``): data-parallel training on 1, 2, ... ranks, through torchrun.

Each row is one run, exactly as a user starts it::

    torchrun --standalone --nproc_per_node N -m rlcourse train ALGO ENV --distributed --no-progress \\
        --num-envs N×E --total-steps B --device D --seed S --config <the settings for E envs> --preset none

with the same number of envs per rank E (``--num-envs-per-rank``; weak scaling: each rank runs the single-rank
run's batch, one optimizer step averages the ranks' gradients) and the same total budget B of env steps for every N
(``--max-steps``; default the preset variant's). Each run's folder is read back afterwards:

* **training steps/s**: env steps over wall seconds between the first and the last logged iteration
  (TensorBoard's ``time/fps`` events; the first iteration, where CUDA graphs are captured, is left out);
* **seconds (steps) to the target**: from the first logged iteration to the first log whose training mean
  (``rollout/success_rate`` where the env reports successes, else ``rollout/ep_rew_mean``) reaches the target;
* **final**: the run's deterministic evaluation (``eval.json``), and the speed-up of steps/s over the 1-rank row.

The children get ``NCCL_NVLS_ENABLE=0`` (NVLink multicast off, as the lent GPU machines require).
"""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml

from rlcourse.app.bench.harness import PPO_TIERS_BY_ENV, mean_present, tier_hparams
from rlcourse.app.bench.report import num, ratio_cell, spread, table
from rlcourse.config import RUN_KEYS, load_preset
from rlcourse.run_dir import RunDir, env_folder

DEFAULT_ALGO = "ppo"
DEFAULT_ENV = "rlcourse/CartPole-v1"
#: Envs per rank when none are given: a CPU-sized batch, or the issue's ≥ 65,536 per GPU.
DEFAULT_ENVS_PER_RANK = {"cpu": 8, "cuda": 65_536}
#: Targets when none is given: a success rate, or CartPole's solved return.
DEFAULT_TARGETS = {"rollout/success_rate": 0.9, "rollout/ep_rew_mean": 475.0}
#: Episodes of each run's final evaluation.
FINAL_EVAL_EPISODES = 100
#: What the children's environment adds: NVLink multicast off (the lent machines' rule for NCCL).
CHILD_ENV = {"NCCL_NVLS_ENABLE": "0"}
_DONE = re.compile(r"^Done: [\d,]+ env steps.* in ([\d.]+) s", re.MULTILINE)


def parse_nproc(text: str) -> list[int]:
    """``--nproc 1,2,4`` as ``[1, 2, 4]``; a ``ValueError`` naming the option otherwise."""
    try:
        counts = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        counts = []
    if not counts or any(count < 1 for count in counts) or len(set(counts)) != len(counts):
        raise ValueError(f"--nproc must be distinct positive rank counts such as 1,2,4, got {text!r}")
    return sorted(counts)


def run_settings(algo: str, env_id: str, envs_per_rank: int) -> dict[str, Any]:
    """The hyperparameters of one rank's batch (the tier variant for ``envs_per_rank``, or the default preset),
    and the budget of that variant as ``total_timesteps``."""
    tiers = PPO_TIERS_BY_ENV.get(env_id) if algo == "ppo" else None
    if tiers is not None:
        tier = next(t for t in tiers if envs_per_rank <= t.up_to_envs)
        budget = load_preset(algo, env_id, tier.variant).get("total_timesteps")
        return {**tier_hparams(algo, env_id, tiers, envs_per_rank), "total_timesteps": budget}
    preset = load_preset(algo, env_id, "default")  # {} for an env without presets
    return {key: value for key, value in preset.items() if key not in RUN_KEYS or key == "total_timesteps"}


def train_command(
    nproc: int,
    algo: str,
    env_id: str,
    envs_per_rank: int,
    budget: int,
    seed: int,
    device: str,
    config_file: Path,
    runs_root: Path,
    name: str,
) -> list[str]:
    """The torchrun command line of one row's run."""
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        str(nproc),
        "-m",
        "rlcourse",
        "train",
        algo,
        env_id,
        "--distributed",
        "--no-progress",
        "--preset",
        "none",
        "--config",
        str(config_file),
        "--num-envs",
        str(nproc * envs_per_rank),
        "--total-steps",
        str(budget),
        "--seed",
        str(seed),
        "--device",
        device,
        "--eval-episodes",
        str(FINAL_EVAL_EPISODES),
        "--runs-root",
        str(runs_root),
        "--name",
        name,
    ]


def scalar_events(run_dir: Path) -> dict[str, list[tuple[float, int, float]]]:
    """Every scalar tag of a run folder's event files: ``tag -> [(wall_time, step, value), ...]`` in step order."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events: dict[str, list[tuple[float, int, float]]] = {}
    for path in RunDir(run_dir).event_files():
        accumulator = EventAccumulator(str(path), size_guidance={"scalars": 0})
        accumulator.Reload()
        for tag in accumulator.Tags()["scalars"]:
            events.setdefault(tag, []).extend((e.wall_time, e.step, e.value) for e in accumulator.Scalars(tag))
    return {tag: sorted(values, key=lambda event: (event[1], event[0])) for tag, values in events.items()}


def summarise_run(run_dir: Path, target: float | None) -> dict[str, Any]:
    """One run's row from its folder: steps/s, time and steps to the target, the final evaluation."""
    events = scalar_events(run_dir)
    config = RunDir(run_dir).read_config()
    result = RunDir(run_dir).read_eval()
    iterations = events.get("time/fps", [])
    steps_per_s = None
    if len(iterations) >= 2:
        (t0, s0, _), (t1, s1, _) = iterations[0], iterations[-1]
        steps_per_s = (s1 - s0) / (t1 - t0) if t1 > t0 else None
    metric = "rollout/success_rate" if "rollout/success_rate" in events else "rollout/ep_rew_mean"
    goal = DEFAULT_TARGETS[metric] if target is None else target
    seconds_to_target = steps_to_target = None
    start = iterations[0][0] if iterations else None
    for wall, step, value in events.get(metric, []):
        if math.isfinite(value) and value >= goal:
            seconds_to_target, steps_to_target = (wall - start if start is not None else None), step
            break
    return {
        "ranks": int(config["distributed"]["world_size"]),
        "num_envs": int(config["num_envs"]),
        "envs_per_rank": int(config["distributed"]["num_envs_per_rank"]),
        "steps_trained": int(result["num_timesteps"]),
        "steps_per_s": steps_per_s,
        "metric": metric,
        "target": goal,
        "seconds_to_target": seconds_to_target,
        "steps_to_target": steps_to_target,
        "final_mean": result["mean_reward"],
        "final_success": result.get("success_rate"),
    }


def run_once(command: list[str]) -> float | None:
    """Run one torchrun command; the training seconds it prints (a ``RuntimeError`` with its output if it fails)."""
    environment = {**os.environ, **CHILD_ENV}
    done = subprocess.run(command, capture_output=True, text=True, check=False, env=environment)
    if done.returncode != 0:
        tail = (done.stderr.strip() or done.stdout.strip())[-1500:]
        raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}):\n{tail}")
    match = _DONE.search(done.stdout)
    return float(match.group(1)) if match else None


def run_scale_bench(
    nproc: Sequence[int],
    algo: str = DEFAULT_ALGO,
    env_id: str = DEFAULT_ENV,
    envs_per_rank: int | None = None,
    device: str = "cpu",
    budget: int | None = None,
    seeds: int = 1,
    target: float | None = None,
    say: Callable[[str], None] = print,
    runs_root: Path | None = None,
) -> dict[str, Any]:
    """Every rank count of ``nproc`` for ``seeds`` seeds; returns ``{"rows": [...], "runs": [...], settings}``."""
    device_type = "cuda" if device.startswith("cuda") else "cpu"
    per_rank = envs_per_rank or DEFAULT_ENVS_PER_RANK[device_type]
    settings = run_settings(algo, env_id, per_rank)
    steps = budget or settings.pop("total_timesteps", None) or 100_000
    settings.pop("total_timesteps", None)
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="rlcourse-scale-") as scratch:
        root = Path(runs_root) if runs_root is not None else Path(scratch) / "runs"
        config_file = Path(scratch) / "hyperparameters.yml"
        config_file.write_text(yaml.safe_dump({k: _plain(v) for k, v in settings.items()}, sort_keys=False))
        for ranks in nproc:
            for seed in range(seeds):
                name = f"ranks{ranks}-seed{seed}"
                command = train_command(ranks, algo, env_id, per_rank, steps, seed, device, config_file, root, name)
                say(f"scale: {ranks} rank(s) × {per_rank:,} envs, seed {seed}: {' '.join(command[3:])}")
                train_s = run_once(command)
                folder = root / env_folder(env_id) / algo / name
                row = {**summarise_run(folder, target), "seed": seed, "train_s": train_s}
                say(
                    f"  {num(row['steps_per_s'])} steps/s, target after {num(row['seconds_to_target'], 1)} s, "
                    f"final {num(row['final_mean'], 1)}"
                )
                runs.append(row)
    rows = _aggregate(runs, nproc)
    return {
        "rows": rows,
        "runs": runs,
        "algo": algo,
        "env": env_id,
        "envs_per_rank": per_rank,
        "budget": steps,
        "hyperparameters": {k: _plain(v) for k, v in settings.items()},
    }


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def _aggregate(runs: list[dict[str, Any]], nproc: Sequence[int]) -> list[dict[str, Any]]:
    """One row per rank count: the seeds' values, their means, and the speed-up over the first (fewest ranks) row."""
    rows = []
    for ranks in nproc:
        mine = [run for run in runs if run["ranks"] == ranks]
        rows.append(
            {
                "ranks": ranks,
                "num_envs": mine[0]["num_envs"],
                "metric": mine[0]["metric"],
                "target": mine[0]["target"],
                "steps_per_s": [run["steps_per_s"] for run in mine],
                "seconds_to_target": [run["seconds_to_target"] for run in mine],
                "steps_to_target": [run["steps_to_target"] for run in mine],
                "final_mean": [run["final_mean"] for run in mine],
                "final_success": [run["final_success"] for run in mine],
            }
        )
    base_speed = mean_present(rows[0]["steps_per_s"]) if rows else None
    base_time = mean_present(rows[0]["seconds_to_target"]) if rows else None
    for row in rows:
        speed, time_to_target = mean_present(row["steps_per_s"]), mean_present(row["seconds_to_target"])
        row["speedup"] = speed / base_speed if speed and base_speed else None
        row["time_to_target_ratio"] = base_time / time_to_target if base_time and time_to_target else None
    return rows


HEADER = (
    "ranks",
    "envs (per rank)",
    "training steps/s",
    "speed-up",
    "s to target",
    "steps to target",
    "time-to-target speed-up",
    "final return",
    "final success",
)


def render_scale_markdown(report: dict[str, Any], meta: dict[str, Any]) -> str:
    """The suite's report: the machine, the protocol and one row per rank count."""
    lines = []
    for row in report["rows"]:
        success = [value for value in row["final_success"] if value is not None]
        lines.append(
            [
                str(row["ranks"]),
                f"{row['num_envs']:,} ({row['num_envs'] // row['ranks']:,})",
                spread(row["steps_per_s"]),
                ratio_cell(row["speedup"]),
                spread(row["seconds_to_target"], 1),
                spread(row["steps_to_target"]),
                ratio_cell(row["time_to_target_ratio"]),
                spread(row["final_mean"], 1),
                spread(success, 3) if success else "—",
            ]
        )
    first = report["rows"][0] if report["rows"] else {"metric": "rollout/ep_rew_mean", "target": None}
    return "\n".join(
        [
            "# rlcourse bench: data-parallel scaling",
            "",
            f"- device: {meta['device_name']}",
            f"- date: {meta['date']}; torch {meta['torch']}, Python {meta['python']}",
            f"- `torchrun --standalone --nproc_per_node N -m rlcourse train {report['algo']} {report['env']} "
            f"--distributed`: {report['envs_per_rank']:,} envs per rank, {report['budget']:,} env steps in total "
            f"per run, {meta['seeds']} seed(s); NCCL_NVLS_ENABLE=0",
            f"- steps/s: between the first and last logged iteration; target: training `{first['metric']}` ≥ "
            f"{num(first['target'], 2)}, timed from the first logged iteration; final: deterministic evaluation "
            f"({FINAL_EVAL_EPISODES} episodes); speed-ups against the {report['rows'][0]['ranks'] if report['rows'] else 1}-rank row",
            "",
            *table(HEADER, lines),
            "",
        ]
    )


__all__ = [
    "CHILD_ENV",
    "DEFAULT_ENVS_PER_RANK",
    "parse_nproc",
    "render_scale_markdown",
    "run_scale_bench",
    "run_settings",
    "summarise_run",
    "train_command",
]
