"""rlcourse's batched environments, registered as ``rlcourse/<Name>-v<k>``.

The core runs :func:`register_all` through the ``rlcourse.envs`` entry point when ``rlcourse`` is
imported (see ``pyproject.toml``); a new env is one folder here plus one line below.
"""

from rlcourse.envs.classic import CartPoleVecEnv, PendulumVecEnv
from rlcourse.envs.dialogue import SlotFillingVecEnv
from rlcourse.registry import register_env


def register_all() -> None:
    """Register every env of this package (for ``make_vec`` and for ``gym.make``)."""
    register_env("rlcourse/CartPole-v1", CartPoleVecEnv)
    register_env("rlcourse/Pendulum-v1", PendulumVecEnv)
    register_env("rlcourse/SlotFilling-v0", SlotFillingVecEnv)


register_all()  # importing the package directly registers them too

__all__ = ["CartPoleVecEnv", "PendulumVecEnv", "SlotFillingVecEnv", "register_all"]
