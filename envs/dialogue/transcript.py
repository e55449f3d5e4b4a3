"""Transcripts: the acts of a dialogue (read from the env's state and ``info["acts"]``) said in English.

The English comes from the domain's phrasebook (:mod:`~rlcourse.envs.dialogue.nlg`); this module
turns the env's act tensors into its calls, and plays whole sample dialogues with a policy. Where
the NLU misheard the user, the line shows what the system heard, in the act notation.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from rlcourse.envs.dialogue.nlg import DONT_CARE, Phrasebook
from rlcourse.envs.dialogue.nlu import ABSENT, DONTCARE
from rlcourse.envs.dialogue.slot_filling import ACT_KINDS, INTENTS, SlotFillingVecEnv


def _phrasebook(env: SlotFillingVecEnv) -> Phrasebook:
    return env.domain.phrasebook


def _value(env: SlotFillingVecEnv, slot: str, value: int) -> str:
    """A value code as text: the value, or :data:`~rlcourse.envs.dialogue.nlg.DONT_CARE` for "don't care"."""
    return DONT_CARE if value == DONTCARE else env.domain.values[slot][value]


def act_text(env: SlotFillingVecEnv, intent: int, inform: list[int], request: list[bool]) -> str:
    """A user act in the bracket notation, e.g. ``inform(city=seattle; date=dontcare) request(price)``."""
    informs = [
        f"{slot}={'dontcare' if v == DONTCARE else env.domain.values[slot][v]}"
        for slot, v in zip(env.slots, inform)
        if v != ABSENT
    ]
    requests = [slot for slot, asked in zip(env.requests, request) if asked]
    asks = f"request({', '.join(requests)})" if requests else ""
    if INTENTS[intent] == "request" and asks and not informs:
        return asks
    text = INTENTS[intent] + (f"({'; '.join(informs)})" if informs else "")
    return f"{text} {asks}" if asks else text


def user_text(env: SlotFillingVecEnv, intent: int, inform: list[int], request: list[bool]) -> str:
    """What the simulated user says for an act (intent code, a value code per slot, a flag per request)."""
    informs = {slot: _value(env, slot, v) for slot, v in zip(env.slots, inform) if v != ABSENT}
    asks = [slot for slot, asked in zip(env.requests, request) if asked]
    return _phrasebook(env).user_turn(INTENTS[intent], informs, asks)


def system_text(env: SlotFillingVecEnv, action: int, entity: int, belief: list[int]) -> str:
    """What the system says for ``action``, given the entity it booked (-1: none) and its belief before the turn."""
    words = _phrasebook(env)
    kind, index = ACT_KINDS[int(env.action_kind[action])], int(env.action_slot[action])
    if kind == "greeting":
        return words.greeting()
    if kind == "request":
        return words.request(env.slots[index])
    if kind == "confirm":
        value = belief[index]
        heard = value >= 0 or value == DONTCARE
        return words.confirm(env.slots[index], _value(env, env.slots[index], value) if heard else None)
    if kind == "inform":
        slot = env.requests[index]
        known = entity >= 0
        return words.inform(slot, env.domain.values[slot][int(env.kb_request_values[entity, index])] if known else None)
    if kind == "book":
        if entity < 0:
            return words.booked(None)
        # the booking parameters the system knows; unknown and "don't care" ones go unsaid
        known = {
            slot: env.domain.values[slot][v]
            for slot, v in zip(env.slots, belief)
            if v >= 0 and not env.domain.in_kb[slot]
        }
        return words.booked(env.domain.entity_text(entity, known))
    return words.goodbye()


def opening_lines(env: SlotFillingVecEnv, index: int) -> list[str]:
    """The user's goal and first turn in sub-env ``index`` (read from the state after a reset)."""
    goal = [
        f"{slot}={env.domain.values[slot][v]}" for slot, v in zip(env.slots, env.goal_value[index].tolist()) if v >= 0
    ]
    wants = [r for r, asked in zip(env.requests, env.goal_request[index].tolist()) if asked]
    lines = [f"[goal: {', '.join(goal)}" + (f"; asks for {', '.join(wants)}" if wants else "") + "]"]
    said = (int(env.said_intent[index]), env.said_inform[index].tolist(), env.said_request[index].tolist())
    heard = (int(env.heard_intent[index]), env.heard_inform[index].tolist(), env.heard_request[index].tolist())
    return lines + _user_lines(env, said, heard)


def _user_lines(env: SlotFillingVecEnv, said, heard) -> list[str]:
    lines = [f"User:   {user_text(env, *said)}"]
    if act_text(env, *said) != act_text(env, *heard):
        lines.append(f"        (NLU heard: {act_text(env, *heard)}; the user meant: {act_text(env, *said)})")
    return lines


def turn_lines(env: SlotFillingVecEnv, acts: dict[str, torch.Tensor], index: int) -> list[str]:
    """One system turn and the user's reply in sub-env ``index``, from ``info["acts"]``."""
    system = system_text(
        env, int(acts["sys_action"][index]), int(acts["entity"][index]), acts["belief"][index].tolist()
    )
    said = (int(acts["said_intent"][index]), acts["said_inform"][index].tolist(), acts["said_request"][index].tolist())
    heard = (
        int(acts["heard_intent"][index]),
        acts["heard_inform"][index].tolist(),
        acts["said_request"][index].tolist(),
    )
    return [f"System: {system}", *_user_lines(env, said, heard)]


Policy = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def play_dialogues(env: SlotFillingVecEnv, policy: Policy, seed: int | None = None) -> list[str]:
    """Play one dialogue in every sub-env of ``env`` (with ``env.recording`` on) and return the transcripts.

    ``policy(obs, action_masks) -> actions`` acts for the system.
    """
    if not env.recording:
        raise ValueError("play_dialogues needs env.recording = True")
    obs, _ = env.reset(seed=seed)
    lines = [opening_lines(env, i) for i in range(env.num_envs)]
    finished = [False] * env.num_envs
    while not all(finished):
        obs, reward, terminated, truncated, info = env.step(policy(obs, env.action_masks()))
        done = (terminated | truncated).tolist()
        for i in range(env.num_envs):
            if finished[i]:
                continue
            lines[i] += turn_lines(env, info["acts"], i)
            if done[i]:
                outcome = "success" if bool(info["final_info"]["success"][i]) else "failure"
                turns = int(info["episode"]["l"][i])
                lines[i].append(
                    f"[{outcome} in {turns} system turns ({2 * turns} in TC-Bot's units), "
                    f"return {float(info['episode']['r'][i]):.0f}]"
                )
                finished[i] = True
    return ["\n".join(dialogue) for dialogue in lines]
