"""rlcourse's agents: one module per algorithm, all behind the :class:`~rlcourse.agents.base.Agent` API."""

from rlcourse.agents.a2c import A2C, A2CConfig
from rlcourse.agents.a3c import A3C, A3CConfig
from rlcourse.agents.base import Agent
from rlcourse.agents.bc import BC, BCConfig
from rlcourse.agents.dagger import DAgger, DAggerConfig
from rlcourse.agents.ddpg import DDPG, DDPGConfig
from rlcourse.agents.dqn import DQN, DQNConfig
from rlcourse.agents.population import A2CPopulation, PPOPopulation
from rlcourse.agents.ppo import PPO, PPOConfig
from rlcourse.agents.pqn import PQN, PQNConfig
from rlcourse.agents.rainbow import Rainbow, RainbowConfig
from rlcourse.agents.reinforce import REINFORCE, REINFORCEConfig

#: CLI name -> agent class.
ALGOS: dict[str, type[Agent]] = {
    "ppo": PPO,
    "reinforce": REINFORCE,
    "a2c": A2C,
    "a3c": A3C,
    "dqn": DQN,
    "pqn": PQN,
    "rainbow": Rainbow,
    "ddpg": DDPG,
    "bc": BC,
    "dagger": DAgger,
}
#: The algorithms that learn by supervision from an expert (demonstrations or a labelling expert), not from reward.
IMITATION_ALGOS = frozenset({"bc", "dagger"})

__all__ = [
    "Agent",
    "PPO",
    "PPOConfig",
    "REINFORCE",
    "REINFORCEConfig",
    "A2C",
    "A2CConfig",
    "A3C",
    "A3CConfig",
    "DQN",
    "DQNConfig",
    "PQN",
    "PQNConfig",
    "Rainbow",
    "RainbowConfig",
    "DDPG",
    "DDPGConfig",
    "BC",
    "BCConfig",
    "DAgger",
    "DAggerConfig",
    "PPOPopulation",
    "A2CPopulation",
    "ALGOS",
    "IMITATION_ALGOS",
]
