"""Build ``data/gen9.json``, the facts the battle env ships, from the Showdown data in poke-env's wheel.

Run ``python -m rlcourse.envs.pokemon.build_data [--wheel PATH] [--out PATH]``. Without ``--wheel`` it
fetches ``poke-env==0.16.1`` with ``pip download --no-deps`` (poke-env itself is never installed: it pins
another gymnasium). It reads three JSON files out of the wheel (Gen 9 pokedex, moves, type chart) and the
learnsets, and keeps facts only: numbers, types and names, no code or prose.

* **Species**: every fully evolved (no further evolution) base forme of national dex 1-493 (gens 1-4),
  with types, base stats and the supported moves it can learn (its own learnset and its pre-evolutions').
  A species with fewer than two supported attacks (Ditto, Unown, Wobbuffet, ...) or a fixed 1 HP (Shedinja)
  is left out, as the rules cannot play it.
* **Moves**: every move whose whole effect the rules implement (see :mod:`~rlcourse.envs.pokemon.rules`):
  a plain attack with fixed base power, possibly with recoil, drain, a crit ratio, user stat changes or a
  chance of status / flinch / stat drops; or a status move that only changes stats, inflicts a major
  status or heals the user. A secondary effect the rules leave out (confusion) is dropped from the move
  and listed under ``dropped_secondaries``.
* **Type chart**: the 18 x 18 attacking-by-defending multipliers.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

POKE_ENV_VERSION = "0.16.1"
STATIC = "poke_env/data/static/"
DATA_FILE = Path(__file__).with_name("data") / "gen9.json"
TYPES = (
    "Normal", "Fire", "Water", "Electric", "Grass", "Ice", "Fighting", "Poison", "Ground",
    "Flying", "Psychic", "Bug", "Rock", "Ghost", "Dragon", "Dark", "Steel", "Fairy",
)  # fmt: skip
#: Showdown's ``damageTaken`` codes -> the multiplier an attack of that type does to the defender.
DAMAGE_TAKEN = {0: 1.0, 1: 2.0, 2: 0.5, 3: 0.0}
STATS = ("hp", "atk", "def", "spa", "spd", "spe")
BOOSTABLE = ("atk", "def", "spa", "spd", "spe")
STATUSES = ("brn", "par", "psn", "tox", "slp", "frz")
LAST_DEX_NUMBER = 493  # Arceus: the end of gen 4
#: Move fields that mean behaviour the rules do not implement (Showdown callbacks and special mechanics).
UNSUPPORTED_FIELDS = {
    "basePowerCallback", "multihit", "onModifyMove", "onBasePower", "damageCallback", "damage", "ohko",
    "selfSwitch", "forceSwitch", "sideCondition", "weather", "terrain", "pseudoWeather", "slotCondition",
    "volatileStatus", "selfdestruct", "callsMove", "onHit", "onTry", "onTryHit", "onTryMove", "onPrepareHit",
    "onAfterHit", "onAfterMove", "onModifyType", "stallingMove", "hasCrashDamage", "overrideOffensiveStat",
    "overrideDefensiveStat", "overrideOffensivePokemon", "ignoreDefensive", "onEffectiveness", "secondaries",
    "mindBlownRecoil", "chloroblastRecoil", "struggleRecoil", "beforeTurnCallback", "priorityChargeCallback",
    "onModifyPriority", "onMoveFail", "onAfterSubDamage", "onDamage", "willCrit", "multiaccuracy", "selfBoost",
    "stealsBoosts", "onDisableMove", "beforeMoveCallback", "onHitField", "onHitSide", "onAfterMoveSecondarySelf",
    "tracksTarget", "smartTarget", "sleepUsable", "onTryImmunity", "nonGhostTarget", "isZ",
    "isMax", "condition", "onModifyTarget", "onUseMoveMessage",
}  # fmt: skip
UNSUPPORTED_FLAGS = {"charge", "recharge", "futuremove"}
SINGLE_TARGETS = {"normal", "any", "adjacentFoe", "allAdjacentFoes", "allAdjacent", "randomNormal"}
ALLOWED_NONSTANDARD = (None, "Past")  # "Past": in the Gen 9 data, not in Scarlet/Violet (most gen 1-4 moves)


def to_id(name: str) -> str:
    """Showdown's ID of a name: lower case letters and digits only (``"Will-O-Wisp"`` -> ``"willowisp"``)."""
    return "".join(ch for ch in name.lower() if ch.isalnum())


def fetch_wheel(folder: Path) -> Path:
    """Download the poke-env wheel into ``folder`` with pip (no dependencies, nothing installed)."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            f"poke-env=={POKE_ENV_VERSION}",
            "--no-deps",
            "-q",
            "-d",
            str(folder),
        ],
        check=True,
    )
    return next(folder.glob("poke_env-*.whl"))


def read_static(wheel: Path) -> dict:
    """The four Showdown data files out of the wheel."""
    with zipfile.ZipFile(wheel) as archive:

        def load(name: str) -> dict:
            return json.loads(archive.read(STATIC + name))

        return {
            "pokedex": load("pokedex/gen9pokedex.json"),
            "moves": load("moves/gen9moves.json"),
            "typechart": load("typechart/gen9typechart.json"),
            "learnset": load("learnset.json"),
        }


def type_chart(typechart: dict) -> list[list[float]]:
    """``chart[attacking][defending]``, from Showdown's defender-side ``damageTaken`` codes."""
    return [
        [DAMAGE_TAKEN[typechart[defending.lower()]["damageTaken"][attacking]] for defending in TYPES]
        for attacking in TYPES
    ]


def _boosts(raw: dict | None) -> dict[str, int] | None:
    if not raw:
        return None
    if set(raw) - set(BOOSTABLE):  # accuracy / evasion stages are not modelled
        raise KeyError("unsupported boost")
    return {stat: int(raw[stat]) for stat in BOOSTABLE if stat in raw}


def convert_move(move: dict) -> dict | None:
    """The move's facts in the shipped form, or None where the rules cannot play it."""
    if move.get("isNonstandard") not in ALLOWED_NONSTANDARD or set(move) & UNSUPPORTED_FIELDS:
        return None
    if move.get("ignoreImmunity", False) is not False:  # a move that hits through immunities (Thousand Arrows)
        return None
    if set(move.get("flags", {})) & UNSUPPORTED_FLAGS or move["target"] not in SINGLE_TARGETS | {"self"}:
        return None
    try:
        out = {
            "name": move["name"],
            "type": move["type"],
            "category": move["category"],
            "power": int(move["basePower"]),
            "accuracy": 0 if move["accuracy"] is True else int(move["accuracy"]),  # 0: never misses
            "priority": int(move["priority"]),
            "pp": int(move["pp"]),
            "crit_ratio": int(move.get("critRatio", 1)),
        }
        if move["category"] == "Status":
            effects = [key for key in ("boosts", "status", "heal") if key in move]
            if len(effects) != 1 or "secondary" in move or "self" in move:
                return None
            if "boosts" in move:
                out["self_boosts" if move["target"] == "self" else "boosts"] = _boosts(move["boosts"])
            elif "status" in move:
                if move["status"] not in STATUSES or move["target"] == "self":
                    return None
                out["status"] = move["status"]
                # A status move ignores the type chart unless it says otherwise (Thunder Wave misses Ground types).
                out["type_immunity"] = move.get("ignoreImmunity") is False
                out["powder"] = "powder" in move.get("flags", {})  # Grass types are immune (Spore, Stun Spore)
            else:
                if move["target"] != "self":
                    return None
                out["heal"] = list(move["heal"])
            return out
        if out["power"] <= 0 or "boosts" in move or "status" in move or "heal" in move:
            return None
        for key in ("recoil", "drain"):
            if key in move:
                out[key] = list(move[key])
        if "self" in move:
            if set(move["self"]) != {"boosts"}:
                return None
            out["self_boosts"] = _boosts(move["self"]["boosts"])
        secondary = move.get("secondary")
        if secondary:
            if set(secondary) - {"chance", "status", "volatileStatus", "boosts", "self"}:
                return None
            effect: dict = {"chance": int(secondary.get("chance", 100))}
            if secondary.get("status") in STATUSES:
                effect["status"] = secondary["status"]
            if secondary.get("volatileStatus") == "flinch":
                effect["flinch"] = True
            elif secondary.get("volatileStatus"):
                out["dropped_secondaries"] = [secondary["volatileStatus"]]
            if "boosts" in secondary:
                effect["boosts"] = _boosts(secondary["boosts"])
            if "self" in secondary:
                if set(secondary["self"]) != {"boosts"}:
                    return None
                effect["self_boosts"] = _boosts(secondary["self"]["boosts"])
            if len(effect) > 1:
                out["secondary"] = effect
        return out
    except KeyError:
        return None


def _learnable(species_id: str, pokedex: dict, learnset: dict) -> set[str]:
    """Moves ``species_id`` or any of its pre-evolutions learns (any generation's record)."""
    moves: set[str] = set()
    current: str | None = species_id
    while current:
        moves |= set(learnset.get(current, {}).get("learnset", {}))
        prevo = pokedex.get(current, {}).get("prevo")
        current = to_id(prevo) if prevo else None
    return moves


def build(static: dict) -> dict:
    """The whole shipped data set from the raw Showdown files."""
    moves = {key: converted for key, raw in sorted(static["moves"].items()) if (converted := convert_move(raw))}
    pokedex = static["pokedex"]
    species = {}
    for key, raw in sorted(pokedex.items()):
        if not 0 < raw.get("num", 0) <= LAST_DEX_NUMBER or "evos" in raw or "baseSpecies" in raw:
            continue
        if "baseStats" not in raw or raw.get("maxHP") == 1:
            continue
        pool = sorted(m for m in _learnable(key, pokedex, static["learnset"]) if m in moves)
        if sum(moves[m]["category"] != "Status" for m in pool) < 2:
            continue
        species[key] = {
            "name": raw["name"],
            "num": raw["num"],
            "types": list(raw["types"]),
            "base_stats": [int(raw["baseStats"][stat]) for stat in STATS],
            "moves": pool,
        }
    used = {m for entry in species.values() for m in entry["moves"]}
    return {
        "source": f"Pokemon Showdown Gen 9 data as shipped in poke-env {POKE_ENV_VERSION} (facts only)",
        "types": list(TYPES),
        "stats": list(STATS),
        "type_chart": type_chart(static["typechart"]),
        "species": species,
        "moves": {key: value for key, value in moves.items() if key in used},
    }


def render(data: dict) -> str:
    """The file's exact text (one species or move per line, so diffs stay readable)."""
    lines = ["{"]
    for key in ("source", "types", "stats", "type_chart"):
        lines.append(f"  {json.dumps(key)}: {json.dumps(data[key])},")
    for section, last in (("species", False), ("moves", True)):
        lines.append(f"  {json.dumps(section)}: {{")
        entries = list(data[section].items())
        for i, (key, value) in enumerate(entries):
            lines.append(
                f"    {json.dumps(key)}: {json.dumps(value, sort_keys=True)}{',' if i < len(entries) - 1 else ''}"
            )
        lines.append("  }" + ("" if last else ","))
    lines.append("}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wheel", type=Path, help="a poke-env wheel (default: pip download it)")
    parser.add_argument("--out", type=Path, default=DATA_FILE, help=f"where to write (default {DATA_FILE})")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        wheel = args.wheel or fetch_wheel(Path(folder))
        text = render(build(read_static(wheel)))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
