"""What the classic-control envs share: a state of ``physics`` (one row of numbers per sub-env) and ``elapsed`` steps."""

from __future__ import annotations

import torch

from rlcourse.vec_env import TensorVecEnv


class PhysicsVecEnv(TensorVecEnv):
    """A :class:`TensorVecEnv` whose state is ``physics`` ``(num_envs, k)`` and ``elapsed`` ``(num_envs,)``."""

    state_names = ("physics", "elapsed")
    physics: torch.Tensor
    elapsed: torch.Tensor

    @property
    def _columns(self) -> tuple[torch.Tensor, ...]:
        """Views of the state's columns, made once: the state is only ever updated in place, so they stay live."""
        made_for, views = self.__dict__.get("_column_views", (None, ()))
        if made_for is not self.physics:
            views = self.physics.unbind(-1)
            self.__dict__["_column_views"] = (self.physics, views)
        return views
