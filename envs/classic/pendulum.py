"""Batched Pendulum-v1: swing a frictionless pendulum up and hold it upright with a bounded torque.

Matches Gymnasium's ``Pendulum-v1``: the same constants, semi-implicit Euler step (dt = 0.05 s),
cost θ² + 0.1·θ̇² + 0.001·u² on the angle wrapped to [-π, π) (θ = 0 is upright), reward = −cost,
no termination and truncation after 200 steps. The torque is clipped to [-2, 2] before it acts,
as Gymnasium does, unless ``validate=True``, which rejects an out-of-range action like every other
rlcourse env. ``dtype=torch.float64`` reproduces Gymnasium's float64 state arithmetic; the float32
default is what a GPU wants.
"""

from __future__ import annotations

import functools
import math
from types import SimpleNamespace

import numpy as np
import torch
from gymnasium import spaces

from rlcourse.envs.classic.canvas import Canvas
from rlcourse.envs.classic.physics import PhysicsVecEnv
from rlcourse.vec_env import TensorVecEnv, fill_where

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

# The picture (render_mode="rgb_array"): Gymnasium's classic-control frame size, the swept circle in view.
FRAME_SIZE = 500
VIEW_HALF_WIDTH = 2.2 * LENGTH
ROD_THICKNESS = 0.2 * LENGTH
PIVOT_RADIUS = 0.05 * LENGTH
ROD_COLOUR, PIVOT_COLOUR = (200, 70, 70), (20, 20, 20)


def draw_pendulum(theta: float) -> np.ndarray:
    """The rod at angle ``theta`` (counter-clockwise from upright) about its pivot, as uint8 (H, W, 3)."""
    scale = FRAME_SIZE / (2 * VIEW_HALF_WIDTH)
    canvas = Canvas(FRAME_SIZE, FRAME_SIZE, scale, (FRAME_SIZE / 2, FRAME_SIZE / 2))
    tip = (-LENGTH * math.sin(theta), LENGTH * math.cos(theta))
    canvas.bar((0.0, 0.0), tip, ROD_THICKNESS, ROD_COLOUR)
    for end in ((0.0, 0.0), tip):  # rounded ends
        canvas.disc(end, ROD_THICKNESS / 2, ROD_COLOUR)
    canvas.disc((0.0, 0.0), PIVOT_RADIUS, PIVOT_COLOUR)
    return canvas.frame()


def wrap_angle(
    theta: torch.Tensor, half_turn: float | torch.Tensor = math.pi, full_turn: float | torch.Tensor = 2 * math.pi
) -> torch.Tensor:
    """``theta`` wrapped to [-π, π) the way Gymnasium's ``angle_normalize`` does (floored modulo).

    The env passes π and 2π as tensors of the state's dtype, which is the same arithmetic, only cheaper.
    """
    return torch.remainder(theta + half_turn, full_turn).sub_(half_turn)


class PendulumVecEnv(PhysicsVecEnv):
    """``rlcourse/Pendulum-v1``: observation (cos θ, sin θ, θ̇), action the torque u ∈ [-2, 2] (shape (1,))."""

    # Frames play in real time: one step is DT seconds.
    metadata = {**TensorVecEnv.metadata, "render_modes": ["rgb_array"], "render_fps": round(1 / DT)}
    env_id = "rlcourse/Pendulum-v1"  # also set by registration; declared so that the class knows its id when imported directly
    single_observation_space = spaces.Box(
        low=-np.array([1.0, 1.0, MAX_SPEED], dtype=np.float32),
        high=np.array([1.0, 1.0, MAX_SPEED], dtype=np.float32),
        dtype=np.float32,
    )
    single_action_space = spaces.Box(low=-MAX_TORQUE, high=MAX_TORQUE, shape=(1,), dtype=np.float32)

    #: Per sub-env (θ, θ̇); θ is not wrapped, as in Gymnasium, so it keeps counting full turns.
    state_width = 2

    def __init__(
        self,
        num_envs: int,
        device="cpu",
        validate: bool = False,
        dtype: torch.dtype = torch.float32,
        render_mode: str | None = None,
    ):
        super().__init__(num_envs, device, validate, dtype, render_mode)
        self._init_bounds = torch.tensor(INIT_BOUNDS, dtype=dtype, device=self.device)

    @functools.cached_property
    def _constants(self) -> SimpleNamespace:
        """The constants as 0-d tensors (torque terms in float32, the rest in the state's dtype): an op with a
        Python number operand pays for wrapping it into a tensor every time, which dominates a small batch's step."""
        constant = self._constant

        return SimpleNamespace(
            min_torque=constant(-MAX_TORQUE, torch.float32),
            max_torque=constant(MAX_TORQUE, torch.float32),
            torque_cost=constant(TORQUE_COST, torch.float32),
            torque_gain=constant(TORQUE_GAIN, torch.float32),
            half_turn=constant(math.pi),
            full_turn=constant(2 * math.pi),
            speed_cost=constant(SPEED_COST),
            gravity_gain=constant(GRAVITY_GAIN),
            dt=constant(DT),
            min_speed=constant(-MAX_SPEED),
            max_speed=constant(MAX_SPEED),
            two=constant(2),
            one=constant(1),
            one_step=constant(1, torch.int32),
            max_steps=constant(MAX_EPISODE_STEPS, torch.int32),
            zero_steps=constant(0, torch.int32),
        )

    def _reset_where(self, mask: torch.Tensor) -> None:
        c = self._constants
        fresh = torch.rand(self.physics.shape, generator=self.generator, device=self.device, dtype=self.physics.dtype)
        if self._selects_none(mask):
            return
        fresh = (fresh * c.two - c.one) * self._init_bounds
        self.physics.copy_(torch.where(mask[:, None], fresh, self.physics))
        fill_where(self.elapsed, mask, c.zero_steps)

    def _transition(self, actions: torch.Tensor):
        c = self._constants
        theta, theta_dot = self._columns
        # The torque terms stay in the action space's float32 until they meet the state, as in
        # Gymnasium, where NumPy keeps float32 × Python-float products in float32.
        torque = actions.select(1, 0)
        torque = (torque if torque.dtype == torch.float32 else torque.float()).clamp(c.min_torque, c.max_torque)
        torque_cost = (torque * torque).mul_(c.torque_cost)
        torque_acc = torque * c.torque_gain
        if self.physics.dtype != torch.float32:  # a float64 state: they meet it as float64 values
            torque_cost, torque_acc = torque_cost.to(self.physics.dtype), torque_acc.to(self.physics.dtype)
        # The cost is of the state before the step, with the torque that is applied in it (in place on fresh
        # temporaries, in Gymnasium's order of operations).
        wrapped = wrap_angle(theta, c.half_turn, c.full_turn)
        cost = (wrapped * wrapped).add_((theta_dot * theta_dot).mul_(c.speed_cost)).add_(torque_cost)
        speed_change = (torch.sin(theta) * c.gravity_gain).add_(torque_acc).mul_(c.dt)
        # Semi-implicit Euler, in place through the views: the speed moves and is clipped, then the angle moves with it.
        theta_dot.add_(speed_change).clamp_(c.min_speed, c.max_speed)
        theta.add_(theta_dot * c.dt)
        self.elapsed.add_(c.one_step)
        truncated = self.elapsed >= c.max_steps
        reward = cost.neg_() if cost.dtype == torch.float32 else cost.neg_().float()
        return reward, torch.zeros_like(truncated), truncated, {}

    def _observe(self) -> torch.Tensor:
        theta, theta_dot = self._columns
        obs = torch.stack((torch.cos(theta), torch.sin(theta), theta_dot), -1)
        return obs if obs.dtype == torch.float32 else obs.float()

    def render_frame(self, observation: torch.Tensor | np.ndarray) -> np.ndarray:
        """The pendulum an observation (cos θ, sin θ, θ̇) shows, as uint8 (500, 500, 3)."""
        cos_theta, sin_theta, _ = torch.as_tensor(observation, dtype=torch.float64).cpu().tolist()
        return draw_pendulum(math.atan2(sin_theta, cos_theta))
