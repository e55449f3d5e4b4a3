"""Write your own batched env, register it, and train PPO on it: no agent changes.

A corridor of LENGTH cells: every episode starts in the leftmost cell, the goal is the rightmost one.
Each step costs 0.01, reaching the goal pays 1 and ends the episode, and an episode is cut off after
MAX_STEPS steps. The env declares one outcome, ``success``: every agent then logs
``rollout/success_rate`` and ``evaluate()`` returns ``success_rate``.

    python examples/custom_env.py
"""

import torch
from gymnasium import spaces

import rlcourse
from rlcourse.agents import PPO

LENGTH = 8
MAX_STEPS = 32


class CorridorVecEnv(rlcourse.TensorVecEnv):
    """Observation: a one-hot of the agent's cell; actions: 0 = left, 1 = right."""

    state_names = ("position", "elapsed")  # what a checkpoint saves and restores
    outcome_keys = ("success",)
    single_observation_space = spaces.Box(0.0, 1.0, (LENGTH,), dtype="float32")
    single_action_space = spaces.Discrete(2)

    def __init__(self, num_envs, device="cpu", validate=False, render_mode=None):
        super().__init__(num_envs, device, validate, render_mode)
        self.position = torch.zeros(self.num_envs, dtype=torch.int64, device=self.device)
        self.elapsed = torch.zeros(self.num_envs, dtype=torch.int64, device=self.device)

    def _reset_where(self, mask):
        self.position.masked_fill_(mask, 0)
        self.elapsed.masked_fill_(mask, 0)

    def _transition(self, actions):
        self.position.add_(actions.long() * 2 - 1).clamp_(0, LENGTH - 1)
        self.elapsed += 1
        success = self.position == LENGTH - 1
        reward = torch.where(success, 1.0, -0.01)
        truncated = (self.elapsed >= MAX_STEPS) & ~success
        return reward, success, truncated, {"success": success}

    def _observe(self):
        return torch.nn.functional.one_hot(self.position, LENGTH).float()


rlcourse.register_env("examples/Corridor-v0", CorridorVecEnv)

agent = PPO("examples/Corridor-v0", num_envs=16, device="cpu", seed=0, n_steps=32, learning_rate=1e-3)
agent.learn(total_timesteps=20_000)
result = agent.evaluate(n_episodes=20)
print(f"success rate {result['success_rate']:.2f}, mean length {result['mean_length']:.1f} (best: {LENGTH - 1})")
