"""REINFORCE, the vanilla policy gradient of notes:12418-12785 [Deep RL to PPO], with its two tips and a discount.

Objective (notes:12430-12455 [Deep RL]): maximise the expected return R̄_θ = Σ_τ R(τ) P(τ|θ). Only
p(a_t|s_t, θ) in P(τ|θ) depends on θ, so (notes:12467-12516 [Deep RL])

    ∇R̄_θ ≈ 1/N Σ_n Σ_t R(τⁿ) ∇log p_θ(a_tⁿ | s_tⁿ)

which is a classifier's log-likelihood with every sample weighted by its return: state = input,
sampled action = label (notes:12713-12733 [PPO]). The loss minimised here is therefore

    loss = −mean_t[ w_t · log π_θ(a_t|s_t) ]     (+ vf_coef · value loss − ent_coef · entropy)

averaged over the steps used (a constant rescaling of the notes' 1/N Σ_n Σ_t), one gradient step
per batch: the data is used once and thrown away (notes:12719 [PPO]). The weight w_t is built in steps:

* ``reward_to_go: false`` — the whole-episode return R(τ) = Σ_t r_t for every step of the episode
  (notes:12520 [Deep RL]); undiscounted as in the notes, so it needs ``gamma: 1``.
* ``reward_to_go: true`` (tip 2, notes:12751-12779 [PPO]) — only what came after the action counts,
  G_t = Σ_{t'≥t} γ^{t'-t} r_{t'}; rewards [5, 0, −2] with γ = 1 give [3, −2, −2] (notes:12759-12769 [PPO]).
* ``baseline`` (tip 1, notes:12735-12749 [PPO], 12781-12785) subtracts b so weights can be negative:
  ``none`` (b = 0); ``mean``, the running mean of the weights of earlier batches, as the notes
  suggest (updated only after a batch is used, so b never depends on the actions it weighs);
  ``value``, a learned V(s_t) (a separate MLP regressed onto G_t): then w_t = G_t − V(s_t) is
  the advantage A^θ(s_t, a_t) of notes:12783-12785 [PPO].

Batches. Each iteration plays ``n_steps`` steps in each of the ``num_envs`` envs (fixed shapes,
so the iteration can be captured as a CUDA graph), and returns-to-go are computed vectorised
within each episode segment (:func:`~rlcourse.agents.rollout.rewards_to_go`). An episode that
began in an earlier batch keeps its real return: R(τ) adds what the env already paid in it.

The incomplete tail. The episode running in each env when the batch ends has no known G_t yet.
Treating the batch end as the episode's end would silently undercount every G_t near it, so:

* with ``baseline: value`` the tail is **bootstrapped**: G_t = Σ γ^k r + γ^{T−t} V(s_T), as PPO
  and A2C do (the only bias is the critic's error, shrinking as V improves);
* without a critic it is **masked**: those steps get weight 0 and leave the mean, the running
  baseline and the normaliser; an iteration that finished no episode makes no update at all. The
  steps used are exactly those whose episode ended inside the batch. Their returns are exact, but
  which steps qualify depends on how soon their episode ended, which favours short episodes (and
  the last steps of long ones); the effect shrinks as ``n_steps`` grows past the episode length,
  and ``train/used_fraction`` reports how much of each batch was used. Prefer ``n_steps`` of
  several episode lengths, or ``baseline: value``.

Time limits: with a critic a truncated episode bootstraps from V(final state) (shared with PPO,
:class:`~rlcourse.agents.on_policy.OnPolicyAgent`); without one its return ends at the limit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from rlcourse.agents.distributions import make_distribution, mask_logits
from rlcourse.agents.networks import policy_network
from rlcourse.agents.on_policy import OnPolicyAgent, ReferenceKL
from rlcourse.agents.rollout import ends_within, explained_variance, rewards_to_go
from rlcourse.config import check_fields, hp


@dataclass
class REINFORCEConfig(ReferenceKL):
    """REINFORCE hyperparameters (the notes give only γ ∈ {0.9, 0.99}; the rest were measured on CartPole)."""

    n_steps: int = hp(256, "env steps per env in each batch; one update per batch")
    learning_rate: float = hp(1e-3, "Adam step size (notes:12713 [PPO]: 'adam, rmsprop')")
    anneal_lr: bool = hp(False, "decay the learning rate linearly to 0 over training")
    gamma: float = hp(0.99, "discount γ of the reward-to-go (notes:12777-12779 [PPO]); 1 with reward_to_go: false")
    reward_to_go: bool = hp(
        True, "weight by the reward after the action (tip 2, notes:12751-12779 [PPO]); false: the whole-episode R(τ)"
    )
    baseline: Literal["none", "mean", "value"] = hp(
        "mean",
        "b subtracted from the weights (tip 1, notes:12735-12749 [PPO]): none, a running mean, or a learned V(s)",
    )
    baseline_decay: float = hp(0.9, "mean baseline: weight of the old running mean when a batch's mean is taken in")
    normalize_advantage: bool = hp(False, "standardise the weights of each batch (after the baseline)")
    ent_coef: float = hp(0.0, "weight of the entropy bonus")
    vf_coef: float = hp(0.5, "weight of the value loss (baseline: value)")
    max_grad_norm: float | None = hp(None, "clip the global gradient norm to this (null: off)")
    policy_network: Literal["mlp", "token_gru"] = hp(
        "mlp", "mlp over a flat observation, or token_gru over token ids (the chatbot; agents/token_policy.py)"
    )
    net_arch: tuple[int, ...] = hp(
        (64, 64), "hidden layer sizes of the policy (and of the value network; token_gru: [embedding, GRU] sizes)"
    )
    activation: Literal["tanh", "relu", "elu"] = hp("tanh", "hidden-layer activation")
    log_std_init: float = hp(0.0, "initial log standard deviation of Gaussian policies")
    adam_eps: float = hp(1e-5, "Adam's epsilon")

    def __post_init__(self) -> None:
        check_fields(self, positive=("n_steps", "learning_rate", "adam_eps"), net_arch=None)
        if not 0.0 < self.gamma <= 1.0:
            raise ValueError(f"gamma must be in (0, 1], got {self.gamma!r}")
        if not self.reward_to_go and self.gamma != 1.0:
            raise ValueError(
                f"gamma must be 1 with reward_to_go: false (the whole-episode R(τ) of notes:12424 [Deep RL] is undiscounted), got {self.gamma!r}"
            )
        if not 0.0 <= self.baseline_decay < 1.0:
            raise ValueError(f"baseline_decay must be in [0, 1), got {self.baseline_decay!r}")
        check_fields(self, nonnegative=("ent_coef", "vf_coef"), positive_or_none=("max_grad_norm",))


def policy_gradient_weights(
    rewards: torch.Tensor,
    dones: torch.Tensor,
    gamma: float,
    reward_to_go: bool,
    return_so_far: torch.Tensor,
    last_value: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The weights w_t of log π(a_t|s_t) before the baseline, the returns-to-go, and which steps are usable.

    Args:
        rewards, dones: ``[T, B]``; ``dones[t]`` ends the episode after step t.
        return_so_far: ``[B]``, what the episode running at step 0 had already paid (for R(τ)).
        last_value: ``[B]`` V(s_T) to bootstrap the episodes cut by the batch end, or None to mask them.

    Returns ``(weights, returns_to_go, used)``: G_t or R(τ) per step, G_t per step, and a bool mask
    that is False on the cut-off tail when it is masked.
    """
    returns = rewards_to_go(rewards, dones, gamma, last_value)
    used = torch.ones_like(dones) if last_value is not None else ends_within(dones)
    if reward_to_go:
        return returns, returns, used
    # R(τ) = (rewards of the episode before step t) + G_t with γ = 1: the same number on every step of an episode.
    weights = torch.empty_like(returns)
    paid = return_so_far
    for t in range(rewards.shape[0]):
        weights[t] = paid + returns[t]
        paid = torch.where(dones[t], 0.0, paid + rewards[t])
    return weights, returns, used


class REINFORCE(OnPolicyAgent):
    """REINFORCE on any env with a flat Box observation and a Discrete (optionally masked) or 1-D Box action space."""

    algo = "reinforce"
    config_class = REINFORCEConfig
    config: REINFORCEConfig

    def _build(self) -> None:
        c = self.config
        obs_space, action_space = self.env.single_observation_space, self.env.single_action_space
        self.distribution = make_distribution(action_space)
        self.has_critic = c.baseline == "value"
        self.policy = policy_network(
            c.policy_network,
            obs_space,
            action_space,
            self.distribution,
            c.net_arch,
            c.activation,
            c.log_std_init,
            critic=self.has_critic,
        ).to(self.device)
        lr = torch.tensor(c.learning_rate, device=self.device) if self.cuda_graphs else c.learning_rate
        self.optimizer = torch.optim.Adam(
            self.policy.parameters(), lr=lr, eps=c.adam_eps, capturable=self.cuda_graphs, fused=True
        )
        self._setup_rollout()
        self.used = torch.zeros(c.n_steps, self.num_envs, dtype=torch.bool, device=self.device)
        self.return_so_far = torch.zeros(self.num_envs, device=self.device)
        self.mean_baseline = torch.zeros((), device=self.device)
        self.mean_baseline_ready = torch.zeros((), dtype=torch.bool, device=self.device)
        self._loss_fn = torch.compile(self._loss) if self.compile else self._loss

    def _modules(self) -> dict[str, torch.nn.Module]:
        return {"policy": self.policy, **self._reference_modules()}

    def _optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"optimizer": self.optimizer}

    def _extra_state(self) -> dict[str, torch.Tensor]:
        return {
            **super()._extra_state(),
            "mean_baseline": self.mean_baseline,
            "mean_baseline_ready": self.mean_baseline_ready,
        }

    def _value(self, obs: torch.Tensor) -> torch.Tensor:
        return self.policy.value(obs) if self.has_critic else obs.new_zeros(obs.shape[0])

    # ----------------------------------------------------------------- weights of the log-likelihoods
    def _collect_rollout(self) -> dict[str, torch.Tensor]:
        # R(τ) of the episode already running needs what it paid before this batch: the env keeps that sum.
        self.return_so_far.copy_(self.env.episode_return)
        return super()._collect_rollout()

    def _compute_targets(self) -> dict[str, torch.Tensor]:
        c, buf = self.config, self.buffer
        last_value = self._value(self.obs) if self.has_critic else None
        weights, returns, used = policy_gradient_weights(
            buf.rewards, buf.dones, c.gamma, c.reward_to_go, self.return_so_far, last_value
        )
        n_used = used.sum().clamp_min(1)
        stats = {"train/used_fraction": used.float().mean()}
        if c.baseline == "value":
            advantages = weights - buf.values
            stats["train/explained_variance"] = explained_variance(buf.values.flatten(), returns.flatten())
        elif c.baseline == "mean":
            advantages = weights - self.mean_baseline
            stats["train/baseline"] = self.mean_baseline.clone()
            self._update_mean_baseline((weights * used).sum() / n_used, used.any())
        else:
            advantages = weights
        if c.normalize_advantage:
            mean = (advantages * used).sum() / n_used
            std = (((advantages - mean) * used).square().sum() / (n_used - 1).clamp_min(1)).sqrt()
            advantages = (advantages - mean) / (std + 1e-8)
        buf.advantages.copy_(torch.where(used, advantages, 0.0))
        buf.returns.copy_(returns)
        self.used.copy_(used)
        return stats

    def _update_mean_baseline(self, batch_mean: torch.Tensor, has_data: torch.Tensor) -> None:
        """b ← decay·b + (1 − decay)·(this batch's mean weight); the first batch sets b outright."""
        decay = self.config.baseline_decay
        blended = torch.where(
            self.mean_baseline_ready, decay * self.mean_baseline + (1 - decay) * batch_mean, batch_mean
        )
        self.mean_baseline.copy_(torch.where(has_data, blended, self.mean_baseline))
        self.mean_baseline_ready.logical_or_(has_data)

    # ----------------------------------------------------------------- the update
    def _loss(self, obs, actions, weights, returns, used, masks, sequences=None):
        c = self.config
        if sequences is not None:  # a sequence network reads each episode once, for π and V together
            params, values = self.policy.params_and_value(obs, sequences)
        else:
            params, values = self.policy.policy_params(obs), self.policy.value(obs) if self.has_critic else None
        params = mask_logits(params, masks) if masks is not None else params
        log_prob = self.distribution.log_prob(params, actions)
        policy_loss = -(weights * log_prob).sum() / used.sum().clamp_min(1)  # unused steps have weight 0
        entropy_loss = -self.distribution.entropy(params).mean()
        loss = policy_loss + c.ent_coef * entropy_loss
        value_loss = torch.zeros((), device=obs.device)
        if self.has_critic:
            value_loss = (returns - values).square().mean()
            loss = loss + c.vf_coef * value_loss
        return loss, torch.stack((policy_loss, value_loss, entropy_loss, loss)).detach()

    def _update(self) -> dict[str, torch.Tensor]:
        """One gradient step on the batch (notes:12719 [PPO]: the data is used once, then discarded)."""
        c, buf = self.config, self.buffer
        masks = buf.flat("action_masks") if buf.action_masks is not None else None
        used = self.used.flatten()
        sequences = self.policy.rollout_sequences(buf.obs, buf.actions, buf.dones)
        loss, parts = self._loss_fn(
            buf.flat("obs"),
            buf.flat("actions"),
            buf.flat("advantages"),
            buf.flat("returns"),
            used,
            masks,
            None if sequences is None else sequences.flatten(0, 1),
        )
        self.optimizer.zero_grad(set_to_none=False)
        loss.backward()
        if c.max_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_(self.policy.parameters(), c.max_grad_norm)
        # Without a critic a batch may finish no episode: then there is nothing to learn from, and no step is taken.
        self._optimizer_step(skip=None if self.has_critic else ~used.any())
        stats = {
            "train/policy_loss": parts[0],
            "train/entropy_loss": parts[2],
            "train/loss": parts[3],
            "train/learning_rate": self._learning_rate_stat(),
        }
        if self.has_critic:
            stats["train/value_loss"] = parts[1]
        return stats
