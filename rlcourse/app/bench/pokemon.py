"""``rlcourse bench --suite pokemon``: ``rlcourse/PokemonBattle-v0`` measured.

Rows:

* **env**: raw env throughput (steps/s) per batch size and opponent, random valid actions from a fixed
  pool of uniforms, no policy; on CUDA a block of :data:`ENV_STEPS` steps is captured as one CUDA graph
  and replayed (``step`` against a scripted opponent is pure device work), as the dialogue's raw row is.
* **scripted**: win and draw rates of each scripted policy against each scripted opponent (a reference
  table: ``max_damage`` beats ``random`` in about 93 % of battles).
* **PPO**: per opponent, PPO with the shipped preset (``rlcourse/presets/ppo.yml``), training steps/s
  and the final deterministic win rate over :data:`FINAL_BATTLES` battles against every scripted opponent.
* **self-play Elo**: PPO trained only against its own snapshot pool (``opponent="self"``), then a round
  robin among ``random``, ``max_damage``, ``heuristic``, the final agent and :data:`SNAPSHOTS` of its
  earlier selves (each pairing plays half its battles from either side), rated by
  :func:`~rlcourse.app.bench.elo.fit_elo` with ``random`` at 1000; and the final agent's win rate
  against ``heuristic`` (the target is 0.60).
* **SB3 side by side**: SB3's PPO and sb3-contrib's MaskablePPO on the batched env through
  :mod:`rlcourse.sb3`, with the preset's settings and env-step budget, trained against
  :data:`SB3_OPPONENT` as the rlcourse row is; training steps/s and win rates against ``random`` and
  ``max_damage``. A library that is not installed makes its row say so; the rest of the suite runs.

:func:`run_suite` returns the markdown lines and a JSON-safe dict for :func:`rlcourse.app.bench.report.write_report`.
"""

from __future__ import annotations

import itertools
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from rlcourse.app.bench.elo import Pairing, fit_elo
from rlcourse.app.bench.harness import steps_per_s
from rlcourse.app.bench.report import num, table
from rlcourse.callbacks import Callback
from rlcourse.config import DEFAULT_PRESET, load_preset
from rlcourse.evaluation import evaluate_policy
from rlcourse.registry import make_vec

ENV_ID = "rlcourse/PokemonBattle-v0"
OPPONENTS = ("random", "max_damage", "heuristic")
FINAL_BATTLES = 1000
SCRIPTED_BATTLES = 2000
ENV_STEPS = 64
EVAL_SEED = 12345
#: Battles per round-robin pairing: on CUDA, and on the CPU (where a battle is slow), unless told.
ELO_BATTLES_CUDA, ELO_BATTLES_CPU = 1000, 200
#: Earlier selves in the round robin, taken evenly through self-play training (at 1/4, 2/4 and 3/4).
SNAPSHOTS = 3
ELO_ANCHOR, ELO_ANCHOR_RATING = "random", 1000.0
SELF_PLAY_TARGET = 0.60
SB3_OPPONENT = "max_damage"
SB3_IMPLEMENTATIONS = ("SB3 PPO", "sb3-contrib MaskablePPO")

#: A player: a scripted opponent's name or an object with ``predict(obs, deterministic, action_masks)``.
Player = Any


# --------------------------------------------------------------------------- the raw env
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


# --------------------------------------------------------------------------- battles between two players
def play_matchup(first: Player, second: Player, battles: int, device: torch.device, seed: int) -> dict[str, int]:
    """``first`` (side 0) against ``second`` (side 1), one battle per sub-env: ``first``'s wins, draws and losses."""
    from rlcourse.envs.pokemon import opponents

    env = make_vec(ENV_ID, battles, device, opponent=second)
    obs, _ = env.reset(seed=seed)
    generator = torch.Generator(device).manual_seed(seed)
    done = torch.zeros(battles, dtype=torch.bool, device=device)
    won, drawn = torch.zeros_like(done), torch.zeros_like(done)
    while not bool(done.all()):
        masks = env.action_masks()
        if not isinstance(first, str):
            actions = torch.as_tensor(first.predict(obs, deterministic=True, action_masks=masks), device=device)
        else:
            draws = torch.rand(battles, opponents.DRAWS_PER_CHOICE, generator=generator, device=device)
            if first == "random":
                actions = opponents.random_choice(masks, draws)
            else:
                actions = opponents.SCRIPTED[first](env.dex, env.state, 0, masks, draws)
        obs, _, terminated, truncated, info = env.step(actions.long())
        ended = (terminated | truncated) & ~done
        won |= ended & info["final_info"]["win"]
        drawn |= ended & info["final_info"]["draw"]
        done |= terminated | truncated
    wins, draws = int(won.sum()), int(drawn.sum())
    return {"wins": wins, "draws": draws, "losses": battles - wins - draws}


def scripted_rates(
    agent: str, opponent: str, battles: int = SCRIPTED_BATTLES, seed: int = EVAL_SEED
) -> dict[str, float]:
    """Win / draw rate of the scripted ``agent`` policy (playing side 0) against ``opponent``, one battle per sub-env."""
    result = play_matchup(agent, opponent, battles, torch.device("cpu"), seed)
    return {"win_rate": result["wins"] / battles, "draw_rate": result["draws"] / battles}


def round_robin(players: dict[str, Player], battles: int, device: torch.device, seed: int = EVAL_SEED) -> list[Pairing]:
    """Every pairing of ``players`` over ``battles`` battles, half with each player on side 0 (the side that
    replaces a fainted Pokémon a step later), so neither side's seat favours anyone."""
    pairings = []
    for a, b in itertools.combinations(players, 2):
        first_half = play_matchup(players[a], players[b], battles // 2, device, seed)
        second_half = play_matchup(players[b], players[a], battles - battles // 2, device, seed + 1)
        pairings.append(
            Pairing(
                a,
                b,
                wins_a=first_half["wins"] + second_half["losses"],
                wins_b=first_half["losses"] + second_half["wins"],
                draws=first_half["draws"] + second_half["draws"],
            )
        )
    return pairings


# --------------------------------------------------------------------------- rlcourse PPO
def agent_policy(agent: Any) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    return lambda obs, masks: agent.predict(obs, deterministic=True, action_masks=masks)


def win_rates(policy: Callable[[torch.Tensor, torch.Tensor], Any], device: torch.device) -> dict[str, float]:
    """The deterministic win rate of ``policy(obs, masks)`` against each scripted opponent (the same battles)."""
    return {
        opponent: evaluate_policy(make_vec(ENV_ID, FINAL_BATTLES, device, opponent=opponent), policy, seed=EVAL_SEED)[
            "win_rate"
        ]
        for opponent in OPPONENTS
    }


def ppo_row(
    opponent: str, device: torch.device, max_steps: int | None, seed: int = 0, preset: str | None = None
) -> dict[str, Any]:
    """PPO with a shipped preset against ``opponent``: steps/s and the final win rates against every opponent."""
    from rlcourse.agents import PPO

    agent = PPO(ENV_ID, device=device, seed=seed, env_kwargs={"opponent": opponent}, preset=preset or DEFAULT_PRESET)
    steps = max_steps or agent.preset_timesteps
    start = time.perf_counter()
    agent.learn(total_timesteps=steps)
    seconds = time.perf_counter() - start
    result = agent.evaluate(n_episodes=FINAL_BATTLES, seed=EVAL_SEED)
    vs = win_rates(agent_policy(agent), device)
    return {"opponent": opponent, "steps": steps, "steps_per_s": steps / seconds, **result, "win_rate_vs": vs}


class _SaveAt(Callback):
    """Save the agent into ``folder`` after each of the training ``iterations`` (the self-play snapshots)."""

    def __init__(self, folder: Path, iterations: set[int]):
        self.folder, self.iterations, self.saved = folder, iterations, []

    def on_rollout_end(self, batch: Any) -> None:
        if self.run.iteration in self.iterations:
            self.saved.append((self.run.iteration, self.run.save(self.folder / f"iteration-{self.run.iteration}.pt")))


def self_play_elo(
    device: torch.device,
    max_steps: int | None,
    battles: int,
    seed: int = 0,
    snapshots: int = SNAPSHOTS,
    preset: str | None = None,
) -> dict[str, Any]:
    """PPO trained by self-play only, then the round robin and Elo ratings (see the module docstring)."""
    from rlcourse.agents import PPO

    agent = PPO(ENV_ID, device=device, seed=seed, env_kwargs={"opponent": "self"}, preset=preset or DEFAULT_PRESET)
    steps = max_steps or agent.preset_timesteps
    iterations = -(-steps // agent.steps_per_iteration)
    marks = {max(1, round(iterations * k / (snapshots + 1))) for k in range(1, snapshots + 1)} - {iterations}
    with tempfile.TemporaryDirectory(prefix="rlcourse-bench-selfplay-") as folder:
        saver = _SaveAt(Path(folder), marks)
        start = time.perf_counter()
        agent.learn(total_timesteps=steps, callbacks=[saver])  # the env's SelfPlayCallback runs too
        seconds = time.perf_counter() - start
        players: dict[str, Player] = {name: name for name in OPPONENTS}
        for iteration, path in saver.saved:
            players[f"self-play, iteration {iteration}"] = PPO.load(path, device=device, threads=None)
    players[f"self-play, final (iteration {agent.iteration})"] = agent
    pairings = round_robin(players, battles, device)
    ratings = fit_elo(list(players), pairings, anchor=ELO_ANCHOR, anchor_rating=ELO_ANCHOR_RATING)
    final = list(players)[-1]
    (against_heuristic,) = [p for p in pairings if {p.a, p.b} == {final, "heuristic"}]
    final_wins = against_heuristic.wins_a if against_heuristic.a == final else against_heuristic.wins_b
    return {
        "steps": steps,
        "steps_per_s": steps / seconds,
        "battles_per_pairing": battles,
        "ratings": ratings,
        "pairings": [vars(p) for p in pairings],
        "final": final,
        "final_vs_heuristic": final_wins / against_heuristic.games,
    }


# --------------------------------------------------------------------------- Stable-Baselines3 side by side
def sb3_settings() -> tuple[int, dict[str, Any]]:
    """``(num_envs, SB3 keyword arguments)`` from rlcourse's PPO preset for the env (the same settings)."""
    preset = load_preset("ppo", ENV_ID)
    rate = float(preset["learning_rate"])
    kwargs = {key: preset[key] for key in ("n_steps", "batch_size", "n_epochs", "gamma", "gae_lambda", "ent_coef")}
    kwargs["learning_rate"] = (lambda remaining: rate * remaining) if preset.get("anneal_lr") else rate
    kwargs["policy_kwargs"] = {"net_arch": list(preset.get("net_arch", (64, 64)))}
    return int(preset["num_envs"]), kwargs


def sb3_row(implementation: str, steps: int, seed: int = 0) -> dict[str, Any]:
    """SB3's PPO or MaskablePPO trained against :data:`SB3_OPPONENT` for ``steps`` env steps, on the CPU."""
    row: dict[str, Any] = {"implementation": implementation, "steps": steps}
    try:
        if implementation == "SB3 PPO":
            from stable_baselines3 import PPO as model_class
        else:
            from sb3_contrib import MaskablePPO as model_class
        from rlcourse.sb3 import make_sb3_vec_env
    except ImportError as error:
        return {**row, "skipped": f"not installed ({error.name})"}
    masked = implementation != "SB3 PPO"
    num_envs, kwargs = sb3_settings()
    vec_env = make_sb3_vec_env(ENV_ID, num_envs, seed=seed, opponent=SB3_OPPONENT)
    model = model_class("MlpPolicy", vec_env, device="cpu", seed=seed, verbose=0, **kwargs)
    start = time.perf_counter()
    model.learn(steps)
    seconds = time.perf_counter() - start
    vec_env.close()

    def policy(obs: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        action_masks = {"action_masks": masks.numpy()} if masked else {}
        actions, _ = model.predict(obs.numpy(), deterministic=True, **action_masks)
        return torch.as_tensor(actions)

    return {**row, "steps": int(model.num_timesteps), "steps_per_s": model.num_timesteps / seconds,
            "win_rate_vs": win_rates(policy, torch.device("cpu"))}  # fmt: skip


# --------------------------------------------------------------------------- the suite
def run_suite(
    device: torch.device,
    num_envs: tuple[int, ...] = (),
    max_steps: int | None = None,
    with_ppo: bool = True,
    with_self_play: bool = True,
    with_sb3: bool = True,
    elo_battles: int | None = None,
    sb3_steps: int | None = None,
    preset: str | None = None,
    say: Callable[[str], None] = lambda line: None,
) -> tuple[list[str], dict[str, Any]]:
    """All rows as markdown lines and as data.

    ``max_steps``: each PPO run's budget (default: the preset's); ``preset``: the PPO preset variant of the PPO
    and self-play rows (default: the env's ``default``); ``elo_battles``: battles per round-robin
    pairing (default :data:`ELO_BATTLES_CUDA` / :data:`ELO_BATTLES_CPU`); ``sb3_steps``: the SB3 rows' budget
    (default: the PPO rows', as a side-by-side row should be; SB3 trains on the CPU, so it is the slow part).
    ``say`` gets a progress line after every row, so a run cut short still shows what it measured.
    """
    sizes = num_envs or ((1_048_576,) if device.type == "cuda" else (4096,))

    def said(row: dict[str, Any], what: str) -> dict[str, Any]:
        say(f"{what}: {', '.join(f'{k} {v}' for k, v in row.items() if isinstance(v, (int, float, str)))}")
        return row

    env_rows = [
        said({"num_envs": n, "opponent": opponent, "steps_per_s": env_throughput(n, device, opponent)}, "raw env")
        for n in sizes
        for opponent in OPPONENTS
    ]
    scripted = [
        said({"agent": agent, "opponent": opponent, **scripted_rates(agent, opponent)}, "scripted")
        for agent in OPPONENTS
        for opponent in OPPONENTS
    ]
    ppo = [said(ppo_row(o, device, max_steps, preset=preset), "PPO") for o in OPPONENTS] if with_ppo else []
    battles = elo_battles or (ELO_BATTLES_CUDA if device.type == "cuda" else ELO_BATTLES_CPU)
    self_play = said(self_play_elo(device, max_steps, battles, preset=preset), "self-play") if with_self_play else None
    budget = sb3_steps or max_steps or int(load_preset("ppo", ENV_ID)["total_timesteps"])
    sb3 = [said(sb3_row(i, budget), "SB3") for i in SB3_IMPLEMENTATIONS] if with_sb3 else []

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
        lines += ["", f"### PPO (shipped preset; deterministic win rates over {FINAL_BATTLES:,} battles)", ""]
        lines += table(
            ["trained against", "env steps", "steps/s", *(f"vs {o}" for o in OPPONENTS), "draw rate"],
            [
                [r["opponent"], num(r["steps"]), num(r["steps_per_s"])]
                + [num(r["win_rate_vs"][o], 3) for o in OPPONENTS]
                + [num(r["draw_rate"], 3)]
                for r in ppo
            ],
        )
    if self_play is not None:
        lines += self_play_lines(self_play)
    if sb3:
        lines += sb3_lines(sb3, next((r for r in ppo if r["opponent"] == SB3_OPPONENT), None))
    return lines, {"env": env_rows, "scripted": scripted, "ppo": ppo, "self_play": self_play, "sb3": sb3}


def self_play_lines(result: dict[str, Any]) -> list[str]:
    ratings = sorted(result["ratings"].items(), key=lambda item: -item[1])
    lines = [
        "",
        f"### Self-play Elo (PPO against its snapshot pool only, {num(result['steps'])} env steps at "
        f"{num(result['steps_per_s'])} steps/s; {result['battles_per_pairing']:,} battles a pairing)",
        "",
    ]
    lines += table(["player", "Elo"], [[name, num(rating)] for name, rating in ratings])
    lines += [
        "",
        f"Bradley–Terry fit on Elo's scale, {ELO_ANCHOR} = {ELO_ANCHOR_RATING:.0f} (rlcourse/app/bench/elo.py). "
        f"{result['final']} against heuristic: win rate {result['final_vs_heuristic']:.3f} "
        f"(target {SELF_PLAY_TARGET:.2f}).",
        "",
    ]
    lines += table(
        ["player", "opponent", "wins", "draws", "losses"],
        [[p["a"], p["b"], num(p["wins_a"]), num(p["draws"]), num(p["wins_b"])] for p in result["pairings"]],
    )
    return lines


def sb3_lines(rows: list[dict[str, Any]], ours: dict[str, Any] | None) -> list[str]:
    lines = [
        "",
        f"### Side by side with Stable-Baselines3 (trained against {SB3_OPPONENT}, the preset's settings; SB3 on "
        f"the CPU through rlcourse.sb3; deterministic win rates over {FINAL_BATTLES:,} battles)",
        "",
    ]
    cells = []
    if ours is not None:
        cells.append(["rlcourse PPO", num(ours["steps"]), num(ours["steps_per_s"])])
        cells[-1] += [num(ours["win_rate_vs"][o], 3) for o in ("random", "max_damage")]
    for row in rows:
        if "skipped" in row:
            cells.append([row["implementation"], row["skipped"], "—", "—", "—"])
        else:
            cells.append([row["implementation"], num(row["steps"]), num(row["steps_per_s"])])
            cells[-1] += [num(row["win_rate_vs"][o], 3) for o in ("random", "max_damage")]
    return lines + table(["implementation", "env steps", "steps/s", "vs random", "vs max_damage"], cells)
