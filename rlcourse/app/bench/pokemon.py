"""``rlcourse bench --suite pokemon``: ``rlcourse/PokemonBattle-v0`` measured.

Rows:

* **env**: raw env throughput (steps/s) per batch size and opponent, random valid actions from a fixed
  pool of uniforms, no policy; on CUDA a block of steps is captured as one CUDA graph (``step`` is pure
  device work).
* **scripted**: win and draw rates of each scripted policy against each scripted opponent (a reference
  table: ``max_damage`` beats ``random`` in about 93 % of battles).
* **PPO**: per opponent, PPO with the shipped preset (``rlcourse/presets/ppo.yml``), training steps/s
  and the final deterministic win rate over :data:`FINAL_BATTLES` battles.

Not wired into ``rlcourse bench`` yet (``command.py`` belongs to the app); :func:`run_suite` returns the
markdown lines and a JSON-safe dict for :func:`rlcourse.app.bench.report.write_report`.
"""

from __future__ import annotations

import time
from typing import Any

import torch

from rlcourse.app.bench.harness import steps_per_s
from rlcourse.app.bench.report import num, table
from rlcourse.registry import make_vec

ENV_ID = "rlcourse/PokemonBattle-v0"
OPPONENTS = ("random", "max_damage", "heuristic")
FINAL_BATTLES = 1000
SCRIPTED_BATTLES = 2000
ENV_STEPS = 64
EVAL_SEED = 12345


def env_throughput(num_envs: int, device: torch.device, opponent: str, steps: int = ENV_STEPS) -> float:
    """Env steps/s of ``num_envs`` battles against ``opponent``, random valid actions (CUDA: one captured graph)."""
    env = make_vec(ENV_ID, num_envs, device, opponent=opponent)
    env.reset(seed=0)
    uniforms = torch.rand(steps, num_envs, 9, device=device, generator=torch.Generator(device).manual_seed(0))

    def run_block() -> None:
        for step in range(steps):
            masks = env.action_masks()
            env.step(torch.where(masks, uniforms[step], -1.0).argmax(-1))

    run = run_block
    if device.type == "cuda":
        from rlcourse.agents.graphs import capture

        graph, _ = capture(
            run_block, snapshot=env.state_dict, restore=env.load_state_dict, generators=list(env.generators)
        )
        run = graph.replay
    return steps_per_s(run, steps * num_envs, device, seconds=2.0)


def scripted_rates(
    agent: str, opponent: str, battles: int = SCRIPTED_BATTLES, seed: int = EVAL_SEED
) -> dict[str, float]:
    """Win / draw rate of the scripted ``agent`` policy (playing side 0) against ``opponent``, one battle per sub-env."""
    from rlcourse.envs.pokemon import opponents

    env = make_vec(ENV_ID, battles, "cpu", opponent=opponent)
    env.reset(seed=seed)
    generator = torch.Generator().manual_seed(seed)
    done = torch.zeros(battles, dtype=torch.bool)
    won = torch.zeros(battles, dtype=torch.bool)
    drawn = torch.zeros(battles, dtype=torch.bool)
    while not bool(done.all()):
        masks = env.action_masks()
        draws = torch.rand(battles, opponents.DRAWS_PER_CHOICE, generator=generator)
        if agent == "random":
            actions = opponents.random_choice(masks, draws)
        else:
            actions = opponents.SCRIPTED[agent](env.dex, env.state, 0, masks, draws)
        _, _, terminated, truncated, info = env.step(actions)
        ended = (terminated | truncated) & ~done
        won |= ended & info["final_info"]["win"]
        drawn |= ended & info["final_info"]["draw"]
        done |= terminated | truncated
    return {"win_rate": won.float().mean().item(), "draw_rate": drawn.float().mean().item()}


def ppo_row(opponent: str, device: torch.device, max_steps: int | None, seed: int = 0) -> dict[str, Any]:
    """PPO with the shipped preset against ``opponent``: steps/s and the final deterministic win rate."""
    from rlcourse.agents import PPO

    agent = PPO(ENV_ID, device=device, seed=seed, env_kwargs={"opponent": opponent})
    steps = max_steps or agent.preset_timesteps
    start = time.perf_counter()
    agent.learn(total_timesteps=steps)
    seconds = time.perf_counter() - start
    result = agent.evaluate(n_episodes=FINAL_BATTLES, seed=EVAL_SEED)
    return {"opponent": opponent, "steps": steps, "steps_per_s": steps / seconds, **result}


def run_suite(
    device: torch.device, num_envs: tuple[int, ...] = (), max_steps: int | None = None, with_ppo: bool = True
) -> tuple[list[str], dict[str, Any]]:
    """All rows as markdown lines and as data."""
    sizes = num_envs or ((1_048_576,) if device.type == "cuda" else (4096,))
    env_rows = [
        {"num_envs": n, "opponent": opponent, "steps_per_s": env_throughput(n, device, opponent)}
        for n in sizes
        for opponent in OPPONENTS
    ]
    scripted = [
        {"agent": agent, "opponent": opponent, **scripted_rates(agent, opponent)}
        for agent in OPPONENTS
        for opponent in OPPONENTS
    ]
    ppo = [ppo_row(opponent, device, max_steps) for opponent in OPPONENTS] if with_ppo else []
    lines = ["## rlcourse/PokemonBattle-v0", "", "### Raw env throughput (random valid actions)", ""]
    lines += table(
        ["envs", "opponent", "steps/s"], [[num(r["num_envs"]), r["opponent"], num(r["steps_per_s"])] for r in env_rows]
    )
    lines += ["", f"### Scripted policies ({SCRIPTED_BATTLES:,} battles each, random teams of 3)", ""]
    lines += table(
        ["policy", "opponent", "win rate", "draw rate"],
        [[r["agent"], r["opponent"], num(r["win_rate"], 3), num(r["draw_rate"], 3)] for r in scripted],
    )
    if ppo:
        lines += ["", f"### PPO (shipped preset; deterministic win rate over {FINAL_BATTLES:,} battles)", ""]
        lines += table(
            ["opponent", "env steps", "steps/s", "win rate", "draw rate"],
            [
                [r["opponent"], num(r["steps"]), num(r["steps_per_s"]), num(r["win_rate"], 3), num(r["draw_rate"], 3)]
                for r in ppo
            ],
        )
    return lines, {"env": env_rows, "scripted": scripted, "ppo": ppo}
