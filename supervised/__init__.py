"""Supervised and generative plug-ins for RL: reward models, discriminators, curiosity, imitation, NLU.

One protocol (:mod:`~rlcourse.supervised.protocol`): a :class:`RewardModel` gives ``reward(batch) -> [B]``,
a :class:`Discriminator` also ``update(real, fake) -> stats``. Any env takes one through
:class:`ModelReward` (``mode="replace" | "add"``, with a scale); callbacks train them between rollouts
(:class:`ModelTraining`, :class:`DiscriminatorTraining`); :func:`load_plugin` reads a saved one back.

* :mod:`~rlcourse.supervised.curiosity`: the Intrinsic Curiosity Module (:func:`add_curiosity`);
* :mod:`~rlcourse.supervised.imitation`: demonstrations as Minari datasets, behaviour cloning, DAgger,
  GAIL and AIRL (:func:`~rlcourse.supervised.imitation.gail.adversarial_imitation`);
* :mod:`~rlcourse.supervised.nlu`: the learned slot-tagger NLU of the dialogue env.
"""

from rlcourse.supervised.curiosity import ICM, CuriosityConfig, add_curiosity
from rlcourse.supervised.protocol import Discriminator, RewardModel, transitions_of
from rlcourse.supervised.reward import ModelReward
from rlcourse.supervised.storage import PLUGINS, load_plugin, save_plugin
from rlcourse.supervised.training import DiscriminatorTraining, ModelTraining

__all__ = [
    "ICM",
    "PLUGINS",
    "CuriosityConfig",
    "Discriminator",
    "DiscriminatorTraining",
    "ModelReward",
    "ModelTraining",
    "RewardModel",
    "add_curiosity",
    "load_plugin",
    "save_plugin",
    "transitions_of",
]
