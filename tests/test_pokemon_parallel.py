"""The PettingZoo two-player env over the batched core."""

from __future__ import annotations

import numpy as np
import pytest
from pettingzoo.test import parallel_api_test

from rlcourse.envs.pokemon.parallel import PokemonBattleParallelEnv


def test_parallel_api():
    parallel_api_test(PokemonBattleParallelEnv(), num_cycles=200)


def test_a_battle_between_two_players_ends_zero_sum_with_a_log():
    env = PokemonBattleParallelEnv(render_mode="ansi", team_size=2)
    observations, infos = env.reset(seed=0)
    rng = np.random.default_rng(0)
    totals = dict.fromkeys(env.possible_agents, 0.0)
    while env.agents:
        actions = {agent: int(rng.choice(np.flatnonzero(infos[agent]["action_mask"]))) for agent in env.agents}
        observations, rewards, terminations, truncations, infos = env.step(actions)
        for agent, reward in rewards.items():
            totals[agent] += reward
    assert totals["player_0"] == -totals["player_1"]
    assert infos["player_0"]["winner"] in ("player_0", "player_1", "draw")
    text = env.render()
    assert " used " in text and "Turn 1" in text


def test_the_two_player_env_refuses_an_opponent():
    with pytest.raises(ValueError, match="player_1 is the opponent"):
        PokemonBattleParallelEnv(opponent="random")
