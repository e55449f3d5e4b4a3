"""Plug-ins that learn while the agent does: callbacks that train a model on each iteration's transitions.

* :class:`ModelTraining` trains a model that learns from the agent's transitions alone (curiosity's
  forward and inverse models): ``model.update(batch) -> stats`` after every rollout.
* :class:`DiscriminatorTraining` trains a :class:`~rlcourse.supervised.protocol.Discriminator`
  between rollouts, fixed while the agent acts (the GAN loop of inverse RL,
  notes:14146-14204 [Imitation Learning]): ``updates`` steps per iteration, each on a minibatch of the
  agent's transitions (fake) and as many demonstration transitions (real).

Both run on the device with no host reads; their statistics are logged under ``<prefix>/<name>``
once per log interval. The model's weights and optimizer, and the minibatch generator, are the
callback's state, so they go into the agent's checkpoints and a resumed run continues the same way;
:meth:`ModelTraining.check_state_dict` says whether a saved state fits before anything is loaded.
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

    def check_state_dict(self, state: Any) -> None:
        """Raise ``ValueError`` unless ``state`` (from :meth:`state_dict`) fits this model and optimizer; loads nothing."""
        name = type(self.model).__name__
        if not isinstance(state, dict) or set(state) != {"model", "optimizer", "generator"}:
            keys = sorted(state) if isinstance(state, dict) else type(state).__name__
            raise ValueError(
                f"its {self.prefix} state must have the keys ['generator', 'model', 'optimizer'], got {keys}"
            )
        saved, live = state["model"], self.model.state_dict()
        if not isinstance(saved, dict) or set(saved) != set(live):
            saved_keys = set(saved) if isinstance(saved, dict) else set()
            raise ValueError(
                f"its {self.prefix} weights are not this {name}'s: it lacks {_some(set(live) - saved_keys)} and has "
                f"{_some(saved_keys - set(live))} (a model of another kind, or built with other settings)"
            )
        for key, tensor in live.items():
            value = saved[key]
            if not isinstance(value, torch.Tensor) or value.shape != tensor.shape or value.dtype != tensor.dtype:
                got = f"shape {tuple(value.shape)}" if isinstance(value, torch.Tensor) else type(value).__name__
                raise ValueError(f"its {name}.{key} has {got}, this one's shape {tuple(tensor.shape)}")
        self._check_optimizer(state["optimizer"])
        generator = state["generator"]
        if not isinstance(generator, torch.Tensor) or generator.dtype != torch.uint8:
            got = f"{generator.dtype} tensor" if isinstance(generator, torch.Tensor) else type(generator).__name__
            raise ValueError(f"its {self.prefix} generator state must be a uint8 tensor, got a {got}")

    def _check_optimizer(self, saved: Any) -> None:
        optimizer = getattr(self.model, "optimizer", None)
        if (saved is None) != (optimizer is None):
            raise ValueError(f"its {self.prefix} state {'lacks' if saved is None else 'has'} an optimizer state")
        if optimizer is None:
            return
        groups = saved.get("param_groups") if isinstance(saved, dict) else None
        sizes = [len(g["params"]) if isinstance(g, dict) else -1 for g in groups] if isinstance(groups, list) else None
        if sizes != [len(g["params"]) for g in optimizer.param_groups]:
            raise ValueError(f"its {self.prefix} optimizer state is for other parameters")
        for group, live in zip(groups, optimizer.param_groups):
            for index, parameter in zip(group["params"], live["params"]):
                for key, value in saved.get("state", {}).get(index, {}).items():
                    if isinstance(value, torch.Tensor) and value.dim() > 0 and value.shape != parameter.shape:
                        raise ValueError(
                            f"its {self.prefix} optimizer's {key!r} has shape {tuple(value.shape)}, "
                            f"its parameter {tuple(parameter.shape)}"
                        )

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Load ``state`` after :meth:`check_state_dict`, so a state that does not fit changes nothing.

        The minibatch generator's state loads when it was saved on the same kind of device (a CUDA generator's
        state means nothing to a CPU one, as with the agent's own streams); otherwise it keeps its seed.
        """
        self.check_state_dict(state)
        self.model.load_state_dict(state["model"])
        if state["optimizer"] is not None:
            self.model.optimizer.load_state_dict(state["optimizer"])
        generator = state["generator"]
        if generator.numel() == self.generator.get_state().numel():
            self.generator.set_state(generator.cpu())


def _some(names: set[str], shown: int = 3) -> str:
    """Up to ``shown`` of ``names``, sorted, with how many more there are."""
    if not names:
        return "none"
    listed = sorted(names)
    more = f" and {len(listed) - shown} more" if len(listed) > shown else ""
    return ", ".join(listed[:shown]) + more


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
