"""What the classic-control envs share: a state of ``physics`` (one row of numbers per sub-env) and ``elapsed`` steps."""

from __future__ import annotations

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

    @property
    def _columns(self) -> tuple[torch.Tensor, ...]:
        """Views of the state's columns, made once: the state is only ever updated in place, so they stay live."""
        made_for, views = self.__dict__.get("_column_views", (None, ()))
        if made_for is not self.physics:
            views = self.physics.unbind(-1)
            self.__dict__["_column_views"] = (self.physics, views)
        return views
