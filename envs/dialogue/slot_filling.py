"""``rlcourse/SlotFilling-v0``: task-oriented dialogue with an agenda-based simulated user, batched as tensors.

The course's example of RL beyond games (interactive retrieval, notes:12318-12320 [Deep RL]): a positive
reward for giving the user what they need, a negative reward for every question asked. The task
is slot filling (notes:3928-3937 [RNN]): the system must learn the user's constraints ("on November
2nd", "for 2 people"), book a matching entity from the knowledge base and answer the user's
questions about it, in as few turns as possible.

**The user** follows an agenda (Schatzmann et al. 2007; TC-Bot's rule user). At reset it samples a
goal from the KB, so the goal is always satisfiable: 1-6 constraints on informable slots and 0-3
requests, with the domain's distributions (TC-Bot's goals average 4.8 constraints and 1.19
requests; requests are drawn first, constraints among the other slots). Its first turn informs a random subset of the constraints (at least one) and asks some
of the requests. Then it answers the system's act:

=====================  =======================================================================
system act             user reply
=====================  =======================================================================
``request(s)``         ``inform(s=value)``, or ``inform(s=dontcare)`` when the goal leaves s free
``confirm(s)``         ``affirm`` when the system's value for s is right (or s is free), else
                       ``deny`` and ``inform`` the right value; an unknown s is a request
``book``               the system queries the KB with its belief and books the first match. A
                       booking that breaks a constraint gets a bare ``reject`` (which slot is
                       wrong stays unsaid); no match gets another constraint. An accepted
                       booking gets the next open request, or ``thanks`` when nothing is left
``inform(r)``          about the accepted booking: the request counts as answered; then the
                       next open request, or ``thanks``
``greeting``/other     the next constraint on the agenda (or the next request, or ``thanks``)
``bye``                the dialogue ends
=====================  =======================================================================

The user gives up (``bye``) after ``max_turns`` system turns. The dialogue **succeeds** when the
system says ``bye`` after a booking the user accepted (every constraint holds) and every request
was answered. Both endings are terminations: the turn is part of the observation.

**The system** hears the user through the NLU noise model (:mod:`~rlcourse.envs.dialogue.nlu`) and
tracks a belief: per informable slot the heard value and its NLU confidence (an ``affirm`` to
``confirm(s)`` makes it certain, a ``deny`` clears it), the requests heard and not yet answered,
and its current booking. Observation (TC-Bot's state, 272-d there; 104-d for the movie domain):
last heard user intent, heard inform and request slot bags, last system act, belief (filled,
confidence, dontcare), pending requests, booked flag, turn (scalar and one-hot), and KB match
counts (bucketed total, its log, and per slot). ``action_masks()`` rules out acts that cannot do
anything: greeting after the first turn, confirming an unknown slot, informing before a booking,
booking with no match.

**Rewards** (``reward=``): ``tcbot``: -1 per turn, +2·max_turns on success, -max_turns on failure
(the final turn gets only the final reward, as in TC-Bot); ``pydial``: 20·success - turns.
``info`` carries ``success`` and ``turns``; :attr:`~SlotFillingVecEnv.action_names` names every action index
(``request(city)``, ``book``, ...). Turns are system turns; TC-Bot counts user and system
utterances, which is 2·turns.
"""

from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch
from gymnasium import spaces

from rlcourse.envs.dialogue.domain import Domain, load_domain
from rlcourse.envs.dialogue.kb import KnowledgeBase
from rlcourse.envs.dialogue.learned_nlu import LearnedEar, WordNoise, is_learned, resolve_parser
from rlcourse.envs.dialogue.nlu import ABSENT, DONTCARE, draw_noise, hear, nlu_preset, one_hot
from rlcourse.vec_env import TensorVecEnv, fill_where

INTENTS = ("inform", "request", "affirm", "deny", "reject", "thanks", "bye")
INFORM, REQUEST, AFFIRM, DENY, REJECT, THANKS, BYE = range(len(INTENTS))
#: Kinds of system act; the action index is laid out as greeting, request(s)..., confirm(s)..., inform(r)..., book, bye.
ACT_KINDS = ("greeting", "request", "confirm", "inform", "book", "bye")
GREETING, SYS_REQUEST, CONFIRM, SYS_INFORM, BOOK, SYS_BYE = range(len(ACT_KINDS))
UNKNOWN = ABSENT  # a belief slot the system has not heard
NONE = -1  # no entity / no slot
REWARD_PRESETS = ("tcbot", "pydial")
MATCH_BUCKETS = (0, 1, 2, 6, 21)  # bucket edges of the KB match count: 0, 1, 2-5, 6-20, >20


class SlotFillingVecEnv(TensorVecEnv):
    """Batched slot-filling dialogues (see the module docstring).

    Args:
        num_envs, device, validate: as for every :class:`~rlcourse.TensorVecEnv`.
        domain: a shipped domain (``movie``, ``restaurant``) or a path to a domain JSON file.
        nlu: NLU noise preset: ``clean``, ``tcbot``, ``pydial15`` or ``pydial30``; or a learned NLU that hears the
            user's words: ``learned:PATH`` (a saved tagger) or any :class:`rlcourse.nlu.UtteranceParser` object
            (:mod:`~rlcourse.envs.dialogue.learned_nlu`).
        reward: ``tcbot`` or ``pydial``.
        max_turns: system turns before the user gives up.
        slot_error_mode: override the preset's TC-Bot slot-error mode (``value``, ``slot``, ``delete``, ``mixed``).
        word_typo, word_drop, paraphrase: the word noise a learned NLU hears through (misspelt words, dropped
            words, paraphrased templates).

    While :attr:`recording` is on, each turn's acts go in ``info["acts"]`` (for transcripts).
    """

    env_id = "rlcourse/SlotFilling-v0"  # also set by registration; declared so that the class knows its id when imported directly
    state_names = (
        "goal_value",
        "goal_request",
        "agenda_key",
        "informed",
        "answered",
        "accepted",
        "belief_value",
        "belief_confidence",
        "pending",
        "booked",
        "turn",
        "sys_action",
        "heard_intent",
        "heard_inform",
        "heard_request",
        "said_intent",
        "said_inform",
        "said_request",
    )
    metadata = {**TensorVecEnv.metadata, "render_modes": ["ansi"]}
    outcome_keys = ("success",)
    has_action_masks = True
    has_transcripts = True
    has_rule_expert = True

    def __init__(
        self,
        num_envs: int,
        device: str | torch.device = "cpu",
        validate: bool = False,
        domain: str = "movie",
        nlu: str = "clean",
        reward: str = "tcbot",
        max_turns: int = 20,
        slot_error_mode: str | None = None,
        word_typo: float = 0.0,
        word_drop: float = 0.0,
        paraphrase: bool = True,
    ):
        self.domain: Domain = load_domain(domain)
        learned = is_learned(nlu)
        words = WordNoise(word_typo, word_drop, paraphrase)
        if not learned and words != WordNoise():
            raise ValueError("word_typo, word_drop and paraphrase need a learned NLU (nlu=learned:PATH)")
        if learned and slot_error_mode is not None:
            raise ValueError("slot_error_mode belongs to the NLU noise presets; a learned NLU makes its own errors")
        self.noise = nlu_preset("clean" if learned else nlu, slot_error_mode)
        if reward not in REWARD_PRESETS:
            raise ValueError(f"unknown reward preset {reward!r}; choose one of {', '.join(REWARD_PRESETS)}")
        if isinstance(max_turns, bool) or not isinstance(max_turns, (int, np.integer)) or max_turns < 2:
            raise ValueError(f"max_turns must be an integer >= 2, got {max_turns!r}")
        self.reward_preset, self.max_turns = reward, int(max_turns)
        self._options = {"domain": domain, "nlu": nlu, "reward": reward, "max_turns": self.max_turns}
        if slot_error_mode is not None:
            self._options["slot_error_mode"] = slot_error_mode
        if words != WordNoise():
            self._options.update(word_typo=word_typo, word_drop=word_drop, paraphrase=paraphrase)
        d = self.domain
        self.slots, self.requests = d.informable, d.requestable
        S, R = len(self.slots), len(self.requests)
        self.num_actions = 2 * S + R + 3
        self.single_action_space = spaces.Discrete(self.num_actions)
        self.obs_layout = self._layout(S, R, self.max_turns)
        dim = sum(stop - start for start, stop in self.obs_layout.values())
        self.single_observation_space = spaces.Box(
            0.0, 1.0, (dim,), dtype=np.float32
        )  # every feature is a flag or a fraction
        super().__init__(num_envs, device, validate)
        #: the learned NLU's ear (None: the noise preset hears the acts themselves)
        self.ear = LearnedEar(resolve_parser(nlu, self.device), self.domain, self.device, words) if learned else None
        self._build_tables()
        self._action_names = tuple(self.describe_action(action) for action in range(self.num_actions))
        B, dev = self.num_envs, self.device
        long = dict(dtype=torch.int64, device=dev)
        self.goal_value = torch.full((B, S), NONE, **long)
        self.goal_request = torch.zeros(B, R, dtype=torch.bool, device=dev)
        self.agenda_key = torch.zeros(B, S, device=dev)
        self.informed = torch.zeros(B, S, dtype=torch.bool, device=dev)
        self.answered = torch.zeros(B, R, dtype=torch.bool, device=dev)
        self.accepted = torch.full((B,), NONE, **long)
        self.belief_value = torch.full((B, S), UNKNOWN, **long)
        self.belief_confidence = torch.zeros(B, S, device=dev)
        self.pending = torch.zeros(B, R, dtype=torch.bool, device=dev)
        self.booked = torch.full((B,), NONE, **long)
        self.turn = torch.zeros(B, **long)
        self.sys_action = torch.full((B,), NONE, **long)
        self.heard_intent = torch.zeros(B, **long)
        self.heard_inform = torch.full((B, S), ABSENT, **long)
        self.heard_request = torch.zeros(B, R, dtype=torch.bool, device=dev)
        self.said_intent = torch.zeros(B, **long)
        self.said_inform = torch.full((B, S), ABSENT, **long)
        self.said_request = torch.zeros(B, R, dtype=torch.bool, device=dev)
        # Derived from the belief (recomputed whenever it changes), so not part of the saved state.
        self.match_count = torch.zeros(B, **long)
        self.first_match = torch.zeros(B, **long)

    # ----------------------------------------------------------------- static tables
    @staticmethod
    def _layout(S: int, R: int, max_turns: int) -> dict[str, tuple[int, int]]:
        """Where each feature sits in the observation vector."""
        sizes = {
            "user_intent": len(INTENTS),
            "user_inform": S,
            "user_request": R,
            "sys_action": 2 * S + R + 3,
            "belief_filled": S,
            "belief_confidence": S,
            "belief_dontcare": S,
            "pending": R,
            "booked": 1,
            "turn": 1,
            "turn_onehot": max_turns + 1,
            "kb_bucket": len(MATCH_BUCKETS),
            "kb_log_count": 1,
            "kb_slot_fraction": S,
        }
        layout, start = {}, 0
        for name, size in sizes.items():
            layout[name] = (start, start + size)
            start += size
        return layout

    def _build_tables(self) -> None:
        d, dev = self.domain, self.device
        S, R = len(self.slots), len(self.requests)
        kinds = [GREETING] + [SYS_REQUEST] * S + [CONFIRM] * S + [SYS_INFORM] * R + [BOOK, SYS_BYE]
        slots = [0] + list(range(S)) + list(range(S)) + list(range(R)) + [0, 0]
        self.action_kind = torch.tensor(kinds, device=dev)
        self.action_slot = torch.tensor(slots, device=dev)
        self.n_values = torch.tensor([len(d.values[s]) for s in self.slots], device=dev)
        self.slot_in_kb = torch.tensor([d.in_kb[s] for s in self.slots], device=dev)
        self.kb = KnowledgeBase(d, dev)
        self.kb_size = self.kb.size
        self.kb_slot_values = self.kb.slot_values  # [entities, S]
        self.kb_request_values = self.kb.request_values  # [entities, R]
        # A request on a slot the goal constrains is never sampled: the user already knows that value.
        self.request_slot = torch.tensor(
            [self.slots.index(r) if r in self.slots else NONE for r in self.requests], device=dev
        )
        self.slot_index = torch.arange(S, device=dev)
        self.constraint_count_cdf = torch.tensor(d.constraint_count_probs, device=dev).cumsum(0)
        self.request_count_cdf = torch.tensor(d.request_count_probs, device=dev).cumsum(0)
        self.match_bucket_edges = torch.tensor(MATCH_BUCKETS, device=dev)
        self._build_lookups()
        self._k = self._constants()

    def _build_lookups(self) -> None:
        """Tables the step reads with one gather where it would otherwise compute several small ops (exact
        integer and bool logic only, so a lookup equals the computation it replaces)."""
        S, R = len(self.slots), len(self.requests)
        kind, slot = self.action_kind, self.action_slot
        #: per action: is it a request, a confirm, an inform, a booking, a bye
        self.action_flags = torch.stack([kind == k for k in (SYS_REQUEST, CONFIRM, SYS_INFORM, BOOK, SYS_BYE)], 1)
        #: per action: the request it answers (inform(r)), and the slot it confirms (confirm(s)), one-hot
        self.action_answers = one_hot(slot, R) & (kind == SYS_INFORM)[:, None]
        self.action_confirms = one_hot(slot, S) & (kind == CONFIRM)[:, None]
        self.no_confirm = torch.zeros(S, dtype=torch.bool, device=self.device)
        #: per KB match count (0 to kb_size): the one-hot of its bucket
        bucket = torch.bucketize(
            torch.arange(self.kb_size + 1, device=self.device), self.match_bucket_edges, right=True
        )
        self.count_bucket = one_hot(bucket - 1, len(MATCH_BUCKETS))
        #: per slot and belief value (flat, read with ``torch.take`` at ``slot_fraction_offset + value``): the fraction
        #: of the KB with that value; 1 where it does not narrow the KB (unknown, don't care, a booking slot)
        fraction = torch.ones(S, self.kb.value_fraction.shape[1] + 2, device=self.device)  # columns: -2, -1, 0, 1, ...
        fraction[:, 2:] = torch.where(self.slot_in_kb[:, None], self.kb.value_fraction, 1.0)
        self.slot_fraction_table = fraction.flatten()
        self.slot_fraction_offset = self.slot_index * fraction.shape[1] + 2

    def _constants(self) -> SimpleNamespace:
        """Every number the step works with, as a 0-d tensor on the device: an op with a Python number operand
        pays for wrapping it into a tensor each time, which is most of a small batch's step."""
        dev = self.device

        def constant(value, dtype=torch.int64):
            return torch.tensor(value, dtype=dtype, device=dev)

        def real(value):
            return constant(value, torch.float32)

        intents = {f"intent_{name}": constant(i) for i, name in enumerate(INTENTS)}
        kinds = {f"act_{name}": constant(i) for i, name in enumerate(ACT_KINDS)}
        return SimpleNamespace(
            **intents,
            **kinds,
            zero=constant(0),
            one=constant(1),
            none=constant(NONE),
            unknown=constant(UNKNOWN),
            absent=constant(ABSENT),
            dontcare=constant(DONTCARE),
            max_turns=constant(self.max_turns),
            last_constraint_count=constant(len(self.constraint_count_cdf) - 1),
            last_request_count=constant(len(self.request_count_cdf) - 1),
            true=constant(True, torch.bool),
            false=constant(False, torch.bool),
            later=real(2.0),  # an agenda key above every drawn one
            certain=real(1.0),
            doubtless=real(0.0),
            first_turn_inform_prob=real(self.domain.first_turn_inform_prob),
            first_turn_request_prob=real(self.domain.first_turn_request_prob),
            turns=real(self.max_turns),
            log_kb_size=real(math.log1p(self.kb_size)),
            turn_reward=real(-1.0),
            success_reward=real(2.0 * self.max_turns),
            failure_reward=real(-float(self.max_turns)),
            success_bonus=real(20.0),
            turn_cost=real(1.0),
        )

    # ----------------------------------------------------------------- the KB
    def _refresh_matches(self) -> None:
        """Count the KB entities consistent with the belief, and find the first one (what ``book`` would book)."""
        count, first = self.kb.match(self.belief_value)
        # copy_, not rebinding: the buffers keep their addresses, which a captured CUDA graph relies on
        self.match_count.copy_(count)
        self.first_match.copy_(first)

    # ----------------------------------------------------------------- the user's goal and first turn
    def _reset_where(self, mask: torch.Tensor) -> None:
        B, S, R, g, dev, k = self.num_envs, len(self.slots), len(self.requests), self.generator, self.device, self._k
        # Every draw comes first, whichever sub-envs reset, so the stream never depends on the mask.
        entity = torch.randint(self.kb_size, (B,), generator=g, device=dev)
        constraint_count_draw = torch.rand(B, generator=g, device=dev)
        request_count_draw = torch.rand(B, generator=g, device=dev)
        draws = torch.rand(B, 2 * S + R, generator=g, device=dev)
        agenda_key = torch.rand(B, S, generator=g, device=dev)
        first = torch.rand(B, S + R, generator=g, device=dev)
        noise = draw_noise(B, S, g, dev)
        if self._selects_none(mask):
            return
        # inverse-CDF draws of the goal's size (torch.multinomial would check its input on the host)
        n_constraints = torch.bucketize(constraint_count_draw, self.constraint_count_cdf, right=True)
        n_constraints = n_constraints.clamp(max=k.last_constraint_count) + k.one
        n_requests = torch.bucketize(request_count_draw, self.request_count_cdf, right=True)
        n_requests = n_requests.clamp(max=k.last_request_count)
        slot_keys, value_draw, request_keys = draws[:, :S], draws[:, S : 2 * S], draws[:, 2 * S :]
        # Requests first, then constraints among the other slots: the user never asks for a value it already
        # fixed, and both counts follow the domain's distributions exactly (the domain file is checked for room).
        goal_request = request_keys.argsort(1).argsort(1) < n_requests[:, None]
        asked_slot = (one_hot(self.request_slot, S)[None] & goal_request[:, :, None]).any(1)
        constrained = (
            torch.where(asked_slot, k.later, slot_keys).argsort(1).argsort(1) < n_constraints[:, None]
        ) & ~asked_slot
        booking_value = (value_draw * self.n_values).long()
        goal_value = torch.where(
            constrained, torch.where(self.slot_in_kb, self.kb_slot_values[entity], booking_value), k.none
        )
        # The agenda: constraints are informed in a random order; the first turn tells some of them (at least one).
        leading = one_hot(torch.where(constrained, agenda_key, k.later).argmin(1), S)
        told = constrained & ((first[:, :S] < k.first_turn_inform_prob) | leading)
        asked = goal_request & (first[:, S:] < k.first_turn_request_prob)

        each, each_slot = mask, mask[:, None]

        def put(name: str, fresh: torch.Tensor) -> None:
            current = getattr(self, name)
            current.copy_(torch.where(each if current.dim() == 1 else each_slot, fresh, current))

        def clear(name: str, value: torch.Tensor) -> None:
            current = getattr(self, name)
            fill_where(current, each if current.dim() == 1 else each_slot, value)

        put("goal_value", goal_value)
        put("goal_request", goal_request)
        put("agenda_key", agenda_key)
        put("informed", told)
        clear("answered", k.false)
        clear("accepted", k.none)
        clear("turn", k.zero)
        clear("sys_action", k.none)
        clear("said_intent", k.intent_inform)
        put("said_inform", torch.where(told, goal_value, k.absent))
        put("said_request", asked)
        # The system starts knowing nothing, then hears the first turn.
        clear("belief_value", k.unknown)
        clear("belief_confidence", k.doubtless)
        clear("pending", k.false)
        clear("booked", k.none)
        heard = self._hear(self.said_intent, self.said_inform, self.said_request, noise)
        fresh_view = self._track(heard, self.no_confirm, answered_request=None)
        for name, value in zip(("belief_value", "belief_confidence", "pending", "booked"), fresh_view):
            put(name, value)
        for name, value in zip(("heard_intent", "heard_inform", "heard_request"), heard[:3]):
            put(name, value)
        self._refresh_matches()

    # ----------------------------------------------------------------- hearing and tracking
    def _hear(self, intent: torch.Tensor, inform: torch.Tensor, request: torch.Tensor, draws=None):
        if self.ear is not None:
            if draws is None:  # drawn all the same, so the goals and replies are those of any other NLU
                draw_noise(intent.shape[0], inform.shape[1], self.generator, self.device)
            return self.ear.hear(intent, inform, request)[:4]
        heard_intent, heard_inform, confidence = hear(
            self.noise, intent, inform, self.n_values, BYE, self.generator, draws
        )
        # Requests are heard as said; a misheard intent changes how the system reads them, not the slots.
        return heard_intent, heard_inform, request.clone(), confidence

    def _track(self, heard, confirmed_slot: torch.Tensor, answered_request: torch.Tensor | None):
        """The system's belief tracker: fold what it heard into its belief. Returns the new view (not in place).

        ``confirmed_slot`` is the one-hot ``[B, S]`` of the slot the system's act confirmed (none: all False).
        """
        k = self._k
        intent, inform, request, confidence = heard
        told = inform != k.absent
        belief = torch.where(told, inform, self.belief_value)
        belief_confidence = torch.where(told, confidence, self.belief_confidence)
        confirmed = confirmed_slot & ~told
        belief_confidence = torch.where(confirmed & (intent == k.intent_affirm)[:, None], k.certain, belief_confidence)
        denied = confirmed & (intent == k.intent_deny)[:, None]
        belief = torch.where(denied, k.unknown, belief)
        belief_confidence = torch.where(denied, k.doubtless, belief_confidence)
        pending = self.pending if answered_request is None else self.pending & ~answered_request
        pending = pending | request
        booked = torch.where(intent == k.intent_reject, k.none, self.booked)
        return belief, belief_confidence, pending, booked

    # ----------------------------------------------------------------- one turn
    def _transition(self, actions: torch.Tensor):
        B, S, R, dev, k = self.num_envs, len(self.slots), len(self.requests), self.device, self._k
        action = actions.long()
        slot = self.action_slot.index_select(0, action)
        is_request, is_confirm, is_inform, is_book, is_bye = self.action_flags.index_select(0, action).unbind(1)
        request_hot = self.action_answers.index_select(0, action)
        belief_before = self.belief_value.clone() if self.recording else None
        self.turn += k.one

        # 1. The system's act takes effect: a booking queries the KB with the current belief.
        found = self.match_count > k.zero
        self.booked.copy_(torch.where(is_book, torch.where(found, self.first_match, k.none), self.booked))
        answering = is_inform & (self.booked >= k.zero)
        booked_entity = self.booked.clone() if self.recording else None

        # 2. The user judges it against the goal.
        goal, constrained = self.goal_value, self.goal_value != k.none
        booked_values = torch.where(
            self.slot_in_kb, self.kb_slot_values.index_select(0, self.booked.clamp(min=k.zero)), self.belief_value
        )
        broken = (constrained & (booked_values != goal)).any(1)
        judged = is_book & found
        accepted_now = judged & ~broken
        rejected = judged & broken
        self.answered &= ~(accepted_now & (self.booked != self.accepted))[:, None]  # a new booking: answers start over
        self.accepted.copy_(torch.where(accepted_now, self.booked, torch.where(rejected, k.none, self.accepted)))
        self.answered |= request_hot & (answering & (self.booked == self.accepted))[:, None] & self.goal_request

        # 3. The user's reply, by the agenda rules (a cascade of torch.where, the last rule written wins).
        waiting = constrained & ~self.informed
        # the next constraint on the agenda, or the first one again once all are told
        agenda = torch.where(waiting.any(1)[:, None], waiting, constrained)
        agenda_constraint = torch.where(agenda, self.agenda_key, k.later).argmin(1)
        open_requests = self.goal_request & ~self.answered
        any_open = open_requests.any(1)
        next_request = open_requests.int().argmax(1)
        has_booking = self.accepted >= k.zero

        # default: carry on with the agenda
        intent = torch.where(has_booking, torch.where(any_open, k.intent_request, k.intent_thanks), k.intent_inform)
        inform_slot = torch.where(has_booking, k.none, agenda_constraint)
        request_slot = torch.where(has_booking & any_open, next_request, k.none)
        # request(s), or confirm(s) of a slot the system has not heard: inform s (or "don't care")
        at_slot = slot[:, None]
        belief_at = self.belief_value.gather(1, at_slot).squeeze(1)
        goal_at = goal.gather(1, at_slot).squeeze(1)
        unheard = belief_at == k.unknown
        asked = is_request | (is_confirm & unheard)
        confirming = is_confirm & ~unheard
        right = (goal_at == k.none) | (belief_at == goal_at)
        intent = torch.where(asked, k.intent_inform, intent)
        intent = torch.where(confirming, torch.where(right, k.intent_affirm, k.intent_deny), intent)
        inform_slot = torch.where(asked | (confirming & ~right), slot, torch.where(confirming, k.none, inform_slot))
        request_slot = torch.where(asked | confirming, k.none, request_slot)
        # book: no match -> another constraint; a wrong booking -> a bare reject (it does not say what is wrong,
        # so booking blindly is no cheaper a way to learn the constraints than asking for them)
        no_match = is_book & ~found
        intent = torch.where(no_match, k.intent_inform, torch.where(rejected, k.intent_reject, intent))
        inform_slot = torch.where(no_match, agenda_constraint, torch.where(rejected, k.none, inform_slot))
        request_slot = torch.where(no_match | rejected, k.none, request_slot)
        # bye, or out of turns: the user leaves
        leaving = is_bye | (self.turn >= k.max_turns)
        intent = torch.where(leaving, k.intent_bye, intent)
        inform_slot = torch.where(leaving, k.none, inform_slot)
        request_slot = torch.where(leaving, k.none, request_slot)

        said_inform_hot = one_hot(inform_slot, S)
        said_inform = torch.where(said_inform_hot, torch.where(constrained, goal, k.dontcare), k.absent)
        said_request = one_hot(request_slot, R)
        self.informed |= said_inform_hot & constrained
        self.said_intent.copy_(intent)
        self.said_inform.copy_(said_inform)
        self.said_request.copy_(said_request)

        # 4. The outcome.
        success = is_bye & has_booking & ~any_open
        terminated = leaving
        if self.reward_preset == "tcbot":
            reward = torch.where(terminated, torch.where(success, k.success_reward, k.failure_reward), k.turn_reward)
        else:
            reward = k.success_bonus * success.float() - k.turn_cost

        # 5. The system hears the reply and updates its belief.
        heard = self._hear(intent, said_inform, said_request)
        view = self._track(heard, self.action_confirms.index_select(0, action), request_hot & answering[:, None])
        for name, value in zip(("belief_value", "belief_confidence", "pending", "booked"), view):
            getattr(self, name).copy_(value)
        self.heard_intent.copy_(heard[0])
        self.heard_inform.copy_(heard[1])
        self.heard_request.copy_(heard[2])
        self.sys_action.copy_(action)
        self._refresh_matches()

        info: dict[str, Any] = {"success": success, "turns": self.turn.clone()}
        if self.recording:
            info["acts"] = {
                "sys_action": action.clone(),
                "entity": booked_entity,
                "belief": belief_before,
                "said_intent": intent.clone(),
                "said_inform": said_inform.clone(),
                "said_request": said_request.clone(),
                "heard_intent": heard[0].clone(),
                "heard_inform": heard[1].clone(),
            }
        truncated = torch.zeros(B, dtype=torch.bool, device=dev)
        return reward.float(), terminated, truncated, info

    # ----------------------------------------------------------------- what the system sees
    def _observe(self) -> torch.Tensor:
        k = self._k
        known = self.belief_value != k.unknown
        # torch.cat promotes the bool parts to float32 (1.0 / 0.0) as it copies them in
        parts = [
            one_hot(self.heard_intent, len(INTENTS)),
            self.heard_inform != k.absent,
            self.heard_request,
            one_hot(self.sys_action, self.num_actions),
            known,
            self.belief_confidence,
            self.belief_value == k.dontcare,
            self.pending,
            (self.booked >= k.zero)[:, None],
            (self.turn.float() / k.turns)[:, None],
            one_hot(self.turn.clamp(max=k.max_turns), self.max_turns + 1),
            self.count_bucket.index_select(0, self.match_count),
            (torch.log1p(self.match_count.float()) / k.log_kb_size)[:, None],
            torch.take(self.slot_fraction_table, self.slot_fraction_offset + self.belief_value),
        ]
        return torch.cat(parts, 1)

    def action_masks(self) -> torch.Tensor:
        """Acts that can do something now: ``[num_envs, num_actions]`` bool."""
        B, S, R, k = self.num_envs, len(self.slots), len(self.requests), self._k
        first_turn = (self.turn == k.zero)[:, None]
        request = k.true.expand(B, S)
        confirm = self.belief_value >= k.zero
        inform = (self.booked >= k.zero)[:, None].expand(-1, R)
        book = (self.match_count > k.zero)[:, None]
        bye = k.true.expand(B, 1)
        return torch.cat([first_turn, request, confirm, inform, book, bye], 1)

    def options(self) -> dict[str, Any]:
        return dict(self._options)

    # ----------------------------------------------------------------- seeding and state (the ear's generator too)
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        if seed is not None and self.ear is not None:
            self.ear.seed(seed)
        return super().reset(seed=seed, options=options)

    @property
    def generators(self) -> tuple[torch.Generator, ...]:
        """The env's generator, and the learned NLU's word-noise generator when one listens."""
        return (self.generator,) if self.ear is None else (self.generator, self.ear.generator)

    def state_dict(self) -> dict[str, torch.Tensor]:
        state = super().state_dict()
        if self.ear is not None:
            state["speech_generator"] = self.ear.generator.get_state()
        return state

    def check_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        if (self.ear is not None) != ("speech_generator" in state):
            raise ValueError("env state and env disagree on a learned NLU (speech_generator): saved with another nlu?")
        super().check_state_dict({k: v for k, v in state.items() if k != "speech_generator"})

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        super().load_state_dict(state)  # checked by check_state_dict, which knows the ear's generator
        if self.ear is not None:
            self.ear.generator.set_state(state["speech_generator"])
        self._refresh_matches()  # the KB match counts are derived from the belief, so they are not saved

    # ----------------------------------------------------------------- transcripts
    def render_opening(self, index: int = 0) -> list[str]:
        """The goal and first user turn of sub-env ``index`` as text lines."""
        from rlcourse.envs.dialogue.transcript import opening_lines

        return opening_lines(self, index)

    def render_turn(self, info: dict[str, Any], index: int = 0) -> list[str]:
        """The system turn and user reply of the last ``step`` in sub-env ``index`` (needs :attr:`recording`)."""
        from rlcourse.envs.dialogue.transcript import turn_lines

        if "acts" not in info:
            raise ValueError("render_turn needs the step to be taken with env.recording = True")
        return turn_lines(self, info["acts"], index)

    def rule_expert(self):
        """The hand-written policy of :mod:`~rlcourse.envs.dialogue.expert` for this env."""
        from rlcourse.envs.dialogue.expert import RuleExpert

        return RuleExpert(self)

    def play_transcripts(self, policy, num_episodes: int, seed: int | None = None) -> list[str]:
        """``num_episodes`` dialogues played by ``policy(obs, action_masks)`` on a fresh copy of this env, as text."""
        from rlcourse.envs.dialogue.transcript import play_dialogues

        env = self.spawn(num_episodes)
        env.recording = True
        return play_dialogues(env, policy, seed)

    # ----------------------------------------------------------------- reading the state
    @property
    def action_names(self) -> tuple[str, ...]:
        """The system act of every action index, in index order: ``greeting``, ``request(<slot>)`` for each
        informable slot, ``confirm(<slot>)`` for each, ``inform(<slot>)`` for each requestable slot, ``book``,
        ``bye`` (the slots in the domain's order; ``env.action_names.index("book")`` finds an act's index)."""
        return self._action_names

    def describe_action(self, action: int) -> str:
        """A system action index as an act, e.g. ``request(city)`` (the same as ``action_names[action]``)."""
        kind, slot = ACT_KINDS[int(self.action_kind[action])], int(self.action_slot[action])
        if kind in ("request", "confirm"):
            return f"{kind}({self.slots[slot]})"
        if kind == "inform":
            return f"inform({self.requests[slot]})"
        return kind
