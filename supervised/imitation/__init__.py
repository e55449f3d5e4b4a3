"""Imitation plug-ins: demonstrations as Minari datasets, behaviour cloning and DAgger (notes:14042-14108 [Imitation Learning]).

* :mod:`~rlcourse.supervised.imitation.demos`: record, save and load demonstrations (:class:`Demonstrations`);
* :mod:`~rlcourse.supervised.imitation.bc`: the behaviour-cloning update of any :class:`rlcourse.policy.StochasticPolicy`;
* :mod:`~rlcourse.supervised.imitation.dagger`: DAgger's β-mixed rollout and aggregated labels.
"""

from rlcourse.supervised.imitation.demos import Demonstrations, load_demonstrations

__all__ = ["Demonstrations", "load_demonstrations"]
