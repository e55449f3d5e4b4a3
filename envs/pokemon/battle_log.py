"""Battle logs: a step's events (``info["battle_events"]``) written as Showdown's messages.

``Charizard used Flamethrower! It's super effective! The opposing Venusaur lost 61% of its health!``
The agent's Pokémon go by their names, the opponent's as "the opposing ...", as Showdown writes them.
Health is shown in percent of max HP (rounded), as Showdown shows a foe's. The same text serves
``render_mode="ansi"``, ``rlcourse play`` and the sample battles agents log as TensorBoard text.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from rlcourse.envs.pokemon.dex import BOOSTS, BURN, FREEZE, PARALYSIS, POISON, SLEEP, STATUS_MOVE, TOXIC
from rlcourse.envs.pokemon.moves import ASLEEP, FLINCHED, FROZEN, FULLY_PARALYSED, IDLE
from rlcourse.envs.pokemon.teams import type_names

STAT_NAMES = dict(zip(BOOSTS, ("Attack", "Defense", "Sp. Atk", "Sp. Def", "Speed")))
RISE = {1: "rose", 2: "rose sharply", 3: "rose drastically"}
FALL = {1: "fell", 2: "harshly fell", 3: "severely fell"}
INFLICTED = {
    BURN: "was burned!",
    PARALYSIS: "is paralyzed! It may be unable to move!",
    POISON: "was poisoned!",
    TOXIC: "was badly poisoned!",
    SLEEP: "fell asleep!",
    FREEZE: "was frozen solid!",
}
STOPPED = {
    ASLEEP: "is fast asleep.",
    FROZEN: "is frozen solid!",
    FLINCHED: "flinched and couldn't move!",
    FULLY_PARALYSED: "is paralyzed! It can't move!",
}
RESIDUAL = {BURN: "was hurt by its burn!", POISON: "was hurt by poison!", TOXIC: "was hurt by poison!"}


def _name(env, species: int, side: int, start: bool = True) -> str:
    name = env.dex.species_names[species]
    if side == 0:
        return name
    return f"{'The' if start else 'the'} opposing {name}"


def _percent(amount: int, max_hp: int) -> int:
    return round(100 * amount / max(max_hp, 1))


def opening_lines(env, index: int) -> list[str]:
    """The two teams (species, level, types, moves) and the leads of battle ``index`` after a reset."""
    state = env.state
    lines = []
    for side, owner in ((0, "Your team"), (1, "The opponent's team")):
        members = []
        for slot in range(state.species.shape[2]):
            if not bool(state.present[index, side, slot]):
                continue
            species = int(state.species[index, side, slot])
            moves = [env.dex.move_names[m] for m in state.moves[index, side, slot].tolist() if m >= 0]
            members.append(
                f"{env.dex.species_names[species]} L{int(state.level[index, side, slot])} "
                f"({'/'.join(type_names(env.dex, species))}: {', '.join(moves)})"
            )
        lines.append(f"{owner}: " + "; ".join(members))
    lines.append(f"Go! {env.dex.species_names[int(state.species[index, 0, 0])]}!")
    lines.append(f"The opponent sent out {env.dex.species_names[int(state.species[index, 1, 0])]}!")
    return lines


def _stage_lines(name: str, changes: list[int], tried: list[int]) -> list[str]:
    lines = []
    for stat, change, attempt in zip(BOOSTS, changes, tried):
        if change > 0:
            lines.append(f"{name}'s {STAT_NAMES[stat]} {RISE[min(change, 3)]}!")
        elif change < 0:
            lines.append(f"{name}'s {STAT_NAMES[stat]} {FALL[min(-change, 3)]}!")
        elif attempt != 0:
            lines.append(f"{name}'s {STAT_NAMES[stat]} won't go any {'higher' if attempt > 0 else 'lower'}!")
    return lines


def _move_lines(env, events: dict[str, torch.Tensor], order: int, index: int) -> list[str]:
    def get(key: str):
        return events[f"move{order}_{key}"][index].tolist()

    side = get("side")
    user = _name(env, int(events["in_battle"][index, side]), side)
    target = _name(env, int(events["in_battle"][index, 1 - side]), 1 - side)
    user_max, target_max = (int(events["in_battle_max_hp"][index, s]) for s in (side, 1 - side))
    lines = []
    if get("woke"):
        lines.append(f"{user} woke up!")
    if get("thawed"):
        lines.append(f"{user} thawed out!")
    outcome = get("outcome")
    if outcome in STOPPED:
        return [*lines, f"{user} {STOPPED[outcome]}"]
    if outcome == IDLE:  # it switched, or had fainted before its turn
        return lines
    lines.append(f"{user} used {env.dex.move_names[get('move')]}!")
    if get("no_target"):
        return [*lines, "But there was no target..."]
    if get("missed"):
        return [*lines, f"{target} avoided the attack!"]
    is_attack = int(env.dex.move_category[get("move")]) != STATUS_MOVE
    if is_attack and get("hit"):
        multiplier = get("multiplier")
        if multiplier == 0:
            return [
                *lines,
                f"It doesn't affect {_name(env, int(events['in_battle'][index, 1 - side]), 1 - side, False)}...",
            ]
        if multiplier > 1:  # Showdown's order: effectiveness, then the crit
            lines.append("It's super effective!")
        elif multiplier < 1:
            lines.append("It's not very effective...")
        if get("crit"):
            lines.append("A critical hit!")
        lines.append(f"{target} lost {_percent(get('dealt'), target_max)}% of its health!")
    if get("inflicted"):
        lines.append(f"{target} {INFLICTED[get('inflicted')]}")
    if get("status_failed"):
        lines.append("But it failed!")
    lines += _stage_lines(target, get("target_stages"), get("target_stage_tried"))
    lines += _stage_lines(user, get("self_stages"), get("self_stage_tried"))
    if get("recoil"):
        lines.append(f"{user} was damaged by the recoil! ({_percent(get('recoil'), user_max)}%)")
    if get("healed"):
        verb = "had its energy drained" if is_attack else "had its HP restored"
        who = target if is_attack else user
        lines.append(f"{who} {verb}! ({user} +{_percent(get('healed'), user_max)}%)")
    if get("hit") and is_attack and get("target_hp") == 0:
        lines.append(f"{target} fainted!")
    if get("user_hp") == 0 and get("recoil"):
        lines.append(f"{user} fainted!")
    return lines


def turn_lines(env, events: dict[str, torch.Tensor], index: int) -> list[str]:
    """The log lines of one step of battle ``index``."""
    lines = []
    if bool(events["forced_step"][index]):
        return [f"Go! {env.dex.species_names[int(events['in_battle'][index, 0])]}!"]
    lines.append(f"Turn {int(events['turn'][index])}")
    for side in (0, 1):
        if bool(events["switched"][index, side]):
            name = env.dex.species_names[int(events["in_battle"][index, side])]
            lines.append(f"Go! {name}!" if side == 0 else f"The opponent sent out {name}!")
    for order in (0, 1):
        lines += _move_lines(env, events, order, index)
    for side in (0, 1):
        loss = int(events["residual"][index, side])
        if loss > 0:
            name = _name(env, int(events["in_battle"][index, side]), side)
            cause = RESIDUAL[int(events["residual_status"][index, side])]
            lines.append(f"{name} {cause} ({_percent(loss, int(events['in_battle_max_hp'][index, side]))}%)")
            if int(events["hp_after_turn"][index, side]) == 0:
                lines.append(f"{name} fainted!")
    if bool(events["replaced"][index]):
        lines.append(f"The opponent sent out {env.dex.species_names[int(events['active'][index, 1])]}!")
    if bool(events["win"][index]):
        lines.append("You won the battle!")
    elif bool(events["loss"][index]):
        lines.append("You lost the battle!")
    elif bool(events["draw"][index]):
        lines.append(f"The battle ended in a draw after {int(events['turn'][index])} turns.")
    return lines


Policy = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def play_battles(env, policy: Policy, seed: int | None = None) -> list[str]:
    """Play one battle in every sub-env of ``env`` (``env.recording`` on) and return their logs."""
    if not env.recording:
        raise ValueError("play_battles needs env.recording = True")
    obs, _ = env.reset(seed=seed)
    logs = [opening_lines(env, i) for i in range(env.num_envs)]
    finished = [False] * env.num_envs
    while not all(finished):
        actions = torch.as_tensor(policy(obs, env.action_masks()), device=env.device).long().view(-1)
        obs, reward, terminated, truncated, info = env.step(actions)
        done = (terminated | truncated).tolist()
        for i in range(env.num_envs):
            if finished[i]:
                continue
            logs[i] += turn_lines(env, info["battle_events"], i)
            if done[i]:
                logs[i].append(f"[{int(info['episode']['l'][i])} steps, return {float(info['episode']['r'][i]):.2f}]")
                finished[i] = True
    return ["\n".join(lines) for lines in logs]
