"""Self-play: ``opponent="self"`` plays against frozen snapshots of the learning agent.

The env keeps a :class:`SnapshotPool`; :class:`SelfPlayCallback` adds a snapshot of the agent every
``every`` training iterations (a checkpoint written and loaded back, so any algorithm works through the
public ``save`` / ``load``), keeping the latest ``pool_size``. Battle ``i`` is played by snapshot
``i mod n``, so the opponent is a mixture of past selves (fictitious self-play over a sliding window).
Until the first snapshot the pool plays random valid actions.

The pool is not part of the env's options or checkpoint (options stay JSON-safe, ``opponent="self"``);
envs spawned for evaluation start with an empty pool, so ``evaluate`` scores against random play there.

```python
agent = PPO("rlcourse/PokemonBattle-v0", env_kwargs={"opponent": "self"})
agent.learn(2_000_000, callbacks=[SelfPlayCallback(every=10, pool_size=4)])
```
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import torch

from rlcourse.callbacks import Callback
from rlcourse.envs.pokemon.opponents import random_choice


class SnapshotPool:
    """Frozen policies with a ``predict(obs, deterministic, action_masks)``; the latest ``size`` are kept."""

    def __init__(self, size: int = 4):
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError(f"pool_size must be a positive integer, got {size!r}")
        self.size = size
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

    def __init__(self, every: int = 10, pool_size: int = 4):
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"every must be a positive integer, got {every!r}")
        self.every, self.pool_size = every, pool_size
        self.iterations = 0
        self._folder = tempfile.TemporaryDirectory(prefix="rlcourse-selfplay-")

    def on_training_start(self, run: Any) -> None:
        self.run = run
        env = run.env.unwrapped
        if getattr(env, "snapshot_pool", None) is None:
            raise ValueError("SelfPlayCallback needs rlcourse/PokemonBattle-v0 with opponent='self'")
        self.pool: SnapshotPool = env.snapshot_pool
        self.pool.size = self.pool_size
        self.snapshot()

    def snapshot(self) -> None:
        from rlcourse.envs.pokemon.env import PokemonBattleVecEnv

        path = Path(self._folder.name) / f"snapshot-{self.iterations}.pt"
        self.run.save(path)
        # an env of the same size (the loaded config must fit it); the snapshot only ever predicts
        frozen_env = PokemonBattleVecEnv(self.run.env.num_envs, device=self.run.env.device)
        self.pool.add(type(self.run).load(path, device=self.run.env.device, env=frozen_env))
        path.unlink()

    def on_rollout_end(self, batch: Any) -> None:
        self.iterations += 1
        if self.iterations % self.every == 0:
            self.snapshot()

    def on_training_end(self) -> None:
        self._folder.cleanup()
