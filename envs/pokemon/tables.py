"""Facts a battle step looks up, precomputed once per dex and device, so a step gathers rows instead of recomputing.

The rules and the observation ask the same questions every step: a move's facts (about twenty numbers),
how a move type does against a species (two type-chart look-ups and a product), how one species' types do
against another's, a species' types as a multi-hot. Each becomes one table here, indexed by move and
species numbers, so a question is a single gather:

* :attr:`Tables.move_facts` ``[M, MOVE_COLUMNS]`` int32: every integer fact of a move, one row per move
  (columns named by the ``*_COLUMN`` constants and slices below);
* :attr:`Tables.move_vs_species` ``[M, S]`` float32: the type chart's multiplier of a move on a species,
  and :attr:`Tables.damage_scale` ``[M, S, 2]`` int32 the same as the exact integer ``(×num, ÷den)`` the
  damage formula applies (``0 / 4`` where immune);
* :attr:`Tables.best_vs_species` ``[S, S]`` float32: the best multiplier of either of one species' types on
  another (the scripted opponents' and the observation's matchups);
* observation pieces that depend on a move or species only (:attr:`Tables.seen_move_features`, ...).

Every value is computed by the same float32 operations as the per-step code it replaces, so the tables
change no result, only how many operations and bytes a step takes.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from rlcourse.envs.pokemon import rules
from rlcourse.envs.pokemon.dex import STATUS_IMMUNE_TYPES, STATUS_MOVE, STATUSES, TYPES, Dex

NUM_TYPES = len(TYPES)
STAT_SCALE, POWER_SCALE, PRIORITY_SCALE = 700.0, 150.0, 7.0

# columns of Tables.move_facts
(
    TYPE_COLUMN,
    CATEGORY_COLUMN,
    POWER_COLUMN,
    ACCURACY_COLUMN,
    PRIORITY_COLUMN,
    RECOIL_NUM_COLUMN,
    RECOIL_DEN_COLUMN,
    DRAIN_NUM_COLUMN,
    DRAIN_DEN_COLUMN,
    HEAL_NUM_COLUMN,
    HEAL_DEN_COLUMN,
    STATUS_COLUMN,
    TYPE_IMMUNITY_COLUMN,
    POWDER_COLUMN,
    SECONDARY_CHANCE_COLUMN,
    SECONDARY_STATUS_COLUMN,
    SECONDARY_FLINCH_COLUMN,
) = range(17)
BOOSTS_COLUMNS = slice(17, 22)
SELF_BOOSTS_COLUMNS = slice(22, 27)
SECONDARY_BOOSTS_COLUMNS = slice(27, 32)
SECONDARY_SELF_BOOSTS_COLUMNS = slice(32, 37)
MOVE_COLUMNS = 37


@dataclass(frozen=True, eq=False)
class Tables:
    """The precomputed tables of one dex on one device (see the module docstring)."""

    move_facts: torch.Tensor  # [M, MOVE_COLUMNS] int32
    crit_chance: torch.Tensor  # [M] float32: the chance of a critical hit by the move's crit ratio
    max_pp: torch.Tensor  # [M] float32: a battle's PP of the move (8/5 of its base PP, at least 1)
    move_vs_species: torch.Tensor  # [M, S] float32 type multiplier
    damage_scale: torch.Tensor  # [M, S, 2] int32: (×num, ÷den) of the multiplier; an immunity is (×1, ÷4)
    stab_seen: torch.Tensor  # [M, S] bool: the move's type is one of the species' (NO_TYPE matches a single type)
    best_vs_species: torch.Tensor  # [S, S] float32: best multiplier of the first species' types on the second
    attack_facts: torch.Tensor  # [M, 2] int32: category and power (what a damage estimate reads)
    accuracy: torch.Tensor  # [M] float32: the chance to hit (a move that never misses: 1)
    status_immune: torch.Tensor  # [7, S] bool: the species' types keep it from getting that status
    grass: torch.Tensor  # [S] bool: a Grass type (immune to powder moves)
    # what the observation shows, with a row of zeros for "no move" (row 0, index move + 1) or "no Pokémon"
    # (index S): an absent move or bench slot reads as zeros without a multiplication by its presence
    seen_move_features: torch.Tensor  # [M + 1, 24]
    seen_stab: torch.Tensor  # [M + 1, S] bool
    seen_multiplier: torch.Tensor  # [M + 1, S] float32: the multiplier / 4
    seen_offence: torch.Tensor  # [M + 1, S] float32: an attack's multiplier / 4 (0 for status moves)
    seen_types: torch.Tensor  # [S + 1, 18]
    seen_threat: torch.Tensor  # [S, S + 1] float32: best multiplier / 4 of the first species on the second


_CACHE: dict[int, tuple[Dex, Tables]] = {}


def tables_for(dex: Dex) -> Tables:
    """The tables of ``dex``, on the dex's device, built on first use (kept by the dex object's identity: hashing a
    dex hashes every name in it, too slow for a question asked several times a step)."""
    cached = _CACHE.get(id(dex))
    if cached is None or cached[0] is not dex:
        cached = _CACHE[id(dex)] = (dex, _build(dex))
    return cached[1]


def _build(dex: Dex) -> Tables:
    chart = dex.type_chart
    species_types = dex.species_types  # [S, 2]
    columns = [
        dex.move_type,
        dex.move_category,
        dex.move_power,
        dex.move_accuracy,
        dex.move_priority,
        dex.move_recoil[:, 0],
        dex.move_recoil[:, 1],
        dex.move_drain[:, 0],
        dex.move_drain[:, 1],
        dex.move_heal[:, 0],
        dex.move_heal[:, 1],
        dex.move_status,
        dex.move_type_immunity.long(),
        dex.move_powder.long(),
        dex.secondary_chance,
        dex.secondary_status,
        dex.secondary_flinch.long(),
    ]
    facts = torch.cat(
        [
            torch.stack(columns, 1),
            dex.move_boosts,
            dex.move_self_boosts,
            dex.secondary_boosts,
            dex.secondary_self_boosts,
        ],
        1,
    ).int()
    # [M, S]: the same product of two chart entries the rules take per hit
    move_vs = rules.effectiveness(chart, dex.move_type.unsqueeze(1), species_types.unsqueeze(0))
    num, den = rules.effectiveness_scale(move_vs)
    attacking = dex.move_category != STATUS_MOVE
    attack_vs = torch.cat((torch.zeros_like(move_vs[:1]), torch.where(attacking.unsqueeze(1), move_vs, 0.0)))
    best_vs = rules.best_multiplier(chart, species_types.unsqueeze(1), species_types.unsqueeze(0))  # [S, S]
    type_range = torch.arange(NUM_TYPES, device=chart.device)
    multihot = (species_types.unsqueeze(-1) == type_range).float().sum(-2)
    accuracy = torch.where(dex.move_accuracy == 0, 100, dex.move_accuracy).float() / 100
    features = torch.cat(
        (
            (dex.move_type.unsqueeze(-1) == type_range).float(),
            (dex.move_power.float() / POWER_SCALE).clamp(-1.0, 1.0).unsqueeze(-1),
            accuracy.unsqueeze(-1),
            (dex.move_priority.float() / PRIORITY_SCALE).unsqueeze(-1),
            (dex.move_category.unsqueeze(-1) == torch.arange(3, device=chart.device)).float(),
        ),
        -1,
    )
    stab_seen = (dex.move_type.view(-1, 1, 1) == species_types.unsqueeze(0)).any(-1)
    _check_bounded(dex)
    immune_types = torch.zeros(len(STATUSES), NUM_TYPES + 1, dtype=torch.bool, device=chart.device)
    for status, names in STATUS_IMMUNE_TYPES.items():
        for name in names:
            immune_types[status, TYPES.index(name)] = True
    return Tables(
        move_facts=facts.contiguous(),
        crit_chance=rules.crit_chance(dex.move_crit_ratio),
        max_pp=(dex.move_pp * 8 // 5).clamp(min=1).float(),
        move_vs_species=move_vs.contiguous(),
        damage_scale=torch.stack((num, den), -1).int().contiguous(),
        stab_seen=stab_seen,
        best_vs_species=best_vs.contiguous(),
        attack_facts=torch.stack((dex.move_category, dex.move_power), 1).int(),
        accuracy=accuracy,
        status_immune=immune_types[:, species_types].any(-1),
        grass=(species_types == TYPES.index("Grass")).any(-1),
        seen_move_features=_with_zero_row(features),
        seen_stab=_with_zero_row(stab_seen),
        seen_multiplier=_with_zero_row(move_vs / 4),
        seen_offence=attack_vs / 4,
        seen_types=torch.cat((multihot, torch.zeros_like(multihot[:1]))),
        seen_threat=torch.cat((best_vs / 4, torch.zeros_like(best_vs[:, :1])), 1).contiguous(),
    )


def _with_zero_row(table: torch.Tensor) -> torch.Tensor:
    return torch.cat((torch.zeros_like(table[:1]), table)).contiguous()


def _check_bounded(dex: Dex) -> None:
    """The observation is in [-1, 1] by construction (no clamp over the whole vector): stats / 700 and power / 150
    (clamped in its table) are the only features that could leave it, so check the data's stats at level 100."""
    highest = int(rules.stat_values(dex.base_stats, torch.full_like(dex.base_stats[:, 0], 100)).max())
    if highest > STAT_SCALE:
        raise ValueError(f"a stat of {highest} at level 100 is above the observation's scale of {STAT_SCALE:.0f}")
