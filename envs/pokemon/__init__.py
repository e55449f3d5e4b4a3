"""Pokémon battles: ``rlcourse/PokemonBattle-v0`` (Gen 9 singles against a scripted or learned opponent)."""

from rlcourse.envs.pokemon.dex import Dex, load_dex
from rlcourse.envs.pokemon.env import PokemonBattleVecEnv
from rlcourse.envs.pokemon.opponents import OPPONENTS

__all__ = ["OPPONENTS", "Dex", "PokemonBattleVecEnv", "load_dex"]
