"""``rlcourse/PokemonBattle-v0`` beyond the contract: data, teams, opponents, rewards, logs and bad input."""

from __future__ import annotations

import json
import subprocess

import gymnasium as gym
import numpy as np
import pytest
import torch

import rlcourse
from rlcourse.app.bench.pokemon import scripted_rates
from rlcourse.app.cli import main
from rlcourse.envs.pokemon import build_data
from rlcourse.envs.pokemon.dex import DATA_FILE, load_dex
from rlcourse.envs.pokemon.env import PokemonBattleVecEnv
from rlcourse.envs.pokemon.observation import OBS_DIM
from rlcourse.envs.pokemon.teams import default_moves, species_tables

ENV_ID = "rlcourse/PokemonBattle-v0"
DEX = load_dex()


# ----------------------------------------------------------------------------- data
def test_the_shipped_data_is_what_the_build_script_writes(tmp_path):
    try:
        wheel = build_data.fetch_wheel(tmp_path)
    except (subprocess.CalledProcessError, StopIteration, OSError) as error:
        pytest.skip(f"cannot download poke-env=={build_data.POKE_ENV_VERSION} from the package registry: {error}")
    out = tmp_path / "gen9.json"
    build_data.main(["--wheel", str(wheel), "--out", str(out)])
    assert out.read_text() == DATA_FILE.read_text(), "run python -m rlcourse.envs.pokemon.build_data"


def test_the_data_holds_facts_only_and_covers_gens_1_to_4():
    data = json.loads(DATA_FILE.read_text())
    assert set(data) == {"source", "types", "stats", "type_chart", "species", "moves"}
    species_keys = {"name", "num", "types", "base_stats", "moves"}
    assert all(set(entry) == species_keys for entry in data["species"].values())
    assert all(1 <= entry["num"] <= 493 for entry in data["species"].values())
    assert len(data["species"]) >= 250  # every fully evolved gen 1-4 species the rules can play
    for move in data["moves"].values():
        assert all(isinstance(value, (str, int, float, bool, list, dict)) for value in move.values())
        assert not any(key[:2] == "on" and key[2:3].isupper() for key in move), "no Showdown callbacks"
    for name in ("flamethrower", "thunderwave", "swordsdance", "bravebird", "gigadrain", "spore", "closecombat"):
        assert name in data["moves"], name


def test_every_species_gets_four_moves_with_a_stab_attack_first():
    for index, moves in enumerate(default_moves(DEX)):
        assert 2 <= len(moves) <= 4, DEX.species_ids[index]
        own_types = set(DEX.species_types[index].tolist())
        stab = [int(DEX.move_type[m]) in own_types and int(DEX.move_category[m]) != 2 for m in moves]
        learnable_stab = any(
            int(DEX.move_type[m]) in own_types and int(DEX.move_category[m]) != 2 for m in DEX.learnable[index]
        )
        assert stab[0] or not learnable_stab, DEX.species_ids[index]
    levels, _ = species_tables(DEX)
    assert levels.min() >= 70 and levels.max() <= 100
    assert levels[DEX.species_index["arceus"]] < levels[DEX.species_index["butterfree"]]


# ----------------------------------------------------------------------------- teams and bad input
def test_random_teams_are_distinct_species_and_reproducible():
    env = PokemonBattleVecEnv(64, team_size=6)
    env.reset(seed=3)
    species = env.state.species.clone()
    assert all(len(set(row)) == 6 for row in species.view(-1, 6).tolist())
    env.reset(seed=3)
    assert torch.equal(env.state.species, species)
    env.reset(seed=4)
    assert not torch.equal(env.state.species, species)


@pytest.mark.parametrize("team_size", [1, 6])
def test_team_sizes_play_to_the_end(team_size):
    env = PokemonBattleVecEnv(16, team_size=team_size)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (16, OBS_DIM)
    assert int(env.state.present.sum(-1).max()) == team_size
    ended = torch.zeros(16, dtype=torch.bool)
    gen = torch.Generator().manual_seed(0)
    for _ in range(300):
        obs, _, terminated, truncated, _ = env.step(
            torch.multinomial(env.action_masks().float(), 1, generator=gen).squeeze(1)
        )
        assert env.single_observation_space.contains(obs[0].numpy())
        ended |= terminated | truncated
        if ended.all():
            break
    assert ended.all()


@pytest.mark.parametrize(
    "options, words",
    [
        ({"team_size": 0}, ["team_size", "1..6"]),
        ({"team_size": 7}, ["team_size", "1..6"]),
        ({"reward": "points"}, ["reward", "win", "shaped"]),
        ({"opponent": "nobody"}, ["opponent", "random", "max_damage", "heuristic"]),
        ({"opponent": 3}, ["opponent", "callable"]),
        ({"max_turns": 0}, ["max_turns"]),
        ({"team": ["pikachoo"]}, ["unknown species", "pikachoo"]),
        ({"team": ["charizard"] * 7}, ["team", "1 to 6"]),
        ({"team": "charizard"}, ["team", "list"]),
        (
            {"opponent_team": [{"species": "charizard", "moves": ["flamethrowr"]}]},
            ["opponent_team", "flamethrowr", "flamethrower"],
        ),
        ({"team": [{"species": "charizard", "moves": ["hyperbeam"]}]}, ["unsupported move", "hyperbeam"]),
        ({"team": [{"species": "charizard", "level": 101}]}, ["level", "1..100"]),
        ({"team": [{"species": "charizard", "item": "leftovers"}]}, ["item", "allowed"]),
    ],
)
def test_bad_options_are_clear_value_errors(options, words):
    with pytest.raises(ValueError) as error:
        rlcourse.make_vec(ENV_ID, 2, **options)
    for word in words:
        assert word in str(error.value), f"{word!r} not in {error.value}"


def test_an_unknown_option_names_the_options():
    with pytest.raises(ValueError, match="opponent"):
        rlcourse.make_vec(ENV_ID, 2, oponent="random")


def test_the_cli_turns_a_bad_env_option_into_exit_code_2(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = main(["train", "ppo", ENV_ID, "--device", "cpu", "--total-steps", "64", "--env-opt", "opponent=nobody"])
    err = capsys.readouterr().err
    assert code == 2 and "nobody" in err and "max_damage" in err and "Traceback" not in err


# ----------------------------------------------------------------------------- opponents
def play_out(agent: str, opponent: str, n: int = 400, seed: int = 0) -> float:
    """The win rate of the scripted ``agent`` over ``n`` battles (the bench's matchup, one battle per sub-env)."""
    return scripted_rates(agent, opponent, battles=n, seed=seed)["win_rate"]


def test_max_damage_beats_random():
    assert play_out("max_damage", "random") >= 0.85


def test_heuristic_beats_random_and_holds_its_own_against_max_damage():
    assert play_out("heuristic", "random") >= 0.8
    assert play_out("heuristic", "max_damage", n=300) >= 0.35


def test_a_policy_object_can_be_the_opponent():
    seen = []

    def always_first_valid(obs, masks):
        seen.append(obs.shape)
        return masks.long().argmax(-1)

    env = PokemonBattleVecEnv(4, opponent=always_first_valid)
    env.reset(seed=0)
    env.step(torch.zeros(4, dtype=torch.long))
    assert seen and seen[0] == (4, OBS_DIM)


# ----------------------------------------------------------------------------- rewards
def test_the_shaped_reward_telescopes_to_the_final_position_value():
    env = PokemonBattleVecEnv(32, reward="shaped")
    env.reset(seed=1)
    total = torch.zeros(32)
    finished = torch.zeros(32, dtype=torch.bool)
    final = torch.zeros(32)
    gen = torch.Generator().manual_seed(1)
    while not finished.all():
        _, reward, terminated, truncated, info = env.step(
            torch.multinomial(env.action_masks().float(), 1, generator=gen).squeeze(1)
        )
        ended = (terminated | truncated) & ~finished
        total += torch.where(finished, 0.0, reward)
        final = torch.where(ended, info["episode"]["r"], final)
        finished |= ended
    torch.testing.assert_close(total, final)
    won = final > 15
    lost = final < -15
    assert won.any() and lost.any(), "±30 for a victory dominates the shaped return"
    # a win: 30 + 2 for each of the 3 fainted foes + what is left of the own team (at most 3 full HP, at least
    # one Pokémon standing with 2 fainted and a status): 39 at most, 30 + 6 - 4 - 0.5 + a sliver at least
    assert (final[won] <= 39).all() and (final[won] > 31.5).all()


def test_the_win_reward_is_plus_minus_one_at_the_end_only():
    env = PokemonBattleVecEnv(32)
    env.reset(seed=2)
    gen = torch.Generator().manual_seed(2)
    for _ in range(100):
        _, reward, terminated, truncated, info = env.step(
            torch.multinomial(env.action_masks().float(), 1, generator=gen).squeeze(1)
        )
        done = terminated | truncated
        assert (reward[~done] == 0).all()
        expected = (
            info["final_info"]["win"].float()
            - (terminated & ~info["final_info"]["win"] & ~info["final_info"]["draw"]).float()
        )
        torch.testing.assert_close(reward[done], expected[done])


# ----------------------------------------------------------------------------- logs
FIXED = {
    "team": [{"species": "charizard", "moves": ["flamethrower"], "level": 100}],
    "opponent_team": [{"species": "venusaur", "moves": ["growl"], "level": 100}],
}


def test_the_battle_log_reads_like_showdown():
    env = gym.make(ENV_ID, render_mode="ansi", **FIXED)
    env.reset(seed=0)
    done = False
    while not done:
        _, _, terminated, truncated, _ = env.step(0)
        done = terminated or truncated
    text = env.render()
    assert "Go! Charizard!" in text and "The opponent sent out Venusaur!" in text
    assert "Charizard used Flamethrower!\nIt's super effective!\nThe opposing Venusaur lost " in text
    assert "The opposing Venusaur used Growl!\nCharizard's Attack fell!" in text
    assert "The opposing Venusaur fainted!" in text and text.rstrip().endswith("You won the battle!")


def test_transcripts_play_whole_battles_for_rlcourse_play_and_tensorboard():
    env = rlcourse.make_vec(ENV_ID, 2)
    assert env.has_transcripts and env.outcome_keys == ("win", "draw")
    texts = env.play_transcripts(lambda obs, masks: masks.long().argmax(-1), 3, seed=0)
    assert len(texts) == 3
    for text in texts:
        assert text.startswith("Your team: ") and "Turn 1" in text and " used " in text
        assert any(end in text for end in ("You won the battle!", "You lost the battle!", "draw"))
    assert texts == env.play_transcripts(lambda obs, masks: masks.long().argmax(-1), 3, seed=0)


def test_single_env_and_batched_env_agree_battle_for_battle():
    single = gym.make(ENV_ID)
    batched = rlcourse.make_vec(ENV_ID, 1)
    obs, _ = single.reset(seed=5)
    batched_obs, _ = batched.reset(seed=5)
    rng = np.random.default_rng(0)
    battles = 0
    while battles < 5:
        np.testing.assert_array_equal(obs, batched_obs[0].numpy())
        mask = single.unwrapped.action_masks()
        action = int(rng.choice(np.flatnonzero(mask)))
        obs, reward, terminated, truncated, info = single.step(action)
        batched_obs, batched_reward, *_, batched_info = batched.step(torch.tensor([action]))
        assert reward == float(batched_reward[0])
        if terminated or truncated:
            assert info["win"] == bool(batched_info["final_info"]["win"][0])
            obs, _ = single.reset()
            battles += 1
