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
from rlcourse.envs.pokemon.dex import BURN, PHYSICAL, STATUS_MOVE, STATUSES, STRUGGLE, TYPES, Dex
from rlcourse.envs.pokemon.layout import (
    ATTACK,
    DEFENSE,
    HP,
    LEVEL,
    MAX_HP,
    MOVES,
    PP,
    PRESENT,
    SP_ATTACK,
    SP_DEFENSE,
    SPECIES,
    SPEED,
    STATS,
    STATUS,
)
from rlcourse.envs.pokemon.tables import Tables, tables_for

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


def expected_damage(dex: Dex, state: BattleState, side: int) -> torch.Tensor:
    """``[B, 4]``: each move's damage to the foe's active (mean roll, no crit, stages and burn applied; 0 for status moves)."""
    move = state.moves[:, side, 0].clamp(min=0)
    return _expected_damage(tables_for(dex), state, side, move, state.species[:, 1 - side, :1])


def _expected_damage(
    tables: Tables, state: BattleState, side: int, move: torch.Tensor, foe_species: torch.Tensor
) -> torch.Tensor:
    """:func:`expected_damage` of ``move [B, 4]`` (clamped move numbers) on ``foe_species [B, 1]``."""
    own, foe = state.slots[:, side, 0], state.slots[:, 1 - side, 0]
    user_stages, foe_stages = state.boosts[:, side], state.boosts[:, 1 - side]
    facts = tables.attack_facts[move]
    category = facts[..., 0]
    physical = category == PHYSICAL
    # both attacking and both defending stats, staged, then each move takes its pair: no gather over the stats
    attack = torch.where(
        physical,
        rules.staged(own[:, ATTACK], user_stages[:, 0]).unsqueeze(1),
        rules.staged(own[:, SP_ATTACK], user_stages[:, 2]).unsqueeze(1),
    )
    defense = torch.where(
        physical,
        rules.staged(foe[:, DEFENSE], foe_stages[:, 1]).unsqueeze(1),
        rules.staged(foe[:, SP_DEFENSE], foe_stages[:, 3]).unsqueeze(1),
    )
    base = rules.base_damage(own[:, LEVEL].unsqueeze(1), facts[..., 1], attack, defense)
    stab = tables.stab_seen[move, own[:, SPECIES].unsqueeze(1)] & (move != STRUGGLE)
    scale = tables.damage_scale[move, foe_species]
    not_immune = tables.move_vs_species[move, foe_species] > 0
    burned = (own[:, STATUS] == BURN).unsqueeze(1) & physical
    damage = rules.scaled_damage(base, None, MEAN_ROLL, stab, scale[..., 0], scale[..., 1], not_immune, burned)
    return torch.where(category == STATUS_MOVE, torch.zeros_like(damage), damage)


def observe(dex: Dex, state: BattleState, side: int, max_turns: int, forced: torch.Tensor) -> torch.Tensor:
    """``[B, OBS_DIM]``: what ``side`` sees (see the module docstring); ``forced [B]``: it must switch now.

    Each block is concatenated straight into its place in the output. Every feature is in [-1, 1] by
    construction (see :func:`~rlcourse.envs.pokemon.tables._check_bounded`), so nothing is clamped, and an
    absent move or bench Pokémon reads as zeros through the tables' zero rows.
    """
    tables = tables_for(dex)
    foe = 1 - side
    own, foe_row = state.slots[:, side], state.slots[:, foe, 0]
    batch = own.shape[0]
    out = torch.empty(batch, OBS_DIM, device=own.device)
    moves_at = ACTIVE_WIDTH
    foe_at = moves_at + MOVE_SLOTS * MOVE_WIDTH
    bench_at = foe_at + FOE_WIDTH + 1
    flags_at = bench_at + (SLOTS - 1) * BENCH_WIDTH
    there = own[..., PRESENT] != 0
    species = torch.where(there, own[..., SPECIES], len(dex.species_ids))  # [B, 6]; S: no Pokémon
    foe_species = foe_row[:, SPECIES : SPECIES + 1]  # [B, 1]
    types = tables.seen_types[species]  # [B, 6, 18]
    threat = tables.seen_threat[foe_species, species]  # [B, 6]: the foe's best type on each of ours, / 4
    max_hp = own[..., MAX_HP].float()
    hp_fraction = own[..., HP].float() / max_hp.clamp(min=1)
    status = one_hot(torch.where(there, own[..., STATUS], -1), NUM_STATUSES)
    torch.cat(
        (
            own[:, 0, STATS].float() / STAT_SCALE,
            state.boosts[:, side].float() / rules.MAX_STAGE,
            hp_fraction[:, :1],
            status[:, 0],
            types[:, 0],
            own[:, 0, LEVEL : LEVEL + 1].float() / 100,
            threat[:, :1],
        ),
        -1,
        out=out[:, :moves_at],
    )
    move_ids = own[:, 0, MOVES]
    move, seen = move_ids.clamp(min=0), move_ids + 1  # seen: 0 for no move
    pp = own[:, 0, PP]
    foe_hp = foe_row[:, HP : HP + 1].float().clamp(min=1)
    damage_share = (_expected_damage(tables, state, side, move, foe_species).float() / foe_hp).clamp(max=1)
    torch.cat(
        (
            tables.seen_move_features[seen],
            (pp.float() / tables.max_pp[move]).unsqueeze(-1),
            ((move_ids >= 0) & (pp > 0)).float().unsqueeze(-1),
            tables.seen_stab[seen, species[:, :1]].float().unsqueeze(-1),
            tables.seen_multiplier[seen, foe_species].unsqueeze(-1),
            torch.where(move_ids >= 0, damage_share, 0.0).unsqueeze(-1),
        ),
        -1,
        out=out[:, moves_at:foe_at].view(batch, MOVE_SLOTS, MOVE_WIDTH),
    )
    foe_stats = foe_row[:, STATS].float()
    torch.cat(
        (
            tables.seen_types[foe_species[:, 0]],
            foe_row[:, HP : HP + 1].float() / foe_stats[:, :1].clamp(min=1),
            one_hot(foe_row[:, STATUS], NUM_STATUSES),
            state.boosts[:, foe].float() / rules.MAX_STAGE,
            foe_stats / STAT_SCALE,
            foe_row[:, LEVEL : LEVEL + 1].float() / 100,
            (state.hp[:, foe] > 0).sum(-1, keepdim=True).float() / SLOTS,
        ),
        -1,
        out=out[:, foe_at:bench_at],
    )
    # a bench Pokémon's best attack on the foe: row 0 of the table is "no move", hence the + 1
    offence = tables.seen_offence[own[:, 1:, MOVES] + 1, foe_species.unsqueeze(-1)].amax(-1)
    bench_there = there[:, 1:]
    faster = bench_there & (own[:, 1:, SPEED] > foe_row[:, SPEED : SPEED + 1])
    torch.cat(
        (
            bench_there.float().unsqueeze(-1),
            hp_fraction[:, 1:].unsqueeze(-1),
            status[:, 1:],
            types[:, 1:],
            threat[:, 1:].unsqueeze(-1),
            torch.where(bench_there, offence, 0.0).unsqueeze(-1),
            faster.float().unsqueeze(-1),
        ),
        -1,
        out=out[:, bench_at:flags_at].view(batch, SLOTS - 1, BENCH_WIDTH),
    )
    torch.stack((forced.float(), state.turn.float() / max_turns), -1, out=out[:, flags_at:])
    return out
