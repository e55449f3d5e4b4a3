"""``render_mode="rgb_array"``: the numpy rasteriser, the batched classic envs' frames and the single-env adapter's.

Frames are checked for their shape and dtype, for following the state (and only sub-env 0's in a batch),
for where the drawing puts the cart and the rod, and for showing an episode's last state at its end.
"""

from __future__ import annotations

import math
import warnings

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env

import rlcourse
from rlcourse.envs.classic import CartPoleVecEnv, PendulumVecEnv, cartpole, pendulum
from rlcourse.envs.classic.canvas import Canvas

CLASSIC = [
    ("rlcourse/CartPole-v1", CartPoleVecEnv, (400, 600, 3), 50),
    ("rlcourse/Pendulum-v1", PendulumVecEnv, (500, 500, 3), 20),
]
WHITE = (255, 255, 255)


# ----------------------------------------------------------------------------- the rasteriser
def test_canvas_fills_exactly_the_pixels_inside_a_box():
    canvas = Canvas(10, 8, scale=1.0, origin=(0, 0), background=(0, 0, 0))
    canvas.box((3.0, 2.0), 4.0, 2.0, (255, 0, 0))  # x in [1, 5], y in [1, 3]: 4 x 2 pixel centres
    frame = canvas.frame()
    assert frame.shape == (8, 10, 3) and frame.dtype == np.uint8
    painted = frame[..., 0] == 255
    assert painted.sum() == 8
    rows, columns = np.nonzero(painted)
    # y points up in world units, so world rows 1..2 are image rows 8-1-2 .. 8-1-1 (top row first)
    assert set(rows) == {5, 6} and set(columns) == {1, 2, 3, 4}


def test_canvas_disc_area_and_clipping_at_the_frame_edge():
    canvas = Canvas(200, 200, scale=10.0, origin=(100, 100), background=(0, 0, 0))
    canvas.disc((0.0, 0.0), 5.0, (0, 255, 0))
    assert (canvas.frame()[..., 1] == 255).sum() == pytest.approx(math.pi * 50**2, rel=0.01)
    canvas.disc((10.0, 0.0), 5.0, (0, 0, 255))  # centred on the right edge: half of it lies beyond
    assert (canvas.frame()[..., 2] == 255).sum() == pytest.approx(math.pi * 50**2 / 2, rel=0.02)
    before = canvas.frame()
    canvas.bar((50.0, 50.0), (60.0, 60.0), 1.0, (9, 9, 9))  # wholly outside: nothing changes, nothing fails
    assert np.array_equal(canvas.frame(), before)


def test_canvas_bar_is_a_rotated_rectangle():
    canvas = Canvas(100, 100, scale=1.0, origin=(50, 50), background=(0, 0, 0))
    # At a slope whose lines of pixel centres do not line up with the bar's edges (which would alias the count)
    canvas.bar((-30.0, -12.0), (30.0, 18.7), 6.0, (255, 255, 255))
    painted = canvas.frame()[..., 0] == 255
    assert painted.sum() == pytest.approx(math.hypot(60, 30.7) * 6, rel=0.03)
    # its middle (world (0, 3.35): image row 100 - 1 - 53) is painted; a point well off the bar is not
    assert painted[46, 50] and not painted[79, 80]


# ----------------------------------------------------------------------------- batched envs
@pytest.mark.parametrize(("env_id", "env_class", "shape", "fps"), CLASSIC)
def test_batched_env_declares_rgb_array_and_renders_sub_env_zero(env_id, env_class, shape, fps):
    assert env_class.metadata["render_modes"] == ["rgb_array"] and env_class.metadata["render_fps"] == fps
    env = env_class(3, render_mode="rgb_array")
    env.reset(seed=0)
    first = env.render()
    assert isinstance(first, np.ndarray) and first.shape == shape and first.dtype == np.uint8
    assert (first != 255).any() and (first == 255).any(), "something is drawn on a white background"
    env.physics[1:] += 0.3  # the other sub-envs move: sub-env 0's picture stays
    assert np.array_equal(env.render(), first)
    env.physics[0] += 0.3
    assert not np.array_equal(env.render(), first)


@pytest.mark.parametrize(("env_id", "env_class", "shape", "fps"), CLASSIC)
def test_frames_follow_the_steps(env_id, env_class, shape, fps):
    env = rlcourse.make_vec(env_id, 1, "cpu", render_mode="rgb_array")
    env.reset(seed=1)
    frames = [env.render()]
    action = torch.ones(
        (1, *env.single_action_space.shape), dtype=torch.int64 if env_class is CartPoleVecEnv else torch.float32
    )
    for _ in range(5):
        env.step(action)
        frames.append(env.render())
    # One CartPole step may move the cart by less than a pixel; five always show.
    assert not np.array_equal(frames[0], frames[-1])


@pytest.mark.parametrize(("env_id", "env_class", "shape", "fps"), CLASSIC)
def test_no_render_mode_renders_nothing_and_an_unknown_one_is_refused(env_id, env_class, shape, fps):
    assert env_class(2).render() is None
    with pytest.raises(ValueError, match=r"supports render modes \['rgb_array'\], not 'human'"):
        env_class(2, render_mode="human")
    with pytest.raises(ValueError, match=r"\['rgb_array'\], not 'ansi'"):
        gym.make(env_id, render_mode="ansi")


def test_cartpole_picture_puts_the_cart_at_x_and_the_pole_at_theta():
    def dark_columns(frame: np.ndarray, row: int) -> np.ndarray:
        return np.nonzero((frame[row] < 100).all(axis=-1))[0]

    cart_row = cartpole.FRAME_HEIGHT - round(
        (cartpole.TRACK_HEIGHT + cartpole.CART_HEIGHT / 2) * cartpole.PIXELS_PER_METRE
    )
    for x in (-1.5, 0.0, 2.0):
        columns = dark_columns(cartpole.draw_cartpole(x, 0.0), cart_row)
        centre = cartpole.FRAME_WIDTH / 2 + x * cartpole.PIXELS_PER_METRE
        assert columns.mean() == pytest.approx(centre, abs=1.0)
        assert len(columns) == pytest.approx(cartpole.CART_WIDTH * cartpole.PIXELS_PER_METRE, abs=1)

    def pole_tip_side(theta: float) -> float:
        frame = cartpole.draw_cartpole(0.0, theta)
        pole = np.nonzero((frame == cartpole.POLE_COLOUR).all(axis=-1))
        return pole[1][pole[0].argmin()] - cartpole.FRAME_WIDTH / 2  # the topmost pole pixel's column

    assert pole_tip_side(0.2) > 10 and pole_tip_side(-0.2) < -10 and abs(pole_tip_side(0.0)) <= 5


def test_pendulum_picture_points_the_rod_counter_clockwise_from_upright():
    def rod_mean(theta: float) -> np.ndarray:
        rows, columns = np.nonzero((pendulum.draw_pendulum(theta) == pendulum.ROD_COLOUR).all(axis=-1))
        return np.array([columns.mean(), rows.mean()]) - pendulum.FRAME_SIZE / 2  # (right, down) from the pivot

    up, left, down = rod_mean(0.0), rod_mean(math.pi / 2), rod_mean(math.pi)
    assert up[1] < -20 and abs(up[0]) < 2
    assert left[0] < -20 and abs(left[1]) < 2
    assert down[1] > 20 and abs(down[0]) < 2


# ----------------------------------------------------------------------------- the single-env adapter
@pytest.mark.parametrize(("env_id", "env_class", "shape", "fps"), CLASSIC)
def test_gym_make_rgb_array_renders_a_frame(env_id, env_class, shape, fps):
    env = gym.make(env_id, render_mode="rgb_array")
    assert env.metadata["render_modes"] == ["rgb_array"] and env.metadata["render_fps"] == fps
    obs, _ = env.reset(seed=0)
    frame = env.render()
    assert isinstance(frame, np.ndarray) and frame.shape == shape and frame.dtype == np.uint8
    assert np.array_equal(frame, env.unwrapped.vec.render_frame(obs))
    env.step(env.action_space.sample())
    assert not np.array_equal(env.render(), frame)


@pytest.mark.parametrize(("env_id", "env_class", "shape", "fps"), CLASSIC)
def test_gymnasium_checker_passes_in_rgb_array(env_id, env_class, shape, fps):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(gym.make(env_id, render_mode="rgb_array").unwrapped)
    render_warnings = [str(w.message) for w in caught if "render" in str(w.message).lower()]
    assert render_warnings == []


def test_the_last_frame_of_an_episode_shows_its_final_state():
    """SAME_STEP autoreset has put the next episode in the batched state; the adapter draws the final obs."""
    env = gym.make("rlcourse/CartPole-v1", render_mode="rgb_array")
    env.reset(seed=0)
    vec = env.unwrapped.vec
    terminated = truncated = False
    while not (terminated or truncated):
        obs, _, terminated, truncated, _ = env.step(1)  # always push right: the pole falls within ~10 steps
    assert terminated
    frame = env.render()
    assert np.array_equal(frame, vec.render_frame(obs))
    assert not np.array_equal(frame, vec.render_frame(vec._observe()[0])), "that is the next episode's start"
    next_obs, _ = env.reset()
    assert np.array_equal(env.render(), vec.render_frame(next_obs))


def test_the_text_env_keeps_ansi_and_refuses_rgb_array():
    with pytest.raises(ValueError, match=r"rlcourse/SlotFilling-v0 supports render modes \['ansi'\], not 'rgb_array'"):
        gym.make("rlcourse/SlotFilling-v0", render_mode="rgb_array")
    env = gym.make("rlcourse/SlotFilling-v0", render_mode="ansi")
    env.reset(seed=0)
    assert env.render().startswith("[goal: ")


def test_a_wrapped_env_draws_the_world_not_the_normalised_observation():
    from rlcourse.wrappers import NormalizeObservation

    inner = CartPoleVecEnv(2, render_mode="rgb_array")
    wrapped = NormalizeObservation(inner)
    wrapped.reset(seed=0)
    assert wrapped.render_mode == "rgb_array"
    assert np.array_equal(wrapped.render(), inner.render_frame(inner._observe()[0]))
