"""The Pokémon bench's new rows at toy budgets: the round robin and its Elo table, self-play, SB3 side by side."""

from __future__ import annotations

import sys

import pytest
import torch

from rlcourse.agents import PPO
from rlcourse.app.bench import pokemon
from rlcourse.app.bench.elo import fit_elo

CPU = torch.device("cpu")


def test_a_round_robin_plays_every_pairing_from_both_sides_and_rates_the_scripted_players():
    players = {name: name for name in pokemon.OPPONENTS}
    pairings = pokemon.round_robin(players, battles=60, device=CPU)
    assert [(p.a, p.b) for p in pairings] == [
        ("random", "max_damage"),
        ("random", "heuristic"),
        ("max_damage", "heuristic"),
    ]
    assert all(p.games == 60 for p in pairings)
    # the halves: a plays side 0 in the first 30 battles, b in the other 30, and the counts add up
    first = pokemon.play_matchup("random", "max_damage", 30, CPU, pokemon.EVAL_SEED)
    second = pokemon.play_matchup("max_damage", "random", 30, CPU, pokemon.EVAL_SEED + 1)
    assert pairings[0].wins_a == first["wins"] + second["losses"]
    assert pairings[0].wins_b == first["losses"] + second["wins"]
    ratings = fit_elo(list(players), pairings, anchor="random")
    assert ratings["random"] == pytest.approx(1000.0)
    assert ratings["max_damage"] > 1200 and ratings["heuristic"] > 1200  # both beat random about 9 times in 10


def test_an_agent_plays_a_matchup_from_either_side_deterministically():
    agent = PPO(pokemon.ENV_ID, num_envs=16, device="cpu", seed=0, n_steps=16, batch_size=128)
    as_first = pokemon.play_matchup(agent, "heuristic", 20, CPU, seed=3)
    assert sum(as_first.values()) == 20
    assert as_first == pokemon.play_matchup(agent, "heuristic", 20, CPU, seed=3)
    as_second = pokemon.play_matchup("heuristic", agent, 20, CPU, seed=3)
    assert sum(as_second.values()) == 20


def test_the_self_play_row_trains_against_its_pool_and_rates_its_snapshots():
    iteration = 256 * 32  # the shipped preset's rollout
    result = pokemon.self_play_elo(CPU, max_steps=2 * iteration, battles=8, snapshots=1)
    names = list(result["ratings"])
    assert names[:3] == list(pokemon.OPPONENTS)
    assert names[3:] == ["self-play, iteration 1", "self-play, final (iteration 2)"]
    assert result["ratings"]["random"] == pytest.approx(1000.0) and result["final"] == names[-1]
    assert len(result["pairings"]) == 10 and all(
        sum((p["wins_a"], p["wins_b"], p["draws"])) == 8 for p in result["pairings"]
    )
    (against,) = [p for p in result["pairings"] if {p["a"], p["b"]} == {result["final"], "heuristic"}]
    final_wins = against["wins_a"] if against["a"] == result["final"] else against["wins_b"]
    assert result["final_vs_heuristic"] == final_wins / 8  # the reported rate is that pairing's record
    text = "\n".join(pokemon.self_play_lines(result))
    assert "random = 1000" in text and "| self-play, final (iteration 2) |" in text


def test_sb3_rows_train_through_the_adapter_and_a_missing_library_only_skips_its_row(monkeypatch):
    monkeypatch.setattr(pokemon, "FINAL_BATTLES", 16)
    row = pokemon.sb3_row("SB3 PPO", steps=256 * 32)
    assert row["steps"] == 256 * 32 and row["steps_per_s"] > 0
    assert set(row["win_rate_vs"]) == set(pokemon.OPPONENTS)
    assert all(0.0 <= rate <= 1.0 for rate in row["win_rate_vs"].values())
    monkeypatch.setitem(sys.modules, "sb3_contrib", None)  # as where sb3-contrib is not installed
    skipped = pokemon.sb3_row("sb3-contrib MaskablePPO", steps=256 * 32)
    assert skipped["skipped"] == "not installed (sb3_contrib)"
    text = "\n".join(pokemon.sb3_lines([row, skipped], None))
    assert "| SB3 PPO | 8,192 |" in text and "| sb3-contrib MaskablePPO | not installed (sb3_contrib) |" in text


def test_sb3_gets_the_presets_settings():
    num_envs, kwargs = pokemon.sb3_settings()
    assert num_envs == 256 and kwargs["n_steps"] == 32 and kwargs["batch_size"] == 2048 and kwargs["n_epochs"] == 8
    assert kwargs["policy_kwargs"] == {"net_arch": [128, 128]}
    assert kwargs["learning_rate"](1.0) == pytest.approx(5e-4) and kwargs["learning_rate"](0.5) == pytest.approx(2.5e-4)
