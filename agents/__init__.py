"""rlcourse's agents: one module per algorithm, all behind the :class:`~rlcourse.agents.base.Agent` API."""

from rlcourse.agents.base import Agent
from rlcourse.agents.ppo import PPO, PPOConfig

#: CLI name -> agent class.
ALGOS: dict[str, type[Agent]] = {"ppo": PPO}

__all__ = ["Agent", "PPO", "PPOConfig", "ALGOS"]
