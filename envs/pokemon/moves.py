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

from dataclasses import dataclass

import torch

from rlcourse.envs.pokemon import rules
from rlcourse.envs.pokemon.dex import (
    BURN,
    FREEZE,
    HEALTHY,
    PARALYSIS,
    PHYSICAL,
    SLEEP,
    STATUS_IMMUNE_TYPES,
    STATUS_MOVE,
    STRUGGLE,
    TOXIC,
)
from rlcourse.envs.pokemon.layout import (
    ATTACK,
    DEFENSE,
    HP,
    LEVEL,
    MAX_HP,
    MOVES,
    PP,
    SLOT_COLUMNS,
    SP_ATTACK,
    SP_DEFENSE,
    SPECIES,
    STATUS,
)
from rlcourse.envs.pokemon.layout import SLEEP as SLEEP_COLUMN
from rlcourse.envs.pokemon.tables import (
    ACCURACY_COLUMN,
    BOOSTS_COLUMNS,
    CATEGORY_COLUMN,
    DRAIN_DEN_COLUMN,
    DRAIN_NUM_COLUMN,
    HEAL_DEN_COLUMN,
    HEAL_NUM_COLUMN,
    POWDER_COLUMN,
    POWER_COLUMN,
    RECOIL_DEN_COLUMN,
    RECOIL_NUM_COLUMN,
    SECONDARY_BOOSTS_COLUMNS,
    SECONDARY_CHANCE_COLUMN,
    SECONDARY_FLINCH_COLUMN,
    SECONDARY_SELF_BOOSTS_COLUMNS,
    SECONDARY_STATUS_COLUMN,
    SELF_BOOSTS_COLUMNS,
    STATUS_COLUMN,
    TYPE_IMMUNITY_COLUMN,
    Tables,
)

DRAWS_PER_MOVE = 7
THAW_CHANCE, FULL_PARALYSIS_CHANCE = 0.2, 0.25
THAW, PARA, ACCURACY, CRIT, ROLL, SECONDARY, SLEEP_TURNS = range(DRAWS_PER_MOVE)
#: Outcome codes of a move attempt, for battle logs.
IDLE, ACTED, ASLEEP, FROZEN, FLINCHED, FULLY_PARALYSED = range(6)
__all__ = ["STATUS_IMMUNE_TYPES", "ActivePair", "MoveRolls", "roll_moves", "use_move"]


@dataclass
class ActivePair:
    """Both actives of a turn in move order (index 0 moves first), with what they chose; see :func:`use_move`.

    ``active`` is ``[B, 2, SLOT_COLUMNS]`` (the slot rows), ``boosts`` ``[B, 2, 5]``, ``toxic_stage``,
    ``move``, ``struggling``, ``moving`` and ``flinched`` ``[B, 2]``, ``facts`` the moves' rows of
    :attr:`~rlcourse.envs.pokemon.tables.Tables.move_facts`; ``order`` ``[B, 2]`` the sides in move order;
    ``rolls`` what :func:`roll_moves` settles for both moves before either is used.
    """

    order: torch.Tensor
    active: torch.Tensor
    boosts: torch.Tensor
    toxic_stage: torch.Tensor
    move: torch.Tensor
    struggling: torch.Tensor
    moving: torch.Tensor
    facts: torch.Tensor
    flinched: torch.Tensor
    rolls: MoveRolls | None = None

    @classmethod
    def in_move_order(
        cls,
        tables: Tables,
        state,
        first: torch.Tensor,
        move: torch.Tensor,
        struggling: torch.Tensor,
        moving: torch.Tensor,
    ) -> ActivePair:
        """The actives of ``state`` with side ``first [B]`` at index 0."""
        order = torch.stack((first, 1 - first), 1)
        move = move.gather(1, order)
        return cls(
            order=order,
            active=state.slots[:, :, 0].gather(1, order.unsqueeze(-1).expand(-1, -1, SLOT_COLUMNS)),
            boosts=state.boosts.gather(1, order.unsqueeze(-1).expand(-1, -1, state.boosts.shape[-1])),
            toxic_stage=state.toxic_stage.gather(1, order),
            move=move,
            struggling=struggling.gather(1, order),
            moving=moving.gather(1, order),
            facts=tables.move_facts[move],
            flinched=torch.zeros_like(moving),
        )

    def write_back(self, state) -> None:
        """Put the actives back in side order (swapping two sides is its own inverse)."""
        order = self.order
        state.slots[:, :, 0] = self.active.gather(1, order.unsqueeze(-1).expand(-1, -1, SLOT_COLUMNS))
        state.boosts.copy_(self.boosts.gather(1, order.unsqueeze(-1).expand(-1, -1, self.boosts.shape[-1])))
        state.toxic_stage.copy_(self.toxic_stage.gather(1, order))


@dataclass
class MoveRolls:
    """What both moves of a turn have settled before either is used, ``[B, 2]`` in move order: the facts, the
    random draws and the type matchups that the first move cannot change (the other side's active stays in)."""

    physical: torch.Tensor
    is_status: torch.Tensor
    accurate: torch.Tensor  # the accuracy check passes (random(100) < accuracy)
    crit: torch.Tensor
    roll: torch.Tensor
    stab: torch.Tensor
    multiplier: torch.Tensor
    not_immune: torch.Tensor
    doublings: torch.Tensor
    halvings: torch.Tensor
    attack_stat: torch.Tensor  # the user's attacking stat for the move's category, unstaged
    defense_stat: torch.Tensor  # the target's defending stat for it, unstaged
    thaw: torch.Tensor  # a frozen user would thaw
    full_paralysis: torch.Tensor  # a paralysed user would be fully paralysed
    secondary: torch.Tensor  # the secondary effect's chance comes up
    sleep_turns: torch.Tensor
    pp_slot: torch.Tensor  # [B, 2, 4]: the move slot that pays the PP
    struggle_recoil: torch.Tensor
    heal_amount: torch.Tensor  # a healing move's HP (round(max HP × fraction)); 0 for other moves
    status_lands: torch.Tensor  # a status move that inflicts a status and is not stopped by the type chart / powder
    move_status_immune: torch.Tensor  # the target's types keep it from the status move's status
    secondary_status_ok: torch.Tensor  # the secondary effect has a status that the target's types allow


def roll_moves(tables: Tables, pair: ActivePair, draws: torch.Tensor) -> MoveRolls:
    """Settle both moves' draws and matchups (``draws [B, 2 * DRAWS_PER_MOVE]``, the first mover's first)."""
    row, facts, move = pair.active, pair.facts, pair.move
    draws = draws.unflatten(-1, (2, DRAWS_PER_MOVE))
    species = row[..., SPECIES]
    foe_species = species.flip(1)
    category = facts[..., CATEGORY_COLUMN]
    physical = category == PHYSICAL
    is_status = category == STATUS_MOVE
    accuracy = facts[..., ACCURACY_COLUMN]
    multiplier = tables.move_vs_species[move, foe_species]
    scale = tables.damage_scale[move, foe_species]
    chance = facts[..., SECONDARY_CHANCE_COLUMN]
    slot_of_move = (row[..., MOVES] == move.unsqueeze(-1)) & ~pair.struggling.unsqueeze(-1)
    heal_num, heal_den = facts[..., HEAL_NUM_COLUMN], facts[..., HEAL_DEN_COLUMN]
    move_status, secondary_status = facts[..., STATUS_COLUMN], facts[..., SECONDARY_STATUS_COLUMN]
    status_lands = is_status & (move_status != HEALTHY)
    status_lands &= ~((facts[..., TYPE_IMMUNITY_COLUMN] != 0) & (multiplier == 0))
    status_lands &= ~((facts[..., POWDER_COLUMN] != 0) & tables.grass[foe_species])
    return MoveRolls(
        physical=physical,
        is_status=is_status,
        accurate=(accuracy == 0) | ((draws[..., ACCURACY] * 100).long() < accuracy),
        crit=(draws[..., CRIT] < tables.crit_chance[move]) & ~is_status,
        roll=(draws[..., ROLL] * rules.ROLLS).long().clamp(max=rules.ROLLS - 1),
        stab=tables.stab_seen[move, species] & (move != STRUGGLE),
        multiplier=multiplier,
        not_immune=multiplier > 0,
        doublings=scale[..., 0],
        halvings=scale[..., 1],
        attack_stat=torch.where(physical, row[..., ATTACK], row[..., SP_ATTACK]),
        defense_stat=torch.where(physical, row[..., DEFENSE].flip(1), row[..., SP_DEFENSE].flip(1)),
        thaw=draws[..., THAW] < THAW_CHANCE,
        full_paralysis=draws[..., PARA] < FULL_PARALYSIS_CHANCE,
        secondary=((draws[..., SECONDARY] * 100).long() < chance) & (chance > 0),
        sleep_turns=2 + (draws[..., SLEEP_TURNS] * 3).long().clamp(max=2),  # Showdown's random(2, 5): 1-3 turns
        pp_slot=slot_of_move & (torch.cumsum(slot_of_move.int(), -1) == 1),
        struggle_recoil=rules.round_fraction(row[..., MAX_HP], 1, 4).clamp(min=1),
        heal_amount=torch.where(
            is_status & (heal_num > 0), rules.round_fraction(row[..., MAX_HP], heal_num, heal_den), 0
        ),
        status_lands=status_lands,
        move_status_immune=tables.status_immune[move_status, foe_species],
        secondary_status_ok=(secondary_status != HEALTHY) & ~tables.status_immune[secondary_status, foe_species],
    )


def use_move(tables: Tables, pair: ActivePair, order: int, record: bool = False) -> dict[str, torch.Tensor]:
    """The ``order``-th mover (0 or 1) of ``pair`` uses its chosen move on the other, where it chose one to use.

    Needs ``pair.rolls`` (:func:`roll_moves`). Updates ``pair`` in place (HP, status, sleep, PP, stages,
    bad-poison counter, the flinch of the second mover). With ``record``, returns what happened (for battle
    logs), else ``{}``.
    """
    user, target = order, 1 - order
    rolls = pair.rolls
    row = pair.active
    facts = pair.facts[:, user]
    user_max_hp = row[:, user, MAX_HP]
    user_hp, target_hp = row[:, user, HP], row[:, target, HP]
    user_status, target_status = row[:, user, STATUS], row[:, target, STATUS]
    user_sleep, target_sleep = row[:, user, SLEEP_COLUMN], row[:, target, SLEEP_COLUMN]
    user_boosts, target_boosts = pair.boosts[:, user], pair.boosts[:, target]
    is_status, physical, crit = rolls.is_status[:, user], rolls.physical[:, user], rolls.crit[:, user]

    # ---- can it move?
    tries = pair.moving[:, user] & (user_hp > 0)
    asleep = tries & (user_status == SLEEP)
    sleep_left = user_sleep - asleep.int()
    woke = asleep & (sleep_left <= 0)
    frozen = tries & (user_status == FREEZE)
    thawed = frozen & rolls.thaw[:, user]
    still_asleep, still_frozen = asleep & ~woke, frozen & ~thawed
    awake = tries & ~still_asleep & ~still_frozen
    flinch_stops = awake & pair.flinched[:, user]  # only the second mover can have flinched
    unflinched = awake & ~flinch_stops
    para_stops = unflinched & (user_status == PARALYSIS) & rolls.full_paralysis[:, user]
    acts = unflinched & ~para_stops
    user_status_after = torch.where(woke | thawed, HEALTHY, user_status)

    # ---- PP and accuracy
    pp_after = row[:, user, PP] - (acts.unsqueeze(-1) & rolls.pp_slot[:, user]).int()
    target_alive = target_hp > 0
    hits = acts & target_alive & rolls.accurate[:, user]

    # ---- damage
    attack_stage = torch.where(physical, user_boosts[:, 0], user_boosts[:, 2])
    defense_stage = torch.where(physical, target_boosts[:, 1], target_boosts[:, 3])
    attack_stage = torch.where(crit, attack_stage.clamp(min=0), attack_stage)
    defense_stage = torch.where(crit, defense_stage.clamp(max=0), defense_stage)
    attack = rules.staged(rolls.attack_stat[:, user], attack_stage)
    defense = rules.staged(rolls.defense_stat[:, user], defense_stage)
    base = rules.base_damage(row[:, user, LEVEL], facts[:, POWER_COLUMN], attack, defense)
    burned_physical = physical & (user_status_after == BURN)
    not_immune = rolls.not_immune[:, user]
    full_damage = rules.scaled_damage(
        base,
        crit,
        rolls.roll[:, user],
        rolls.stab[:, user],
        rolls.doublings[:, user],
        rolls.halvings[:, user],
        not_immune,
        burned_physical,
    )
    lands = hits & ~is_status & not_immune
    dealt = torch.where(lands, torch.minimum(full_damage, target_hp), 0)
    target_hp_after = target_hp - dealt

    recoil_num, recoil_den = facts[:, RECOIL_NUM_COLUMN], facts[:, RECOIL_DEN_COLUMN]
    recoil = torch.where(lands & (recoil_num > 0), rules.round_fraction(dealt, recoil_num, recoil_den).clamp(min=1), 0)
    recoil = torch.where(acts & pair.struggling[:, user] & target_alive, rolls.struggle_recoil[:, user], recoil)
    recoil = torch.minimum(recoil, user_hp)
    drain_num, drain_den = facts[:, DRAIN_NUM_COLUMN], facts[:, DRAIN_DEN_COLUMN]
    drain = torch.where(
        lands & (drain_num > 0) & (dealt > 0), rules.round_fraction(dealt, drain_num, drain_den).clamp(min=1), 0
    )
    heal = torch.where(acts, rolls.heal_amount[:, user], 0)
    healed = torch.minimum(drain + heal, user_max_hp - user_hp)
    user_hp_after = user_hp - recoil + torch.where(user_hp - recoil > 0, healed, 0)

    # ---- status (a status move and a secondary effect never both apply: one needs a status move, one an attack)
    secondary_on = lands & rolls.secondary[:, user]
    status_hit = hits & rolls.status_lands[:, user]
    new_status = torch.where(status_hit, facts[:, STATUS_COLUMN], facts[:, SECONDARY_STATUS_COLUMN])
    inflicted = (
        ((status_hit & ~rolls.move_status_immune[:, user]) | (secondary_on & rolls.secondary_status_ok[:, user]))
        & (target_status == HEALTHY)
        & (target_hp_after > 0)
    )
    target_status_after = torch.where(inflicted, new_status, target_status)
    target_sleep_after = torch.where(inflicted & (new_status == SLEEP), rolls.sleep_turns[:, user], target_sleep)
    toxic_reset = inflicted & (new_status == TOXIC)

    # ---- stages and flinch
    target_survives = target_hp_after > 0
    target_delta = torch.where(
        (hits & is_status).unsqueeze(-1),
        facts[:, BOOSTS_COLUMNS],
        torch.where(secondary_on.unsqueeze(-1), facts[:, SECONDARY_BOOSTS_COLUMNS], 0),
    )
    target_delta = torch.where(target_survives.unsqueeze(-1), target_delta, 0)
    self_delta = torch.where(((acts & is_status) | lands).unsqueeze(-1), facts[:, SELF_BOOSTS_COLUMNS], 0)
    self_delta = self_delta + torch.where(secondary_on.unsqueeze(-1), facts[:, SECONDARY_SELF_BOOSTS_COLUMNS], 0)
    self_delta = torch.where((user_hp_after > 0).unsqueeze(-1), self_delta, 0)
    if order == 0:  # only a first mover makes the other flinch
        flinches = secondary_on & (facts[:, SECONDARY_FLINCH_COLUMN] != 0) & target_survives
        pair.flinched[:, target] |= flinches
    # stages stay within ±6, so adding a zero change and clamping leaves a stage as it was
    user_boosts_after = (user_boosts + self_delta).clamp(-rules.MAX_STAGE, rules.MAX_STAGE)
    target_boosts_after = (target_boosts + target_delta).clamp(-rules.MAX_STAGE, rules.MAX_STAGE)

    events: dict[str, torch.Tensor] = {}
    if record:
        accuracy = facts[:, ACCURACY_COLUMN]
        outcome = (
            acts.int() * ACTED
            + still_asleep.int() * ASLEEP
            + still_frozen.int() * FROZEN
            + flinch_stops.int() * FLINCHED
            + para_stops.int() * FULLY_PARALYSED
        )
        events = {
            "move": pair.move[:, user],
            "outcome": outcome,
            "woke": woke,
            "thawed": thawed,
            "hit": hits,
            "missed": acts & target_alive & ~hits & (accuracy > 0),
            "no_target": acts & ~target_alive,
            "multiplier": rolls.multiplier[:, user],
            "crit": crit & lands,
            "dealt": dealt,
            "user_hp": user_hp_after,
            "target_hp": target_hp_after,
            "recoil": recoil,
            "healed": torch.where(user_hp_after > 0, healed, 0),
            "inflicted": torch.where(inflicted, new_status, HEALTHY),
            "status_failed": status_hit & ~inflicted,
            "self_stages": user_boosts_after - user_boosts,
            "target_stages": target_boosts_after - target_boosts,
            "self_stage_tried": self_delta,
            "target_stage_tried": target_delta,
        }
    pair.boosts[:, user] = user_boosts_after
    pair.boosts[:, target] = target_boosts_after
    pair.toxic_stage[:, target] = torch.where(toxic_reset, 0, pair.toxic_stage[:, target])
    row[:, user, PP] = pp_after
    row[:, user, HP], row[:, target, HP] = user_hp_after, target_hp_after
    row[:, user, STATUS], row[:, target, STATUS] = user_status_after, target_status_after
    row[:, user, SLEEP_COLUMN] = torch.where(asleep, sleep_left, user_sleep)
    row[:, target, SLEEP_COLUMN] = target_sleep_after
    return events
