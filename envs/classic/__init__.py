"""Classic-control tasks as batched tensor envs."""

from rlcourse.envs.classic.cartpole import CartPoleVecEnv

__all__ = ["CartPoleVecEnv"]
