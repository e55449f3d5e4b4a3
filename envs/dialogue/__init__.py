"""Task-oriented dialogue: ``rlcourse/SlotFilling-v0`` (slot filling with an agenda-based simulated user)."""

from rlcourse.envs.dialogue.domain import Domain, builtin_domains, load_domain
from rlcourse.envs.dialogue.nlu import NLU_PRESETS, NluNoise
from rlcourse.envs.dialogue.slot_filling import SlotFillingVecEnv

__all__ = ["NLU_PRESETS", "Domain", "NluNoise", "SlotFillingVecEnv", "builtin_domains", "load_domain"]
