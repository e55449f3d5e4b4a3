"""rlcourse's batched environments, registered as ``rlcourse/<Name>-v<k>``.

The core runs :func:`register_all` through the ``rlcourse.envs`` entry point when ``rlcourse`` is
imported (see ``pyproject.toml``); a new env is one folder here plus one line in :data:`ENVS`.
Registering names each class as ``"module:Class"``, so it imports no env (and no torch): an env's
module is imported when the env is first made, or when its class is first used from here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rlcourse.registry import register_env, vec_env_class

if TYPE_CHECKING:
    from rlcourse.envs.chatbot import ChatbotVecEnv
    from rlcourse.envs.classic import CartPoleVecEnv, MountainCarVecEnv, PendulumVecEnv
    from rlcourse.envs.dialogue import SlotFillingVecEnv
    from rlcourse.envs.pokemon import PokemonBattleVecEnv

#: env id -> the batched class, as "module:Class".
ENVS = {
    "rlcourse/CartPole-v1": "rlcourse.envs.classic.cartpole:CartPoleVecEnv",
    "rlcourse/Pendulum-v1": "rlcourse.envs.classic.pendulum:PendulumVecEnv",
    "rlcourse/MountainCar-v0": "rlcourse.envs.classic.mountain_car:MountainCarVecEnv",
    "rlcourse/SlotFilling-v0": "rlcourse.envs.dialogue.slot_filling:SlotFillingVecEnv",
    "rlcourse/PokemonBattle-v0": "rlcourse.envs.pokemon.env:PokemonBattleVecEnv",
    "rlcourse/Chatbot-v0": "rlcourse.envs.chatbot.env:ChatbotVecEnv",
}
_ID_OF_CLASS = {reference.rpartition(":")[2]: env_id for env_id, reference in ENVS.items()}


def register_all() -> None:
    """Register every env of this package (for ``make_vec`` and for ``gym.make``)."""
    for env_id, reference in ENVS.items():
        register_env(env_id, reference)


def __getattr__(name: str) -> Any:
    """``rlcourse.envs.CartPoleVecEnv`` and the other classes, imported on first use (PEP 562)."""
    if name in _ID_OF_CLASS:
        return vec_env_class(_ID_OF_CLASS[name])
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


register_all()  # importing the package directly registers them too

__all__ = [
    "ENVS",
    "CartPoleVecEnv",
    "ChatbotVecEnv",
    "MountainCarVecEnv",
    "PendulumVecEnv",
    "PokemonBattleVecEnv",
    "SlotFillingVecEnv",
    "register_all",
]
