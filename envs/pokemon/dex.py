"""The Pokédex as tensors: species, moves and the type chart read from the shipped ``data/gen9.json``.

Every table is indexed by a species or move number, so the rules look facts up with batched gathers
(``dex.move_power[move]``), never with Python dictionaries. Index 0 of the moves is Struggle, which a
Pokémon uses when none of its moves has PP left (typeless, 50 power, physical, never misses, recoil of a
quarter of the user's max HP). Types are numbered as in :data:`TYPES`; index :data:`NO_TYPE` stands for
"no second type" and for Struggle's typeless attack, and is neutral against everything.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path

import torch

DATA_FILE = Path(__file__).with_name("data") / "gen9.json"
TYPES = (
    "Normal", "Fire", "Water", "Electric", "Grass", "Ice", "Fighting", "Poison", "Ground",
    "Flying", "Psychic", "Bug", "Rock", "Ghost", "Dragon", "Dark", "Steel", "Fairy",
)  # fmt: skip
NO_TYPE = len(TYPES)
STATS = ("hp", "atk", "def", "spa", "spd", "spe")
BOOSTS = ("atk", "def", "spa", "spd", "spe")  # the stages a battle tracks (accuracy/evasion are not modelled)
CATEGORIES = ("Physical", "Special", "Status")
PHYSICAL, SPECIAL, STATUS_MOVE = range(3)
#: Major status conditions, numbered as the state stores them (0: healthy).
STATUSES = ("", "brn", "par", "psn", "tox", "slp", "frz")
HEALTHY, BURN, PARALYSIS, POISON, TOXIC, SLEEP, FREEZE = range(len(STATUSES))
STRUGGLE = 0
#: status -> the types immune to it
STATUS_IMMUNE_TYPES = {
    BURN: ("Fire",),
    PARALYSIS: ("Electric",),
    POISON: ("Poison", "Steel"),
    TOXIC: ("Poison", "Steel"),
    FREEZE: ("Ice",),
}


@dataclass(frozen=True)
class Dex:
    """Species and move facts (CPU tensors; :meth:`to` moves them to a device)."""

    species_ids: tuple[str, ...]
    species_names: tuple[str, ...]
    species_types: torch.Tensor  # [S, 2] type numbers, NO_TYPE for a single-typed species
    base_stats: torch.Tensor  # [S, 6]
    learnable: tuple[tuple[int, ...], ...]  # per species, the move numbers it can learn
    move_ids: tuple[str, ...]
    move_names: tuple[str, ...]
    move_type: torch.Tensor  # [M]
    move_category: torch.Tensor  # [M] PHYSICAL, SPECIAL or STATUS_MOVE
    move_power: torch.Tensor  # [M]
    move_accuracy: torch.Tensor  # [M] percent; 0 never misses
    move_priority: torch.Tensor  # [M]
    move_pp: torch.Tensor  # [M] base PP (a battle gives 8/5 of it, as with PP Ups)
    move_crit_ratio: torch.Tensor  # [M] 1 (1/24), 2 (1/8), 3 (1/2)
    move_recoil: torch.Tensor  # [M, 2] fraction of the damage dealt (0/1: none)
    move_drain: torch.Tensor  # [M, 2]
    move_heal: torch.Tensor  # [M, 2] fraction of the user's max HP
    move_status: torch.Tensor  # [M] status a status move inflicts (HEALTHY: none)
    move_type_immunity: torch.Tensor  # [M] bool: a status move that respects the type chart (Thunder Wave)
    move_powder: torch.Tensor  # [M] bool: Grass types are immune
    move_boosts: torch.Tensor  # [M, 5] stage changes to the target (a status move or a sure drop)
    move_self_boosts: torch.Tensor  # [M, 5] stage changes to the user (Swords Dance, Close Combat)
    secondary_chance: torch.Tensor  # [M] percent (0: no secondary effect)
    secondary_status: torch.Tensor  # [M]
    secondary_flinch: torch.Tensor  # [M] bool
    secondary_boosts: torch.Tensor  # [M, 5] to the target
    secondary_self_boosts: torch.Tensor  # [M, 5] to the user
    type_chart: torch.Tensor  # [19, 19] float multipliers, attacking x defending (NO_TYPE neutral)

    @property
    def species_index(self) -> dict[str, int]:
        return {name: i for i, name in enumerate(self.species_ids)}

    @property
    def move_index(self) -> dict[str, int]:
        return {name: i for i, name in enumerate(self.move_ids)}

    def to(self, device: torch.device) -> Dex:
        """The same dex with every tensor on ``device``."""
        moved = {
            name: value.to(device) if isinstance(value, torch.Tensor) else value
            for name, value in self.__dict__.items()
        }
        return Dex(**moved)


def _pair(value: list[int] | None) -> list[int]:
    return list(value) if value else [0, 1]


def _stages(boosts: dict[str, int] | None) -> list[int]:
    return [int((boosts or {}).get(stat, 0)) for stat in BOOSTS]


STRUGGLE_FACTS = {
    "name": "Struggle", "type": None, "category": "Physical", "power": 50, "accuracy": 0, "priority": 0, "pp": 1,
    "crit_ratio": 1,
}  # fmt: skip


@functools.lru_cache(maxsize=8)
def dex_on(device: torch.device) -> Dex:
    """The shipped dex on ``device``, one object per device (so what is built from it is built once)."""
    return load_dex().to(device)


@functools.lru_cache(maxsize=4)
def load_dex(path: str | None = None) -> Dex:
    """The dex read from ``path`` (default: the shipped file), cached."""
    data = json.loads(Path(path or DATA_FILE).read_text())
    if tuple(data["types"]) != TYPES:
        raise ValueError(f"{path or DATA_FILE} lists the types {data['types']}, expected {list(TYPES)}")
    type_number = {name: i for i, name in enumerate(TYPES)}
    moves = {"struggle": STRUGGLE_FACTS, **data["moves"]}
    move_ids = tuple(moves)
    move_number = {name: i for i, name in enumerate(move_ids)}
    species = data["species"]
    columns: dict[str, list] = {key: [] for key in Dex.__dataclass_fields__ if key.startswith(("move_", "secondary_"))}
    columns.pop("move_ids"), columns.pop("move_names")
    for facts in moves.values():
        secondary = facts.get("secondary", {})
        columns["move_type"].append(NO_TYPE if facts["type"] is None else type_number[facts["type"]])
        columns["move_category"].append(CATEGORIES.index(facts["category"]))
        for key in ("power", "accuracy", "priority", "pp", "crit_ratio"):
            columns[f"move_{key}"].append(int(facts[key]))
        for key in ("recoil", "drain", "heal"):
            columns[f"move_{key}"].append(_pair(facts.get(key)))
        columns["move_status"].append(STATUSES.index(facts.get("status", "")))
        columns["move_type_immunity"].append(bool(facts.get("type_immunity", False)))
        columns["move_powder"].append(bool(facts.get("powder", False)))
        columns["move_boosts"].append(_stages(facts.get("boosts")))
        columns["move_self_boosts"].append(_stages(facts.get("self_boosts")))
        columns["secondary_chance"].append(int(secondary.get("chance", 0)))
        columns["secondary_status"].append(STATUSES.index(secondary.get("status", "")))
        columns["secondary_flinch"].append(bool(secondary.get("flinch", False)))
        columns["secondary_boosts"].append(_stages(secondary.get("boosts")))
        columns["secondary_self_boosts"].append(_stages(secondary.get("self_boosts")))
    bools = {"move_type_immunity", "move_powder", "secondary_flinch"}
    tensors = {
        key: torch.tensor(values, dtype=torch.bool if key in bools else torch.int64) for key, values in columns.items()
    }
    chart = torch.ones(NO_TYPE + 1, NO_TYPE + 1)
    chart[:NO_TYPE, :NO_TYPE] = torch.tensor(data["type_chart"])
    return Dex(
        species_ids=tuple(species),
        species_names=tuple(entry["name"] for entry in species.values()),
        species_types=torch.tensor(
            [
                [type_number[t] for t in entry["types"]] + [NO_TYPE] * (2 - len(entry["types"]))
                for entry in species.values()
            ]
        ),
        base_stats=torch.tensor([entry["base_stats"] for entry in species.values()]),
        learnable=tuple(tuple(move_number[m] for m in entry["moves"]) for entry in species.values()),
        move_ids=move_ids,
        move_names=tuple(facts["name"] for facts in moves.values()),
        type_chart=chart,
        **tensors,
    )
