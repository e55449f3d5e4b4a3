"""rlcourse: batched on-device RL environments and course-style agents.

>>> import rlcourse
>>> env = rlcourse.make_vec("rlcourse/CartPole-v1", num_envs=4096, device="cpu")
>>> from rlcourse.agents import PPO
"""

from rlcourse.device import resolve_device
from rlcourse.registry import list_envs, make_vec, register_env
from rlcourse.vec_env import TensorVecEnv

__version__ = "0.1.0"

import rlcourse.envs  # noqa: E402,F401  (registers the batched envs)

__all__ = ["TensorVecEnv", "make_vec", "register_env", "list_envs", "resolve_device", "__version__"]
