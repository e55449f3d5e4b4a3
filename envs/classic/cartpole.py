"""Batched CartPole-v1: the classic pole-balancing task as tensor code.

Same physics, constants, termination and 500-step truncation as Gymnasium's ``CartPole-v1``
(Barto, Sutton & Anderson 1983; Euler integration, tau = 0.02 s). The reward is +1 for every
step, the terminating one included. ``dtype=torch.float64`` reproduces Gymnasium's float64
state arithmetic exactly; the float32 default is what a GPU wants.
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

# The picture (render_mode="rgb_array"): Gymnasium's classic-control frame size, track limits and a margin in view.
FRAME_WIDTH, FRAME_HEIGHT = 600, 400
VIEW_HALF_WIDTH = X_LIMIT + 0.6
PIXELS_PER_METRE = FRAME_WIDTH / (2 * VIEW_HALF_WIDTH)
TRACK_HEIGHT = 1.0
CART_WIDTH, CART_HEIGHT = 0.5, 0.3
POLE_THICKNESS = 0.1
TRACK_COLOUR, LIMIT_COLOUR, CART_COLOUR = (30, 30, 30), (170, 170, 170), (60, 60, 70)
POLE_COLOUR, AXLE_COLOUR = (205, 135, 70), (110, 110, 190)


def draw_cartpole(x: float, theta: float) -> np.ndarray:
    """The cart at ``x`` on its track with the pole at angle ``theta`` (clockwise from upright), as uint8 (H, W, 3)."""
    canvas = Canvas(FRAME_WIDTH, FRAME_HEIGHT, PIXELS_PER_METRE, (FRAME_WIDTH / 2, TRACK_HEIGHT * PIXELS_PER_METRE))
    canvas.bar((-VIEW_HALF_WIDTH, 0.0), (VIEW_HALF_WIDTH, 0.0), 0.02, TRACK_COLOUR)
    for limit in (-X_LIMIT, X_LIMIT):
        canvas.bar((limit, -0.1), (limit, 0.1), 0.02, LIMIT_COLOUR)
    canvas.box((x, CART_HEIGHT / 2), CART_WIDTH, CART_HEIGHT, CART_COLOUR)
    axle = (x, CART_HEIGHT)
    tip = (x + 2 * HALF_POLE_LENGTH * math.sin(theta), CART_HEIGHT + 2 * HALF_POLE_LENGTH * math.cos(theta))
    canvas.bar(axle, tip, POLE_THICKNESS, POLE_COLOUR)
    canvas.disc(axle, POLE_THICKNESS / 2, AXLE_COLOUR)
    return canvas.frame()


def _euler_views(env: CartPoleVecEnv) -> SimpleNamespace:
    """The rates buffer, views of its columns, and the state's velocities (x_dot, theta_dot)."""
    rates = env._rate_buffer
    _, x_acc, _, theta_acc = rates.unbind(-1)
    return SimpleNamespace(
        all=rates, x_acc=x_acc, theta_acc=theta_acc, velocities=rates[:, 0::2], state_velocities=env.physics[:, 1::2]
    )


class CartPoleVecEnv(PhysicsVecEnv):
    """``rlcourse/CartPole-v1``: observation (x, x_dot, theta, theta_dot), actions 0 = push left, 1 = push right."""

    # Frames play in real time: one step is TAU seconds.
    metadata = {**TensorVecEnv.metadata, "render_modes": ["rgb_array"], "render_fps": round(1 / TAU)}
    env_id = "rlcourse/CartPole-v1"  # also set by registration; declared so that the class knows its id when imported directly
    single_observation_space = spaces.Box(
        low=-np.array([2 * X_LIMIT, np.inf, 2 * THETA_LIMIT, np.inf], dtype=np.float32),
        high=np.array([2 * X_LIMIT, np.inf, 2 * THETA_LIMIT, np.inf], dtype=np.float32),
        dtype=np.float32,
    )
    single_action_space = spaces.Discrete(2)
    state_width = 4
    groupable = True  # its one draw, the reset state, goes through _draw_uniform

    def __init__(
        self,
        num_envs: int,
        device="cpu",
        validate: bool = False,
        dtype: torch.dtype = torch.float32,
        render_mode: str | None = None,
    ):
        super().__init__(num_envs, device, validate, dtype, render_mode)
        # The Euler step's rates (x_dot, x_acc, theta_dot, theta_acc) per sub-env: one buffer the step writes in
        # place (scratch, not state), so the state moves by tau times all four in one op. Made here, not on first
        # use, so that it is a plain tensor whatever grad or inference mode the first step runs in.
        self._rate_buffer = torch.zeros_like(self.physics)

    @functools.cached_property
    def _constants(self) -> SimpleNamespace:
        """The physics constants as 0-d tensors in the state's dtype and device (see ``_constant``)."""
        constant = self._constant
        return SimpleNamespace(
            forces=constant([-FORCE, FORCE]),  # by action: 0 pushes left, 1 pushes right
            gravity=constant(GRAVITY),
            total_mass=constant(TOTAL_MASS),
            half_pole_length=constant(HALF_POLE_LENGTH),
            pole_mass=constant(MASS_POLE),
            pole_mass_length=constant(POLE_MASS_LENGTH),
            four_thirds=constant(4.0 / 3.0),
            tau=constant(TAU),
            limits=constant([X_LIMIT, math.inf, THETA_LIMIT, math.inf]),  # |x| and |theta| end an episode
            init_width=constant(2 * INIT_BOUND),
            init_bound=constant(INIT_BOUND),
            one_step=constant(1, torch.int32),
            max_steps=constant(MAX_EPISODE_STEPS, torch.int32),
            zero_steps=constant(0, torch.int32),
        )

    def _reset_where(self, mask: torch.Tensor) -> None:
        c = self._constants
        fresh = self._draw_uniform(self.physics.shape, self.physics.dtype)
        if self._selects_none(mask):
            return
        fresh = fresh * c.init_width - c.init_bound
        self.physics.copy_(torch.where(mask[:, None], fresh, self.physics))
        fill_where(self.elapsed, mask, c.zero_steps)

    def _transition(self, actions: torch.Tensor):
        c, rates = self._constants, self._views("euler", _euler_views)
        _, _, theta, theta_dot = self._columns
        force = c.forces.index_select(0, actions.long())
        cos_theta, sin_theta = torch.cos(theta), torch.sin(theta)
        # Gymnasium's expressions, one rounding for one rounding (so float64 matches it bit for bit):
        #   temp = (force + pml * theta_dot² * sin) / M
        #   theta_acc = (g * sin - cos * temp) / (l * (4/3 - m_pole * cos² / M))
        #   x_acc = temp - pml * theta_acc * cos / M
        # written as in-place steps on fresh temporaries, which spares an allocation per operation; the
        # accelerations go straight into their columns of the rates.
        temp = (theta_dot * theta_dot).mul_(c.pole_mass_length).mul_(sin_theta).add_(force).div_(c.total_mass)
        denominator = (c.four_thirds - (cos_theta * cos_theta).mul_(c.pole_mass).div_(c.total_mass)).mul_(
            c.half_pole_length
        )
        torch.div((sin_theta * c.gravity).sub_(cos_theta * temp), denominator, out=rates.theta_acc)
        torch.sub(temp, (rates.theta_acc * c.pole_mass_length).mul_(cos_theta).div_(c.total_mass), out=rates.x_acc)
        # Euler: every coordinate moves by tau times its rate, (x_dot, x_acc, theta_dot, theta_acc), in place.
        rates.velocities.copy_(rates.state_velocities)
        self.physics.add_(rates.all.mul_(c.tau))
        self.elapsed.add_(c.one_step)
        terminated = (self.physics.abs() > c.limits).any(1)
        truncated = self.elapsed >= c.max_steps
        reward = torch.ones_like(self.episode_return)  # +1 for every step (float32, one per sub-env)
        return reward, terminated, truncated, {}

    def _observe(self) -> torch.Tensor:
        # A copy, never a view: the state moves on (and resets) after the observation is handed out.
        return self.physics.clone() if self.physics.dtype == torch.float32 else self.physics.float()

    def render_frame(self, observation: torch.Tensor | np.ndarray) -> np.ndarray:
        """The cart and pole an observation (x, x_dot, theta, theta_dot) shows, as uint8 (400, 600, 3)."""
        x, _, theta, _ = torch.as_tensor(observation, dtype=torch.float64).cpu().tolist()
        return draw_cartpole(x, theta)
