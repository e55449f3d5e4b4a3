"""The rule expert for ``rlcourse/SlotFilling-v0``: a hand-written dialogue policy.

It reads only the observation (so it is a policy like any other, usable for warm starts and
imitation) and follows TC-Bot's rule agent: request the missing constraints, confirm what was
heard with low confidence, book, answer the requests, say bye.

1. The user said ``thanks`` and a booking stands with nothing pending: say ``bye`` (a ``thanks``
   heard before that is NLU noise).
2. A booking stands and a request is pending: ``inform`` it.
3. A booking stands and nothing is pending (the user's last words were lost): ``book`` again,
   which makes the user restate what is missing.
4. A slot is still unknown: ``request`` the first one, in the domain's order.
5. A slot was heard with confidence below ``confirm_below``: ``confirm`` it.
6. Otherwise ``book`` (or, with no KB match, ``confirm`` the least certain slot).
"""

from __future__ import annotations

import torch

from rlcourse.envs.dialogue.slot_filling import (
    BOOK,
    CONFIRM,
    INTENTS,
    SYS_BYE,
    SYS_INFORM,
    SYS_REQUEST,
    SlotFillingVecEnv,
)

THANKS = INTENTS.index("thanks")


class RuleExpert:
    """``expert(obs) -> actions`` for a :class:`SlotFillingVecEnv` (batched, tensors in and out)."""

    def __init__(self, env: SlotFillingVecEnv, confirm_below: float = 0.8):
        self.layout = env.obs_layout
        self.first_action = {}
        kinds = env.action_kind.tolist()
        for kind in (SYS_REQUEST, CONFIRM, SYS_INFORM, BOOK, SYS_BYE):
            self.first_action[kind] = kinds.index(kind)
        self.confirm_below = confirm_below

    def _part(self, obs: torch.Tensor, name: str) -> torch.Tensor:
        start, stop = self.layout[name]
        return obs[:, start:stop]

    def __call__(self, obs: torch.Tensor) -> torch.Tensor:
        intent = self._part(obs, "user_intent").argmax(1)
        known = self._part(obs, "belief_filled") > 0.5
        confidence = self._part(obs, "belief_confidence")
        dontcare = self._part(obs, "belief_dontcare") > 0.5
        pending = self._part(obs, "pending") > 0.5
        booked = self._part(obs, "booked")[:, 0] > 0.5
        no_match = self._part(obs, "kb_bucket")[:, 0] > 0.5
        doubtful = known & ~dontcare & (confidence < self.confirm_below)

        book = torch.full_like(intent, self.first_action[BOOK])
        least_certain = torch.where(known & ~dontcare, confidence, 2.0).argmin(1)
        action = torch.where(no_match, self.first_action[CONFIRM] + least_certain, book)
        action = torch.where(doubtful.any(1), self.first_action[CONFIRM] + doubtful.int().argmax(1), action)
        action = torch.where((~known).any(1), self.first_action[SYS_REQUEST] + (~known).int().argmax(1), action)
        action = torch.where(booked, book, action)
        action = torch.where(booked & pending.any(1), self.first_action[SYS_INFORM] + pending.int().argmax(1), action)
        done = (intent == THANKS) & booked & ~pending.any(1)
        return torch.where(done, self.first_action[SYS_BYE], action)
