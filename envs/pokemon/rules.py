"""The Gen 9 singles formulas, on integer tensors, with the games' rounding (as Pokémon Showdown runs them).

Every function takes and returns batched integer tensors (int32 in a battle), so a battle is a fixed sequence of vectorised
ops. The rounding, in the order the games apply it:

* **stats** (level L, IV 31, EV 0, neutral nature): HP = floor((2·base + 31)·L/100) + L + 10; every other
  stat = floor((2·base + 31)·L/100) + 5;
* **stat stages** −6..+6: stage s ≥ 0 multiplies by (2+s)/2, s < 0 by 2/(2−s), each floored;
* **damage**: base = floor(floor(floor(2L/5 + 2)·power·attack / defense) / 50) + 2, then in this order:
  critical hit ×1.5 (floored), random factor (85..100)/100 (floored), STAB ×1.5, type effectiveness
  (each ×2 exact, each ×0.5 floored), burn ×0.5 on physical moves; a hit that is not immune does at least 1.
  The ×1.5 and ×0.5 modifiers go through :func:`modify`, the games' 4096-based fixed point with
  ``pokeRound`` (a half rounds down).
"""

from __future__ import annotations

import functools

import torch

from rlcourse.envs.pokemon.dex import NO_TYPE

#: The chance of a critical hit for crit ratio 1, 2, 3 (4+: always), as 1 in N (Gen 7+).
CRIT_ODDS = (24, 8, 2, 1)
MIN_ROLL, ROLLS = 85, 16  # the random factor is 85..100 %, 16 equally likely values
MAX_STAGE = 6
STAB_4096, HALF_4096 = 6144, 2048


def modify(value: torch.Tensor, modifier_4096: int) -> torch.Tensor:
    """``value`` times ``modifier_4096 / 4096`` rounded as the games do (pokeRound: a half rounds down)."""
    return (value * modifier_4096 + 2047) // 4096


def stat_values(base_stats: torch.Tensor, level: torch.Tensor) -> torch.Tensor:
    """The six stats ``[..., 6]`` (HP first) of Pokémon with ``base_stats [..., 6]`` at ``level [...]``."""
    level = level.unsqueeze(-1)
    core = (2 * base_stats + 31) * level // 100
    hp = core[..., :1] + level + 10
    return torch.cat((hp, core[..., 1:] + 5), dim=-1)


def staged(stat: torch.Tensor, stage: torch.Tensor) -> torch.Tensor:
    """``stat`` at ``stage`` (−6..+6): ×(2+s)/2 above 0, ×2/(2−s) below, floored."""
    numerator = 2 + stage.clamp(min=0)
    denominator = 2 - stage.clamp(max=0)
    return stat * numerator // denominator


def base_damage(level: torch.Tensor, power: torch.Tensor, attack: torch.Tensor, defense: torch.Tensor) -> torch.Tensor:
    """floor(floor(floor(2L/5 + 2)·power·attack / defense) / 50) + 2 (the +2 that starts the modifiers)."""
    return (2 * level // 5 + 2) * power * attack // defense // 50 + 2


def damage(
    base: torch.Tensor,
    crit: torch.Tensor,
    roll: torch.Tensor,
    stab: torch.Tensor,
    effectiveness: torch.Tensor,
    burned_physical: torch.Tensor,
) -> torch.Tensor:
    """The damage of one hit from :func:`base_damage`, in the games' order (see the module docstring).

    Args:
        base: :func:`base_damage`.
        crit: bool, a critical hit.
        roll: the random factor's draw 0..15 (damage × (85 + roll) / 100).
        stab: bool, the move's type is one of the user's.
        effectiveness: the type chart's multiplier (0, 0.25, 0.5, 1, 2 or 4), float.
        burned_physical: bool, a burned user's physical move.
    """
    doublings, halvings = effectiveness_scale(effectiveness)
    return scaled_damage(base, crit, roll, stab, doublings, halvings, effectiveness > 0, burned_physical)


def effectiveness_scale(effectiveness: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A type multiplier as the integers ``(×num, ÷den)`` the damage formula applies (4× is ×4, 0.25× is ÷4)."""
    ones = torch.ones_like(effectiveness)
    doublings = torch.where(effectiveness >= 1, effectiveness, ones).long()
    halvings = torch.where(effectiveness < 1, (1 / effectiveness.clamp(min=0.25)), ones).long()
    return doublings, halvings


def scaled_damage(
    base: torch.Tensor,
    crit: torch.Tensor | None,
    roll: torch.Tensor | int,
    stab: torch.Tensor,
    doublings: torch.Tensor,
    halvings: torch.Tensor,
    not_immune: torch.Tensor,
    burned_physical: torch.Tensor,
) -> torch.Tensor:
    """:func:`damage` with the multiplier given as :func:`effectiveness_scale`'s integers (a table look-up per hit);
    ``crit`` may be None (no critical hit), ``roll`` a Python int."""
    value = base if crit is None else torch.where(crit, base * 3 // 2, base)
    value = value * (MIN_ROLL + roll) // 100
    value = torch.where(stab, modify(value, STAB_4096), value)
    value = value * doublings // halvings  # floor(floor(x/2)/2) == floor(x/4)
    value = torch.where(burned_physical, modify(value, HALF_4096), value)
    return torch.where(not_immune, value.clamp(min=1), torch.zeros_like(value))


def round_fraction(amount: torch.Tensor, numerator: torch.Tensor, denominator: torch.Tensor) -> torch.Tensor:
    """round(amount · numerator / denominator), a half rounding up (JavaScript's ``Math.round``)."""
    return (2 * amount * numerator + denominator) // (2 * denominator)


def effectiveness(chart: torch.Tensor, move_type: torch.Tensor, defender_types: torch.Tensor) -> torch.Tensor:
    """The type chart's multiplier of ``move_type [...]`` against ``defender_types [..., 2]`` (float)."""
    return chart[move_type, defender_types[..., 0]] * chart[move_type, defender_types[..., 1]]


def best_multiplier(chart: torch.Tensor, attacking_types: torch.Tensor, defending_types: torch.Tensor) -> torch.Tensor:
    """The best multiplier of either attacking type (``[..., 2]``; a missing second type, ``NO_TYPE``, ignored) on
    ``defending_types [..., 2]``: how well one Pokémon's own types hit another's."""
    first = effectiveness(chart, attacking_types[..., 0], defending_types)
    second = effectiveness(chart, attacking_types[..., 1], defending_types)
    second = torch.where(attacking_types[..., 1] == NO_TYPE, torch.zeros_like(second), second)
    return torch.maximum(first, second)


def crit_chance(crit_ratio: torch.Tensor) -> torch.Tensor:
    """The probability of a critical hit at ``crit_ratio`` (1: 1/24, 2: 1/8, 3: 1/2, 4+: 1), float."""
    return _crit_chances(crit_ratio.device)[(crit_ratio - 1).clamp(0, len(CRIT_ODDS) - 1)]


@functools.lru_cache(maxsize=8)
def _crit_chances(device: torch.device) -> torch.Tensor:
    return 1.0 / torch.tensor(CRIT_ODDS, device=device, dtype=torch.float32)


def fraction_of(max_hp: torch.Tensor, divisor: int) -> torch.Tensor:
    """floor(max HP / divisor), at least 1 (burn 1/16, poison 1/8 at the end of a turn)."""
    return (max_hp // divisor).clamp(min=1)


def toxic_damage(max_hp: torch.Tensor, stage: torch.Tensor) -> torch.Tensor:
    """Bad poison's damage at ``stage`` (1..15): floor(max(1, max HP / 16) · stage)."""
    return torch.where(max_hp < 16, stage, max_hp * stage // 16)
