"""One turn of a Gen 9 singles battle for a whole batch, as a fixed sequence of tensor ops.

The state (:class:`BattleState`) holds two sides of six team slots each; **slot 0 is the active
Pokémon**, and a switch swaps slot 0 with the slot switched to (as Showdown orders a side). A turn:

1. **switches** first (a voluntary switch costs the side its move): the new active's stat stages and
   bad-poison counter start afresh;
2. **moves** in order of move priority, then speed (stage-modified, halved by paralysis), then a coin
   flip. Before moving, a sleeping Pokémon counts down its sleep (1-3 turns; it moves on the turn it
   wakes), a frozen one thaws with chance 1/5, a flinched one loses its turn, a paralysed one is fully
   paralysed with chance 1/4. A move then uses 1 PP, checks accuracy, and does its damage and effects
   (see :mod:`~rlcourse.envs.pokemon.moves`). A fainted Pokémon does not move;
3. **end of turn**: burn takes 1/16 of max HP, poison 1/8, bad poison n/16 on its n-th turn.

A Pokémon that faints is replaced by a free switch: the side is marked ``forced`` and its next step is a
*forced switch* step (only switches are valid; nothing else happens in it; the other side sits it out).
The one-player env lets its opponent replace at once, within the step of the faint. A side with no Pokémon left loses; if both lose all in the same turn the battle is a draw.

Every random number a turn needs is drawn up front (:data:`DRAWS_PER_TURN` uniforms per battle), so
the stream does not depend on what happens.

**Layout, for speed.** Everything a team slot holds (species, level, stats, moves, PP, HP, status,
sleep, presence) is one row of a single int32 tensor, :attr:`BattleState.slots`, whose named fields
(``state.hp``, ``state.stats``, ...) are views. A switch then swaps two rows in one gather and one
scatter, a reset copies one tensor, and the two moves of a turn run on the actives put in move order
(first mover at index 0), so that neither needs a per-battle gather by side.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import torch

from rlcourse.envs.pokemon import rules
from rlcourse.envs.pokemon.dex import BURN, PARALYSIS, POISON, STRUGGLE, TOXIC, Dex
from rlcourse.envs.pokemon.layout import HP, LEVEL, MOVES, PP, PRESENT, SLEEP, SLOT_COLUMNS, SPECIES, STATS, STATUS
from rlcourse.envs.pokemon.moves import DRAWS_PER_MOVE, ActivePair, roll_moves, use_move
from rlcourse.envs.pokemon.tables import PRIORITY_COLUMN, tables_for

SIDES, SLOTS, MOVE_SLOTS = 2, 6, 4
SWITCH_BASE = MOVE_SLOTS  # action 4 + j switches to slot j + 1
NUM_ACTIONS = MOVE_SLOTS + SLOTS - 1
DRAWS_PER_TURN = 1 + 2 * DRAWS_PER_MOVE  # the speed tie, then each of the two moves' draws
MAX_TOXIC_STAGE = 15


@dataclass
class BattleState:
    """The tensors of a batch of battles (``B`` battles, 2 sides, 6 slots, slot 0 active).

    ``slots`` packs the per-slot fields; ``species``, ``level``, ``stats``, ``moves``, ``pp``, ``hp``,
    ``status`` and ``sleep`` are views of it (write through them in place), ``present`` reads it as bool.
    """

    slots: torch.Tensor  # [B, 2, 6, SLOT_COLUMNS] int32, one row per team slot
    boosts: torch.Tensor  # [B, 2, 5] the active's stat stages (atk, def, spa, spd, spe)
    toxic_stage: torch.Tensor  # [B, 2] the active's bad-poison counter
    forced: torch.Tensor  # [B, 2] bool: the side must replace its fainted active in the next step
    turn: torch.Tensor  # [B] turns played
    species: torch.Tensor = field(init=False, repr=False)  # [B, 2, 6] species number
    level: torch.Tensor = field(init=False, repr=False)  # [B, 2, 6]
    stats: torch.Tensor = field(init=False, repr=False)  # [B, 2, 6, 6] hp, atk, def, spa, spd, spe
    moves: torch.Tensor = field(init=False, repr=False)  # [B, 2, 6, 4] move number (-1: no move)
    pp: torch.Tensor = field(init=False, repr=False)  # [B, 2, 6, 4]
    hp: torch.Tensor = field(init=False, repr=False)  # [B, 2, 6] current HP (0: fainted or no Pokémon in the slot)
    status: torch.Tensor = field(init=False, repr=False)  # [B, 2, 6] HEALTHY, BURN, ...
    sleep: torch.Tensor = field(init=False, repr=False)  # [B, 2, 6] sleep turns left

    #: The fields that are tensors of their own (the rest are views of ``slots``).
    STORED = ("slots", "boosts", "toxic_stage", "forced", "turn")

    def __post_init__(self) -> None:
        slots = self.slots
        self.species, self.level, self.hp = slots[..., SPECIES], slots[..., LEVEL], slots[..., HP]
        self.stats, self.moves, self.pp = slots[..., STATS], slots[..., MOVES], slots[..., PP]
        self.status, self.sleep = slots[..., STATUS], slots[..., SLEEP]

    @property
    def present(self) -> torch.Tensor:
        """``[B, 2, 6]`` bool: the team has a Pokémon in this slot."""
        return self.slots[..., PRESENT] != 0

    @classmethod
    def empty(cls, num_battles: int, device: torch.device) -> BattleState:
        def zeros(*shape: int, dtype: torch.dtype = torch.int32) -> torch.Tensor:
            return torch.zeros(num_battles, *shape, dtype=dtype, device=device)

        return cls(
            slots=zeros(SIDES, SLOTS, SLOT_COLUMNS),
            boosts=zeros(SIDES, 5),
            toxic_stage=zeros(SIDES),
            forced=zeros(SIDES, dtype=torch.bool),
            turn=zeros(),
        )

    def tensors(self) -> dict[str, torch.Tensor]:
        """The stored tensors by name (the state a checkpoint keeps)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name in self.STORED}


def slot_rows(
    species: torch.Tensor,
    level: torch.Tensor,
    stats: torch.Tensor,
    moves: torch.Tensor,
    pp: torch.Tensor,
    present: torch.Tensor,
) -> torch.Tensor:
    """Fresh slot rows ``[..., SLOT_COLUMNS]``: full HP where ``present``, healthy, awake."""
    hp = torch.where(present, stats[..., 0], 0)
    zeros = torch.zeros_like(hp)
    columns = (species, level, stats, moves, pp, hp, zeros, zeros, present)
    return torch.cat([c.unsqueeze(-1) if c.dim() == species.dim() else c for c in columns], -1).int()


def active_types(dex: Dex, state: BattleState) -> torch.Tensor:
    """``[B, 2, 2]``: the types of each side's active Pokémon."""
    return dex.species_types[state.species[:, :, 0]]


def alive_counts(state: BattleState) -> torch.Tensor:
    """``[B, 2]``: Pokémon each side has left."""
    return (state.hp > 0).sum(-1)


def switch_in(state: BattleState, switching: torch.Tensor, target: torch.Tensor) -> None:
    """Swap slot 0 with slot ``target [B, 2]`` (1..5) where ``switching [B, 2]``; the new active starts fresh."""
    index = target.view(*target.shape, 1, 1).expand(*target.shape, 1, SLOT_COLUMNS)
    incoming = state.slots.gather(2, index)
    outgoing = state.slots[:, :, :1]
    swap = switching.view(*switching.shape, 1, 1)
    leaving = torch.where(swap, outgoing, incoming)
    torch.where(swap, incoming, outgoing, out=outgoing)
    state.slots.scatter_(2, index, leaving)
    state.boosts.masked_fill_(switching.unsqueeze(-1), 0)
    state.toxic_stage.masked_fill_(switching, 0)


def effective_speed(state: BattleState) -> torch.Tensor:
    """``[B, 2]``: each active's speed after its stage and paralysis (×0.5, the games' rounding)."""
    speed = rules.staged(state.stats[:, :, 0, 5], state.boosts[:, :, 4])
    return torch.where(state.status[:, :, 0] == PARALYSIS, rules.modify(speed, rules.HALF_4096), speed)


def chosen_moves(state: BattleState, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(move [B, 2], struggling [B, 2])``: the move each side's action names; Struggle when no move has PP."""
    slot = actions.clamp(max=MOVE_SLOTS - 1).unsqueeze(-1)
    struggling = (state.pp[:, :, 0] <= 0).all(-1)
    move = state.moves[:, :, 0].gather(2, slot).squeeze(-1)
    return torch.where(struggling, STRUGGLE, move.clamp(min=0)), struggling


def play_turn(
    dex: Dex, state: BattleState, actions: torch.Tensor, draws: torch.Tensor, record: bool = False
) -> dict[str, torch.Tensor]:
    """Play one turn with valid ``actions [B, 2]``, or, where a side is ``state.forced``, only the forced switches.

    ``draws [B, DRAWS_PER_TURN]`` are uniforms in [0, 1). With ``record``, returns the turn's events for
    battle logs (what each move did, the actives after the switches, the residual damage); else ``{}``.
    """
    tables = tables_for(dex)
    forced = state.forced.any(-1)
    takes_part = torch.where(forced.unsqueeze(-1), state.forced, True)  # a forced step is only the replacements
    switching = (actions >= SWITCH_BASE) & takes_part
    switch_in(state, switching, (actions - SWITCH_BASE + 1).clamp(1, SLOTS - 1))
    moving = (actions < SWITCH_BASE) & takes_part
    events: dict[str, torch.Tensor] = {}
    if record:
        events.update(
            switched=switching,
            in_battle=state.species[:, :, 0].clone(),
            in_battle_max_hp=state.stats[:, :, 0, 0].clone(),
        )
    move, struggling = chosen_moves(state, actions)

    priority = tables.move_facts[move, PRIORITY_COLUMN]
    speed = effective_speed(state)
    side_zero_first = (priority[:, 0] > priority[:, 1]) | (
        (priority[:, 0] == priority[:, 1])
        & ((speed[:, 0] > speed[:, 1]) | ((speed[:, 0] == speed[:, 1]) & (draws[:, 0] < 0.5)))
    )
    first = torch.where(side_zero_first, 0, 1)
    pair = ActivePair.in_move_order(tables, state, first, move, struggling, moving)
    pair.rolls = roll_moves(tables, pair, draws[:, 1:])
    for order in (0, 1):
        outcome = use_move(tables, pair, order, record)
        if record:
            outcome["side"] = first if order == 0 else 1 - first
            events.update({f"move{order}_{key}": value for key, value in outcome.items()})
    pair.write_back(state)

    hp_before = state.hp[:, :, 0].clone() if record else None
    end_of_turn(state, ~forced)
    if record:
        events.update(
            first=first,
            residual=hp_before - state.hp[:, :, 0],
            residual_status=state.status[:, :, 0].clone(),
            hp_after_turn=state.hp[:, :, 0].clone(),
        )
    state.turn.add_((~forced).int())
    return events


def end_of_turn(state: BattleState, playing: torch.Tensor) -> None:
    """Burn, poison and bad poison damage to each living active, in battles where ``playing [B]``."""
    hp = state.hp[:, :, 0]
    max_hp = state.stats[:, :, 0, 0]
    status = state.status[:, :, 0]
    hurt = playing.unsqueeze(1) & (hp > 0)
    badly_poisoned = hurt & (status == TOXIC)
    torch.where(
        badly_poisoned, (state.toxic_stage + 1).clamp(max=MAX_TOXIC_STAGE), state.toxic_stage, out=state.toxic_stage
    )
    loss = torch.where(status == BURN, rules.fraction_of(max_hp, 16), 0)
    loss = torch.where(status == POISON, rules.fraction_of(max_hp, 8), loss)
    loss = torch.where(status == TOXIC, rules.toxic_damage(max_hp, state.toxic_stage), loss)
    hp.copy_((hp - torch.where(hurt, loss, 0)).clamp(min=0))
