"""The columns of a team slot's row in :attr:`~rlcourse.envs.pokemon.battle.BattleState.slots` (one int32 row per slot)."""

from __future__ import annotations

SPECIES, LEVEL, HP, STATUS, SLEEP, PRESENT = 0, 1, 16, 17, 18, 19
STATS, MOVES, PP = slice(2, 8), slice(8, 12), slice(12, 16)
MAX_HP, ATTACK, DEFENSE, SP_ATTACK, SP_DEFENSE, SPEED = range(2, 8)  # the stats' own columns
SLOT_COLUMNS = 20
