"""Batched MountainCar-v0: the under-powered car in a valley, the course's sparse-reward example as tensor code.

Same physics, constants, start states, termination and 200-step truncation as Gymnasium's
``MountainCar-v0`` (Moore 1990): the engine is too weak to climb the right hill directly, so the car
must rock back and forth. The reward is −1 for every step until the car reaches the flag, so no
step says anything about progress: the sparse-reward setting where curiosity helps
(notes:13862-13950 [Sparse Reward]). ``dtype=torch.float64`` reproduces Gymnasium's float64 state
arithmetic exactly; the float32 default is what a GPU wants.
"""

from __future__ import annotations

import functools
from types import SimpleNamespace

import numpy as np
import torch
from gymnasium import spaces

from rlcourse.envs.classic.physics import PhysicsVecEnv
from rlcourse.vec_env import fill_where

MIN_POSITION, MAX_POSITION = -1.2, 0.6
MAX_SPEED = 0.07
GOAL_POSITION, GOAL_VELOCITY = 0.5, 0.0
FORCE = 0.001
GRAVITY = 0.0025
START_LOW, START_HIGH = -0.6, -0.4
MAX_EPISODE_STEPS = 200


class MountainCarVecEnv(PhysicsVecEnv):
    """``rlcourse/MountainCar-v0``: observation (position, velocity); actions 0 = push left, 1 = coast, 2 = push right.

    ``success`` (an outcome) is reaching the flag before the time limit.
    """

    env_id = "rlcourse/MountainCar-v0"
    outcome_keys = ("success",)
    single_observation_space = spaces.Box(
        low=np.array([MIN_POSITION, -MAX_SPEED], dtype=np.float32),
        high=np.array([MAX_POSITION, MAX_SPEED], dtype=np.float32),
        dtype=np.float32,
    )
    single_action_space = spaces.Discrete(3)
    state_width = 2

    @functools.cached_property
    def _constants(self) -> SimpleNamespace:
        """The physics constants as 0-d tensors in the state's dtype and device (see ``_constant``)."""
        constant = self._constant
        return SimpleNamespace(
            coast=constant(1, torch.int64),
            force=constant(FORCE),
            gravity=constant(GRAVITY),
            three=constant(3.0),
            max_speed=constant(MAX_SPEED),
            min_position=constant(MIN_POSITION),
            max_position=constant(MAX_POSITION),
            goal_position=constant(GOAL_POSITION),
            goal_velocity=constant(GOAL_VELOCITY),
            zero=constant(0.0),
            start_width=constant(START_HIGH - START_LOW),
            start_low=constant(START_LOW),
            one_step=constant(1, torch.int32),
            max_steps=constant(MAX_EPISODE_STEPS, torch.int32),
            zero_steps=constant(0, torch.int32),
        )

    def _reset_where(self, mask: torch.Tensor) -> None:
        c = self._constants
        fresh = torch.rand(self.num_envs, generator=self.generator, device=self.device, dtype=self.physics.dtype)
        if self._selects_none(mask):
            return
        start = torch.stack((fresh * c.start_width + c.start_low, torch.zeros_like(fresh)), -1)
        self.physics.copy_(torch.where(mask[:, None], start, self.physics))
        fill_where(self.elapsed, mask, c.zero_steps)

    def _transition(self, actions: torch.Tensor):
        c = self._constants
        position, velocity = self._columns
        # Gymnasium's order: velocity += (action - 1) * force - cos(3 position) * gravity, clipped; then position.
        push = (actions - c.coast).to(self.physics.dtype).mul_(c.force)
        new_velocity = (torch.cos(position * c.three) * -c.gravity).add_(push).add_(velocity)
        new_velocity = new_velocity.clamp_(-c.max_speed, c.max_speed)
        new_position = (position + new_velocity).clamp_(c.min_position, c.max_position)
        # The left wall is inelastic: a car that hits it stops.
        at_wall = (new_position == c.min_position) & (new_velocity < c.zero)
        new_velocity = torch.where(at_wall, c.zero, new_velocity)
        self.physics.copy_(torch.stack((new_position, new_velocity), -1))
        self.elapsed.add_(c.one_step)
        terminated = (new_position >= c.goal_position) & (new_velocity >= c.goal_velocity)
        truncated = self.elapsed >= c.max_steps
        reward = torch.full((self.num_envs,), -1.0, dtype=torch.float32, device=self.device)
        return reward, terminated, truncated, {"success": terminated}

    def _observe(self) -> torch.Tensor:
        return self.physics.to(torch.float32, copy=True)
