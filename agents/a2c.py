"""Advantage Actor-Critic (A2C): the synchronous actor-critic of notes:13642-13758 [Actor-Critic].

Why a critic. The policy gradient weights ∇log p_θ(a_t|s_t) by G_t − b, where G_t, the return that
followed (s_t, a_t), is one sample of a random variable with a large variance (notes:13646-13676 [Actor-Critic]).
Its expectation is Q^π(s_t, a_t), and with the baseline b = V^π(s_t) the weight becomes
Q^π(s_t, a_t) − V^π(s_t) (notes:13692-13704 [Actor-Critic]). A2C estimates V alone and writes Q through it,
Q^π(s_t, a_t) ≈ r_t + γ V^π(s_{t+1}), dropping the expectation over the next state:

    A(s_t, a_t) = r_t + γ V(s_{t+1}) − V(s_t)                                         (notes:13706-13740 [Actor-Critic])

Here that one-step estimate is generalised to ``n_steps`` (each env plays ``n_steps`` steps, and a
state's advantage uses every reward up to the end of the rollout and then V of the state there),
and further to GAE(λ): ``gae_lambda=1`` is exactly that n-step advantage (SB3's default),
``gae_lambda=0`` is the one-step advantage of the notes. The critic regresses V(s_t) onto the
same target, A + V(s_t) (TD, notes:13039-13049 [Q-Learning]).

Objective, minimised by one gradient step per rollout (the data is used once, notes:12719 [PPO]):

    loss = −mean[A · log π_θ(a_t|s_t)] − ent_coef · mean[H(π_θ(·|s_t))] + vf_coef · mean[(target − V(s_t))²]

with the two tips of notes:13742-13758 [Actor-Critic]: π and V **share their first layers** (one trunk, two heads,
:class:`~rlcourse.agents.networks.SharedActorCritic`), and an **entropy bonus** keeps π from becoming
certain too early. The defaults are SB3's A2C (RMSprop, α 0.99, ε 1e-5, lr 7e-4, n_steps 5, clip the
gradient norm at 0.5), so results compare directly; ``optimizer="adam"`` is the alternative.

Action masks work as in PPO: invalid actions get probability 0 both when acting and in the loss.
Rollout collection, truncation bootstrapping, GAE, schedules and CUDA-graph capture are shared with
PPO and REINFORCE (:class:`~rlcourse.agents.on_policy.OnPolicyAgent`). A3C
(:mod:`rlcourse.agents.a3c`) runs this same update in asynchronous workers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from gymnasium import spaces

from rlcourse.agents.distributions import make_distribution, mask_logits
from rlcourse.agents.networks import SharedActorCritic
from rlcourse.agents.on_policy import OnPolicyAgent
from rlcourse.config import check_fields, hp


@dataclass
class A2CConfig:
    """A2C hyperparameters (defaults are SB3's A2C, so results compare directly)."""

    n_steps: int = hp(5, "env steps per env in each rollout; one update per rollout")
    learning_rate: float = hp(7e-4, "optimizer step size")
    anneal_lr: bool = hp(False, "decay the learning rate linearly to 0 over training")
    gamma: float = hp(0.99, "discount γ on future rewards (notes:12777-12779 [PPO])")
    gae_lambda: float = hp(
        1.0, "λ of GAE: 1 is the n-step advantage, 0 the one-step r + γV(s') − V(s) of notes:13706-13740 [Actor-Critic]"
    )
    ent_coef: float = hp(0.0, "weight of the entropy bonus (notes:13754-13758 [Actor-Critic])")
    vf_coef: float = hp(0.5, "weight of the value loss")
    max_grad_norm: float | None = hp(0.5, "clip the global gradient norm to this (null: off)")
    normalize_advantage: bool = hp(False, "standardise the advantages of each rollout")
    optimizer: Literal["rmsprop", "adam"] = hp("rmsprop", "rmsprop (SB3's A2C) or adam")
    rms_prop_alpha: float = hp(0.99, "RMSprop's smoothing constant α")
    optimizer_eps: float = hp(1e-5, "ε of RMSprop or Adam")
    net_arch: tuple[int, ...] = hp(
        (64, 64), "hidden sizes of the trunk shared by the policy and value heads (notes:13744-13752 [Actor-Critic])"
    )
    head_arch: tuple[int, ...] = hp(
        (), "hidden sizes of each head on top of the trunk ([]: each head is one linear layer)"
    )
    activation: Literal["tanh", "relu", "elu"] = hp("tanh", "hidden-layer activation")
    log_std_init: float = hp(0.0, "initial log standard deviation of Gaussian policies")

    def __post_init__(self) -> None:
        check_fields(self, positive=("n_steps", "learning_rate", "optimizer_eps"), net_arch=None)
        if not 0.0 < self.gamma <= 1.0:
            raise ValueError(f"gamma must be in (0, 1], got {self.gamma!r}")
        if not 0.0 <= self.gae_lambda <= 1.0:
            raise ValueError(f"gae_lambda must be in [0, 1], got {self.gae_lambda!r}")
        if not 0.0 <= self.rms_prop_alpha < 1.0:
            raise ValueError(f"rms_prop_alpha must be in [0, 1), got {self.rms_prop_alpha!r}")
        check_fields(self, nonnegative=("ent_coef", "vf_coef"), positive_or_none=("max_grad_norm",))
        if any(size <= 0 for size in self.head_arch):
            raise ValueError(f"head_arch must hold positive sizes, got {list(self.head_arch)!r}")


def actor_critic_loss(
    log_prob: torch.Tensor,
    entropy: torch.Tensor,
    values: torch.Tensor,
    advantages: torch.Tensor,
    returns: torch.Tensor,
    ent_coef: float,
    vf_coef: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The A2C loss to minimise and its parts ``[policy, value, entropy, total]`` (see the module docstring).

    Means run over the last dimension: a population's ``[N, n]`` samples give one loss per member.
    """
    policy_loss = -(advantages * log_prob).mean(-1)
    value_loss = (returns - values).square().mean(-1)
    entropy_loss = -entropy.mean(-1)
    loss = policy_loss + ent_coef * entropy_loss + vf_coef * value_loss
    return loss, torch.stack((policy_loss, value_loss, entropy_loss, loss)).detach()


class A2C(OnPolicyAgent):
    """A2C on any env with a flat Box observation and a Discrete (optionally masked) or 1-D Box action space."""

    algo = "a2c"
    config_class = A2CConfig
    config: A2CConfig
    #: An iteration is only n_steps × num_envs steps: log every 100 of them, as SB3's A2C does (logging costs a sync).
    default_log_interval = 100

    def _build(self) -> None:
        c = self.config
        obs_space, action_space = self.env.single_observation_space, self.env.single_action_space
        if not isinstance(obs_space, spaces.Box) or len(obs_space.shape) != 1:
            raise ValueError(f"{self.algo.upper()} needs a flat Box observation space, got {obs_space}")
        if c.normalize_advantage and self.steps_per_iteration < 2:
            raise ValueError(
                "normalize_advantage needs a rollout of at least 2 steps (n_steps * num_envs); a single advantage has no spread"
            )
        self.distribution = make_distribution(action_space)
        self.policy = self._network(
            lambda: SharedActorCritic(
                obs_space.shape[0], self.distribution, c.net_arch, c.activation, c.log_std_init, c.head_arch
            )
        )
        self.optimizer = self._make_optimizer(self.policy.parameters())
        self._setup_rollout()
        self._loss_fn = torch.compile(self._loss) if self.compile else self._loss

    def _make_optimizer(self, params) -> torch.optim.Optimizer:
        c = self.config
        # Under CUDA graphs the learning rate must be a device tensor that a replay reads, not a constant baked into it.
        lr = torch.tensor(c.learning_rate, device=self.device) if self.cuda_graphs else c.learning_rate
        if c.optimizer == "adam":
            return torch.optim.Adam(params, lr=lr, eps=c.optimizer_eps, capturable=self.cuda_graphs)
        return torch.optim.RMSprop(
            params, lr=lr, alpha=c.rms_prop_alpha, eps=c.optimizer_eps, capturable=self.cuda_graphs
        )

    def _modules(self) -> dict[str, torch.nn.Module]:
        return {"policy": self.policy}

    def _optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"optimizer": self.optimizer}

    def _policy_and_value(self, obs: torch.Tensor, action_masks: torch.Tensor | None):
        """Both heads from one pass through the shared trunk."""
        params, value = self.policy.params_and_value(obs)
        return (mask_logits(params, action_masks) if action_masks is not None else params), value

    # ----------------------------------------------------------------- the update
    def _loss(self, obs, actions, advantages, returns, masks):
        c = self.config
        params, values = self._policy_and_value(obs, masks)
        log_prob = self.distribution.log_prob(params, actions)
        entropy = self.distribution.entropy(params)
        if c.normalize_advantage:
            advantages = (advantages - advantages.mean(-1, keepdim=True)) / (advantages.std(-1, keepdim=True) + 1e-8)
        return actor_critic_loss(log_prob, entropy, values, advantages, returns, c.ent_coef, c.vf_coef)

    def _update(self) -> dict[str, torch.Tensor]:
        """One gradient step on the whole rollout (the batch is used once, then discarded)."""
        c, buf = self.config, self.buffer
        masks = buf.flat("action_masks") if buf.action_masks is not None else None
        loss, parts = self._loss_fn(
            buf.flat("obs"), buf.flat("actions"), buf.flat("advantages"), buf.flat("returns"), masks
        )
        self.policy.zero_grad(set_to_none=False)
        loss.sum().backward()  # a population's loss is the sum of its members' losses
        if c.max_grad_norm is not None:
            self.policy.clip_grad_norm_(c.max_grad_norm)
        self._apply_gradients()
        return {
            "train/policy_loss": parts[0],
            "train/value_loss": parts[1],
            "train/entropy_loss": parts[2],
            "train/loss": parts[3],
            "train/learning_rate": self._learning_rate_stat(),
        }

    def _apply_gradients(self) -> None:
        """Apply the gradients now in ``self.policy``'s ``.grad`` (A3C's workers send them to the shared network instead)."""
        self._optimizer_step(skip=None)
