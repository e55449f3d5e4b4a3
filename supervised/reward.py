"""Any env, rewarded by a plug-in: :class:`ModelReward`, the core ``RewardFunction`` wrapper for a ``RewardModel``.

``mode="replace"`` gives the agent ``scale * model.reward(batch)`` (GAIL, AIRL: the env's reward is
unknown to the learner); ``mode="add"`` gives ``env_reward + scale * model.reward(batch)`` (curiosity:
notes:13894-13950 [Sparse Reward], total reward r + rⁱ). The env's own rewards still reach
``info["episode"]``, so ``rollout/ep_rew_mean`` keeps measuring the task while the agent learns from the model.

The model scores the observations of the env it wraps, while the training callbacks read the agent's (the
outermost env's): wrap it outside any observation-changing wrapper (``NormalizeObservation(env)`` first, then
``ModelReward``), so the two see the same observations.

The model is called under ``torch.no_grad()`` inside the env's ``step``, so the agent's CUDA graph
captures it; a model trained between rollouts (a discriminator, a forward model) updates its
parameters in place, and the captured graph reads the new weights on its next replay.
"""

from __future__ import annotations

from typing import Any

from rlcourse.supervised.protocol import RewardModel
from rlcourse.vec_env import TensorVecEnv
from rlcourse.wrappers import RewardFunction

__all__ = ["ModelReward"]


class ModelReward(RewardFunction):
    """``env`` rewarded by ``model`` (a :class:`~rlcourse.supervised.protocol.RewardModel` on the env's device)."""

    def __init__(self, env: TensorVecEnv, model: RewardModel, mode: str = "replace", scale: float = 1.0):
        if not isinstance(model, RewardModel):
            raise TypeError(
                f"ModelReward takes an rlcourse.supervised.RewardModel, got {type(model).__name__} "
                "(wrap a plain function with rlcourse.wrappers.RewardFunction)"
            )
        for name, model_space, env_space in (
            ("observation", model.observation_space, env.single_observation_space),
            ("action", model.action_space, env.single_action_space),
        ):
            if model_space != env_space:
                raise ValueError(
                    f"the reward model was built for the {name} space {model_space}, the env has {env_space}"
                )
        model.check_env(env)
        super().__init__(env, model, mode=mode, scale=scale)
        self.model = model

    def wrapper_options(self) -> dict[str, Any]:
        return {"model": self.model, "mode": self.mode, "scale": self.scale}
