"""Hand-computed tests of the rollout maths: reward-to-go, GAE(λ), explained variance, storage.

Tensors are ``[T, B]`` (time first, one column per env); ``dones[t]`` marks that an episode ended at step t.
"""

from __future__ import annotations

import pytest
import torch

from rlcourse.agents.rollout import (
    RolloutBuffer,
    explained_variance,
    generalized_advantages,
    rewards_to_go,
)


def col(*values: float) -> torch.Tensor:
    """One env's time series as a ``[T, 1]`` float tensor."""
    return torch.tensor(values, dtype=torch.float32)[:, None]


def flags(*values: bool) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.bool)[:, None]


def close(actual: torch.Tensor, expected, atol: float = 1e-5) -> None:
    torch.testing.assert_close(
        actual, torch.as_tensor(expected, dtype=actual.dtype).reshape(actual.shape), atol=atol, rtol=0
    )


# ----------------------------------------------------------------------------- reward-to-go (notes:12751-12779)
def test_rewards_to_go_course_example_gamma_1():
    # notes:12759-12769: (s_a,a1)=+5, (s_b,a2)=0, (s_c,a3)=-2; total 3, and (s_b,a2) is credited -2, not +3.
    returns = rewards_to_go(col(5, 0, -2), flags(False, False, True), 1.0)
    close(returns, [3.0, -2.0, -2.0])


def test_rewards_to_go_gamma_0_9_by_hand():
    # G2 = -2; G1 = 0 + 0.9 * (-2) = -1.8; G0 = 5 + 0.9 * (-1.8) = 3.38
    returns = rewards_to_go(col(5, 0, -2), flags(False, False, True), 0.9)
    close(returns, [3.38, -1.8, -2.0])


def test_rewards_to_go_without_a_done_still_stops_at_the_window_end():
    # rewards_to_go bootstraps from 0 after the last step, so an open episode sums what was seen.
    close(rewards_to_go(col(5, 0, -2), flags(False, False, False), 1.0), [3.0, -2.0, -2.0])


def test_episode_boundary_inside_the_window_resets_the_sum():
    # Episode A = [1, 2] ends at t=1, episode B = [3, 4] starts at t=2: A's credit never includes B's rewards.
    returns = rewards_to_go(col(1, 2, 3, 4), flags(False, True, False, False), 1.0)
    close(returns, [3.0, 2.0, 7.0, 4.0])
    # Same with gamma = 0.5: [1 + 0.5*2, 2, 3 + 0.5*4, 4]
    close(rewards_to_go(col(1, 2, 3, 4), flags(False, True, False, False), 0.5), [2.0, 2.0, 5.0, 4.0])


def test_batch_of_two_envs_with_different_done_positions():
    # env 0: the course example, done at t=2; env 1: rewards [1, 1, 1], done at t=0 (a new episode starts at t=1).
    rewards = torch.tensor([[5.0, 1.0], [0.0, 1.0], [-2.0, 1.0]])
    dones = torch.tensor([[False, True], [False, False], [True, False]])
    returns = rewards_to_go(rewards, dones, 0.5)
    # env 0: G2 = -2, G1 = 0 + 0.5*(-2) = -1, G0 = 5 + 0.5*(-1) = 4.5
    # env 1: G2 = 1, G1 = 1 + 0.5*1 = 1.5, G0 = 1 (its episode ended at t=0)
    close(returns, [[4.5, 1.0], [-1.0, 1.5], [-2.0, 1.0]])
    # Each column is computed independently: the batch equals the envs done one at a time.
    for env in range(2):
        close(returns[:, env : env + 1], rewards_to_go(rewards[:, env : env + 1], dones[:, env : env + 1], 0.5))


# ----------------------------------------------------------------------------- GAE(λ)
# A hand example shared by the GAE tests: gamma = 0.9, two envs, bootstrap value 2.0 after the window.
# env 0 never ends; env 1 ends at t=1.
REWARDS = torch.tensor([[1.0, 1.0], [2.0, 2.0], [3.0, 3.0]])
VALUES = torch.tensor([[0.5, 0.5], [1.0, 1.0], [1.5, 1.5]])
DONES = torch.tensor([[False, False], [False, True], [False, False]])
LAST_VALUE = torch.tensor([2.0, 2.0])
GAMMA = 0.9


def test_gae_lambda_0_is_the_one_step_td_error():
    advantages = generalized_advantages(REWARDS, VALUES, DONES, LAST_VALUE, GAMMA, 0.0)
    # delta_t = r_t + gamma * V_{t+1} * (1 - done_t) - V_t, with V_3 = last_value
    # env 0: 1 + 0.9*1.0 - 0.5 = 1.4;  2 + 0.9*1.5 - 1.0 = 2.35;  3 + 0.9*2.0 - 1.5 = 3.3
    # env 1: 1.4;  2 + 0 - 1.0 = 1.0 (episode ended, no bootstrap);  3.3
    close(advantages, [[1.4, 1.4], [2.35, 1.0], [3.3, 3.3]])
    # ...and the same formula written as one vectorised expression
    next_values = torch.cat((VALUES[1:], LAST_VALUE[None]))
    close(advantages, REWARDS + GAMMA * next_values * (~DONES).float() - VALUES)


def test_gae_lambda_1_is_the_discounted_return_minus_the_baseline():
    advantages = generalized_advantages(REWARDS, VALUES, DONES, LAST_VALUE, GAMMA, 1.0)
    # env 0 bootstraps from last_value: G2 = 3 + 0.9*2 = 4.8, G1 = 2 + 0.9*4.8 = 6.32, G0 = 1 + 0.9*6.32 = 6.688
    # env 1 ends at t=1:              G2 = 4.8,             G1 = 2,                  G0 = 1 + 0.9*2 = 2.8
    returns = torch.tensor([[6.688, 2.8], [6.32, 2.0], [4.8, 4.8]])
    close(advantages, returns - VALUES)


def test_gae_intermediate_lambda_follows_the_recursion():
    # A_t = delta_t + gamma * lambda * (1 - done_t) * A_{t+1}; lambda = 0.5 so gamma*lambda = 0.45
    # env 0: A2 = 3.3, A1 = 2.35 + 0.45*3.3 = 3.835, A0 = 1.4 + 0.45*3.835 = 3.12575
    # env 1: A2 = 3.3, A1 = 1.0 (done), A0 = 1.4 + 0.45*1.0 = 1.85
    advantages = generalized_advantages(REWARDS, VALUES, DONES, LAST_VALUE, GAMMA, 0.5)
    close(advantages, [[3.12575, 1.85], [3.835, 1.0], [3.3, 3.3]])


def test_gae_with_lambda_1_and_zero_values_is_reward_to_go():
    rewards = torch.tensor([[5.0, 1.0], [0.0, -1.0], [-2.0, 4.0]])
    dones = torch.tensor([[False, False], [False, True], [True, False]])
    zeros = torch.zeros_like(rewards)
    close(generalized_advantages(rewards, zeros, dones, torch.zeros(2), 0.9, 1.0), rewards_to_go(rewards, dones, 0.9))


def test_gae_does_not_modify_its_inputs():
    rewards, values, dones, last = REWARDS.clone(), VALUES.clone(), DONES.clone(), LAST_VALUE.clone()
    generalized_advantages(rewards, values, dones, last, GAMMA, 0.95)
    assert torch.equal(rewards, REWARDS) and torch.equal(values, VALUES)
    assert torch.equal(dones, DONES) and torch.equal(last, LAST_VALUE)


# ----------------------------------------------------------------------------- explained variance
def test_explained_variance_of_perfect_predictions_is_one():
    targets = torch.tensor([1.0, -2.0, 3.5, 0.25, 7.0])
    assert explained_variance(targets.clone(), targets).item() == pytest.approx(1.0, abs=1e-6)


def test_explained_variance_of_constant_predictions_is_zero():
    targets = torch.tensor([1.0, -2.0, 3.5, 0.25, 7.0])
    for constant in (0.0, targets.mean().item(), 42.0):
        assert explained_variance(torch.full_like(targets, constant), targets).item() == pytest.approx(0.0, abs=1e-5)


def test_explained_variance_by_hand():
    # residual [0, 0, 0, -1] has variance 0.25; targets [1, 2, 3, 4] have variance 5/3 -> 1 - 0.25 / (5/3) = 0.85
    ev = explained_variance(torch.tensor([1.0, 2.0, 3.0, 5.0]), torch.tensor([1.0, 2.0, 3.0, 4.0]))
    assert ev.item() == pytest.approx(0.85, abs=1e-6)


# ----------------------------------------------------------------------------- storage
def test_rollout_buffer_is_preallocated_with_the_right_shapes_and_flat_merges_time_and_envs():
    buf = RolloutBuffer.allocate(5, 3, (4,), (), torch.int64, 2, torch.device("cpu"))
    assert buf.obs.shape == (5, 3, 4) and buf.actions.shape == (5, 3) and buf.actions.dtype == torch.int64
    assert buf.dones.dtype == torch.bool and buf.action_masks.shape == (5, 3, 2)
    for name in ("log_probs", "values", "rewards", "advantages", "returns"):
        assert getattr(buf, name).shape == (5, 3)
    buf.obs.copy_(torch.arange(60, dtype=torch.float32).reshape(5, 3, 4))
    flat = buf.flat("obs")
    assert flat.shape == (15, 4)
    assert torch.equal(flat[3 * 2 + 1], buf.obs[2, 1])  # row t * num_envs + env
    assert RolloutBuffer.allocate(2, 2, (1,), (1,), torch.float32, None, torch.device("cpu")).action_masks is None
