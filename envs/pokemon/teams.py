"""Teams: the level and four-move set of every species, fixed team specs, and random teams drawn on the device.

**Levels** follow the idea of Showdown's random battles, where weaker species get higher levels so that
every battle is close: level = round(95 − 0.085·(BST − 400)), clamped to 70..100, where BST is the base
stat total (Pikachu-like 320 → 100, Charizard 534 → 84, Garchomp 600 → 78, Mewtwo 680 → 71). It is a
linear fit to that idea, not Showdown's per-species table (poke-env does not ship that table).

**Move sets** (one per species, the same in every battle), from the supported moves it can learn:

1. attacks are scored by power × accuracy × (1.5 for STAB) × the user's matching attacking base stat;
2. the first attack is the STAB move (one of the species' types) that does the most on average over the
   18 single types; then attacks are added greedily, each maximising the mean over the 18 types of the
   set's best score × effectiveness against that type: the attacks that cover what the set does not
   (STAB + coverage), up to three;
3. the fourth slot is a support move where the species learns one, in this order of preference: a
   boost of +2 or more to its better attacking stat (Swords Dance, Nasty Plot, Dragon Dance, ...),
   recovery (Recover, Slack Off, ...), sleep, paralysis, burn (for physically weaker foes: any), poison;
   otherwise a fourth attack by the same greedy rule.

Ties go to the move that comes first alphabetically, so the sets are deterministic.

A **team spec** names the members of a fixed team: ``["charizard", "venusaur"]`` or dicts
``{"species": "Charizard", "moves": ["flamethrower", ...], "level": 80}`` (names are matched as
Showdown IDs: case, spaces and punctuation ignored). Unknown species or moves are a ``ValueError``.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import torch

from rlcourse.config import did_you_mean
from rlcourse.envs.pokemon.dex import (
    BURN,
    NO_TYPE,
    PARALYSIS,
    POISON,
    SLEEP,
    SPECIAL,
    STATUS_MOVE,
    TOXIC,
    TYPES,
    Dex,
)

MAX_TEAM_SIZE = 6
MOVES_PER_POKEMON = 4
NO_MOVE = -1
MIN_LEVEL, MAX_LEVEL = 1, 100


def to_id(name: str) -> str:
    """Showdown's ID of a name: lower case letters and digits only."""
    return "".join(ch for ch in str(name).lower() if ch.isalnum())


def balanced_level(base_stat_total: int) -> int:
    """The random-battle level of a species with this base stat total (see the module docstring)."""
    return max(70, min(100, round(95 - 0.085 * (base_stat_total - 400))))


def _attack_score(dex: Dex, species: int, move: int) -> float:
    power = int(dex.move_power[move])
    accuracy = int(dex.move_accuracy[move]) or 100
    stats = dex.base_stats[species].tolist()
    attack = stats[3] if int(dex.move_category[move]) == SPECIAL else stats[1]
    stab = 1.5 if int(dex.move_type[move]) in dex.species_types[species].tolist() else 1.0
    return power * accuracy / 100 * stab * attack


def _support_rank(dex: Dex, species: int, move: int) -> int | None:
    """Where a status move stands in the fourth-slot preference (lower is better), or None if it is no support."""
    stats = dex.base_stats[species].tolist()
    main = 2 if stats[3] > stats[1] else 0  # index of spa / atk in the boost stages
    self_boosts = dex.move_self_boosts[move].tolist()
    if self_boosts[main] >= 1 and sum(b for b in self_boosts if b > 0) >= 2:
        return 0
    if int(dex.move_heal[move, 0]) > 0:
        return 1
    order = {SLEEP: 2, PARALYSIS: 3, BURN: 4, TOXIC: 5, POISON: 6}
    return order.get(int(dex.move_status[move]))


@functools.lru_cache(maxsize=4)
def default_moves(dex: Dex) -> tuple[tuple[int, ...], ...]:
    """Every species' move set by the rule in the module docstring (move numbers, up to four)."""
    sets = []
    for species, pool in enumerate(dex.learnable):
        pool = sorted(pool, key=lambda m: dex.move_ids[m])
        attacks = [m for m in pool if int(dex.move_category[m]) != STATUS_MOVE]
        chart = dex.type_chart[:NO_TYPE, :NO_TYPE]
        # row i: attack i's score times its effectiveness against each of the 18 single types
        rows = torch.stack([chart[int(dex.move_type[m])] * _attack_score(dex, species, m) for m in attacks])
        stab = [int(dex.move_type[m]) in dex.species_types[species].tolist() for m in attacks]
        chosen: list[int] = []
        best_so_far = torch.zeros(NO_TYPE)
        supports = sorted(
            (rank, dex.move_ids[m], m) for m in pool if (rank := _support_rank(dex, species, m)) is not None
        )
        wanted_attacks = MOVES_PER_POKEMON - (1 if supports else 0)
        while len(chosen) < min(wanted_attacks, len(attacks)):
            value = torch.maximum(rows, best_so_far).mean(1)
            first_needs_stab = not chosen and any(stab)
            allowed = torch.tensor(
                [m not in chosen and (stab[i] or not first_needs_stab) for i, m in enumerate(attacks)]
            )
            pick = int(torch.where(allowed, value, torch.full_like(value, -1.0)).argmax())  # first of equals
            chosen.append(attacks[pick])
            best_so_far = torch.maximum(best_so_far, rows[pick])
        if supports:
            chosen.append(supports[0][2])
        sets.append(tuple(chosen))
    return tuple(sets)


@functools.lru_cache(maxsize=4)
def species_tables(dex: Dex) -> tuple[torch.Tensor, torch.Tensor]:
    """``(levels [S], moves [S, 4])`` for random teams; a missing move is :data:`NO_MOVE`."""
    levels = torch.tensor([balanced_level(int(total)) for total in dex.base_stats.sum(1)])
    moves = torch.full((len(dex.species_ids), MOVES_PER_POKEMON), NO_MOVE)
    for species, chosen in enumerate(default_moves(dex)):
        moves[species, : len(chosen)] = torch.tensor(chosen)
    return levels, moves


def parse_team(dex: Dex, spec: Sequence[Any], name: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A team spec (see the module docstring) as ``(species [n], levels [n], moves [n, 4])``; ``name`` is the option."""
    if isinstance(spec, (str, bytes)) or not isinstance(spec, Sequence) or not 1 <= len(spec) <= MAX_TEAM_SIZE:
        raise ValueError(
            f"{name} must be a list of 1 to {MAX_TEAM_SIZE} team members (species names or dicts), got {spec!r}"
        )
    levels_table, moves_table = species_tables(dex)
    species_index, move_index = dex.species_index, dex.move_index
    species, levels, moves = [], [], []
    for member in spec:
        entry = {"species": member} if isinstance(member, str) else member
        if not isinstance(entry, dict) or "species" not in entry:
            raise ValueError(f"{name}: a team member is a species name or a dict with 'species', got {member!r}")
        unknown_keys = set(entry) - {"species", "moves", "level"}
        if unknown_keys:
            raise ValueError(f"{name}: unknown team member keys {sorted(unknown_keys)}; allowed: species, moves, level")
        key = to_id(entry["species"])
        if key not in species_index:
            hint = did_you_mean(key, species_index)
            raise ValueError(
                f"{name}: unknown species {entry['species']!r}; {hint + ' ' if hint else ''}the env knows the "
                f"{len(species_index)} fully evolved species of gens 1-4 it can play (see docs/pokemon.md)"
            )
        index = species_index[key]
        level = entry.get("level", int(levels_table[index]))
        if isinstance(level, bool) or not isinstance(level, int) or not MIN_LEVEL <= level <= MAX_LEVEL:
            raise ValueError(f"{name}: level must be an integer in {MIN_LEVEL}..{MAX_LEVEL}, got {level!r}")
        row = moves_table[index].clone()
        if "moves" in entry:
            names = entry["moves"]
            if isinstance(names, str) or not 1 <= len(names) <= MOVES_PER_POKEMON:
                raise ValueError(f"{name}: moves must be a list of 1 to {MOVES_PER_POKEMON} move names, got {names!r}")
            row.fill_(NO_MOVE)
            for slot, move in enumerate(names):
                move_key = to_id(move)
                if move_key not in move_index or move_key == "struggle":
                    hint = did_you_mean(move_key, move_index)
                    raise ValueError(
                        f"{name}: unknown or unsupported move {move!r}; {hint + ' ' if hint else ''}"
                        f"the env plays {len(move_index) - 1} moves (see docs/pokemon.md)"
                    )
                row[slot] = move_index[move_key]
        species.append(index)
        levels.append(level)
        moves.append(row)
    return torch.tensor(species), torch.tensor(levels), torch.stack(moves)


def draw_distinct(uniforms: torch.Tensor, population: int) -> torch.Tensor:
    """Distinct integers in ``[0, population)`` from ``uniforms [..., k]`` in [0, 1): a uniform k-subset, in draw order.

    Draw j picks among the ``population - j`` numbers not yet taken, then steps over the taken ones in
    ascending order; a fixed ``k``-by-``k`` sequence of elementwise ops (no sort of the population). int32.
    """
    k = uniforms.shape[-1]
    left = population - torch.arange(k, device=uniforms.device)
    picks = (uniforms * left).int().clamp(max=left - 1)  # every draw's pick among those left, at once
    chosen = [picks[..., 0]]
    for j in range(1, k):
        value = picks[..., j]
        taken = torch.stack(chosen, -1).sort(-1).values
        for i in range(j):
            value = value + (value >= taken[..., i])
        chosen.append(value)
    return torch.stack(chosen, -1)


def type_names(dex: Dex, species: int) -> list[str]:
    """The type names of a species (for logs)."""
    return [TYPES[t] for t in dex.species_types[species].tolist() if t != NO_TYPE]
