"""Plug-ins that learn while the agent does: callbacks that train a model on each iteration's transitions.

* :class:`ModelTraining` trains a model that learns from the agent's transitions alone (curiosity's
  forward and inverse models): ``model.update(batch) -> stats`` after every rollout.
* :class:`DiscriminatorTraining` trains a :class:`~rlcourse.supervised.protocol.Discriminator`
  between rollouts, fixed while the agent acts (the GAN loop of inverse RL,
  notes:14146-14204 [Imitation Learning]): ``updates`` steps per iteration, each on a minibatch of the
  agent's transitions (fake) and as many demonstration transitions (real).

Both run on the device with no host reads; their statistics are logged under ``<prefix>/<name>``
once per log interval. The model's weights and optimizer, and the minibatch generator, are the
callback's state, so they go into the agent's checkpoints and a resumed run continues the same way.
"""

from __future__ import annotations

from typing import Any

import torch

from rlcourse.callbacks import Callback, RolloutBatch
from rlcourse.supervised.protocol import Discriminator, Transitions, transitions_of

__all__ = ["DiscriminatorTraining", "ModelTraining", "take"]


def take(batch: Any, index: torch.Tensor) -> Any:
    """The rows ``index`` of every tensor field of ``batch`` (a dataclass of transitions), as the same type."""
    picked = {name: value[index] if isinstance(value, torch.Tensor) else value for name, value in vars(batch).items()}
    return type(batch)(**picked)


class ModelTraining(Callback):
    """After every rollout, ``updates`` steps of ``model.update(minibatch)`` on the iteration's transitions.

    ``batch_size``: transitions per step (None: all of them, one step per update).
    """

    needs_batch = True

    def __init__(
        self, model: Any, updates: int = 1, batch_size: int | None = None, seed: int = 0, prefix: str = "model"
    ):
        for name, value in (("updates", updates), ("batch_size", 1 if batch_size is None else batch_size)):
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        self.model, self.updates, self.batch_size, self.prefix = model, updates, batch_size, prefix
        self.generator = torch.Generator(device=model.device)
        self.generator.manual_seed(seed)
        self.last_stats: dict[str, torch.Tensor] = {}

    def on_rollout_end(self, batch: RolloutBatch | None) -> bool | None:
        fake = transitions_of(batch)
        for _ in range(self.updates):
            self.last_stats = self._step(self._minibatch(fake))
        return None

    def _step(self, fake: Transitions) -> dict[str, torch.Tensor]:
        return self.model.update(fake)

    def _minibatch(self, transitions: Any) -> Any:
        size = transitions.obs.shape[0]
        if self.batch_size is None or self.batch_size >= size:
            return transitions
        index = torch.randint(size, (self.batch_size,), generator=self.generator, device=self.generator.device)
        return take(transitions, index)

    def on_log(self, stats: dict[str, float]) -> None:
        if self.last_stats:
            self.run.log_scalars({f"{self.prefix}/{name}": float(value) for name, value in self.last_stats.items()})

    def state_dict(self) -> dict[str, Any]:
        optimizer = getattr(self.model, "optimizer", None)
        return {
            "model": self.model.state_dict(),
            "optimizer": None if optimizer is None else optimizer.state_dict(),
            "generator": self.generator.get_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        if state["optimizer"] is not None:
            self.model.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"].cpu())


class DiscriminatorTraining(ModelTraining):
    """Train ``discriminator`` to tell ``demonstrations`` (real) from the agent's transitions (fake).

    ``demonstrations`` has the transition fields (``obs``, ``actions``, ``next_obs``, ``terminated``) on
    the discriminator's device and ``sample(n, generator)``, as
    :class:`~rlcourse.supervised.imitation.demos.Demonstrations` do.
    """

    def __init__(
        self,
        discriminator: Discriminator,
        demonstrations: Any,
        updates: int = 1,
        batch_size: int | None = None,
        seed: int = 0,
        prefix: str = "discriminator",
    ):
        if not isinstance(discriminator, Discriminator):
            raise TypeError(f"DiscriminatorTraining trains a Discriminator, got {type(discriminator).__name__}")
        super().__init__(discriminator, updates, batch_size, seed, prefix)
        self.demonstrations = demonstrations

    def _step(self, fake: Transitions) -> dict[str, torch.Tensor]:
        real = self.demonstrations.sample(fake.obs.shape[0], self.generator)
        return self.model.update(real, fake)
