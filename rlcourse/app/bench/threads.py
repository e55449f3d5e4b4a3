"""The threads suite: ``rlcourse train`` on the CPU, idle and beside one busy process, per torch thread count.

Why it exists: torch's default of one thread per core lets one other busy process slow a small-network
run down several times over (each of its threads waits for the slowest core at every op), while one
thread keeps its speed. The suite shows what the shipped default (:data:`rlcourse.device.DEFAULT_THREADS`)
does on this machine:

* each row is ``rlcourse train ppo rlcourse/CartPole-v1 --device cpu --threads T`` for ``--steps`` env
  steps with the shipped preset, run as its own process, exactly as a user runs it;
* "busy" runs start after one neighbour process has begun keeping one core busy (a single-threaded
  job: another Python program, a test run) and end before it is stopped;
* the time is the training time the command prints (``Done: ... in X s``), so start-up and the final
  evaluation are left out; the median over ``--seeds`` runs (seeds 0..N-1) is reported.
"""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

import torch

from rlcourse.app.bench.report import num, ratio_cell, table
from rlcourse.device import DEFAULT_THREADS

ENV_ID = "rlcourse/CartPole-v1"
#: Env steps of each run (the issue's measurement: 30k steps of the CLI preset).
DEFAULT_STEPS = 30_000
#: What the neighbour does: big matrix products on one thread, until it is killed.
BUSY_NEIGHBOUR = "import torch\ntorch.set_num_threads(1)\na = torch.randn(1024, 1024)\nwhile True:\n    a @ a\n"
#: Seconds the neighbour runs before a busy measurement starts, so it has taken its cores.
NEIGHBOUR_WARMUP_S = 2.0
_DONE = re.compile(r"^Done: [\d,]+ env steps.* in ([\d.]+) s", re.MULTILINE)


def thread_settings() -> list[int]:
    """The settings compared: the shipped default and torch's own default (one per core), once each."""
    return sorted({DEFAULT_THREADS, torch.get_num_threads(), os.cpu_count() or 1})


def train_seconds(threads: int, seed: int, steps: int) -> float:
    """The training time ``rlcourse train`` reports for one run (its run folder is thrown away)."""
    with tempfile.TemporaryDirectory() as runs_root:
        command = [
            sys.executable,
            "-m",
            "rlcourse",
            "train",
            "ppo",
            ENV_ID,
            "--device",
            "cpu",
            "--threads",
            str(threads),
            "--seed",
            str(seed),
            "--total-steps",
            str(steps),
            "--eval-episodes",
            "1",
            "--no-progress",
            "--runs-root",
            runs_root,
        ]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
    match = _DONE.search(done.stdout)
    if done.returncode != 0 or match is None:
        raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    return float(match.group(1))


class BusyNeighbour:
    """A process that keeps one core busy while the ``with`` block runs."""

    def __enter__(self) -> BusyNeighbour:
        self.process = subprocess.Popen([sys.executable, "-c", BUSY_NEIGHBOUR])
        time.sleep(NEIGHBOUR_WARMUP_S)
        return self

    def __exit__(self, *exc: object) -> None:
        self.process.kill()
        self.process.wait()


def run_threads_bench(seeds: int, steps: int, say: Callable[[str], None]) -> dict[str, Any]:
    """Every thread setting, idle then busy, ``seeds`` runs each; rows hold the times and the busy/idle ratio."""
    rows = []
    for threads in thread_settings():
        times: dict[str, list[float]] = {"idle": [], "busy": []}
        for condition in ("idle", "busy"):
            for seed in range(seeds):
                if condition == "busy":
                    with BusyNeighbour():
                        seconds = train_seconds(threads, seed, steps)
                else:
                    seconds = train_seconds(threads, seed, steps)
                times[condition].append(seconds)
                say(f"threads={threads} {condition} seed {seed}: {seconds:.1f} s")
        idle, busy = statistics.median(times["idle"]), statistics.median(times["busy"])
        rows.append(
            {
                "threads": threads,
                "default": threads == DEFAULT_THREADS,
                "idle_s": times["idle"],
                "busy_s": times["busy"],
                "idle_median_s": idle,
                "busy_median_s": busy,
                "busy_vs_idle": busy / idle,
            }
        )
    return {"rows": rows, "steps": steps}


HEADER = ("torch threads", "idle: training s", "beside one busy process: training s", "busy ÷ idle")


def render_threads_markdown(report: dict[str, Any], meta: dict[str, Any]) -> str:
    """The suite's report: the machine, the protocol and one row per thread setting."""
    lines = [
        [
            f"{row['threads']}" + (" (default)" if row["default"] else ""),
            num(row["idle_median_s"], 1),
            num(row["busy_median_s"], 1),
            ratio_cell(row["busy_vs_idle"]),
        ]
        for row in report["rows"]
    ]
    return "\n".join(
        [
            "# rlcourse bench: CPU threads on a shared machine",
            "",
            f"- device: {meta['device_name']}",
            f"- date: {meta['date']}; torch {meta['torch']}, Python {meta['python']}; 1-min load average "
            f"{num(meta.get('load_average'), 2)} at start, {num(meta.get('load_average_end'), 2)} at end",
            f"- `rlcourse train ppo {ENV_ID} --device cpu --threads T --total-steps {report['steps']}` (its preset), "
            f"each run its own process; median of {meta['seeds']} runs (seeds 0..{meta['seeds'] - 1}); the training "
            "time it prints (start-up and final evaluation excluded)",
            "- busy: beside one process multiplying 1024×1024 matrices on one thread (it keeps one core busy)",
            "",
            *table(HEADER, lines),
            "",
        ]
    )
