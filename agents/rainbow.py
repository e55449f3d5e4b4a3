"""Rainbow: DQN with all six of the notes' tips on at once, the "7 colours" (notes:13514-13550 [Q-Learning]).

Double DQN, Dueling heads, prioritized replay, multi-step returns, NoisyNet and distributional C51
(notes:13322-13512 [Q-Learning]) on top of DQN (notes:13298-13318 [Q-Learning]). In the notes' ablation (Hessel et al. 2018),
removing multi-step hurts most, prioritized replay and distributional next, noisy and dueling a bit,
and Double makes no difference once the rest is on (notes:13542-13550 [Q-Learning]).

It is the same agent as :class:`~rlcourse.agents.dqn.DQN`, where every component is a flag; only the
defaults differ (Rainbow's α = 0.5, n = 3, Adam ε = 1.5e-4), and its presets live in
``rlcourse/presets/rainbow.yml``: ``rlcourse train rainbow rlcourse/CartPole-v1``.
"""

from __future__ import annotations

from dataclasses import dataclass

from rlcourse.agents.dqn import DQN, DQNConfig
from rlcourse.config import hp


@dataclass
class RainbowConfig(DQNConfig):
    """DQN hyperparameters with all six Rainbow components on (notes:13514-13550 [Q-Learning])."""

    double: bool = hp(True, "Double DQN: online Q picks a*, target Q̂ values it (notes:13322-13362 [Q-Learning])")
    dueling: bool = hp(True, "dueling heads Q = V + A − mean(A) (notes:13364-13418 [Q-Learning])")
    prioritized: bool = hp(True, "prioritized replay by |TD error| (notes:13420-13432 [Q-Learning])")
    alpha: float = hp(0.5, "prioritized replay: P(i) ∝ p_i^α (Rainbow: 0.5)")
    n_step: int = hp(3, "N of multi-step targets (notes:13434-13446 [Q-Learning]; Rainbow: 3)")
    noisy: bool = hp(True, "NoisyNet layers: exploration by parameter noise (notes:13448-13474 [Q-Learning])")
    distributional: bool = hp(True, "C51 distributional Q (notes:13476-13512 [Q-Learning])")
    adam_eps: float = hp(1.5e-4, "Adam's epsilon (Rainbow's value)")


class Rainbow(DQN):
    """DQN with Double, Dueling, prioritized replay, multi-step, NoisyNet and C51 all on (notes:13514-13550 [Q-Learning])."""

    algo = "rainbow"
    config_class = RainbowConfig
