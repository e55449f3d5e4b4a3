"""The plugins suite: curiosity on a sparse-reward task, and GAIL/AIRL on CartPole beside the `imitation` library.

Rows (every one over ``--seeds`` seeds 0..N-1, rlcourse on ``--device``):

* **curiosity**: PPO and PPO + ICM on ``rlcourse/MountainCar-v0`` (reward −1 per step until the flag:
  nothing tells the agent it is getting closer) under observation normalisation, for the same budget.
  A seed solves the task when its final deterministic evaluation reaches the flag in ≥ 90 % of 100 episodes.
* **gail**, **airl**: PPO (its CartPole preset) learning from 10 expert episodes alone, never the env's reward.
  The expert is PPO trained on CartPole with its preset (seed 0), recorded deterministically. Each seed
  is evaluated every 4,096 env steps (20 episodes); the row gives the env steps and training seconds
  (evaluation excluded) when the mean return first reached 475.
* **dialogue gail**, **dialogue airl**: PPO (its dialogue preset) learning from 1,000 dialogues of the
  rule expert on ``rlcourse/SlotFilling-v0`` (clean NLU), with the gail/airl presets for the env; each
  seed's final success rate over 500 deterministic dialogues, against the expert's on the same env.
* **imitation GAIL** (with ``--imitation-python PY``): the `imitation` library's GAIL with its documented
  CartPole settings on the same 10 episodes, run by :mod:`~rlcourse.app.bench.imitation_reference` in
  that interpreter (imitation 1.0.1 needs gymnasium 0.29 and SB3 2.2.1), timed the same way.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rlcourse.app.bench.harness import learn_quietly, learn_to_target
from rlcourse.app.bench.report import num, spread, table
from rlcourse.config import load_preset

CARTPOLE, MOUNTAIN_CAR, DIALOGUE = "rlcourse/CartPole-v1", "rlcourse/MountainCar-v0", "rlcourse/SlotFilling-v0"
EXPERT_EPISODES = 10
DIALOGUE_EXPERT_EPISODES = 1000
DIALOGUE_EVAL_EPISODES = 500
TARGET = 475.0
EVAL_EVERY_STEPS = 4096
IMITATION_BUDGET = 100_000
IMITATION_REFERENCE_BUDGET = 1_000_000
#: PPO on MountainCar runs with its shipped preset (both rows); curiosity's η for this task's −1 rewards.
MOUNTAIN_CAR_PRESET = load_preset("ppo", MOUNTAIN_CAR)
MOUNTAIN_CAR_ENVS = MOUNTAIN_CAR_PRESET["num_envs"]
MOUNTAIN_CAR_BUDGET = MOUNTAIN_CAR_PRESET["total_timesteps"]
CURIOSITY_SETTINGS = {"eta": 0.1}
SOLVED_SUCCESS_RATE = 0.9


def curiosity_rows(device: torch.device, seeds: int, say: Callable[[str], None]) -> list[dict[str, Any]]:
    """PPO with and without the ICM on MountainCar: each seed's final success rate."""
    import rlcourse
    from rlcourse.agents import PPO
    from rlcourse.supervised import add_curiosity
    from rlcourse.wrappers import NormalizeObservation

    rows = []
    for curiosity in (False, True):
        results = []
        for seed in range(seeds):
            env = NormalizeObservation(rlcourse.make_vec(MOUNTAIN_CAR, MOUNTAIN_CAR_ENVS, device))
            callbacks = []
            if curiosity:
                env, training = add_curiosity(env, CURIOSITY_SETTINGS, seed=seed)
                callbacks = [training]
            agent = PPO(env, seed=seed)  # the env's PPO preset
            learn_quietly(agent, MOUNTAIN_CAR_BUDGET, callbacks=callbacks)
            success = agent.evaluate(n_episodes=100, deterministic=True)["success_rate"]
            say(f"{'PPO + ICM' if curiosity else 'PPO'} MountainCar seed {seed}: success {success:.2f}")
            results.append(success)
        rows.append(
            {
                "method": "PPO + ICM" if curiosity else "PPO",
                "success": results,
                "solved": sum(rate >= SOLVED_SUCCESS_RATE for rate in results),
            }
        )
    return rows


def expert_demonstrations(device: torch.device, folder: Path, say: Callable[[str], None]) -> tuple[Any, Path]:
    """10 episodes of a PPO CartPole expert, as rlcourse Demonstrations and as an .npz for the imitation script."""
    import rlcourse
    from rlcourse.agents import PPO
    from rlcourse.supervised.imitation.demos import load_demonstrations, record_episodes, save_demonstrations

    expert = PPO(CARTPOLE, seed=0, device=device)
    learn_quietly(expert, expert.preset_timesteps)
    env = rlcourse.make_vec(CARTPOLE, EXPERT_EPISODES, device)
    recorded = record_episodes(env, lambda obs, masks: expert.predict(obs, deterministic=True), EXPERT_EPISODES, 1)
    say(f"expert episodes: returns {recorded.returns.tolist()}")
    save_demonstrations(recorded, "bench/cartpole-expert-v0", env, "ppo", root=folder / "minari")
    npz = folder / "demos.npz"
    arrays = {}
    for k, episode in enumerate(recorded.episodes):
        arrays[f"obs_{k}"], arrays[f"acts_{k}"] = episode["observations"], episode["actions"]
    np.savez(npz, **arrays)
    demos = load_demonstrations(folder / "minari" / "bench" / "cartpole-expert-v0", device)
    return demos, npz


def adversarial_rows(device: torch.device, seeds: int, demos: Any, say: Callable[[str], None]) -> list[dict[str, Any]]:
    """GAIL and AIRL on CartPole from the expert's episodes: steps and seconds to a mean return of 475."""
    import rlcourse
    from rlcourse.agents import PPO
    from rlcourse.supervised.imitation.gail import adversarial_imitation

    rows = []
    for method in ("gail", "airl"):
        results = []
        for seed in range(seeds):
            settings = load_preset(method, CARTPOLE)["discriminator"]  # as `rlcourse train gail|airl` uses them
            env, training = adversarial_imitation(rlcourse.make_vec(CARTPOLE, 8, device), demos, method, settings, seed)
            agent = PPO(env, seed=seed)
            if method == "airl":
                training.model.attach(agent.policy)
            every = max(1, EVAL_EVERY_STEPS // agent.steps_per_iteration)
            result = learn_to_target(agent, IMITATION_BUDGET, TARGET, every, callbacks=[training])
            result["final_mean"] = agent.evaluate(n_episodes=100, deterministic=True)["mean_reward"]
            say(
                f"{method} seed {seed}: {result['steps_to_target']} steps, {result['time_to_target_s']} s to 475; "
                f"final {result['final_mean']:.1f}"
            )
            results.append(result)
        rows.append({"method": f"rlcourse {method.upper()} (PPO)", "device": str(device), "seeds": results})
    return rows


def dialogue_rows(device: torch.device, seeds: int, folder: Path, say: Callable[[str], None]) -> dict[str, Any]:
    """GAIL and AIRL on the dialogue from the rule expert's dialogues: each seed's final success rate."""
    import rlcourse
    from rlcourse.agents import PPO
    from rlcourse.agents.experts import resolve_expert
    from rlcourse.supervised.imitation.demos import load_demonstrations, record_episodes, save_demonstrations
    from rlcourse.supervised.imitation.gail import adversarial_imitation

    env = rlcourse.make_vec(DIALOGUE, 64, device)
    expert = resolve_expert("expert", env)
    recorded = record_episodes(env, expert.policy, DIALOGUE_EXPERT_EPISODES, seed=1000)
    save_demonstrations(recorded, "bench/dialogue-expert-v0", env, expert.kind, root=folder / "minari")
    demos = load_demonstrations(folder / "minari" / "bench" / "dialogue-expert-v0", device)
    expert_success = float(recorded.outcomes["success"].mean())
    say(f"dialogue expert: success {expert_success:.3f} over {DIALOGUE_EXPERT_EPISODES} dialogues")
    rows = []
    for method in ("gail", "airl"):
        preset = load_preset(method, DIALOGUE)
        results = []
        for seed in range(seeds):
            base = rlcourse.make_vec(DIALOGUE, preset["num_envs"], device)
            env, training = adversarial_imitation(base, demos, method, preset["discriminator"], seed)
            agent = PPO(env, seed=seed)
            if method == "airl":
                training.model.attach(agent.policy)
            started = time.perf_counter()
            learn_quietly(agent, preset["total_timesteps"], callbacks=[training])
            seconds = time.perf_counter() - started
            stats = agent.evaluate(n_episodes=DIALOGUE_EVAL_EPISODES, deterministic=True)
            say(f"dialogue {method} seed {seed}: success {stats['success_rate']:.3f}, {stats['mean_length']:.2f} turns")
            results.append({"success": stats["success_rate"], "turns": stats["mean_length"], "seconds": seconds})
        rows.append(
            {"method": f"rlcourse {method.upper()} (PPO)", "budget": preset["total_timesteps"], "seeds": results}
        )
    return {"expert_success": expert_success, "rows": rows}


def imitation_row(python: str, npz: Path, seeds: int, say: Callable[[str], None]) -> dict[str, Any]:
    """The imitation library's GAIL on the same episodes, each seed in a subprocess of ``python``."""
    script = Path(__file__).with_name("imitation_reference.py")
    results = []
    for seed in range(seeds):
        command = [python, str(script), str(npz), str(seed), str(IMITATION_REFERENCE_BUDGET), str(TARGET)]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}): {done.stderr.strip()[-800:]}")
        out = json.loads(done.stdout.strip().splitlines()[-1])
        hit = out["hit"] or {}
        results.append(
            {
                "steps_to_target": hit.get("steps"),
                "time_to_target_s": hit.get("seconds"),
                "final_mean": out["final_mean_reward"],
            }
        )
        say(f"imitation GAIL seed {seed}: {hit.get('steps')} steps, {hit.get('seconds')} s to 475")
    return {"method": "imitation 1.0.1 GAIL (SB3 PPO)", "device": "cpu", "seeds": results}


def run_plugins_bench(
    device: torch.device, seeds: int, imitation_python: str | None, say: Callable[[str], None]
) -> dict[str, Any]:
    report: dict[str, Any] = {"curiosity": curiosity_rows(device, seeds, say)}
    with tempfile.TemporaryDirectory() as folder:
        demos, npz = expert_demonstrations(device, Path(folder), say)
        report["imitation"] = adversarial_rows(device, seeds, demos, say)
        if imitation_python:
            report["imitation"].append(imitation_row(imitation_python, npz, seeds, say))
        report["dialogue"] = dialogue_rows(device, seeds, Path(folder), say)
    return report


def render_plugins_markdown(report: dict[str, Any], meta: dict[str, Any]) -> str:
    curiosity_lines = [
        [row["method"], f"{row['solved']}/{len(row['success'])}", spread(row["success"], 2)]
        for row in report["curiosity"]
    ]
    imitation_lines = []
    for row in report["imitation"]:
        results = row["seeds"]
        imitation_lines.append(
            [
                row["method"],
                row["device"],
                f"{sum(r['steps_to_target'] is not None for r in results)}/{len(results)}",
                spread([r["steps_to_target"] for r in results]),
                spread([r["time_to_target_s"] for r in results], 1),
                spread([r["final_mean"] for r in results], 1),
            ]
        )
    seeds = meta["seeds"]
    return "\n".join(
        [
            "# rlcourse bench: plug-ins",
            "",
            f"- device: {meta['device_name']}",
            f"- date: {meta['date']}; torch {meta['torch']}, Python {meta['python']}; 1-min load average "
            f"{num(meta.get('load_average'), 2)} at start, {num(meta.get('load_average_end'), 2)} at end",
            f"- seeds 0..{seeds - 1}; several seeds: mean [min–max]",
            "",
            "## Curiosity on a sparse reward",
            "",
            f"PPO on `{MOUNTAIN_CAR}` (−1 per step until the flag) with {MOUNTAIN_CAR_ENVS} envs, observation "
            f"normalisation and {MOUNTAIN_CAR_BUDGET:,} env steps, alone and with the ICM (β 0.2, η "
            f"{CURIOSITY_SETTINGS['eta']}). Solved: the final deterministic evaluation reaches the flag in "
            f"≥ {SOLVED_SUCCESS_RATE:.0%} of 100 episodes.",
            "",
            *table(("method", "seeds solved", "final success rate"), curiosity_lines),
            "",
            "## Adversarial imitation on CartPole-v1 from 10 expert episodes",
            "",
            f"The learner never sees the env's reward. Evaluated every ~{EVAL_EVERY_STEPS:,} env steps (rlcourse: "
            "20 deterministic episodes; imitation: 10, after each of its 16,384-step rounds); times are training "
            "time with evaluation excluded. Final: 100 episodes (rlcourse), the last evaluation (imitation). "
            f"Budgets: rlcourse {IMITATION_BUDGET:,} env steps, imitation {IMITATION_REFERENCE_BUDGET:,}.",
            "",
            *table(
                ("implementation", "device", "seeds reaching 475", "env steps to 475", "s to 475", "final mean return"),
                imitation_lines,
            ),
            "",
            *_dialogue_section(report.get("dialogue")),
        ]
    )


def _dialogue_section(dialogue: dict[str, Any] | None) -> list[str]:
    if dialogue is None:
        return []
    expert = dialogue["expert_success"]
    lines = []
    for row in dialogue["rows"]:
        results = row["seeds"]
        success = [r["success"] for r in results]
        lines.append(
            [
                row["method"],
                f"{row['budget']:,}",
                f"{sum(rate >= 0.9 * expert for rate in success)}/{len(results)}",
                spread(success, 3),
                spread([rate / expert for rate in success], 3),
                spread([r["turns"] for r in results], 2),
                spread([r["seconds"] for r in results], 1),
            ]
        )
    return [
        "## Adversarial imitation on the dialogue from the rule expert",
        "",
        f"`{DIALOGUE}` (clean NLU): {DIALOGUE_EXPERT_EPISODES:,} dialogues of the rule expert (success {expert:.3f}); "
        "the learner never sees the env's reward. Final success over "
        f"{DIALOGUE_EVAL_EPISODES} deterministic dialogues; the target is ≥ 0.9 × the expert's.",
        "",
        *table(
            ("implementation", "env steps", "seeds ≥ 0.9 × expert", "success", "× expert", "turns", "training s"),
            lines,
        ),
        "",
    ]
