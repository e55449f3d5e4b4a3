"""What a side sees and may do: the observation vector and the action masks (shared with a future poke-env bridge).

**Actions** (``Discrete(9)``): 0-3 use move slot 0-3 of the active Pokémon; 4-8 switch to team slot
1-5 (slot 0 is always the active one, and a switch swaps the two, as in Showdown's team order). Valid
(:func:`action_masks`): a move with PP left (when no move has PP, move slot 0 stands for Struggle); a
switch to a Pokémon that is there and not fainted. In a forced switch (the active fainted) only switches.

**Observation** (float32, one flat vector, in this order; fractions in [0, 1], stages / 6):

=====================  ==========================================================================
own active             max HP and stats / 700, stat stages, HP fraction, status (one-hot of 7),
                       types (18 multi-hot), level / 100, the foe's best type multiplier against it / 4
4 moves                type (18 one-hot), power / 150, accuracy, priority / 7, category (one-hot of 3),
                       PP fraction, usable, STAB, type multiplier against the foe / 4, expected damage as a
                       fraction of the foe's HP (mean roll, no crit; capped at 1)
foe active             types, HP fraction, status, stat stages, stats / 700, level / 100
foe team               Pokémon left / 6
own bench (5 slots)    there, HP fraction, status, types, the foe's best multiplier against it / 4, its
                       best move multiplier against the foe / 4, faster than the foe
flags                  forced switch, turn / max turns
=====================  ==========================================================================

**Hidden information, simplified:** the foe's moves and benched Pokémon are never shown (as in a random
battle before they are revealed), but the foe active's stats are: they follow from its species and level,
which the games show, given the random-battle spread this env uses (IV 31, EV 0, neutral nature).
"""

from __future__ import annotations

import torch

from rlcourse.envs.pokemon import rules
from rlcourse.envs.pokemon.battle import MOVE_SLOTS, NUM_ACTIONS, SLOTS, BattleState
from rlcourse.envs.pokemon.dex import BURN, NO_TYPE, PHYSICAL, STATUS_MOVE, STATUSES, STRUGGLE, TYPES, Dex

STAT_SCALE, POWER_SCALE, PRIORITY_SCALE = 700.0, 150.0, 7.0
NUM_TYPES, NUM_STATUSES = len(TYPES), len(STATUSES)
MEAN_ROLL = 7  # the 8th of the 16 damage rolls: 92 %
ACTIVE_WIDTH = 6 + 5 + 1 + NUM_STATUSES + NUM_TYPES + 1 + 1
MOVE_WIDTH = NUM_TYPES + 3 + 3 + 5
FOE_WIDTH = NUM_TYPES + 1 + NUM_STATUSES + 5 + 6 + 1
BENCH_WIDTH = 2 + NUM_STATUSES + NUM_TYPES + 3
OBS_DIM = ACTIVE_WIDTH + MOVE_SLOTS * MOVE_WIDTH + FOE_WIDTH + 1 + (SLOTS - 1) * BENCH_WIDTH + 2


def action_masks(state: BattleState, side: int, forced: torch.Tensor) -> torch.Tensor:
    """``[B, 9]`` bool: the valid actions of ``side`` (0 agent, 1 opponent); ``forced [B]``: only switches."""
    pp = state.pp[:, side, 0]
    has_pp = pp > 0
    struggle_slot = torch.zeros_like(has_pp)
    struggle_slot[:, 0] = ~has_pp.any(-1)
    moves = (has_pp | struggle_slot) & ~forced.unsqueeze(-1)
    switches = state.hp[:, side, 1:] > 0
    return torch.cat((moves, switches), -1)


def first_valid(masks: torch.Tensor) -> torch.Tensor:
    """The lowest valid action of each row (Showdown's default choice)."""
    return masks.long().argmax(-1)


def sanitise(actions: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """``actions`` where valid, else :func:`first_valid` (an invalid choice never stalls a battle)."""
    valid = masks.gather(1, actions.long().clamp(0, NUM_ACTIONS - 1).unsqueeze(1)).squeeze(1)
    return torch.where(valid & (actions >= 0) & (actions < NUM_ACTIONS), actions.long(), first_valid(masks))


def one_hot(values: torch.Tensor, classes: int) -> torch.Tensor:
    """``values [...]`` -> float ``[..., classes]`` one-hot (out-of-range values give zeros).

    A comparison, not ``torch.nn.functional.one_hot``, which checks the value range on the host (a sync).
    """
    return (values.unsqueeze(-1) == torch.arange(classes, device=values.device)).float()


def type_multihot(types: torch.Tensor) -> torch.Tensor:
    """``[..., 2]`` type numbers -> ``[..., 18]`` multi-hot (NO_TYPE adds nothing)."""
    return one_hot(types, NUM_TYPES).sum(-2)


def best_multiplier(dex: Dex, attacking_types: torch.Tensor, defending_types: torch.Tensor) -> torch.Tensor:
    """The best type multiplier of either attacking type (``[..., 2]``, NO_TYPE ignored) on ``defending_types``."""
    chart = dex.type_chart
    first = rules.effectiveness(chart, attacking_types[..., 0], defending_types)
    second = rules.effectiveness(chart, attacking_types[..., 1], defending_types)
    second = torch.where(attacking_types[..., 1] == NO_TYPE, torch.zeros_like(second), second)
    return torch.maximum(first, second)


def expected_damage(dex: Dex, state: BattleState, side: int) -> torch.Tensor:
    """``[B, 4]``: each move's damage to the foe's active (mean roll, no crit, stages and burn applied; 0 for status moves)."""
    foe = 1 - side
    move = state.moves[:, side, 0].clamp(min=0)
    physical = dex.move_category[move] == PHYSICAL
    attack_index = torch.where(physical, 1, 3)
    user_stats = state.stats[:, side, 0].unsqueeze(1).expand(-1, MOVE_SLOTS, -1)
    foe_stats = state.stats[:, foe, 0].unsqueeze(1).expand(-1, MOVE_SLOTS, -1)
    user_stages = state.boosts[:, side].unsqueeze(1).expand(-1, MOVE_SLOTS, -1)
    foe_stages = state.boosts[:, foe].unsqueeze(1).expand(-1, MOVE_SLOTS, -1)
    attack = rules.staged(
        user_stats.gather(2, attack_index.unsqueeze(-1)), user_stages.gather(2, (attack_index - 1).unsqueeze(-1))
    )
    defense = rules.staged(
        foe_stats.gather(2, (attack_index + 1).unsqueeze(-1)), foe_stages.gather(2, attack_index.unsqueeze(-1))
    )
    level = state.level[:, side, 0].unsqueeze(1)
    base = rules.base_damage(level, dex.move_power[move], attack.squeeze(-1), defense.squeeze(-1))
    user_types = dex.species_types[state.species[:, side, 0]].unsqueeze(1)
    foe_types = dex.species_types[state.species[:, foe, 0]].unsqueeze(1).expand(-1, MOVE_SLOTS, -1)
    move_type = dex.move_type[move]
    stab = (move_type.unsqueeze(-1) == user_types).any(-1) & (move != STRUGGLE)
    multiplier = rules.effectiveness(dex.type_chart, move_type, foe_types)
    burned = (state.status[:, side, 0] == BURN).unsqueeze(1) & physical
    roll = torch.full_like(base, MEAN_ROLL)
    damage = rules.damage(base, torch.zeros_like(stab), roll, stab, multiplier, burned)
    return torch.where(dex.move_category[move] == STATUS_MOVE, torch.zeros_like(damage), damage)


def observe(dex: Dex, state: BattleState, side: int, max_turns: int, forced: torch.Tensor) -> torch.Tensor:
    """``[B, OBS_DIM]``: what ``side`` sees (see the module docstring); ``forced [B]``: it must switch now."""
    foe = 1 - side
    species = state.species[:, side]
    types = dex.species_types[species]  # [B, 6, 2]
    foe_types = dex.species_types[state.species[:, foe, 0]]  # [B, 2]
    stats = state.stats[:, side].float()
    hp_fraction = state.hp[:, side].float() / stats[..., 0].clamp(min=1)
    status = one_hot(state.status[:, side], NUM_STATUSES)
    own_threat = best_multiplier(dex, foe_types, types[:, 0])
    active = torch.cat(
        (
            stats[:, 0] / STAT_SCALE,
            state.boosts[:, side].float() / rules.MAX_STAGE,
            hp_fraction[:, :1],
            status[:, 0],
            type_multihot(types[:, 0]),
            state.level[:, side, :1].float() / 100,
            (own_threat / 4).unsqueeze(-1),
        ),
        -1,
    )
    move = state.moves[:, side, 0].clamp(min=0)
    present = state.moves[:, side, 0] >= 0
    pp = state.pp[:, side, 0]
    max_pp = (dex.move_pp[move] * 8 // 5).clamp(min=1)
    move_type = dex.move_type[move]
    multiplier = rules.effectiveness(dex.type_chart, move_type, foe_types.unsqueeze(1).expand(-1, MOVE_SLOTS, -1))
    foe_hp = state.hp[:, foe, :1].float().clamp(min=1)
    damage_share = (expected_damage(dex, state, side).float() / foe_hp).clamp(max=1)
    moves = torch.cat(
        (
            one_hot(move_type, NUM_TYPES),
            (dex.move_power[move].float() / POWER_SCALE).unsqueeze(-1),
            torch.where(dex.move_accuracy[move] == 0, 100, dex.move_accuracy[move]).float().unsqueeze(-1) / 100,
            (dex.move_priority[move].float() / PRIORITY_SCALE).unsqueeze(-1),
            one_hot(dex.move_category[move], 3),
            (pp.float() / max_pp).unsqueeze(-1),
            (present & (pp > 0)).float().unsqueeze(-1),
            (move_type.unsqueeze(-1) == types[:, :1]).any(-1).float().unsqueeze(-1),
            (multiplier / 4).unsqueeze(-1),
            damage_share.unsqueeze(-1),
        ),
        -1,
    ) * present.unsqueeze(-1)
    foe_stats = state.stats[:, foe, 0].float()
    foe_part = torch.cat(
        (
            type_multihot(foe_types),
            (state.hp[:, foe, :1].float() / foe_stats[:, :1].clamp(min=1)),
            one_hot(state.status[:, foe, 0], NUM_STATUSES),
            state.boosts[:, foe].float() / rules.MAX_STAGE,
            foe_stats / STAT_SCALE,
            state.level[:, foe, :1].float() / 100,
            (state.hp[:, foe] > 0).sum(-1, keepdim=True).float() / SLOTS,
        ),
        -1,
    )
    bench_types = types[:, 1:]
    bench_moves = state.moves[:, side, 1:].clamp(min=0)
    bench_move_multiplier = rules.effectiveness(
        dex.type_chart, dex.move_type[bench_moves], foe_types.view(-1, 1, 1, 2).expand(-1, SLOTS - 1, MOVE_SLOTS, -1)
    )
    attacking = (dex.move_category[bench_moves] != STATUS_MOVE) & (state.moves[:, side, 1:] >= 0)
    bench_offence = torch.where(attacking, bench_move_multiplier, torch.zeros_like(bench_move_multiplier)).amax(-1)
    bench_threat = best_multiplier(dex, foe_types.unsqueeze(1).expand(-1, SLOTS - 1, -1), bench_types)
    faster = stats[:, 1:, 5] > foe_stats[:, 5:6]
    bench = torch.cat(
        (
            state.present[:, side, 1:].float().unsqueeze(-1),
            hp_fraction[:, 1:].unsqueeze(-1),
            status[:, 1:],
            type_multihot(bench_types),
            (bench_threat / 4).unsqueeze(-1),
            (bench_offence / 4).unsqueeze(-1),
            faster.float().unsqueeze(-1),
        ),
        -1,
    ) * state.present[:, side, 1:].unsqueeze(-1)
    flags = torch.stack((forced.float(), state.turn.float() / max_turns), -1)
    # the clamp keeps a level-100 Blissey's HP (651) and 250-power moves inside the declared Box
    return torch.cat((active, moves.flatten(1), foe_part, bench.flatten(1), flags), -1).clamp(-1.0, 1.0)
