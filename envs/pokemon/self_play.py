"""Self-play: ``opponent="self"`` plays against frozen snapshots of the learning agent.

The env keeps a :class:`SnapshotPool` and declares a :class:`SelfPlayCallback` as its
:meth:`~rlcourse.TensorVecEnv.training_callbacks`, so ``Agent.learn`` (and with it ``rlcourse train``)
fills the pool without being asked. The callback adds a snapshot of the agent when training starts on
an empty pool and then every ``self_play_every`` training iterations (a checkpoint written and loaded
back, so any algorithm works through the public ``save`` / ``load``), keeping the latest
``self_play_pool``. Battle ``i`` is played by snapshot ``i mod n``, so the opponent is a mixture of past
selves (fictitious self-play over a sliding window). Until the first snapshot the pool plays random
valid actions.

The pool is not part of the env's options or of a checkpoint (options stay JSON-safe, ``opponent="self"``):
a resumed run starts a new pool from the resumed agent, and envs spawned for evaluation start with an
empty pool, so ``evaluate`` scores against random play there.

```python
agent = PPO("rlcourse/PokemonBattle-v0", env_kwargs={"opponent": "self", "self_play_every": 10})
agent.learn(2_000_000)                                  # the env's callback fills the pool
agent.learn(2_000_000, callbacks=[SelfPlayCallback(every=5, pool_size=8)])  # yours replaces the env's
```
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import torch

from rlcourse.callbacks import Callback
from rlcourse.envs.pokemon.opponents import random_choice

DEFAULT_EVERY, DEFAULT_POOL_SIZE = 10, 4


def check_positive(name: str, value: Any) -> int:
    """``value`` as an int, or a ``ValueError`` naming ``name`` unless it is a positive integer."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


class SnapshotPool:
    """Frozen policies with a ``predict(obs, deterministic, action_masks)``; the latest ``size`` are kept."""

    def __init__(self, size: int = DEFAULT_POOL_SIZE):
        self.size = check_positive("pool_size", size)
        self.policies: list[Any] = []

    def add(self, policy: Any) -> None:
        self.policies = [*self.policies, policy][-self.size :]

    def __call__(self, obs: torch.Tensor, masks: torch.Tensor, draws: torch.Tensor) -> torch.Tensor:
        if not self.policies:  # a host-side list, not a tensor value: no sync
            return random_choice(masks, draws)
        choices = torch.stack(
            [torch.as_tensor(p.predict(obs, deterministic=True, action_masks=masks)).long() for p in self.policies]
        )
        owner = torch.arange(obs.shape[0], device=obs.device) % len(self.policies)
        return choices.to(obs.device).gather(0, owner.unsqueeze(0)).squeeze(0)


class SelfPlayCallback(Callback):
    """Every ``every`` iterations, a frozen copy of the training agent joins its env's snapshot pool."""

    def __init__(self, every: int = DEFAULT_EVERY, pool_size: int = DEFAULT_POOL_SIZE):
        self.every = check_positive("every", every)
        self.pool_size = check_positive("pool_size", pool_size)
        self.iterations = 0
        #: Snapshots taken so far (the pool keeps the latest ``pool_size`` of them).
        self.snapshots = 0

    def on_training_start(self, run: Any) -> None:
        from rlcourse.envs.pokemon.env import PokemonBattleVecEnv

        self.run = run
        env = run.env.unwrapped
        if not isinstance(env, PokemonBattleVecEnv) or env.snapshot_pool is None:
            raise ValueError("SelfPlayCallback needs rlcourse/PokemonBattle-v0 with opponent='self'")
        self.pool: SnapshotPool = env.snapshot_pool
        self.pool.size = self.pool_size
        if not self.pool.policies:
            self.snapshot()

    def snapshot(self) -> None:
        with tempfile.TemporaryDirectory(prefix="rlcourse-selfplay-") as folder:
            path = Path(folder) / "snapshot.pt"
            self.run.save(path)
            # loaded as a run is (its env rebuilt from the file, of the size its config fits); the snapshot only
            # ever predicts. threads=None: loading must not change the training process's torch thread count.
            self.pool.add(type(self.run).load(path, device=self.run.env.device, threads=None))
        self.snapshots += 1

    def on_rollout_end(self, batch: Any) -> None:
        self.iterations += 1
        if self.iterations % self.every == 0:
            self.snapshot()
