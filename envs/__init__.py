"""rlcourse's batched environments. Importing this package registers each one as ``rlcourse/<Name>-v<k>``."""

from rlcourse.envs.classic import CartPoleVecEnv
from rlcourse.registry import register_env

register_env("rlcourse/CartPole-v1", CartPoleVecEnv)

__all__ = ["CartPoleVecEnv"]
