"""Classic-control tasks as batched tensor envs."""

from rlcourse.envs.classic.cartpole import CartPoleVecEnv
from rlcourse.envs.classic.mountain_car import MountainCarVecEnv
from rlcourse.envs.classic.pendulum import PendulumVecEnv

__all__ = ["CartPoleVecEnv", "MountainCarVecEnv", "PendulumVecEnv"]
