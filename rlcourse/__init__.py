"""rlcourse: batched on-device RL environments and course-style agents.

>>> import rlcourse
>>> env = rlcourse.make_vec("rlcourse/CartPole-v1", num_envs=4096, device="cpu")
>>> from rlcourse.agents import PPO
"""

__version__ = "0.1.0"

from rlcourse.device import resolve_device
from rlcourse.registry import list_envs, load_env_plugins, make_vec, register_env
from rlcourse.vec_env import TensorVecEnv

load_env_plugins()  # registers the envs of every installed env package, rlcourse's own included

__all__ = ["TensorVecEnv", "make_vec", "register_env", "list_envs", "resolve_device", "__version__"]
