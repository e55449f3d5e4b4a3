"""What the classic-control envs share: a state of ``physics`` (one row of numbers per sub-env) and ``elapsed`` steps."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from rlcourse.vec_env import TensorVecEnv


class PhysicsVecEnv(TensorVecEnv):
    """A :class:`TensorVecEnv` whose state is ``physics`` ``(num_envs, k)`` and ``elapsed`` ``(num_envs,)``."""

    state_names = ("physics", "elapsed")
    #: Numbers per sub-env in ``physics``.
    state_width: int

    def __init__(
        self,
        num_envs: int,
        device="cpu",
        validate: bool = False,
        dtype: torch.dtype = torch.float32,
        render_mode: str | None = None,
    ):
        super().__init__(num_envs, device, validate, render_mode)
        self.physics = torch.zeros(self.num_envs, self.state_width, dtype=dtype, device=self.device)
        self.elapsed = torch.zeros(self.num_envs, dtype=torch.int32, device=self.device)

    def _constant(self, value, dtype: torch.dtype | None = None) -> torch.Tensor:
        """``value`` as a tensor on the env's device (in the state's dtype unless told): an op with a Python number
        operand pays for wrapping it into a tensor every time, which dominates a small batch's step."""
        return torch.tensor(value, dtype=self.physics.dtype if dtype is None else dtype, device=self.device)

    def _views(self, name: str, make: Callable[[PhysicsVecEnv], Any]) -> Any:
        """``make(self)``, views of the env's tensors (the state, scratch buffers), made once: those tensors are only
        ever updated in place, so the views stay live. They are made again should ``physics`` be another tensor, and
        after unpickling (pickle keeps no view a view)."""
        made_for, views = self.__dict__.get("_made_views", (None, {}))
        if made_for is not self.physics:
            views = {}
            self.__dict__["_made_views"] = (self.physics, views)
        if name not in views:
            views[name] = make(self)
        return views[name]

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("_made_views", None)
        return state

    @property
    def _columns(self) -> tuple[torch.Tensor, ...]:
        """Views of the state's columns."""
        return self._views("columns", _unbind_columns)


def _unbind_columns(env: PhysicsVecEnv) -> tuple[torch.Tensor, ...]:
    return env.physics.unbind(-1)
