"""The other side of the battle: scripted opponents, or any policy, chosen by name with ``opponent=``.

Every opponent sees the battle from side 1 and returns one valid action per battle (``[B]``), with no host
round trip for the scripted ones:

* ``random``: a uniformly random valid action (poke-env's ``RandomPlayer``);
* ``max_damage``: the move with the highest expected damage (:func:`~rlcourse.envs.pokemon.observation.
  expected_damage` × accuracy); a forced switch goes to a random Pokémon (after poke-env's
  ``MaxBasePowerPlayer``, with the damage estimate in place of base power);
* ``heuristic``: after poke-env's ``SimpleHeuristicsPlayer``. Matchup score of a Pokémon against the
  foe's active = best type multiplier of its types on the foe − the foe's best on it, ± 0.1 for being
  faster / slower, + 0.4 × (its HP fraction − the foe's). It switches out (to the best-matchup bench
  Pokémon) when a bench Pokémon has a positive matchup and the active's matchup is below −2 or a
  defence / its main attacking stat is at −3 or lower; it uses a setup move (+2 or more to itself,
  stages not maxed) at full HP with a positive matchup; otherwise it attacks with the best move by
  expected damage × accuracy. A forced switch picks the best matchup;
* ``self``: frozen snapshots of the learning agent (:mod:`~rlcourse.envs.pokemon.self_play`);
* any callable ``policy(obs, action_masks) -> actions`` on side 1's observation, or any object with
  ``predict(obs, deterministic, action_masks)``: a trained agent, or one loaded from a saved checkpoint
  (``PPO.load(path)``; the env never imports the agents, so the caller loads it), which plays
  deterministically.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import torch

from rlcourse.envs.pokemon import rules
from rlcourse.envs.pokemon.battle import MOVE_SLOTS, NUM_ACTIONS, SWITCH_BASE, BattleState
from rlcourse.envs.pokemon.dex import Dex
from rlcourse.envs.pokemon.observation import expected_damage, first_valid
from rlcourse.envs.pokemon.tables import tables_for

OPPONENTS = ("random", "max_damage", "heuristic", "self")
DRAWS_PER_CHOICE = NUM_ACTIONS
SPEED_BONUS, HP_WEIGHT, SWITCH_OUT_BELOW, STAGE_SWITCH_OUT = 0.1, 0.4, -2.0, -3
Policy = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class Predictor(Protocol):
    """An agent as an opponent: ``predict`` as :meth:`rlcourse.agents.base.Agent.predict` (tensors in and out)."""

    def predict(self, obs: Any, deterministic: bool = True, action_masks: Any = None) -> Any: ...


def random_choice(masks: torch.Tensor, draws: torch.Tensor) -> torch.Tensor:
    """A uniformly random valid action per row (``draws [B, 9]`` uniforms)."""
    return torch.where(masks, draws, torch.full_like(draws, -1.0)).argmax(-1)


def best_move(dex: Dex, state: BattleState, side: int, masks: torch.Tensor) -> torch.Tensor:
    """``(score [B, 4])``: expected damage × accuracy of each usable move, −1 where it cannot be used."""
    move = state.moves[:, side, 0].clamp(min=0)
    score = expected_damage(dex, state, side).float() * tables_for(dex).accuracy[move]
    return torch.where(masks[:, :MOVE_SLOTS], score, torch.full_like(score, -1.0))


def max_damage_choice(
    dex: Dex, state: BattleState, side: int, masks: torch.Tensor, draws: torch.Tensor
) -> torch.Tensor:
    """The move with the best expected damage; a random switch when only switches are valid."""
    can_move = masks[:, :MOVE_SLOTS].any(-1)
    return torch.where(can_move, best_move(dex, state, side, masks).argmax(-1), random_choice(masks, draws))


def matchup_scores(dex: Dex, state: BattleState, side: int) -> torch.Tensor:
    """``[B, 6]``: SimpleHeuristicsPlayer's matchup score of each of ``side``'s slots against the foe's active."""
    foe = 1 - side
    best = tables_for(dex).best_vs_species
    species, foe_species = state.species[:, side], state.species[:, foe, :1]
    score = best[species, foe_species] - best[foe_species, species]
    faster = state.stats[:, side, :, 5] > state.stats[:, foe, :1, 5]
    score = score + torch.where(faster, SPEED_BONUS, -SPEED_BONUS)
    hp_fraction = state.hp[:, side].float() / state.stats[:, side, :, 0].clamp(min=1)
    foe_fraction = state.hp[:, foe, :1].float() / state.stats[:, foe, :1, 0].clamp(min=1)
    return score + HP_WEIGHT * (hp_fraction - foe_fraction)


def _best_switch(dex: Dex, state: BattleState, side: int, masks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(matchup [B, 6], bench_score [B, 5])``: the matchups, and the bench's with the unavailable ones at −1e9."""
    matchup = matchup_scores(dex, state, side)
    bench_score = torch.where(masks[:, SWITCH_BASE:], matchup[:, 1:], torch.full_like(matchup[:, 1:], -1e9))
    return matchup, bench_score


def heuristic_choice(dex: Dex, state: BattleState, side: int, masks: torch.Tensor, draws: torch.Tensor) -> torch.Tensor:
    """SimpleHeuristicsPlayer's choice (see the module docstring)."""
    matchup, bench_score = _best_switch(dex, state, side, masks)
    switch_action = SWITCH_BASE + bench_score.argmax(-1)
    stages = state.boosts[:, side]
    stats = state.stats[:, side, 0]
    physical_main = stats[:, 1] >= stats[:, 3]
    main_stage = torch.where(physical_main, stages[:, 0], stages[:, 2])
    in_trouble = (
        (matchup[:, 0] < SWITCH_OUT_BELOW)
        | (stages[:, 1] <= STAGE_SWITCH_OUT)
        | (stages[:, 3] <= STAGE_SWITCH_OUT)
        | (main_stage <= STAGE_SWITCH_OUT)
    )
    switch_out = in_trouble & (bench_score.amax(-1) > 0)
    move = state.moves[:, side, 0].clamp(min=0)
    raises = dex.move_self_boosts[move].clamp(min=0)  # [B, 4, 5]
    room = ((raises > 0) & (stages.unsqueeze(1) < rules.MAX_STAGE)).any(-1)
    setup = (raises.sum(-1) >= 2) & room & masks[:, :MOVE_SLOTS]
    at_full_hp = state.hp[:, side, 0] >= state.stats[:, side, 0, 0]
    use_setup = setup.any(-1) & at_full_hp & (matchup[:, 0] > 0)
    attack = best_move(dex, state, side, masks).argmax(-1)
    choice = torch.where(use_setup, setup.long().argmax(-1), attack)
    choice = torch.where(switch_out, switch_action, choice)
    can_move = masks[:, :MOVE_SLOTS].any(-1)
    choice = torch.where(can_move, choice, switch_action)
    valid = masks.gather(1, choice.unsqueeze(1)).squeeze(1)
    return torch.where(valid, choice, first_valid(masks))


def replacement_choice(
    opponent: str, dex: Dex, state: BattleState, side: int, masks: torch.Tensor, draws: torch.Tensor
) -> torch.Tensor:
    """A scripted opponent's choice where only switches are valid (it replaces a fainted active), the same as its
    full choice there, without the move scoring that cannot matter. Rows with a move valid get a meaningless
    action (the env uses these only where it replaces)."""
    if opponent == "heuristic":
        return SWITCH_BASE + _best_switch(dex, state, side, masks)[1].argmax(-1)
    return random_choice(masks, draws)  # random, and max_damage with no move to choose: a random switch


SCRIPTED = {"random": None, "max_damage": max_damage_choice, "heuristic": heuristic_choice}


def check_opponent(opponent: str | Policy | Predictor) -> None:
    """Raise ``ValueError`` unless ``opponent`` is a known name, a callable policy or an object with ``predict``."""
    if isinstance(opponent, str):
        if opponent not in OPPONENTS:
            raise ValueError(
                f"unknown opponent {opponent!r}; choose one of {', '.join(OPPONENTS)}, "
                "or pass a policy(obs, action_masks) -> actions or an agent"
            )
    elif not callable(opponent) and not callable(getattr(opponent, "predict", None)):
        raise ValueError(
            f"opponent must be one of {', '.join(OPPONENTS)}, a callable policy(obs, action_masks) -> actions "
            f"or an object with predict(obs, deterministic, action_masks), got {type(opponent).__name__}"
        )


def policy_actions(opponent: Policy | Predictor, obs: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """The actions of a policy object on side 1's ``obs``: ``opponent(obs, masks)``, or an agent's deterministic ``predict``."""
    if callable(opponent):
        return opponent(obs, masks)
    return opponent.predict(obs, deterministic=True, action_masks=masks)
