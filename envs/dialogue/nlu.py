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

from dataclasses import dataclass, replace

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
        raise ValueError(f"unknown NLU noise preset {name!r}; choose one of {', '.join(NLU_PRESETS)}")
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
    return index[..., None] == torch.arange(count, device=index.device)


def _other(index: torch.Tensor, count: torch.Tensor | int, draw: torch.Tensor) -> torch.Tensor:
    """A uniformly drawn index in ``[0, count)`` other than ``index`` (``draw`` is uniform in [0, 1))."""
    return (index + 1 + (draw * (count - 1)).long()) % count


def hear(
    noise: NluNoise,
    intent: torch.Tensor,
    inform: torch.Tensor,
    n_values: torch.Tensor,
    noisy_intents: int,
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """What the system hears of a batch of user acts.

    Args:
        intent: ``[B]`` the user's intent; intents ``>= noisy_intents`` are never misheard.
        inform: ``[B, S]`` the informed value per slot (``ABSENT``, ``DONTCARE`` or a value index).
        n_values: ``[S]`` how many values each slot has.

    Returns the heard intent ``[B]``, the heard inform values ``[B, S]`` and their confidence ``[B, S]``.
    """
    batch, slots = inform.shape
    draws = torch.rand(batch, slots, 6, generator=generator, device=inform.device)
    intent_draw = torch.rand(batch, 2, generator=generator, device=inform.device)
    heard_intent = torch.where(
        (intent_draw[:, 0] < noise.intent_error) & (intent < noisy_intents),
        _other(intent, noisy_intents, intent_draw[:, 1]),
        intent,
    )

    present = inform != ABSENT
    wrong = present & (draws[..., 0] < noise.slot_error)
    mode_index = SLOT_ERROR_MODES.index(noise.slot_error_mode)
    mode = (draws[..., 1] * 3).long() if noise.slot_error_mode == "mixed" else torch.full_like(inform, mode_index)
    # mode 0, value: another value of the same slot ("I don't care" heard as some value).
    new_value = torch.where(
        inform == DONTCARE, (draws[..., 2] * n_values).long(), _other(inform.clamp(min=0), n_values, draws[..., 2])
    )
    heard = torch.where(present & ~wrong, inform, ABSENT)
    heard = torch.where(wrong & (mode == 0), new_value, heard)
    # mode 1, slot: heard under another slot, with a random value of that slot (collisions keep the larger code).
    moved = wrong & (mode == 1)
    target = _other(torch.arange(slots, device=inform.device).expand(batch, slots), slots, draws[..., 3])
    target_value = (draws[..., 4] * n_values[target]).long()
    landing = one_hot(target, slots) & moved[..., None]  # [B, from, to]
    landed = torch.where(landing, target_value[..., None] + 1, 0).amax(1) - 1  # [B, to], -1 where nothing landed
    heard = torch.where(landed >= 0, landed, heard)
    # mode 2, delete: nothing more to do, the slot is already ABSENT.
    correct = heard == inform
    low, high = (
        torch.where(correct, noise.confidence_correct[0], noise.confidence_wrong[0]),
        torch.where(correct, noise.confidence_correct[1], noise.confidence_wrong[1]),
    )
    confidence = torch.where(heard != ABSENT, low + (high - low) * draws[..., 5], 0.0)
    return heard_intent, heard, confidence
