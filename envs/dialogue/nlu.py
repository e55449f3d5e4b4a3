"""The NLU noise model: what the system *hears* when the simulated user speaks.

The user's act is exact; the system sees it through a noisy language-understanding channel, as in
TC-Bot's error model (Li et al. 2017) and PyDial's semantic-error simulation:

* **intent error**: with probability ``intent_error`` the intent is replaced by another intent drawn
  uniformly (the user's leaving is physical and is never misheard);
* **slot error**: each informed slot is corrupted with probability ``slot_error``, in one of TC-Bot's
  modes: ``value`` (another value of the same slot), ``slot`` (another slot, with a random value of
  that slot), ``delete`` (the slot is lost), or ``mixed`` (one of the three, uniformly);
* **confidence**: every heard slot comes with an NLU confidence, drawn uniformly from
  ``confidence_correct`` when it was heard right and from ``confidence_wrong`` when it was not, so
  confidence is informative but not a give-away.

Everything is batched tensor code drawing from the env's generator.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, replace
from types import SimpleNamespace

import torch

#: Act encoding shared with the env: a slot absent from an act, and the "I don't care" value.
ABSENT = -1
DONTCARE = -2
SLOT_ERROR_MODES = ("value", "slot", "delete", "mixed")


@dataclass(frozen=True)
class NluNoise:
    """One noise setting (see the module docstring)."""

    intent_error: float
    slot_error: float
    slot_error_mode: str = "mixed"
    confidence_correct: tuple[float, float] = (1.0, 1.0)
    confidence_wrong: tuple[float, float] = (0.0, 0.0)


#: The named presets. PyDial's 15%/30% semantic error rates apply to intents and slots alike.
NLU_PRESETS: dict[str, NluNoise] = {
    "clean": NluNoise(0.0, 0.0),
    "tcbot": NluNoise(0.05, 0.05, "mixed", (0.6, 1.0), (0.1, 0.7)),
    "pydial15": NluNoise(0.15, 0.15, "mixed", (0.6, 1.0), (0.1, 0.7)),
    "pydial30": NluNoise(0.30, 0.30, "mixed", (0.6, 1.0), (0.1, 0.7)),
}


def nlu_preset(name: str, slot_error_mode: str | None = None) -> NluNoise:
    """The preset ``name``, optionally with another TC-Bot slot-error mode."""
    if name not in NLU_PRESETS:
        raise ValueError(
            f"unknown NLU noise preset {name!r}; choose one of {', '.join(NLU_PRESETS)}, or learned:PATH (a saved tagger)"
        )
    noise = NLU_PRESETS[name]
    if slot_error_mode is not None:
        if slot_error_mode not in SLOT_ERROR_MODES:
            raise ValueError(
                f"unknown slot_error_mode {slot_error_mode!r}; choose one of {', '.join(SLOT_ERROR_MODES)}"
            )
        noise = replace(noise, slot_error_mode=slot_error_mode)
    return noise


def one_hot(index: torch.Tensor, count: int) -> torch.Tensor:
    """``index`` as a bool one-hot over ``count``; an index outside ``[0, count)`` gives all False.

    Unlike ``torch.nn.functional.one_hot`` it never checks its input on the host, so it is safe in
    a captured CUDA graph.
    """
    return index[..., None] == _arange(count, index.device)


@functools.cache
def _arange(count: int, device: torch.device) -> torch.Tensor:
    """``torch.arange(count)`` on ``device``, made once (read-only: shared by every caller)."""
    return torch.arange(count, device=device)


@functools.cache
def _scalar(value: int, device: torch.device) -> torch.Tensor:
    """An int64 0-d tensor on ``device``, made once (read-only: shared by every caller)."""
    return torch.tensor(value, device=device)


@functools.cache
def _constants(noise: NluNoise, device: torch.device) -> SimpleNamespace:
    """The numbers :func:`hear` works with, as 0-d tensors: an op with a Python number operand pays for
    wrapping it into a tensor every time. Made once per setting and device (read-only: shared)."""

    def constant(value, dtype=torch.int64):
        return torch.tensor(value, dtype=dtype, device=device)

    return SimpleNamespace(
        one=constant(1),
        nothing=constant(0),
        absent=constant(ABSENT),
        dontcare=constant(DONTCARE),
        modes=constant(3.0, torch.float32),
        mode=constant(SLOT_ERROR_MODES.index(noise.slot_error_mode)),
        value_mode=constant(0),
        slot_mode=constant(1),
        intent_error=constant(noise.intent_error, torch.float32),
        slot_error=constant(noise.slot_error, torch.float32),
        correct_low=constant(noise.confidence_correct[0], torch.float32),
        correct_high=constant(noise.confidence_correct[1], torch.float32),
        wrong_low=constant(noise.confidence_wrong[0], torch.float32),
        wrong_high=constant(noise.confidence_wrong[1], torch.float32),
        silent=constant(0.0, torch.float32),
    )


def _other(index: torch.Tensor, count: torch.Tensor, draw: torch.Tensor, one: torch.Tensor) -> torch.Tensor:
    """A uniformly drawn index in ``[0, count)`` other than ``index`` (``draw`` is uniform in [0, 1); ``one`` is 1)."""
    return (index + one + (draw * (count - one)).long()) % count


def draw_noise(
    batch: int, slots: int, generator: torch.Generator, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """The random numbers one call of :func:`hear` uses, in its order, so a caller can draw them ahead of time."""
    slot_draws = torch.rand(batch, slots, 6, generator=generator, device=device)
    intent_draws = torch.rand(batch, 2, generator=generator, device=device)
    return slot_draws, intent_draws


def hear(
    noise: NluNoise,
    intent: torch.Tensor,
    inform: torch.Tensor,
    n_values: torch.Tensor,
    noisy_intents: int,
    generator: torch.Generator,
    draws: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """What the system hears of a batch of user acts.

    Args:
        intent: ``[B]`` the user's intent; intents ``>= noisy_intents`` are never misheard.
        inform: ``[B, S]`` the informed value per slot (``ABSENT``, ``DONTCARE`` or a value index).
        n_values: ``[S]`` how many values each slot has.
        draws: the random numbers to use (:func:`draw_noise`); by default drawn here from ``generator``.

    Returns the heard intent ``[B]``, the heard inform values ``[B, S]`` and their confidence ``[B, S]``;
    where the setting mishears nothing, the heard intent or values are ``intent`` or ``inform`` themselves.
    The same numbers are drawn whatever the setting, so the stream of an env never depends on it.
    """
    batch, slots = inform.shape
    draws, intent_draw = draw_noise(batch, slots, generator, inform.device) if draws is None else draws
    k = _constants(noise, inform.device)
    if noise.intent_error == 0:  # a setting, not a tensor value: no host read
        heard_intent = intent
    else:
        noisy = _scalar(noisy_intents, inform.device)
        heard_intent = torch.where(
            (intent_draw[:, 0] < k.intent_error) & (intent < noisy),
            _other(intent, noisy, intent_draw[:, 1], k.one),
            intent,
        )
    if noise.slot_error == 0:  # nothing is misheard, so every heard slot is heard right
        heard = inform
        low, high = k.correct_low, k.correct_high
    else:
        heard = _misheard_slots(noise, k, inform, n_values, draws)
        correct = heard == inform
        low = torch.where(correct, k.correct_low, k.wrong_low)
        high = torch.where(correct, k.correct_high, k.wrong_high)
    confidence = torch.where(heard != k.absent, low + (high - low) * draws[..., 5], k.silent)
    return heard_intent, heard, confidence


def _misheard_slots(
    noise: NluNoise, k: SimpleNamespace, inform: torch.Tensor, n_values: torch.Tensor, draws: torch.Tensor
) -> torch.Tensor:
    """The slot errors of :func:`hear`: the heard inform values ``[B, S]``."""
    batch, slots = inform.shape
    present = inform != k.absent
    wrong = present & (draws[..., 0] < k.slot_error)
    mode = (draws[..., 1] * k.modes).long() if noise.slot_error_mode == "mixed" else k.mode
    # mode 0, value: another value of the same slot ("I don't care" heard as some value).
    new_value = torch.where(
        inform == k.dontcare,
        (draws[..., 2] * n_values).long(),
        _other(inform.clamp(min=k.nothing), n_values, draws[..., 2], k.one),
    )
    heard = torch.where(present & ~wrong, inform, k.absent)
    heard = torch.where(wrong & (mode == k.value_mode), new_value, heard)
    # mode 1, slot: heard under another slot, with a random value of that slot (collisions keep the larger code).
    moved = wrong & (mode == k.slot_mode)
    slot_count = _scalar(slots, inform.device)
    target = _other(_arange(slots, inform.device).expand(batch, slots), slot_count, draws[..., 3], k.one)
    target_value = (draws[..., 4] * n_values[target]).long()
    landing = one_hot(target, slots) & moved[..., None]  # [B, from, to]
    landed = torch.where(landing, target_value[..., None] + k.one, k.nothing).amax(1) - k.one  # [B, to], -1: none
    # mode 2, delete: nothing more to do, the slot is already ABSENT.
    return torch.where(landed >= k.nothing, landed, heard)
