"""Replay storage by hand: n-step folding across episode ends, the FIFO ring, the sum tree, prioritized
sampling frequencies, importance weights and the buffer's checkpoint state (notes:13260-13296, 13420-13446)."""

from __future__ import annotations

import math

import pytest
import torch

from rlcourse.agents.replay import (
    PrioritizedReplayBuffer,
    ReplayBuffer,
    SumTree,
    importance_weights,
)

CPU = torch.device("cpu")


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py


def make_buffer(
    rows: int,
    num_envs: int = 1,
    n_step: int = 1,
    gamma: float = 0.5,
    mask_dim: int | None = None,
    prioritized: bool = False,
    alpha: float = 1.0,
) -> ReplayBuffer:
    args = (rows * num_envs, num_envs, (1,), (), torch.int64, mask_dim, gamma, n_step, CPU)
    return PrioritizedReplayBuffer(*args, alpha=alpha, eps=1e-9) if prioritized else ReplayBuffer(*args)


def add_step(buffer: ReplayBuffer, t: int, rewards, terminated=None, truncated=None, next_masks=None) -> None:
    """One row: obs = t, action = t, next_obs = 100 + t (markers to read back), for every env."""
    num_envs = len(rewards)
    terminated = torch.tensor(terminated or [False] * num_envs)
    truncated = torch.tensor(truncated or [False] * num_envs)
    buffer.add(
        torch.full((num_envs, 1), float(t)),
        torch.full((num_envs,), t),
        torch.tensor(rewards, dtype=torch.float32),
        torch.full((num_envs, 1), 100.0 + t),
        terminated,
        terminated | truncated,
        next_masks,
    )


def gather(buffer: ReplayBuffer, indices: list[int]):
    return buffer._gather(torch.tensor(indices), torch.ones(len(indices)))


# ============================================================================= n-step returns
def test_one_step_batch_is_the_stored_transition():
    buffer = make_buffer(rows=4)
    add_step(buffer, 0, [3.0])
    add_step(buffer, 1, [5.0], terminated=[True])
    batch = gather(buffer, [0, 1])
    assert batch.obs.flatten().tolist() == [0.0, 1.0] and batch.actions.tolist() == [0, 1]
    assert batch.returns.tolist() == [3.0, 5.0]
    assert batch.next_obs.flatten().tolist() == [100.0, 101.0]
    assert batch.discounts.tolist() == [0.5, 0.0]  # γ, and no bootstrap after a termination


def test_n_step_targets_with_terminations_and_truncations_inside_the_window():
    # env 0: r = 1, 2 (truncated), 4, 8 (terminated), 16, 32; env 1: r = 1 every step, never done. n = 3, γ = 0.5.
    buffer = make_buffer(rows=8, num_envs=2, n_step=3, gamma=0.5)
    rewards = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0]
    for t, r in enumerate(rewards):
        add_step(buffer, t, [r, 1.0], terminated=[t == 3, False], truncated=[t == 1, False])
    env0 = gather(buffer, [0, 2, 4, 6, 8, 10])  # flat index = row * num_envs + env
    # t0: window t0, t1 (truncated at t1: stop, but bootstrap from its true final state): 1 + 0.5·2, γ²
    # t1: window t1 alone: 2, γ;   t2: t2, t3 (terminated): 4 + 0.5·8, no bootstrap;   t3: 8, none
    # t4: t4, t5 (t5 is the newest stored step): 16 + 0.5·32, γ²;   t5: 32, γ
    assert env0.returns.tolist() == [2.0, 2.0, 8.0, 8.0, 32.0, 32.0]
    assert env0.discounts.tolist() == [0.25, 0.5, 0.0, 0.0, 0.25, 0.5]
    assert env0.next_obs.flatten().tolist() == [101.0, 101.0, 103.0, 103.0, 105.0, 105.0]
    env1 = gather(buffer, [1, 7, 9, 11])
    # full windows: 1 + 0.5 + 0.25 = 1.75 with γ³, bootstrapping from s_{t+3}; near the newest step they shorten
    assert env1.returns.tolist() == [1.75, 1.75, 1.5, 1.0]
    assert env1.discounts.tolist() == [0.125, 0.125, 0.25, 0.5]
    assert env1.next_obs.flatten().tolist() == [102.0, 105.0, 105.0, 105.0]
    assert env1.obs.flatten().tolist() == [0.0, 3.0, 4.0, 5.0]


def test_n_step_window_wraps_around_the_ring_and_never_reads_overwritten_rows():
    buffer = make_buffer(rows=4, n_step=3, gamma=0.5)
    for t in range(6):  # rows now hold t4, t5, t2, t3; the write position is row 2
        add_step(buffer, t, [float(2**t)])
    assert int(buffer.pos) == 2 and int(buffer.rows_filled) == 4
    batch = gather(buffer, [2, 3, 0, 1])  # t2, t3, t4, t5
    assert batch.obs.flatten().tolist() == [2.0, 3.0, 4.0, 5.0]
    # t2: 4 + 0.5·8 + 0.25·16 (crosses the end of the ring to row 0); t3: 8 + 0.5·16 + 0.25·32; t4: 16 + 16; t5: 32
    assert batch.returns.tolist() == [12.0, 24.0, 32.0, 32.0]
    assert batch.discounts.tolist() == [0.125, 0.125, 0.25, 0.5]
    assert batch.next_obs.flatten().tolist() == [104.0, 105.0, 105.0, 105.0]


def test_buffer_is_fifo_and_uniform_sampling_reads_only_stored_rows():
    buffer = make_buffer(rows=4, num_envs=2)
    for t in range(6):
        add_step(buffer, t, [0.0, 0.0])
    batch = buffer.sample(4096, torch.Generator().manual_seed(0))
    seen = set(batch.obs.flatten().tolist())
    assert seen == {2.0, 3.0, 4.0, 5.0}  # the two oldest rows were dropped first (notes:13266-13270)
    counts = torch.bincount(batch.indices, minlength=8).float() / 4096
    assert torch.all((counts - 1 / 8).abs() < 0.03), counts
    assert torch.all(batch.weights == 1.0)


def test_the_bootstrap_state_carries_its_action_mask():
    buffer = make_buffer(rows=4, n_step=2, mask_dim=3)
    add_step(buffer, 0, [1.0], next_masks=torch.tensor([[True, False, True]]))
    add_step(buffer, 1, [1.0], next_masks=torch.tensor([[False, True, True]]))
    batch = gather(buffer, [0, 1])
    assert batch.next_masks.tolist() == [[False, True, True], [False, True, True]]  # both bootstrap from s_2


def test_too_small_a_buffer_is_refused():
    with pytest.raises(ValueError, match="buffer_size"):
        ReplayBuffer(3, 4, (1,), (), torch.int64, None, 0.99, 1, CPU)


# ============================================================================= the sum tree
def test_sum_tree_total_find_and_update_by_hand():
    tree = SumTree(5, CPU)  # rounded up to 8 leaves, depth 3
    assert tree.size == 8 and tree.depth == 3
    tree.update(torch.tensor([0, 1, 2, 3, 4]), torch.tensor([1.0, 2.0, 3.0, 4.0, 0.5]))
    assert tree.total.item() == 10.5
    assert tree.nodes[2].item() == 10.0 and tree.nodes[3].item() == 0.5  # the two halves
    # prefix intervals: [0,1) -> 0, [1,3) -> 1, [3,6) -> 2, [6,10) -> 3, [10,10.5) -> 4
    masses = torch.tensor([0.0, 0.99, 1.0, 2.9, 3.0, 5.99, 6.0, 9.99, 10.0, 10.49], dtype=torch.float64)
    assert tree.find(masses).tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
    # a batched update with a repeated leaf; every ancestor is repaired
    tree.update(torch.tensor([1, 4, 1]), torch.tensor([0.0, 2.0, 0.0]))
    assert tree.total.item() == 10.0 and tree.nodes[4].item() == 1.0
    assert tree.find(torch.tensor([1.0, 2.5], dtype=torch.float64)).tolist() == [2, 2]  # leaf 1 is now unreachable
    # even a mass at or past the total never lands on an empty leaf
    assert tree.find(torch.tensor([10.0, 11.0], dtype=torch.float64)).tolist() == [4, 4]


def test_rebuilt_tree_is_bitwise_the_maintained_tree():
    generator = torch.Generator().manual_seed(0)
    tree = SumTree(100, CPU)
    for step in range(20):
        indices = torch.randint(0, 100, (16,), generator=generator)
        tree.update(indices, _values_for(indices) * (1 + step))
    rebuilt = SumTree(100, CPU)
    rebuilt.leaves.copy_(tree.leaves)
    rebuilt.rebuild()
    assert torch.equal(rebuilt.nodes[1:], tree.nodes[1:])
    assert tree.total.item() == pytest.approx(tree.leaves.sum().item())


def _values_for(indices: torch.Tensor) -> torch.Tensor:
    """A value that depends only on the leaf (a leaf repeated in one update gets one value, as the tree requires)."""
    return (indices.double() * 0.37).sin().abs() + 0.1


# ============================================================================= prioritized replay
def filled_prioritized(priorities: list[float], alpha: float = 1.0) -> PrioritizedReplayBuffer:
    buffer = make_buffer(rows=len(priorities), prioritized=True, alpha=alpha)
    for t in range(len(priorities)):
        add_step(buffer, t, [0.0])
    buffer.update_priorities(torch.arange(len(priorities)), torch.tensor(priorities))
    return buffer


def test_new_transitions_get_the_largest_priority_so_far():
    buffer = filled_prioritized([1.0, 3.0, 2.0, 0.5] + [0.0] * 4)  # 8 rows, 4 already prioritized
    assert buffer.max_priority.item() == pytest.approx(3.0)
    batch = buffer.sample(1, torch.Generator().manual_seed(0))  # rebuilds the tree after the adds
    assert buffer.tree.total.item() == pytest.approx(1 + 3 + 2 + 0.5)
    add_step(buffer, 8, [0.0])  # overwrites row 0 with priority max = 3
    buffer.sample(1, torch.Generator().manual_seed(0))
    assert buffer.tree.leaves[0].item() == pytest.approx(3.0)
    assert buffer.tree.total.item() == pytest.approx(3 + 3 + 2 + 0.5)
    assert batch.indices.item() in (0, 1, 2, 3)


def test_sampling_frequencies_are_proportional_to_priority_to_the_alpha():
    errors = [1.0, 2.0, 3.0, 4.0, 0.0, 6.0]
    alpha = 0.5
    buffer = filled_prioritized(errors, alpha=alpha)
    generator = torch.Generator().manual_seed(0)
    counts = torch.zeros(len(errors))
    draws = 0
    for _ in range(25):
        batch = buffer.sample(2048, generator)
        counts += torch.bincount(batch.indices, minlength=len(errors)).float()
        draws += 2048
    expected = torch.tensor([e**alpha if e else 1e-9**alpha for e in errors])
    expected /= expected.sum()
    frequencies = counts / draws
    assert counts[4] < 20  # priority (0 + 1e-9)^0.5 ≈ 3e-5: practically never
    torch.testing.assert_close(frequencies, expected, atol=0.006, rtol=0)
    # and not uniform: the largest priority is drawn about 2.4 times as often as the smallest nonzero one
    assert frequencies[5] / frequencies[0] == pytest.approx(math.sqrt(6), rel=0.1)


def test_stratified_sampling_takes_one_draw_per_slice_of_the_mass():
    buffer = filled_prioritized([1.0, 1.0, 1.0, 1.0])
    for seed in range(5):
        batch = buffer.sample(4, torch.Generator().manual_seed(seed))
        assert sorted(batch.indices.tolist()) == [0, 1, 2, 3]  # 4 equal slices, 4 equal priorities


def test_importance_weights_by_hand():
    probabilities = torch.tensor([0.1, 0.2, 0.3, 0.4], dtype=torch.float64)
    weights = importance_weights(probabilities, torch.tensor(4), torch.tensor(0.5))
    # (N·P)^-β = (0.4, 0.8, 1.2, 1.6)^-0.5, divided by the largest, (0.4)^-0.5
    torch.testing.assert_close(weights, torch.tensor([1.0, math.sqrt(0.5), math.sqrt(1 / 3), 0.5]))
    assert torch.all(importance_weights(probabilities, torch.tensor(4), torch.tensor(0.0)) == 1.0)  # β = 0: none


def test_sampled_weights_follow_the_sampled_priorities():
    buffer = filled_prioritized([1.0, 4.0])
    buffer.beta.fill_(1.0)
    batch = buffer.sample(64, torch.Generator().manual_seed(0))
    # β = 1: w ∝ 1/P, so the rare transition (P = 0.2) has weight 1 and the common one (P = 0.8) 1/4
    expected = torch.where(batch.indices == 0, 1.0, 0.25)
    assert set(batch.indices.tolist()) == {0, 1}
    torch.testing.assert_close(batch.weights, expected)


def test_priority_update_uses_abs_error_plus_eps_to_the_alpha():
    buffer = filled_prioritized([0.0, 0.0], alpha=0.5)
    buffer.update_priorities(torch.tensor([0, 1]), torch.tensor([-9.0, 4.0]))
    torch.testing.assert_close(buffer.tree.leaves[:2], torch.tensor([3.0, 2.0], dtype=torch.float64))
    assert buffer.tree.total.item() == pytest.approx(5.0)


# ============================================================================= checkpoint state
def test_state_dict_round_trip_continues_identically():
    buffer = make_buffer(rows=6, num_envs=2, n_step=2, mask_dim=3, prioritized=True)
    generator = torch.Generator().manual_seed(1)
    for t in range(4):
        add_step(
            buffer,
            t,
            [float(t), -float(t)],
            terminated=[t == 2, False],
            next_masks=torch.rand(2, 3, generator=generator) < 0.7,
        )
    buffer.update_priorities(torch.tensor([0, 3, 5]), torch.tensor([0.5, 2.0, 7.0]))
    add_step(buffer, 4, [1.0, 1.0], next_masks=torch.ones(2, 3, dtype=torch.bool))
    state = buffer.state_dict()
    assert state["obs"].shape == (5, 2, 1)  # only the filled rows are saved
    restored = make_buffer(rows=6, num_envs=2, n_step=2, mask_dim=3, prioritized=True)
    restored.load_state_dict(state)
    a = buffer.sample(32, torch.Generator().manual_seed(7))
    b = restored.sample(32, torch.Generator().manual_seed(7))
    for x, y in zip(a, b):
        assert torch.equal(x, y)
    assert torch.equal(buffer.tree.nodes, restored.tree.nodes)
    with pytest.raises(ValueError, match="num_envs"):
        make_buffer(rows=6, num_envs=3, n_step=2, mask_dim=3, prioritized=True).load_state_dict(state)
    with pytest.raises(ValueError, match="entries"):
        make_buffer(rows=6, num_envs=2, n_step=2, prioritized=True).load_state_dict(state)
