"""``rlcourse bench --suite dialogue``: ``rlcourse/SlotFilling-v0``, the flagship, measured.

Rows:

* **env**: raw env throughput, random valid-range actions from a fixed pool, no policy. On CUDA a
  block of steps is captured as one CUDA graph (the env is pure device work).
* **rule expert**: success, turns and return of the hand-written policy on each NLU preset (one
  dialogue per sub-env, a reference row).
* **rlcourse PPO**: per NLU preset and batch size, over several seeds: training steps/s (steady
  state), env steps and wall time until a deterministic evaluation first reaches the success target
  (0.9), and the final success rate and turns (system turns, and TC-Bot's units = 2 × turns).
  Small batches use the ``default`` preset of ``rlcourse/presets/ppo.yml``; larger ones its
  ``large_batch_*`` variants (:func:`ppo_hparams`).
* **SB3 PPO** (default MlpPolicy, 8 envs, our CPU preset's rollout settings, the same env-step budget),
  given the env two ways: the single-env registration (``gym.make("rlcourse/SlotFilling-v0")`` in SB3's
  ``DummyVecEnv``, one batched call per sub-env) and the batched env itself through :mod:`rlcourse.sb3`
  (one call for all 8), the latter also with its step compiled when the suite runs with ``compile``. Each
  row has PPO's steady-state steps/s (the first rollout and update, where compilation happens, are
  setup), the share of that time spent collecting rollouts (the rest is SB3's update), and the env
  stepping alone through SB3's ``VecEnv.step`` with random actions.

Policies are scored with the core's :func:`rlcourse.evaluation.evaluate_policy`, as ``Agent.evaluate`` is.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from rlcourse.app.bench.harness import PPO_TIERS_BY_ENV, learn_to_target, measure_throughput, steps_per_s, tier_hparams
from rlcourse.app.bench.report import num, ratio_cell, spread, table
from rlcourse.config import load_preset
from rlcourse.evaluation import evaluate_policy
from rlcourse.registry import make_vec

ENV_ID = "rlcourse/SlotFilling-v0"
SUCCESS_TARGET = 0.9
FINAL_DIALOGUES = 1000
#: Dialogues of each periodic evaluation that decides whether the success target is reached.
TARGET_DIALOGUES = 200
EXPERT_DIALOGUES = 10_000
#: The seed of the dialogues every policy of the suite is scored on.
EVAL_SEED = 12345
#: Which ``ppo.yml`` variant a PPO row of ``num_envs`` envs runs: the first tier that holds it.
PPO_TIERS = PPO_TIERS_BY_ENV[ENV_ID]
#: How SB3 is given the env: the single-env registration in DummyVecEnv, or the batched env through rlcourse.sb3.
SB3_SINGLE_ENV, SB3_ADAPTER, SB3_ADAPTER_COMPILED = "single env", "rlcourse.sb3", "rlcourse.sb3, compiled step"
SB3_NUM_ENVS = 8


def ppo_hparams(num_envs: int) -> dict[str, Any]:
    """PPO settings for SlotFilling-v0 with ``num_envs`` envs: the preset's on small batches, short rollouts and a
    handful of minibatches on large ones."""
    return tier_hparams("ppo", ENV_ID, PPO_TIERS, num_envs)


def default_budget(num_envs: int) -> int:
    """Env steps per PPO run: the preset's budget on small batches, 300 iterations of 16 steps on large ones.

    The policy needs a few hundred updates whatever the batch (the CPU preset takes ~300 iterations);
    a larger batch makes each update better informed, not unnecessary.
    """
    return max(int(load_preset("ppo", ENV_ID)["total_timesteps"]), 300 * 16 * num_envs)


# --------------------------------------------------------------------------- env throughput
def env_throughput(
    num_envs: int,
    device: torch.device,
    seconds: float = 2.0,
    nlu: str = "clean",
    steps_per_graph: int = 8,
    compile: bool = False,
) -> float:
    """Raw steps/s of the batched env with random actions (CUDA: ``steps_per_graph`` steps per graph replay;
    ``compile``: the step goes through ``torch.compile`` first, fusing its elementwise work)."""
    env = make_vec(ENV_ID, num_envs, device, nlu=nlu)
    step = torch.compile(env.step) if compile else env.step
    env.reset(seed=0)
    generator = torch.Generator(device=device)
    generator.manual_seed(0)
    pool = torch.randint(env.single_action_space.n, (steps_per_graph, num_envs), generator=generator, device=device)

    def block() -> None:
        for actions in pool:
            step(actions)

    run = block
    if device.type == "cuda":
        from rlcourse.agents.graphs import capture

        graph, _ = capture(block, snapshot=env.state_dict, restore=env.load_state_dict, generators=list(env.generators))
        run = graph.replay
    return steps_per_s(run, steps_per_graph * num_envs, device, seconds)


# --------------------------------------------------------------------------- policies evaluated
Policy = Callable[[torch.Tensor, "torch.Tensor | None"], torch.Tensor]


def score_policy(policy: Policy, num_dialogues: int, device: torch.device, nlu: str) -> dict[str, float]:
    """One dialogue per sub-env of a fresh env played by ``policy(obs, masks)``: success rate, turns and return."""
    env = make_vec(ENV_ID, num_dialogues, device, nlu=nlu)
    result = evaluate_policy(env, policy, seed=EVAL_SEED)
    return {
        "success_rate": result["success_rate"],
        "mean_turns": result["mean_length"],
        "mean_reward": result["mean_reward"],
    }


def expert_row(nlu: str, device: torch.device, dialogues: int = EXPERT_DIALOGUES) -> dict[str, Any]:
    """The rule expert's reference row on one NLU preset."""
    env = make_vec(ENV_ID, 1, device, nlu=nlu)
    if not env.has_rule_expert:
        raise ValueError(f"{ENV_ID} declares no rule expert")
    expert = env.rule_expert()
    result = score_policy(lambda obs, masks: expert(obs), dialogues, device, nlu)
    return {"implementation": "rule expert", "nlu": nlu, "device": device.type, "dialogues": dialogues, **result}


# --------------------------------------------------------------------------- PPO runs
def ppo_run(
    nlu: str,
    num_envs: int,
    seed: int,
    device: torch.device,
    budget: int,
    compile: bool,
    throughput_seconds: float = 2.0,
) -> dict[str, Any]:
    """One seed of an rlcourse PPO row: trained for ``budget`` steps to the success target, then scored and timed."""
    from rlcourse.agents import PPO

    agent = PPO(
        ENV_ID,
        num_envs=num_envs,
        device=device,
        seed=seed,
        compile=compile,
        env_kwargs={"nlu": nlu},
        preset=None,  # the tier's settings are complete
        **ppo_hparams(num_envs),
    )
    every = max(1, math.ceil(4096 / agent.steps_per_iteration), math.ceil(budget / agent.steps_per_iteration / 50))
    result = learn_to_target(
        agent, budget, SUCCESS_TARGET, every, metric="success_rate", eval_episodes=TARGET_DIALOGUES
    )
    final = agent.evaluate(n_episodes=FINAL_DIALOGUES, deterministic=True)
    steps_per_s, _ = measure_throughput(agent, throughput_seconds)
    return {
        "seed": seed,
        "steps_per_s": steps_per_s,
        **result,
        "final_success": final["success_rate"],
        "final_turns": final["mean_length"],
        "final_reward": final["mean_reward"],
    }


# --------------------------------------------------------------------------- SB3's rows
def sb3_paths(compile: bool) -> list[str]:
    """The ways SB3 is given the env: both always, the compiled adapter with ``compile``."""
    return [SB3_SINGLE_ENV, SB3_ADAPTER] + ([SB3_ADAPTER_COMPILED] if compile else [])


def sb3_vec_env(path: str, nlu: str, seed: int) -> Any:
    """SB3's ``VecEnv`` of :data:`SB3_NUM_ENVS` dialogues, given the ``path`` way (see :func:`sb3_paths`)."""
    if path == SB3_SINGLE_ENV:
        import gymnasium as gym
        from stable_baselines3.common.env_util import make_vec_env

        return make_vec_env(lambda: gym.make(ENV_ID, nlu=nlu), n_envs=SB3_NUM_ENVS, seed=seed)
    from rlcourse.sb3 import make_sb3_vec_env

    return make_sb3_vec_env(ENV_ID, SB3_NUM_ENVS, seed=seed, compile=path == SB3_ADAPTER_COMPILED, nlu=nlu)


def sb3_env_throughput(path: str, nlu: str, seconds: float = 2.0, steps_per_call: int = 8) -> float:
    """Env steps/s of SB3's ``VecEnv.step`` alone (random actions from a fixed pool, no policy), on the CPU."""
    vec_env = sb3_vec_env(path, nlu, seed=0)
    vec_env.reset()
    pool = np.random.default_rng(0).integers(vec_env.action_space.n, size=(steps_per_call, SB3_NUM_ENVS))

    def block() -> None:
        for actions in pool:
            vec_env.step(actions)

    rate = steps_per_s(block, steps_per_call * SB3_NUM_ENVS, torch.device("cpu"), seconds)
    vec_env.close()
    return rate


def sb3_timeline() -> Any:
    """An SB3 callback that notes when each rollout starts and ends (with the step count) and when training ends.

    Between a rollout's end and the next one's start SB3 updates the policy, so the marks split the run
    into collecting and updating.
    """
    from stable_baselines3.common.callbacks import BaseCallback

    class Timeline(BaseCallback):
        def __init__(self) -> None:
            super().__init__()
            self.rollouts: list[list[float]] = []  # [start, end, num_timesteps at start]
            self.end: tuple[float, int] | None = None

        def _on_rollout_start(self) -> None:
            self.rollouts.append([time.perf_counter(), math.nan, self.model.num_timesteps])

        def _on_rollout_end(self) -> None:
            self.rollouts[-1][1] = time.perf_counter()

        def _on_step(self) -> bool:
            return True

        def _on_training_end(self) -> None:
            self.end = (time.perf_counter(), self.model.num_timesteps)

    return Timeline()


def timeline_summary(timeline: Any) -> dict[str, Any]:
    """Setup (the first rollout and update), steady-state steps/s after it, and the share spent collecting."""
    rollouts, (end, steps) = timeline.rollouts, timeline.end
    steady = rollouts[1:] or rollouts  # with a single rollout there is no steady state to set apart
    seconds = end - steady[0][0]
    return {
        "setup_s": rollouts[1][0] - rollouts[0][0] if len(rollouts) > 1 else None,
        "train_s": end - rollouts[0][0],
        "steps_per_s": (steps - steady[0][2]) / seconds,
        "rollout_share": sum(stop - start for start, stop, _ in steady) / seconds,
    }


def sb3_run(nlu: str, seed: int, budget: int, path: str = SB3_SINGLE_ENV) -> dict[str, Any]:
    """SB3 PPO (default MlpPolicy, the same rollout settings as our CPU preset), given the env the ``path`` way."""
    from stable_baselines3 import PPO as SB3PPO
    from stable_baselines3.common.utils import LinearSchedule

    preset = load_preset("ppo", ENV_ID)
    env = sb3_vec_env(path, nlu, seed)
    model = SB3PPO(
        "MlpPolicy",
        env,
        n_steps=preset["n_steps"],
        batch_size=min(preset["batch_size"], preset["n_steps"] * SB3_NUM_ENVS),
        n_epochs=preset["n_epochs"],
        gamma=preset["gamma"],
        gae_lambda=preset["gae_lambda"],
        ent_coef=preset["ent_coef"],
        learning_rate=LinearSchedule(preset["learning_rate"], 0.0, 1.0),
        device="cpu",
        seed=seed,
        verbose=0,
    )
    timeline = sb3_timeline()
    model.learn(budget, callback=timeline)
    env.close()

    def policy(obs: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        actions, _ = model.predict(obs.numpy(), deterministic=True)
        return torch.as_tensor(actions)

    final = score_policy(policy, FINAL_DIALOGUES, torch.device("cpu"), nlu)
    return {
        "seed": seed,
        **timeline_summary(timeline),
        "time_to_target_s": None,
        "steps_to_target": None,
        "steps_trained": int(model.num_timesteps),
        "final_success": final["success_rate"],
        "final_turns": final["mean_turns"],
        "final_reward": final["mean_reward"],
        "n_envs": SB3_NUM_ENVS,
    }


def sb3_rows(
    nlu: str, seeds: int, budget: int, paths: list[str], say: Callable[[str], None] = lambda line: None
) -> dict[str, list[dict[str, Any]]]:
    """SB3's rows on one NLU preset, one per way in ``paths``: ``sb3`` (the single env) and ``sb3_adapter``
    (through rlcourse.sb3)."""
    rows: dict[str, list[dict[str, Any]]] = {"sb3": [], "sb3_adapter": []}
    for path in paths:
        runs = []
        for seed in range(seeds):  # first, so that a compiled step's compilation shows in the first run's setup
            runs.append(sb3_run(nlu, seed, budget, path))
            say(
                f"SB3 PPO ({path}) {nlu} seed={seed}: {runs[-1]['steps_per_s']:,.0f} steps/s "
                f"({runs[-1]['rollout_share']:.0%} collecting), final {runs[-1]['final_success']:.3f}"
            )
        env_steps_per_s = sb3_env_throughput(path, nlu)
        say(f"SB3 VecEnv.step ({path}) {nlu}: {env_steps_per_s:,.0f} env steps/s")
        row = {"nlu": nlu, "device": "cpu", "num_envs": SB3_NUM_ENVS, "budget": budget, "path": path}
        row.update(env_steps_per_s=env_steps_per_s, runs=runs)
        rows["sb3" if path == SB3_SINGLE_ENV else "sb3_adapter"].append(row)
    return rows


# --------------------------------------------------------------------------- the suite
def run_dialogue_bench(
    device: torch.device,
    num_envs: list[int],
    seeds: int,
    nlu_presets: list[str],
    env_num_envs: list[int],
    budget: int | None,
    sb3_seeds: int,
    compile: bool,
    say: Callable[[str], None] = lambda line: None,
    expert_dialogues: int = EXPERT_DIALOGUES,
    sb3_budget: int | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """Every row of the suite (see the module docstring); ``budget=None`` uses :func:`default_budget`."""
    report: dict[str, list[dict[str, Any]]] = {"env": [], "expert": [], "ppo": [], "sb3": [], "sb3_adapter": []}
    for n in env_num_envs:
        report["env"].append(
            {
                "device": device.type,
                "num_envs": n,
                "compile": compile,
                "steps_per_s": env_throughput(n, device, compile=compile),
            }
        )
        say(f"env {device.type} envs={n}: {report['env'][-1]['steps_per_s']:,.0f} steps/s")
    for nlu in ("clean", "tcbot", "pydial15", "pydial30"):
        report["expert"].append(expert_row(nlu, device, expert_dialogues))
        say(
            f"rule expert {nlu}: success {report['expert'][-1]['success_rate']:.3f}, turns {report['expert'][-1]['mean_turns']:.2f}"
        )
    for nlu in nlu_presets:
        for n in num_envs:
            steps = budget or default_budget(n)
            runs = []
            for seed in range(seeds):
                runs.append(ppo_run(nlu, n, seed, device, steps, compile))
                r = runs[-1]
                say(
                    f"PPO {nlu} {device.type} envs={n} seed={seed}: {r['steps_per_s']:,.0f} steps/s, to 0.9: "
                    f"{r['steps_to_target']} steps / {r['time_to_target_s']} s, final {r['final_success']:.3f} in {r['final_turns']:.2f} turns"
                )
            report["ppo"].append({"nlu": nlu, "device": device.type, "num_envs": n, "budget": steps, "runs": runs})
        if sb3_seeds:
            steps = sb3_budget or int(load_preset("ppo", ENV_ID)["total_timesteps"])
            for key, rows in sb3_rows(nlu, sb3_seeds, steps, sb3_paths(compile), say).items():
                report[key] += rows
    return report


ENV_HEADER = ("device", "envs", "compile", "steps/s")
EXPERT_HEADER = ("NLU", "dialogues", "success", "turns (TC-Bot units)", "return")
PPO_HEADER = (
    "implementation",
    "NLU",
    "device",
    "envs",
    "seeds",
    "steps/s",
    "steps to 0.9",
    "time to 0.9 (s)",
    "final success",
    "final turns (TC-Bot units)",
    "budget",
)
SB3_HEADER = (
    "SB3 gets the env as",
    "NLU",
    "envs",
    "VecEnv.step alone: env steps/s",
    "× single env",
    "PPO steps/s",
    "× single env",
    "PPO time collecting",
    "setup (s)",
)


def _ppo_line(name: str, row: dict[str, Any], timed_to_target: bool) -> list[str]:
    """A PPO table line; SB3's rows are not evaluated during training, so they have no time to target."""
    runs = row["runs"]
    reached = sum(r["steps_to_target"] is not None for r in runs)
    turns = [r["final_turns"] for r in runs]
    return [
        name,
        row["nlu"],
        row["device"],
        f"{row['num_envs']:,}",
        str(len(runs)),
        spread([r["steps_per_s"] for r in runs]),
        f"{spread([r['steps_to_target'] for r in runs])} ({reached}/{len(runs)})" if timed_to_target else "—",
        spread([r["time_to_target_s"] for r in runs], 2) if timed_to_target else "—",
        spread([r["final_success"] for r in runs], 3),
        f"{spread(turns, 2)} ({2 * statistics.fmean(turns):.1f})",
        f"{row['budget']:,}",
    ]


def render_dialogue_markdown(report: dict[str, list[dict[str, Any]]], meta: dict[str, Any]) -> str:
    """The suite's report: the machine and settings, then the env, rule-expert and PPO tables."""
    out = [
        f"# rlcourse bench: PPO on {ENV_ID}",
        "",
        f"- device: {meta['device_name']} ({meta['device']}); date: {meta['date']}; torch {meta['torch']}, "
        f"stable-baselines3 {meta['stable_baselines3']}; compile={bool(meta.get('compile'))}, TF32={bool(meta.get('tf32'))}",
        f"- success target {SUCCESS_TARGET} (deterministic evaluation of {TARGET_DIALOGUES} dialogues); final evaluation "
        f"{FINAL_DIALOGUES} dialogues; turns are system turns (TC-Bot's units: ×2)",
        "",
    ]
    if report["env"]:
        lines = [
            [r["device"], f"{r['num_envs']:,}", str(r["compile"]), f"{r['steps_per_s']:,.0f}"] for r in report["env"]
        ]
        out += ["## Raw env throughput (random actions)", "", *table(ENV_HEADER, lines), ""]
    lines = [
        [
            r["nlu"],
            f"{r['dialogues']:,}",
            f"{r['success_rate']:.3f}",
            f"{r['mean_turns']:.2f} ({2 * r['mean_turns']:.1f})",
            f"{r['mean_reward']:.1f}",
        ]
        for r in report["expert"]
    ]
    out += ["## Rule expert (reference)", "", *table(EXPERT_HEADER, lines), ""]
    sb3_adapter = report.get("sb3_adapter", [])  # reports written before rlcourse.sb3 have no such rows
    lines = (
        [_ppo_line("rlcourse PPO", row, timed_to_target=True) for row in report["ppo"]]
        + [_ppo_line("SB3 PPO (single env)", row, timed_to_target=False) for row in report["sb3"]]
        + [_ppo_line(f"SB3 PPO ({row['path']})", row, timed_to_target=False) for row in sb3_adapter]
    )
    out += ["## PPO", "", *table(PPO_HEADER, lines)]
    out += [
        "",
        "steps/s: rlcourse = steady-state training throughput; SB3 = env steps ÷ training time after the first "
        "rollout and update. Several seeds: mean [min–max].",
    ]
    if sb3_adapter:
        out += ["", *_sb3_paths_section(report["sb3"] + sb3_adapter)]
    return "\n".join(out) + "\n"


def _sb3_paths_section(rows: list[dict[str, Any]]) -> list[str]:
    """SB3 given the env as single envs vs the batched env through rlcourse.sb3, with the speed-ups per NLU preset."""
    single = {row["nlu"]: row for row in rows if row["path"] == SB3_SINGLE_ENV}

    def mean_ppo(row: dict[str, Any]) -> float:
        return statistics.fmean(r["steps_per_s"] for r in row["runs"])

    lines = []
    for row in rows:
        base = single.get(row["nlu"])
        lines.append(
            [
                row["path"],
                row["nlu"],
                str(row["num_envs"]),
                num(row["env_steps_per_s"]),
                ratio_cell(row["env_steps_per_s"] / base["env_steps_per_s"] if base else None),
                spread([r["steps_per_s"] for r in row["runs"]]),
                ratio_cell(mean_ppo(row) / mean_ppo(base) if base else None),
                f"{statistics.fmean(r['rollout_share'] for r in row['runs']):.0%}",
                spread([r["setup_s"] for r in row["runs"]], 1),
            ]
        )
    return [
        "## SB3 PPO through rlcourse.sb3",
        "",
        f"SB3's PPO (default MlpPolicy) on {SB3_NUM_ENVS} dialogues in one process: the single-env registration in "
        "SB3's DummyVecEnv (one call of the batched code per sub-env) against the batched env through "
        '`rlcourse.sb3.SB3VecEnv` (one call for all). "Collecting" is the share of PPO\'s steady-state time spent '
        "in rollouts (policy and env); the rest is SB3's update. Setup: the first rollout and update (where the "
        "compiled step compiles).",
        "",
        *table(SB3_HEADER, lines),
    ]


__all__ = [
    "ENV_ID",
    "PPO_TIERS",
    "env_throughput",
    "expert_row",
    "ppo_hparams",
    "ppo_run",
    "render_dialogue_markdown",
    "run_dialogue_bench",
    "sb3_env_throughput",
    "sb3_paths",
    "sb3_rows",
    "sb3_run",
    "sb3_vec_env",
    "score_policy",
    "steps_per_s",
]
