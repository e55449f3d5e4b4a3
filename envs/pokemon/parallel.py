"""The two-player Pokémon battle as a PettingZoo ``ParallelEnv``, over the same batched core (one battle, CPU).

Agents ``player_0`` and ``player_1`` both choose an action (``Discrete(9)``, the same meaning and masks
as in ``rlcourse/PokemonBattle-v0``; ``infos[agent]["action_mask"]``) every step, and the turn is played
by :meth:`~rlcourse.envs.pokemon.env.PokemonBattleVecEnv.play_both`. When a side's active faints, that
side makes a forced switch in the next step and the other side's action is ignored for that step.
Rewards are zero-sum: ``win`` (±1 at the end) or ``shaped`` (poke-env's, from each side's view).
The battle ends for both agents together (a win or the turn limit), and the env then has no agents
until ``reset``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from pettingzoo import ParallelEnv

from rlcourse.envs.pokemon.env import PokemonBattleVecEnv

AGENTS = ("player_0", "player_1")


class PokemonBattleParallelEnv(ParallelEnv):
    """Two players, one battle (see the module docstring); options as the batched env's, less ``opponent``."""

    metadata = {"name": "pokemon_battle_v0", "render_modes": ["ansi"], "is_parallelizable": True}

    def __init__(self, render_mode: str | None = None, **options: Any):
        if "opponent" in options:
            raise ValueError("the two-player env has no opponent option: player_1 is the opponent")
        if render_mode not in (None, "ansi"):
            raise ValueError(f"PokemonBattleParallelEnv supports render modes ['ansi'], not {render_mode!r}")
        self.core = PokemonBattleVecEnv(num_envs=1, device="cpu", **options)
        self.core.recording = render_mode == "ansi"
        self.render_mode = render_mode
        self.possible_agents = list(AGENTS)
        self.agents: list[str] = []
        self._lines: list[str] = []

    def observation_space(self, agent: str):
        return self.core.single_observation_space

    def action_space(self, agent: str):
        return self.core.single_action_space

    def _observations(self) -> dict[str, np.ndarray]:
        return {agent: self.core.observe_side(side)[0].numpy() for side, agent in enumerate(AGENTS)}

    def _infos(self) -> dict[str, dict[str, Any]]:
        return {
            agent: {"action_mask": self.core.side_action_masks(side)[0].numpy().astype(np.int8)}
            for side, agent in enumerate(AGENTS)
        }

    def reset(self, seed: int | None = None, options: dict | None = None):
        self.core.reset(seed=seed)
        self.agents = list(AGENTS)
        if self.core.recording:
            self._lines = self.core.render_opening(0)
        return self._observations(), self._infos()

    def step(self, actions: dict[str, Any]):
        if not self.agents:
            raise ValueError("the battle is over: call reset() first")
        missing = [agent for agent in AGENTS if agent not in actions]
        if missing:
            raise ValueError(f"step needs an action for every agent; missing {missing}")
        chosen = torch.tensor([[int(actions[agent]) for agent in AGENTS]])
        reward, terminated, truncated, info = self.core.play_both(chosen)
        if self.core.recording:
            self._lines += self.core.render_turn(info, 0)
        ended, cut = bool(terminated[0]), bool(truncated[0])
        rewards = {"player_0": float(reward[0]), "player_1": -float(reward[0])}
        observations, infos = self._observations(), self._infos()
        if ended or cut:
            outcome = "draw" if bool(info["draw"][0]) else ("player_0" if bool(info["win"][0]) else "player_1")
            for agent in AGENTS:
                infos[agent]["winner"] = outcome
        terminations = dict.fromkeys(AGENTS, ended)
        truncations = dict.fromkeys(AGENTS, cut)
        if ended or cut:
            self.agents = []
        return observations, rewards, terminations, truncations, infos

    def render(self) -> str | None:
        """``render_mode="ansi"``: the battle so far, from player_0's side, as a Showdown-style log."""
        return "\n".join(self._lines) if self.render_mode == "ansi" else None

    def close(self) -> None:
        self.core.close()
