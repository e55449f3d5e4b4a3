"""Batched CartPole-v1: the classic pole-balancing task as tensor code.

Same physics, constants, termination and 500-step truncation as Gymnasium's ``CartPole-v1``
(Barto, Sutton & Anderson 1983; Euler integration, tau = 0.02 s). The reward is +1 for every
step, the terminating one included. ``dtype=torch.float64`` reproduces Gymnasium's float64
state arithmetic exactly; the float32 default is what a GPU wants.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from gymnasium import spaces

from rlcourse.vec_env import TensorVecEnv

GRAVITY = 9.8
MASS_CART = 1.0
MASS_POLE = 0.1
TOTAL_MASS = MASS_CART + MASS_POLE
HALF_POLE_LENGTH = 0.5
POLE_MASS_LENGTH = MASS_POLE * HALF_POLE_LENGTH
FORCE = 10.0
TAU = 0.02
X_LIMIT = 2.4
THETA_LIMIT = 12 * 2 * math.pi / 360
MAX_EPISODE_STEPS = 500
INIT_BOUND = 0.05


class CartPoleVecEnv(TensorVecEnv):
    """``rlcourse/CartPole-v1``: observation (x, x_dot, theta, theta_dot), actions 0 = push left, 1 = push right."""

    state_names = ("physics", "elapsed")
    single_observation_space = spaces.Box(
        low=-np.array([2 * X_LIMIT, np.inf, 2 * THETA_LIMIT, np.inf], dtype=np.float32),
        high=np.array([2 * X_LIMIT, np.inf, 2 * THETA_LIMIT, np.inf], dtype=np.float32),
        dtype=np.float32,
    )
    single_action_space = spaces.Discrete(2)

    def __init__(self, num_envs: int, device="cpu", validate: bool = False, dtype: torch.dtype = torch.float32):
        super().__init__(num_envs, device, validate)
        self.physics = torch.zeros(self.num_envs, 4, dtype=dtype, device=self.device)
        self.elapsed = torch.zeros(self.num_envs, dtype=torch.int32, device=self.device)

    def _reset_where(self, mask: torch.Tensor) -> None:
        fresh = torch.rand(self.physics.shape, generator=self.generator, device=self.device, dtype=self.physics.dtype)
        fresh = fresh * (2 * INIT_BOUND) - INIT_BOUND
        self.physics.copy_(torch.where(mask[:, None], fresh, self.physics))
        self.elapsed.masked_fill_(mask, 0)

    def _transition(self, actions: torch.Tensor):
        x, x_dot, theta, theta_dot = self.physics.unbind(-1)
        force = torch.where(actions == 1, FORCE, -FORCE).to(self.physics.dtype)
        cos_theta, sin_theta = torch.cos(theta), torch.sin(theta)
        temp = (force + POLE_MASS_LENGTH * theta_dot.square() * sin_theta) / TOTAL_MASS
        theta_acc = (GRAVITY * sin_theta - cos_theta * temp) / (
            HALF_POLE_LENGTH * (4.0 / 3.0 - MASS_POLE * cos_theta.square() / TOTAL_MASS)
        )
        x_acc = temp - POLE_MASS_LENGTH * theta_acc * cos_theta / TOTAL_MASS
        self.physics.copy_(
            torch.stack(
                (x + TAU * x_dot, x_dot + TAU * x_acc, theta + TAU * theta_dot, theta_dot + TAU * theta_acc), -1
            )
        )
        self.elapsed += 1
        x, theta = self.physics[:, 0], self.physics[:, 2]
        terminated = (x.abs() > X_LIMIT) | (theta.abs() > THETA_LIMIT)
        truncated = self.elapsed >= MAX_EPISODE_STEPS
        reward = torch.ones(self.num_envs, dtype=torch.float32, device=self.device)
        return reward, terminated, truncated, {}

    def _observe(self) -> torch.Tensor:
        # A copy, never a view: the state moves on (and resets) after the observation is handed out.
        return self.physics.to(torch.float32, copy=True)
