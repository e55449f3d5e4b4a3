"""rlcourse's batched environments. Importing this package registers each one as ``rlcourse/<Name>-v<k>``."""

from rlcourse.envs.classic import CartPoleVecEnv, PendulumVecEnv
from rlcourse.envs.dialogue import SlotFillingVecEnv

from rlcourse.registry import register_env

register_env("rlcourse/CartPole-v1", CartPoleVecEnv)
register_env("rlcourse/Pendulum-v1", PendulumVecEnv)
register_env("rlcourse/SlotFilling-v0", SlotFillingVecEnv)

__all__ = ["CartPoleVecEnv", "PendulumVecEnv", "SlotFillingVecEnv"]
