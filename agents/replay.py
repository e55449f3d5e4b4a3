"""Experience replay for the off-policy agents (DQN, DDPG): uniform and prioritized, with n-step returns.

Replay buffer (notes:13260-13296 [Q-Learning]): transitions (s_t, a_t, r_t, s_{t+1}) from many past policies are
kept, the oldest dropped first once full (FIFO), and training draws random *batches* from them.
Storage is preallocated on the device as ``[rows, num_envs, ...]`` tensors and written in place at
a device-side position, so adding never syncs with the host and a captured CUDA graph stays valid.
Each env's transitions sit in one column in time order, which is what the n-step fold reads.

What is stored per transition, so that the targets are right at episode ends:

* ``next_obs`` is the *true* next state: the final observation of an episode that just ended
  (``info["final_obs"]``), not the first observation of the next one;
* ``terminated`` cuts the bootstrap; a truncated episode (time limit) still bootstraps from its
  final state, because the MDP did not end there;
* ``done`` (terminated or truncated) stops an n-step window: rewards after it belong to another episode;
* ``next_masks``: the valid actions in ``next_obs`` (masked envs only), used by the max in the target.

Multi-step returns (notes:13434-13446 [Q-Learning]), folded at sampling time from the one-step transitions:

    G_t = Σ_{k<m} γ^k r_{t+k},  target = G_t + γ^m · [not terminated at t+m-1] · V(s_{t+m})

where the window length m ≤ n stops after the first ``done`` inside it and at the newest stored
transition. Every piece is a ``[batch, n]`` gather, so the fold is vectorised.

Prioritized replay (notes:13420-13432 [Q-Learning]; exponents from Schaul et al. 2016, which the notes leave to
the paper): transition i is drawn with probability P(i) = p_i^α / Σ_k p_k^α, p_i = |δ_i| + ε, and
"the update changes too": its loss is weighted by w_i = (N·P(i))^-β / max_batch w, with β annealed
to 1. The masses p^α live in a :class:`SumTree` held as one tensor, so drawing a whole batch and
updating its priorities are ``log2(capacity)`` rounds of batched tensor ops, on the CPU or the GPU.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch


class Batch(NamedTuple):
    """A sampled batch, n-step folded: the target is ``returns + discounts · V(next_obs)``."""

    obs: torch.Tensor
    actions: torch.Tensor
    returns: torch.Tensor  # Σ_{k<m} γ^k r_{t+k}
    next_obs: torch.Tensor  # s_{t+m}, where the bootstrap value is read
    discounts: torch.Tensor  # γ^m, or 0 when the episode terminated inside the window
    next_masks: torch.Tensor | None  # valid actions in next_obs (masked envs only)
    weights: torch.Tensor  # importance weights (all 1 for uniform replay)
    indices: torch.Tensor  # flat indices of the sampled transitions (for priority updates)


class SumTree:
    """A binary tree of sums over ``capacity`` non-negative leaves, stored heap-style in one tensor.

    ``nodes[1]`` is the root (the total mass), node k has children 2k and 2k+1, and the leaves are
    ``nodes[size:2·size]`` where ``size`` is ``capacity`` rounded up to a power of two. Every inner
    node always equals ``left + right`` of its current children (it is recomputed, never adjusted
    by a delta), so a tree rebuilt from its leaves is bitwise the tree that was maintained.
    float64 keeps the sums accurate over millions of leaves.
    """

    def __init__(self, capacity: int, device: torch.device):
        self.depth = max(1, math.ceil(math.log2(capacity)))
        self.size = 1 << self.depth
        self.nodes = torch.zeros(2 * self.size, dtype=torch.float64, device=device)

    @property
    def total(self) -> torch.Tensor:
        return self.nodes[1]

    @property
    def leaves(self) -> torch.Tensor:
        return self.nodes[self.size :]

    def update(self, indices: torch.Tensor, values: torch.Tensor) -> None:
        """Set leaves ``indices`` to ``values`` and repair their ancestors, one level per round.

        A leaf repeated in ``indices`` must carry the same value each time (it does: the same
        transition gets the same TD error); parents shared by several leaves are then written
        with one and the same sum.
        """
        node = indices + self.size
        self.nodes.index_put_((node,), values.to(self.nodes.dtype))
        pairs = self.nodes.view(-1, 2)  # pairs[k] = (nodes[2k], nodes[2k+1]): the children of node k
        for _ in range(self.depth):
            node = node // 2
            self.nodes.index_put_((node,), pairs[node].sum(dim=1))

    def rebuild(self) -> None:
        """Recompute every inner node from the leaves, level by level (after leaves were written directly)."""
        for level in reversed(range(self.depth)):
            first = 1 << level
            children = self.nodes[2 * first : 4 * first].view(-1, 2)
            self.nodes[first : 2 * first] = children[:, 0] + children[:, 1]

    def find(self, mass: torch.Tensor) -> torch.Tensor:
        """For each ``mass`` in [0, total): the leaf whose prefix-sum interval holds it, all at once.

        The descent goes right when the mass passes the left subtree's sum, subtracting it; it never
        enters an empty subtree, so rounding can not select a leaf of zero mass.
        """
        node = torch.ones_like(mass, dtype=torch.int64)
        pairs = self.nodes.view(-1, 2)
        for _ in range(self.depth):
            children = pairs[node]
            left = children[:, 0]
            go_right = (mass >= left) & (children[:, 1] > 0)
            mass = mass - left * go_right
            node = 2 * node + go_right
        return node - self.size


class ReplayBuffer:
    """Uniform replay of ``capacity`` transitions from ``num_envs`` envs, with n-step folding.

    Args:
        capacity: transitions kept (rounded down to a multiple of ``num_envs``).
        num_envs: envs writing one transition each per :meth:`add`.
        obs_shape, action_shape, action_dtype: what one transition holds.
        mask_dim: number of discrete actions when the env has action masks, else None.
        gamma, n_step: discount and window length of the n-step return.
    """

    def __init__(
        self,
        capacity: int,
        num_envs: int,
        obs_shape: tuple[int, ...],
        action_shape: tuple[int, ...],
        action_dtype: torch.dtype,
        mask_dim: int | None,
        gamma: float,
        n_step: int,
        device: torch.device,
    ):
        if capacity < num_envs:
            raise ValueError(f"buffer_size ({capacity}) must be at least num_envs ({num_envs})")
        if n_step < 1:
            raise ValueError(f"n_step must be >= 1, got {n_step}")
        self.rows = capacity // num_envs
        self.num_envs = num_envs
        self.gamma, self.n_step = gamma, n_step
        self.device = device
        shape = (self.rows, num_envs)
        self.obs = torch.zeros(*shape, *obs_shape, device=device)
        self.actions = torch.zeros(*shape, *action_shape, dtype=action_dtype, device=device)
        self.rewards = torch.zeros(shape, device=device)
        self.next_obs = torch.zeros(*shape, *obs_shape, device=device)
        self.terminated = torch.zeros(shape, dtype=torch.bool, device=device)
        self.dones = torch.zeros(shape, dtype=torch.bool, device=device)
        self.next_masks = torch.ones(*shape, mask_dim, dtype=torch.bool, device=device) if mask_dim else None
        self.pos = torch.zeros((), dtype=torch.int64, device=device)  # next row to write
        self.rows_filled = torch.zeros((), dtype=torch.int64, device=device)
        self._window = torch.arange(n_step, device=device)
        self._discount_powers = gamma ** torch.arange(n_step + 1, dtype=torch.float32, device=device)

    @property
    def capacity(self) -> int:
        return self.rows * self.num_envs

    _row_fields = ("obs", "actions", "rewards", "next_obs", "terminated", "dones", "next_masks")

    def add(
        self,
        obs: torch.Tensor,
        actions: torch.Tensor,
        rewards: torch.Tensor,
        next_obs: torch.Tensor,
        terminated: torch.Tensor,
        dones: torch.Tensor,
        next_masks: torch.Tensor | None = None,
    ) -> None:
        """Write one transition per env at the current row (overwriting the oldest when full).

        Without ``next_masks`` a masked buffer keeps what the row held (all valid unless written before).
        """
        row = self.pos.view(1)
        for name, value in zip(self._row_fields, (obs, actions, rewards, next_obs, terminated, dones, next_masks)):
            storage = getattr(self, name)
            if storage is not None and value is not None:
                storage.index_copy_(0, row, value.to(storage.dtype).unsqueeze(0))
        self.pos.copy_((self.pos + 1) % self.rows)
        self.rows_filled.copy_(torch.clamp(self.rows_filled + 1, max=self.rows))

    def sample(self, batch_size: int, generator: torch.Generator | None) -> Batch:
        """``batch_size`` transitions drawn uniformly (with replacement) from those stored."""
        stored = (self.rows_filled * self.num_envs).to(torch.float64)
        uniform = torch.rand(batch_size, generator=generator, device=self.device, dtype=torch.float64)
        indices = (uniform * stored).long()
        return self._gather(indices, torch.ones(batch_size, device=self.device))

    def _gather(self, indices: torch.Tensor, weights: torch.Tensor) -> Batch:
        """Read transitions by flat index ``row * num_envs + env`` and fold their n-step windows."""
        row, env = indices // self.num_envs, indices % self.num_envs
        # Rows after `row` that hold this env's later transitions (the newest row is pos - 1).
        newer = (self.pos - 1 - row) % self.rows
        window_rows = (row[:, None] + self._window) % self.rows  # [B, n]
        dones = self.dones[window_rows, env[:, None]]
        ended_before = (torch.cumsum(dones.long(), dim=1) - dones.long()) > 0
        in_window = (self._window <= newer[:, None]) & ~ended_before
        steps = in_window.sum(dim=1)  # m >= 1: the sampled transition itself is always in
        rewards = self.rewards[window_rows, env[:, None]] * in_window
        returns = (rewards * self._discount_powers[: self.n_step]).sum(dim=1)
        last = (row + steps - 1) % self.rows
        discounts = self._discount_powers[steps] * (~self.terminated[last, env]).float()
        next_masks = self.next_masks[last, env] if self.next_masks is not None else None
        return Batch(
            self.obs[row, env],
            self.actions[row, env],
            returns,
            self.next_obs[last, env],
            discounts,
            next_masks,
            weights,
            indices,
        )

    # ----------------------------------------------------------------- checkpoints
    def state_dict(self) -> dict[str, torch.Tensor]:
        """The stored rows (only the filled ones: one host read of the fill level) and the write position."""
        filled = int(self.rows_filled)
        state = {
            name: getattr(self, name)[:filled].clone() for name in self._row_fields if getattr(self, name) is not None
        }
        state["pos"], state["rows_filled"] = self.pos.clone(), self.rows_filled.clone()
        return state

    def check_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Raise ``ValueError`` unless ``state`` fits this buffer (names, shapes, dtypes, fill level)."""
        expected = set(self.state_dict_keys())
        if set(state) != expected:
            raise ValueError(f"replay state has entries {sorted(state)}, expected {sorted(expected)}")
        filled = int(state["rows_filled"])
        if not 0 <= filled <= self.rows or not 0 <= int(state["pos"]) < self.rows:
            raise ValueError(
                f"replay state fills {filled} rows (position {int(state['pos'])}) of a buffer with {self.rows}"
            )
        for name in self._row_fields:
            live = getattr(self, name)
            if live is None:
                continue
            saved = state[name]
            if tuple(saved.shape) != (filled, *live.shape[1:]) or saved.dtype != live.dtype:
                raise ValueError(
                    f"replay {name} has shape {tuple(saved.shape)} and dtype {saved.dtype} in the checkpoint, "
                    f"expected ({filled}, {', '.join(map(str, live.shape[1:]))}) and {live.dtype} "
                    "(was it saved with another buffer_size or num_envs?)"
                )

    def state_dict_keys(self) -> list[str]:
        return [name for name in self._row_fields if getattr(self, name) is not None] + ["pos", "rows_filled"]

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Restore a :meth:`state_dict` in place (checked first; tensor addresses stay)."""
        self.check_state_dict(state)
        filled = int(state["rows_filled"])
        for name in self._row_fields:
            if getattr(self, name) is not None:
                getattr(self, name)[:filled].copy_(state[name])
        self.pos.copy_(state["pos"])
        self.rows_filled.copy_(state["rows_filled"])


class PrioritizedReplayBuffer(ReplayBuffer):
    """Proportional prioritized replay (Schaul et al. 2016) over a :class:`SumTree`.

    New transitions get the largest priority seen so far, so each is replayed at least once soon.
    ``beta`` is a device tensor the agent anneals to 1; :meth:`update_priorities` takes the new
    |TD errors| (or per-sample losses) of a sampled batch.

    Args:
        alpha: how strongly priorities skew sampling (0: uniform).
        eps: added to |δ| so no transition becomes unreachable.
        (the rest as :class:`ReplayBuffer`)
    """

    def __init__(self, *args, alpha: float, eps: float = 1e-6, **kwargs):
        super().__init__(*args, **kwargs)
        self.alpha, self.eps = alpha, eps
        self.tree = SumTree(self.capacity, self.device)
        self.beta = torch.ones((), device=self.device)
        self.max_priority = torch.ones((), dtype=torch.float64, device=self.device)  # max over stored p^α
        self._stale = False  # leaves written by add() whose ancestors are not summed yet (host flag, no tensor read)

    def add(self, *args, **kwargs) -> None:
        row = self.pos.clone()
        super().add(*args, **kwargs)
        # Only the leaves here; the sums are rebuilt once before the next draw instead of being
        # repaired for every env step (one O(N) pass per iteration instead of steps × log N rounds).
        leaves = row * self.num_envs + torch.arange(self.num_envs, device=self.device)
        self.tree.leaves.index_put_((leaves,), self.max_priority.expand(self.num_envs))
        self._stale = True

    def sample(self, batch_size: int, generator: torch.Generator | None) -> Batch:
        """Stratified draw: one mass from each of ``batch_size`` equal slices of the total, then a batched descent."""
        if self._stale:
            self.tree.rebuild()
            self._stale = False
        total = self.tree.total
        uniform = torch.rand(batch_size, generator=generator, device=self.device, dtype=torch.float64)
        strata = torch.arange(batch_size, device=self.device, dtype=torch.float64)
        mass = (strata + uniform) / batch_size * total
        stored = self.rows_filled * self.num_envs
        indices = torch.minimum(self.tree.find(mass), stored - 1)
        probabilities = self.tree.leaves[indices] / total
        weights = importance_weights(probabilities, stored, self.beta)
        return self._gather(indices, weights)

    def update_priorities(self, indices: torch.Tensor, errors: torch.Tensor) -> None:
        """p_i = (|error_i| + ε)^α for the sampled ``indices`` (batched, ancestors repaired level by level)."""
        priorities = (errors.detach().abs().to(torch.float64) + self.eps) ** self.alpha
        self.tree.update(indices, priorities)
        self.max_priority.copy_(torch.maximum(self.max_priority, priorities.max()))

    def state_dict(self) -> dict[str, torch.Tensor]:
        state = super().state_dict()
        state["priorities"] = self.tree.leaves[: int(state["rows_filled"]) * self.num_envs].clone()
        state["max_priority"] = self.max_priority.clone()
        return state

    def state_dict_keys(self) -> list[str]:
        return super().state_dict_keys() + ["priorities", "max_priority"]

    def check_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        super().check_state_dict(state)
        expected = int(state["rows_filled"]) * self.num_envs
        if tuple(state["priorities"].shape) != (expected,) or state["priorities"].dtype != torch.float64:
            raise ValueError(
                f"replay priorities have shape {tuple(state['priorities'].shape)}, expected ({expected},) float64"
            )

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        super().load_state_dict(state)
        self.tree.leaves.zero_()
        self.tree.leaves[: state["priorities"].shape[0]].copy_(state["priorities"])
        self.max_priority.copy_(state["max_priority"])
        self.tree.rebuild()  # bitwise the maintained tree: every inner node is left + right
        self._stale = False


def importance_weights(probabilities: torch.Tensor, stored: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
    """w_i = (N·P(i))^-β, divided by the batch's largest weight so updates are only ever scaled down."""
    weights = (stored.to(probabilities.dtype) * probabilities) ** -beta.to(probabilities.dtype)
    return (weights / weights.max()).float()
