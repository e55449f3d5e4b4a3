"""Template NLG: dialogue acts rendered as English, and whole sample dialogues played with a policy.

User utterances are built from the domain's ``nlg.user_inform`` phrases ("to see zootopia", "on
november 2nd"); system utterances from fixed patterns and the domain's booking template. Where the
NLU misheard the user, the line shows what the system heard.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from rlcourse.envs.dialogue.nlu import ABSENT, DONTCARE
from rlcourse.envs.dialogue.slot_filling import ACT_KINDS, INTENTS, SlotFillingVecEnv


def _slot_name(env: SlotFillingVecEnv, slot: str) -> str:
    return env.domain.nlg.get("slot_name", {}).get(slot, slot)


def _value(env: SlotFillingVecEnv, slot: str, value: int) -> str:
    return "any" if value == DONTCARE else env.domain.values[slot][value]


def act_text(env: SlotFillingVecEnv, intent: int, inform: list[int], request: list[bool]) -> str:
    """A user act in the bracket notation, e.g. ``inform(city=seattle; date=november 2nd) request(price)``."""
    informs = [f"{slot}={_value(env, slot, v)}" for slot, v in zip(env.slots, inform) if v != ABSENT]
    requests = [slot for slot, asked in zip(env.requests, request) if asked]
    text = INTENTS[intent] + (f"({'; '.join(informs)})" if informs else "")
    return text + (f" request({', '.join(requests)})" if requests else "")


def user_text(env: SlotFillingVecEnv, intent: int, inform: list[int], request: list[bool]) -> str:
    """What the simulated user says."""
    phrases = env.domain.nlg.get("user_inform", {})
    wanted = [
        phrases.get(slot, f"{slot} {{value}}").format(value=_value(env, slot, v))
        for slot, v in zip(env.slots, inform)
        if v >= 0
    ]
    free = [f"Any {_slot_name(env, slot)} is fine." for slot, v in zip(env.slots, inform) if v == DONTCARE]
    asks = [f"What is the {_slot_name(env, r)}?" for r, asked in zip(env.requests, request) if asked]
    told = " ".join(wanted)
    name = INTENTS[intent]
    if name == "affirm":
        sentence = "Yes, that's right."
    elif name == "deny":
        sentence = f"No, I want it {told}." if told else "No, that's wrong."
    elif name == "reject":
        sentence = f"That doesn't work for me, I want it {told}." if told else "That doesn't work for me."
    elif name == "thanks":
        sentence = "Great, thank you!"
    elif name == "bye":
        sentence = "Bye."
    elif told:
        sentence = f"I'd like a {env.domain.entity} {told}."
    else:
        sentence = ""
    return " ".join(part for part in (sentence, *free, *asks) if part) or "..."


def system_text(env: SlotFillingVecEnv, action: int, entity: int, belief: list[int]) -> str:
    """What the system says for ``action``, given the entity it booked and its belief before the turn."""
    kind, index = ACT_KINDS[int(env.action_kind[action])], int(env.action_slot[action])
    if kind == "greeting":
        return "Hello! How can I help you?"
    if kind == "request":
        return f"Which {_slot_name(env, env.slots[index])} would you like?"
    if kind == "confirm":
        slot = env.slots[index]
        value = belief[index]
        if value < 0 and value != DONTCARE:
            return f"Sorry, which {_slot_name(env, slot)} was it?"
        return f"Did you say {_value(env, slot, value)} for the {_slot_name(env, slot)}?"
    if kind == "inform":
        slot = env.requests[index]
        if entity < 0:
            return f"I can't tell you the {_slot_name(env, slot)} before booking."
        value = int(env.kb_request_values[entity, index])
        return f"The {_slot_name(env, slot)} is {env.domain.values[slot][value]}."
    if kind == "book":
        if entity < 0:
            return f"Sorry, no {env.domain.entity} matches that."
        extra = {
            slot: _value(env, slot, v) if v >= 0 or v == DONTCARE else "?"
            for slot, v in zip(env.slots, belief)
            if not env.domain.in_kb[slot]
        }
        return env.domain.nlg.get("booking", "Booked.").format(**env.domain.entity_text(entity, extra))
    return "Goodbye."


def opening_lines(env: SlotFillingVecEnv, index: int) -> list[str]:
    """The user's goal and first turn in sub-env ``index`` (read from the state after a reset)."""
    goal = [
        f"{slot}={_value(env, slot, int(v))}" for slot, v in zip(env.slots, env.goal_value[index].tolist()) if v >= 0
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
