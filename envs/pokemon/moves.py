"""Using a move: the checks before it, its damage and its effects, for one attacker per battle (batched).

In the games' order: the user must be able to move (asleep: count down, act on waking; frozen: thaw
with chance 1/5; flinched; fully paralysed with chance 1/4), then it spends 1 PP and the move checks
its accuracy (``random(100) < accuracy``; a move of accuracy 0 never misses). An attack that hits and
is not immune does :func:`~rlcourse.envs.pokemon.rules.damage` (capped at the target's HP; a critical
hit at 1/24, 1/8 or 1/2 by crit ratio ignores the user's lowered attacking stage and the target's raised
defending stage), then:

* recoil: max(1, round(dealt × fraction)); Struggle's: max(1, round(max HP / 4));
* drain: round(dealt × fraction), at least 1, up to the user's max HP;
* the user's own stat changes (Close Combat, Draco Meteor);
* the secondary effect with its chance (``random(100) < chance``): a status, a flinch (only when the
  user moved first), stage drops to the target (these need the target to survive), stat rises to the user.

A status move changes stages (Swords Dance on the user, Growl on the target), inflicts a major status or
heals the user by round(max HP × fraction). A status lands only on a healthy target that is not immune:
Fire cannot be burned, Electric paralysed, Poison and Steel poisoned, Ice frozen; Grass ignores powder
moves; Thunder Wave follows the type chart (Ground is immune). Sleep lasts 1-3 of the sleeper's turns.
"""

from __future__ import annotations

import functools

import torch

from rlcourse.envs.pokemon import rules
from rlcourse.envs.pokemon.dex import (
    BURN,
    FREEZE,
    HEALTHY,
    PARALYSIS,
    PHYSICAL,
    POISON,
    SLEEP,
    STATUS_MOVE,
    STRUGGLE,
    TOXIC,
    TYPES,
    Dex,
)

DRAWS_PER_MOVE = 7
THAW_CHANCE, FULL_PARALYSIS_CHANCE = 0.2, 0.25
THAW, PARA, ACCURACY, CRIT, ROLL, SECONDARY, SLEEP_TURNS = range(DRAWS_PER_MOVE)
#: status -> the types immune to it
STATUS_IMMUNE_TYPES = {
    BURN: ("Fire",),
    PARALYSIS: ("Electric",),
    POISON: ("Poison", "Steel"),
    TOXIC: ("Poison", "Steel"),
    FREEZE: ("Ice",),
}
GRASS = TYPES.index("Grass")
#: Outcome codes of a move attempt, for battle logs.
IDLE, ACTED, ASLEEP, FROZEN, FLINCHED, FULLY_PARALYSED = range(6)


@functools.lru_cache(maxsize=8)
def status_immunity_table(dex: Dex) -> torch.Tensor:
    """``[7, 19]`` bool: ``table[status, type]`` is True where that type cannot get that status."""
    table = torch.zeros(7, len(TYPES) + 1, dtype=torch.bool, device=dex.type_chart.device)
    for status, names in STATUS_IMMUNE_TYPES.items():
        for name in names:
            table[status, TYPES.index(name)] = True
    return table


def _add_stages(boosts: torch.Tensor, delta: torch.Tensor, where: torch.Tensor) -> torch.Tensor:
    return torch.where(where.unsqueeze(-1), (boosts + delta).clamp(-rules.MAX_STAGE, rules.MAX_STAGE), boosts)


def use_move(
    dex: Dex,
    state,
    attacker: torch.Tensor,
    moves: torch.Tensor,
    struggling: torch.Tensor,
    moving: torch.Tensor,
    flinched: torch.Tensor,
    draws: torch.Tensor,
    order: int,
) -> dict[str, torch.Tensor]:
    """Side ``attacker [B]`` uses its chosen move on the other side's active, where ``moving`` says it chose one.

    ``moves``/``struggling``/``moving``/``flinched`` are ``[B, 2]`` per side; ``flinched`` is updated in place.
    ``order`` is 0 for the first mover. Returns what happened (for battle logs).
    """
    batch = torch.arange(attacker.shape[0], device=attacker.device)
    defender = 1 - attacker
    move = moves[batch, attacker]
    struggle = struggling[batch, attacker]
    types = dex.species_types[state.species[:, :, 0]]  # [B, 2, 2]
    user_types, target_types = types[batch, attacker], types[batch, defender]
    max_hp = state.stats[:, :, 0, 0]
    user_max_hp = max_hp[batch, attacker]
    hp = state.hp[:, :, 0].clone()
    status = state.status[:, :, 0].clone()
    sleep = state.sleep[:, :, 0].clone()
    boosts = state.boosts.clone()
    user_hp, target_hp = hp[batch, attacker], hp[batch, defender]
    user_status, target_status = status[batch, attacker], status[batch, defender]

    # ---- can it move?
    tries = moving[batch, attacker] & (user_hp > 0)
    asleep = tries & (user_status == SLEEP)
    sleep_left = sleep[batch, attacker] - asleep.long()
    woke = asleep & (sleep_left <= 0)
    frozen = tries & (user_status == FREEZE)
    thawed = frozen & (draws[:, THAW] < THAW_CHANCE)
    still_asleep, still_frozen = asleep & ~woke, frozen & ~thawed
    flinch_stops = tries & ~still_asleep & ~still_frozen & flinched[batch, attacker]
    para_stops = (
        tries
        & ~still_asleep
        & ~still_frozen
        & ~flinch_stops
        & (user_status == PARALYSIS)
        & (draws[:, PARA] < FULL_PARALYSIS_CHANCE)
    )
    acts = tries & ~still_asleep & ~still_frozen & ~flinch_stops & ~para_stops
    user_status = torch.where(woke | thawed, HEALTHY, user_status)
    outcome = torch.full_like(attacker, IDLE)
    for code, happened in (
        (ACTED, acts),
        (ASLEEP, still_asleep),
        (FROZEN, still_frozen),
        (FLINCHED, flinch_stops),
        (FULLY_PARALYSED, para_stops),
    ):
        outcome = torch.where(happened, code, outcome)

    # ---- PP and accuracy
    slot_of_move = (state.moves[batch, attacker, 0] == move.unsqueeze(-1)) & ~struggle.unsqueeze(-1)
    spends = acts.unsqueeze(-1) & slot_of_move & (torch.cumsum(slot_of_move.long(), -1) == 1)
    state.pp[batch, attacker, 0] -= spends.long()
    accuracy = dex.move_accuracy[move]
    target_alive = target_hp > 0
    hits = acts & target_alive & ((accuracy == 0) | ((draws[:, ACCURACY] * 100).long() < accuracy))
    category = dex.move_category[move]
    is_status = category == STATUS_MOVE
    move_type = dex.move_type[move]
    multiplier = rules.effectiveness(dex.type_chart, move_type, target_types)

    # ---- damage
    physical = category == PHYSICAL
    attack_stat = torch.where(physical, 1, 3)
    defense_stat = attack_stat + 1
    crit = (draws[:, CRIT] < rules.crit_chance(dex.move_crit_ratio[move])) & ~is_status
    attack_stage = boosts[batch, attacker].gather(1, (attack_stat - 1).unsqueeze(1)).squeeze(1)
    defense_stage = boosts[batch, defender].gather(1, (defense_stat - 1).unsqueeze(1)).squeeze(1)
    attack_stage = torch.where(crit, attack_stage.clamp(min=0), attack_stage)
    defense_stage = torch.where(crit, defense_stage.clamp(max=0), defense_stage)
    user_stats, target_stats = state.stats[batch, attacker, 0], state.stats[batch, defender, 0]
    attack = rules.staged(user_stats.gather(1, attack_stat.unsqueeze(1)).squeeze(1), attack_stage)
    defense = rules.staged(target_stats.gather(1, defense_stat.unsqueeze(1)).squeeze(1), defense_stage)
    base = rules.base_damage(state.level[batch, attacker, 0], dex.move_power[move], attack, defense)
    stab = (move_type == user_types[:, 0]) | (move_type == user_types[:, 1])
    roll = (draws[:, ROLL] * rules.ROLLS).long().clamp(max=rules.ROLLS - 1)
    burned_physical = physical & (user_status == BURN)
    full_damage = rules.damage(base, crit, roll, stab & (move != STRUGGLE), multiplier, burned_physical)
    lands = hits & ~is_status & (multiplier > 0)
    dealt = torch.where(lands, torch.minimum(full_damage, target_hp), 0)
    target_hp = target_hp - dealt

    recoil_num, recoil_den = dex.move_recoil[move, 0], dex.move_recoil[move, 1]
    recoil = torch.where(lands & (recoil_num > 0), rules.round_fraction(dealt, recoil_num, recoil_den).clamp(min=1), 0)
    struggle_recoil = rules.round_fraction(user_max_hp, torch.ones_like(user_max_hp), 4 * torch.ones_like(user_max_hp))
    recoil = torch.where(acts & struggle & target_alive, struggle_recoil.clamp(min=1), recoil)
    recoil = torch.minimum(recoil, user_hp)
    drain_num, drain_den = dex.move_drain[move, 0], dex.move_drain[move, 1]
    drain = torch.where(
        lands & (drain_num > 0) & (dealt > 0), rules.round_fraction(dealt, drain_num, drain_den).clamp(min=1), 0
    )
    heal_num, heal_den = dex.move_heal[move, 0], dex.move_heal[move, 1]
    heal = torch.where(acts & is_status & (heal_num > 0), rules.round_fraction(user_max_hp, heal_num, heal_den), 0)
    healed = torch.minimum(drain + heal, user_max_hp - user_hp)
    user_hp = user_hp - recoil + torch.where(user_hp - recoil > 0, healed, 0)

    # ---- status
    immune_to = status_immunity_table(dex)
    secondary_roll = (draws[:, SECONDARY] * 100).long() < dex.secondary_chance[move]
    secondary_on = lands & secondary_roll & (dex.secondary_chance[move] > 0)
    status_hit = hits & is_status & (dex.move_status[move] != HEALTHY)
    status_hit = status_hit & ~(dex.move_type_immunity[move] & (multiplier == 0))
    status_hit = status_hit & ~(dex.move_powder[move] & ((target_types == GRASS).any(-1)))
    new_status = torch.where(
        status_hit, dex.move_status[move], torch.where(secondary_on, dex.secondary_status[move], HEALTHY)
    )
    type_immune = immune_to[new_status.unsqueeze(-1), target_types].any(-1)
    inflicted = (new_status != HEALTHY) & (target_status == HEALTHY) & ~type_immune & (target_hp > 0)
    target_status = torch.where(inflicted, new_status, target_status)
    sleep_turns = 2 + (draws[:, SLEEP_TURNS] * 3).long().clamp(max=2)  # Showdown's random(2, 5): 1-3 turns asleep
    target_sleep = torch.where(inflicted & (new_status == SLEEP), sleep_turns, sleep[batch, defender])
    toxic_reset = inflicted & (new_status == TOXIC)

    # ---- stages and flinch
    target_survives = target_hp > 0
    target_delta = torch.where(
        (hits & is_status).unsqueeze(-1),
        dex.move_boosts[move],
        torch.where(secondary_on.unsqueeze(-1), dex.secondary_boosts[move], 0),
    )
    target_delta = torch.where(target_survives.unsqueeze(-1), target_delta, 0)
    self_delta = torch.where(((acts & is_status) | lands).unsqueeze(-1), dex.move_self_boosts[move], 0) + torch.where(
        secondary_on.unsqueeze(-1), dex.secondary_self_boosts[move], 0
    )
    self_delta = torch.where((user_hp > 0).unsqueeze(-1), self_delta, 0)
    flinches = secondary_on & dex.secondary_flinch[move] & target_survives & (order == 0)
    flinched[batch, defender] |= flinches

    old_user_boosts, old_target_boosts = boosts[batch, attacker], boosts[batch, defender]
    boosts[batch, attacker] = _add_stages(old_user_boosts, self_delta, self_delta.ne(0).any(-1))
    boosts[batch, defender] = _add_stages(old_target_boosts, target_delta, target_delta.ne(0).any(-1))

    hp[batch, attacker], hp[batch, defender] = user_hp, target_hp
    status[batch, attacker], status[batch, defender] = user_status, target_status
    sleep[batch, attacker] = torch.where(asleep, sleep_left, sleep[batch, attacker])
    sleep[batch, defender] = target_sleep
    state.hp[:, :, 0] = hp
    state.status[:, :, 0] = status
    state.sleep[:, :, 0] = sleep
    state.boosts.copy_(boosts)
    state.toxic_stage[batch, defender] = torch.where(toxic_reset, 0, state.toxic_stage[batch, defender])
    return {
        "side": attacker,
        "move": move,
        "outcome": outcome,
        "woke": woke,
        "thawed": thawed,
        "hit": hits,
        "missed": acts & target_alive & ~hits & (accuracy > 0),
        "no_target": acts & ~target_alive,
        "multiplier": multiplier,
        "crit": crit & lands,
        "dealt": dealt,
        "user_hp": user_hp,
        "target_hp": target_hp,
        "recoil": recoil,
        "healed": torch.where(user_hp > 0, healed, 0),
        "inflicted": torch.where(inflicted, new_status, HEALTHY),
        "status_failed": status_hit & ~inflicted,
        "self_stages": boosts[batch, attacker] - old_user_boosts,
        "target_stages": boosts[batch, defender] - old_target_boosts,
        "self_stage_tried": self_delta,
        "target_stage_tried": target_delta,
    }
