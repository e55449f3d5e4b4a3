"""Batched Pendulum-v1: swing a frictionless pendulum up and hold it upright with a bounded torque.

Matches Gymnasium's ``Pendulum-v1``: the same constants, semi-implicit Euler step (dt = 0.05 s),
cost θ² + 0.1·θ̇² + 0.001·u² on the angle wrapped to [-π, π) (θ = 0 is upright), reward = −cost,
no termination and truncation after 200 steps. The torque is clipped to [-2, 2] before it acts,
as Gymnasium does, unless ``validate=True``, which rejects an out-of-range action like every other
rlcourse env. ``dtype=torch.float64`` reproduces Gymnasium's float64 state arithmetic; the float32
default is what a GPU wants.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from gymnasium import spaces

from rlcourse.vec_env import TensorVecEnv

MAX_SPEED = 8.0
MAX_TORQUE = 2.0
DT = 0.05
GRAVITY = 10.0
MASS = 1.0
LENGTH = 1.0
#: θ̈ = GRAVITY_GAIN · sin θ + TORQUE_GAIN · u for a uniform rod pivoting at one end.
GRAVITY_GAIN = 3 * GRAVITY / (2 * LENGTH)
TORQUE_GAIN = 3.0 / (MASS * LENGTH**2)
SPEED_COST = 0.1
TORQUE_COST = 0.001
MAX_EPISODE_STEPS = 200
#: Reset draws θ ~ U[-π, π] and θ̇ ~ U[-1, 1].
INIT_BOUNDS = (math.pi, 1.0)


def wrap_angle(theta: torch.Tensor) -> torch.Tensor:
    """``theta`` wrapped to [-π, π) the way Gymnasium's ``angle_normalize`` does (floored modulo)."""
    return torch.remainder(theta + math.pi, 2 * math.pi) - math.pi


class PendulumVecEnv(TensorVecEnv):
    """``rlcourse/Pendulum-v1``: observation (cos θ, sin θ, θ̇), action the torque u ∈ [-2, 2] (shape (1,))."""

    state_names = ("physics", "elapsed")
    single_observation_space = spaces.Box(
        low=-np.array([1.0, 1.0, MAX_SPEED], dtype=np.float32),
        high=np.array([1.0, 1.0, MAX_SPEED], dtype=np.float32),
        dtype=np.float32,
    )
    single_action_space = spaces.Box(low=-MAX_TORQUE, high=MAX_TORQUE, shape=(1,), dtype=np.float32)

    def __init__(self, num_envs: int, device="cpu", validate: bool = False, dtype: torch.dtype = torch.float32):
        super().__init__(num_envs, device, validate)
        #: Per sub-env (θ, θ̇); θ is not wrapped, as in Gymnasium, so it keeps counting full turns.
        self.physics = torch.zeros(self.num_envs, 2, dtype=dtype, device=self.device)
        self.elapsed = torch.zeros(self.num_envs, dtype=torch.int32, device=self.device)
        self._init_bounds = torch.tensor(INIT_BOUNDS, dtype=dtype, device=self.device)

    def _reset_where(self, mask: torch.Tensor) -> None:
        fresh = torch.rand(self.physics.shape, generator=self.generator, device=self.device, dtype=self.physics.dtype)
        fresh = (fresh * 2 - 1) * self._init_bounds
        self.physics.copy_(torch.where(mask[:, None], fresh, self.physics))
        self.elapsed.masked_fill_(mask, 0)

    def _transition(self, actions: torch.Tensor):
        theta, theta_dot = self.physics.unbind(-1)
        # The torque terms stay in the action space's float32 until they meet the state, as in
        # Gymnasium, where NumPy keeps float32 × Python-float products in float32.
        torque = actions[:, 0].to(torch.float32).clamp(-MAX_TORQUE, MAX_TORQUE)
        torque_cost = (TORQUE_COST * torque.square()).to(self.physics.dtype)
        torque_acc = (TORQUE_GAIN * torque).to(self.physics.dtype)
        # The cost is of the state before the step, with the torque that is applied in it.
        cost = wrap_angle(theta).square() + SPEED_COST * theta_dot.square() + torque_cost
        new_theta_dot = (theta_dot + (GRAVITY_GAIN * torch.sin(theta) + torque_acc) * DT).clamp(-MAX_SPEED, MAX_SPEED)
        # Semi-implicit Euler: the angle moves with the new, clipped speed.
        self.physics.copy_(torch.stack((theta + new_theta_dot * DT, new_theta_dot), -1))
        self.elapsed += 1
        truncated = self.elapsed >= MAX_EPISODE_STEPS
        reward = (-cost).to(torch.float32)
        return reward, torch.zeros_like(truncated), truncated, {}

    def _observe(self) -> torch.Tensor:
        theta, theta_dot = self.physics.unbind(-1)
        return torch.stack((torch.cos(theta), torch.sin(theta), theta_dot), -1).to(torch.float32)
