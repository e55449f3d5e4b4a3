"""SB3-style identity envs shared by the agent tests: a one-step task whose optimum is known exactly."""

from __future__ import annotations

import numpy as np
import torch
from gymnasium import spaces

from rlcourse.vec_env import TensorVecEnv

N_CLASSES = 4


class IdentityEnv(TensorVecEnv):
    """Observation: one-hot of a random target class; reward 1 when the action names it. A new target every step."""

    single_observation_space = spaces.Box(0.0, 1.0, (N_CLASSES,), dtype=np.float32)
    single_action_space = spaces.Discrete(N_CLASSES)
    state_names = ("target", "elapsed")

    def __init__(self, num_envs: int, device="cpu", ep_length: int = 4, validate: bool = False):
        super().__init__(num_envs, device, validate)
        self.ep_length = ep_length
        self.target = torch.zeros(self.num_envs, dtype=torch.int64, device=self.device)
        self.elapsed = torch.zeros(self.num_envs, dtype=torch.int32, device=self.device)

    def _draw_target(self) -> torch.Tensor:
        return torch.randint(0, N_CLASSES, (self.num_envs,), generator=self.generator, device=self.device)

    def _reset_where(self, mask):
        self.target.copy_(torch.where(mask, self._draw_target(), self.target))
        self.elapsed.masked_fill_(mask, 0)

    def _reward(self, actions):
        return (actions == self.target).float()

    def _transition(self, actions):
        reward = self._reward(actions)
        self.elapsed += 1
        self._next_step()
        truncated = self.elapsed >= self.ep_length
        return reward, torch.zeros_like(truncated), truncated, {}

    def _next_step(self):
        self.target.copy_(self._draw_target())

    def _observe(self):
        return torch.nn.functional.one_hot(self.target, N_CLASSES).float()


class MaskedIdentityEnv(IdentityEnv):
    """Identity env where every non-target action is invalid with probability 1/2, and an invalid action pays 10.

    An agent that ignores the masks learns to play invalid actions (expected 5 > 1), so taking one is visible.
    """

    state_names = ("target", "elapsed", "valid", "invalid_taken")

    def __init__(self, num_envs: int, device="cpu", ep_length: int = 4):
        self.valid = None  # the base constructor does not reset, but be safe
        super().__init__(num_envs, device, ep_length)
        self.valid = torch.ones(self.num_envs, N_CLASSES, dtype=torch.bool, device=self.device)
        self.invalid_taken = torch.zeros((), dtype=torch.int64, device=self.device)

    def _draw_valid(self):
        coin = torch.rand(self.num_envs, N_CLASSES, generator=self.generator, device=self.device) < 0.5
        return coin | torch.nn.functional.one_hot(self.target, N_CLASSES).bool()

    def _reset_where(self, mask):
        super()._reset_where(mask)
        if self.valid is not None:
            self.valid.copy_(torch.where(mask[:, None], self._draw_valid(), self.valid))

    def _reward(self, actions):
        taken_valid = self.valid.gather(1, actions[:, None]).squeeze(1)
        self.invalid_taken += (~taken_valid).sum()
        return torch.where(taken_valid, (actions == self.target).float(), 10.0)

    def _next_step(self):
        super()._next_step()
        self.valid.copy_(self._draw_valid())

    has_action_masks = True

    def action_masks(self) -> torch.Tensor:
        return self.valid.clone()


class ContinuousIdentityEnv(TensorVecEnv):
    """Observation: a target in [-1, 1]; action: a point in [-2, 2]; reward -(a - target)^2."""

    single_observation_space = spaces.Box(-1.0, 1.0, (1,), dtype=np.float32)
    single_action_space = spaces.Box(-2.0, 2.0, (1,), dtype=np.float32)
    state_names = ("target", "elapsed")

    def __init__(self, num_envs: int, device="cpu", ep_length: int = 4):
        super().__init__(num_envs, device)
        self.ep_length = ep_length
        self.target = torch.zeros(self.num_envs, 1, device=self.device)
        self.elapsed = torch.zeros(self.num_envs, dtype=torch.int32, device=self.device)

    def _draw_target(self):
        return torch.rand(self.num_envs, 1, generator=self.generator, device=self.device) * 2 - 1

    def _reset_where(self, mask):
        self.target.copy_(torch.where(mask[:, None], self._draw_target(), self.target))
        self.elapsed.masked_fill_(mask, 0)

    def _transition(self, actions):
        reward = -(actions - self.target).square().sum(-1)
        self.elapsed += 1
        self.target.copy_(self._draw_target())
        truncated = self.elapsed >= self.ep_length
        return reward, torch.zeros_like(truncated), truncated, {}

    def _observe(self):
        return self.target.clone()


def reward_before_and_after(agent, env_class: type[TensorVecEnv], steps: int) -> tuple[float, float]:
    """The deterministic policy's mean step reward on a fresh 32-env ``env_class``, before and after ``learn(steps)``."""
    before = mean_step_reward(agent, env_class(32))
    agent.learn(steps)
    return before, mean_step_reward(agent, env_class(32))


def mean_step_reward(agent, env: TensorVecEnv, steps: int = 32, seed: int = 123) -> float:
    """Mean per-step reward of the deterministic policy on a fresh env (evaluate() needs a registered id)."""
    obs, _ = env.reset(seed=seed)
    total = 0.0
    for _ in range(steps):
        masks = env.action_masks() if env.has_action_masks else None
        obs, reward, *_ = env.step(agent.predict(obs, deterministic=True, action_masks=masks))
        total += reward.mean().item()
    return total / steps
