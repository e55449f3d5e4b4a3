"""Proximal Policy Optimization: PPO2's clipped objective and PPO's adaptive KL penalty (notes:12787-12999 [PPO]).

Objective. Policy gradient is on-policy: each batch is used once (notes:12787-12809 [PPO]). PPO makes it
off-policy with importance sampling (notes:12811-12859 [PPO]): data sampled by θᵏ (the policy that
collected the rollout) trains θ through the surrogate

    J^{θᵏ}(θ) = E_{(s,a)~π_θᵏ} [ p_θ(a|s) / p_θᵏ(a|s) · A^{θᵏ}(s, a) ]            (notes:12861-12911 [PPO])

which is only trustworthy while θ stays close to θᵏ in *behaviour*, i.e. KL between the action
distributions, not between the parameters (notes:12919-12951 [PPO]). Two ways to keep it close:

* ``objective="kl_penalty"`` (PPO):   maximise J^{θᵏ}(θ) − β·KL(θᵏ, θ); after each update raise β when
  KL > ``kl_max`` and lower it when KL < ``kl_min`` (adaptive KL penalty, notes:12961-12963 [PPO]).
* ``objective="clip"`` (PPO2):        maximise Σ min( r·A, clip(r, 1−ε, 1+ε)·A ),  r = p_θ / p_θᵏ.
  For A > 0 the ratio gains nothing above 1+ε; for A < 0 nothing below 1−ε (notes:12965-12991 [PPO]).

Algorithm (notes:12953-12959 [PPO]): initialise θ⁰; every iteration, interact with θᵏ to collect
``n_steps × num_envs`` transitions, estimate the advantages A^{θᵏ}, then update θ *many times* on
that same batch (``n_epochs`` passes of minibatches).

Beyond the notes (they give no numbers for these): A is estimated with GAE(λ) over a learned
baseline V(s) (notes:12783-12785 [PPO] only define A = reward-to-go − b); advantages are normalised per
minibatch; an entropy bonus keeps exploring (notes:13754-13758 [Actor-Critic]); value clipping, gradient-norm
clipping, learning-rate and clip-range annealing and the ``target_kl`` early stop follow SB3's PPO.

Everything stays on the device: storage is preallocated, statistics are tensors, and the early
stop is a mask rather than a Python ``break``, so one whole iteration can be captured as a CUDA graph.
The rollout collection, GAE targets, schedules and graph capture are shared with A2C and REINFORCE
(:class:`~rlcourse.agents.on_policy.OnPolicyAgent`); this module holds what is PPO's own.

Reading order, one iteration top to bottom:

1. ``agents/base.py: Agent.learn`` → ``agents/training.py: TrainingLoop.iteration_done`` (the loop);
2. ``agents/on_policy.py: OnPolicyAgent._train_iteration`` (schedules, then collect-and-update, or its graph);
3. ``agents/on_policy.py: _collect_rollout`` and ``_policy_and_env_step`` (interact with θᵏ);
4. ``agents/on_policy.py: _compute_targets`` → ``agents/rollout.py: generalized_advantages`` (A^{θᵏ});
5. ``agents/ppo.py: PPO._update`` → ``_loss`` → ``ppo_losses`` (many updates on that batch), ``_adapt_kl_beta``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from rlcourse.agents.distributions import make_distribution, mask_logits
from rlcourse.agents.networks import policy_network
from rlcourse.agents.on_policy import OnPolicyAgent, ReferenceKL, float32
from rlcourse.agents.rollout import take_samples
from rlcourse.config import check_fields, hp
from rlcourse.vec_env import draw_uniform


@dataclass
class PPOConfig(ReferenceKL):
    """PPO hyperparameters (defaults are SB3's, so results compare directly)."""

    n_steps: int = hp(2048, "env steps collected per env in each rollout")
    batch_size: int = hp(64, "minibatch size; must divide n_steps * num_envs")
    n_epochs: int = hp(10, "passes over each rollout: θ is updated many times on one batch (notes:12953-12959 [PPO])")
    learning_rate: float = hp(3e-4, "Adam step size")
    anneal_lr: bool = hp(False, "decay the learning rate linearly to 0 over training")
    gamma: float = hp(0.99, "discount γ on future rewards (notes:12777-12779 [PPO])")
    gae_lambda: float = hp(0.95, "λ of GAE: 0 is one-step TD, 1 is Monte Carlo minus the baseline")
    objective: Literal["clip", "kl_penalty"] = hp(
        "clip", "clip = PPO2 (notes:12965-12991 [PPO]); kl_penalty = adaptive-β PPO (notes:12919-12963 [PPO])"
    )
    clip_range: float = hp(0.2, "ε of the clip objective: the ratio counts only within [1−ε, 1+ε] (notes:12973 [PPO])")
    anneal_clip_range: bool = hp(False, "decay ε linearly to 0 over training")
    clip_range_vf: float | None = hp(
        None, "clip each value prediction to within this of the rollout's value (null: off)"
    )
    kl_beta: float = hp(1.0, "initial β of the KL penalty (kl_penalty objective)")
    kl_max: float = hp(0.015, "raise β when the KL after an update is above this (notes:12961-12963 [PPO])")
    kl_min: float = hp(0.0067, "lower β when the KL after an update is below this (notes:12961-12963 [PPO])")
    kl_beta_factor: float = hp(2.0, "β is multiplied or divided by this when it adapts")
    normalize_advantage: bool = hp(True, "standardise advantages within each minibatch")
    ent_coef: float = hp(0.0, "weight of the entropy bonus (notes:13754-13758 [Actor-Critic])")
    vf_coef: float = hp(0.5, "weight of the value loss")
    max_grad_norm: float = hp(0.5, "clip the global gradient norm to this")
    target_kl: float | None = hp(None, "skip the rest of an update once approx KL > 1.5 × target_kl (null: off)")
    precision: Literal["fp32", "bf16"] = hp(
        "fp32", "bf16: the networks' forward passes (rollout and update) under torch.autocast to bfloat16"
    )
    policy_network: Literal["mlp", "token_gru"] = hp(
        "mlp", "mlp over a flat observation, or token_gru over token ids (the chatbot; agents/token_policy.py)"
    )
    net_arch: tuple[int, ...] = hp(
        (64, 64), "hidden layer sizes of the policy and of the value network (token_gru: [embedding, GRU] sizes)"
    )
    activation: Literal["tanh", "relu", "elu"] = hp("tanh", "hidden-layer activation")
    log_std_init: float = hp(0.0, "initial log standard deviation of Gaussian policies")
    adam_eps: float = hp(1e-5, "Adam's epsilon")

    def __post_init__(self) -> None:
        positive = ("n_steps", "batch_size", "n_epochs", "learning_rate", "clip_range", "kl_beta", "kl_max", "adam_eps")
        for name in positive:
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)!r}")
        if not 0.0 < self.gamma <= 1.0:
            raise ValueError(f"gamma must be in (0, 1], got {self.gamma!r}")
        if not 0.0 <= self.gae_lambda <= 1.0:
            raise ValueError(f"gae_lambda must be in [0, 1], got {self.gae_lambda!r}")
        if not 0.0 <= self.kl_min < self.kl_max:
            raise ValueError(f"kl_min must be in [0, kl_max), got kl_min={self.kl_min!r}, kl_max={self.kl_max!r}")
        if self.kl_beta_factor <= 1.0:
            raise ValueError(f"kl_beta_factor must be > 1, got {self.kl_beta_factor!r}")
        check_fields(
            self,
            nonnegative=("ent_coef", "vf_coef", "max_grad_norm"),
            positive_or_none=("clip_range_vf", "target_kl"),
            net_arch=None,
        )
        if self.normalize_advantage and self.batch_size < 2:
            raise ValueError(
                "batch_size must be >= 2 when normalize_advantage is true (a single advantage has no spread)"
            )
        check_fields(self)


def ppo_losses(
    new_log_prob: torch.Tensor,
    old_log_prob: torch.Tensor,
    advantages: torch.Tensor,
    clip_range: torch.Tensor,
    objective: str,
    kl_beta: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The policy loss to *minimise* (−J), the approximate KL(θᵏ‖θ) and the clip fraction of one minibatch.

    KL is estimated from the samples as E[(r − 1) − log r] (non-negative, unbiased for KL(θᵏ‖θ)).
    Means run over the last dimension, so a population's ``[N, b]`` minibatch gives one value per member.
    """
    log_ratio = new_log_prob - old_log_prob
    ratio = log_ratio.exp()
    approx_kl = ((ratio - 1.0) - log_ratio).mean(-1)
    clip_range = clip_range.unsqueeze(-1)  # one ε per sample row (a population: per member)
    clip_fraction = ((ratio - 1.0).abs() > clip_range).float().mean(-1)
    if objective == "clip":
        clipped = torch.clamp(ratio, 1.0 - clip_range, 1.0 + clip_range)
        loss = -torch.min(ratio * advantages, clipped * advantages).mean(-1)
    else:
        loss = -(ratio * advantages).mean(-1) + kl_beta * approx_kl
    return loss, approx_kl, clip_fraction


class PPO(OnPolicyAgent):
    """PPO on any env with a flat Box observation and a Discrete (optionally masked) or 1-D Box action space."""

    algo = "ppo"
    config_class = PPOConfig
    config: PPOConfig
    warm_start_hint = "a PPO run, or bc/dagger with network=actor_critic and the same net_arch and activation"

    def _build(self) -> None:
        c = self.config
        obs_space, action_space = self.env.single_observation_space, self.env.single_action_space
        if self.steps_per_iteration % c.batch_size:
            envs = self.steps_per_iteration // c.n_steps  # a population's envs per member (its batch is per member)
            raise ValueError(
                f"batch_size ({c.batch_size}) must divide n_steps * num_envs ({c.n_steps} * {envs} = {self.steps_per_iteration})"
            )
        self.distribution = make_distribution(action_space)
        self.policy = self._network(
            lambda: policy_network(
                c.policy_network, obs_space, action_space, self.distribution, c.net_arch, c.activation, c.log_std_init
            )
        )
        # Under CUDA graphs the learning rate must be a device tensor that a replay reads, not a constant baked into it.
        lr = torch.tensor(c.learning_rate, device=self.device) if self.cuda_graphs else c.learning_rate
        # The fused Adam kernel updates every parameter in one launch (CPU and CUDA) instead of a chain of
        # per-tensor ops, many times cheaper per step for these small networks (figures: docs/bench/).
        self.optimizer = torch.optim.Adam(
            self.policy.parameters(), lr=lr, eps=c.adam_eps, capturable=self.cuda_graphs, fused=True
        )
        self._setup_rollout()
        self.clip_range = self._member_tensor(c.clip_range)
        self.kl_beta = self._member_tensor(c.kl_beta)
        self._minibatch_loss = torch.compile(self._loss) if self.compile else self._loss

    def _modules(self) -> dict[str, torch.nn.Module]:
        return {"policy": self.policy, **self._reference_modules()}

    def _optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"optimizer": self.optimizer}

    def _extra_state(self) -> dict[str, torch.Tensor]:
        return {**super()._extra_state(), "kl_beta": self.kl_beta}

    def _apply_schedules(self) -> None:
        """Learning rate (shared) and ε for this iteration; both decay linearly to 0 when annealed."""
        super()._apply_schedules()
        c = self.config
        clip_range = c.clip_range * self._progress_remaining() if c.anneal_clip_range else c.clip_range
        # a population's ε is a device tensor (one per member); a number is filled in without a host copy
        self.clip_range.copy_(clip_range) if isinstance(clip_range, torch.Tensor) else self.clip_range.fill_(clip_range)

    def _loss(self, obs, actions, old_log_prob, old_values, advantages, returns, masks, sequences=None):
        """Minibatch loss = −J(θ) + vf_coef·value loss − ent_coef·entropy, plus diagnostics."""
        c = self.config
        with self._forward_precision():  # one pass for both (a GRU reads tokens once)
            params, values = float32(self.policy.params_and_value(obs, sequences))
        params = mask_logits(params, masks) if masks is not None else params
        new_log_prob = self.distribution.log_prob(params, actions)
        entropy = self.distribution.entropy(params)
        if c.normalize_advantage:
            advantages = (advantages - advantages.mean(-1, keepdim=True)) / (advantages.std(-1, keepdim=True) + 1e-8)
        policy_loss, approx_kl, clip_fraction = ppo_losses(
            new_log_prob, old_log_prob, advantages, self.clip_range, c.objective, self.kl_beta
        )
        if c.clip_range_vf is not None:
            values = old_values + torch.clamp(values - old_values, -c.clip_range_vf, c.clip_range_vf)
        value_loss = (returns - values).square().mean(-1)
        entropy_loss = -entropy.mean(-1)
        loss = policy_loss + c.ent_coef * entropy_loss + c.vf_coef * value_loss
        return loss, torch.stack((policy_loss, value_loss, entropy_loss, approx_kl, clip_fraction, loss))

    def _update(self) -> dict[str, torch.Tensor]:
        """Update θ for ``n_epochs`` passes of shuffled minibatches over the rollout (notes:12953-12959 [PPO])."""
        c, buf = self.config, self.buffer
        obs, actions, old_log_prob = buf.flat("obs"), buf.flat("actions"), buf.flat("log_probs")
        old_values, advantages, returns = buf.flat("values"), buf.flat("advantages"), buf.flat("returns")
        masks = buf.flat("action_masks") if buf.action_masks is not None else None
        sequences = self.policy.rollout_sequences(buf.obs, buf.actions, buf.dones)
        if sequences is not None:
            sequences = sequences.flatten(0, 1)
        sums = torch.zeros(6, *self.member_shape, device=self.device)
        n_applied = torch.zeros((), device=self.device)
        stopped = torch.zeros((), dtype=torch.bool, device=self.device)
        for _ in range(c.n_epochs):
            order = self._minibatch_order(sequences is not None)
            for start in range(0, order.shape[-1], c.batch_size):  # a population: every member's own minibatch
                idx = order[..., start : start + c.batch_size]
                loss, parts = self._minibatch_loss(
                    take_samples(obs, idx),
                    take_samples(actions, idx),
                    take_samples(old_log_prob, idx),
                    take_samples(old_values, idx),
                    take_samples(advantages, idx),
                    take_samples(returns, idx),
                    None if masks is None else take_samples(masks, idx),
                    None if sequences is None else sequences[idx],
                )
                if c.target_kl is not None:
                    stopped = stopped | (parts[3] > 1.5 * c.target_kl)
                self.optimizer.zero_grad(set_to_none=False)
                loss.sum().backward()  # a population's loss is the sum of its members' losses
                self.policy.clip_grad_norm_(c.max_grad_norm)
                self._optimizer_step(skip=stopped if c.target_kl is not None else None)
                applied = (~stopped).float()
                sums += parts.detach() * applied
                n_applied += applied
        means = sums / n_applied.clamp_min(1.0)
        stats = {
            "train/policy_gradient_loss": means[0],
            "train/value_loss": means[1],
            "train/entropy_loss": means[2],
            "train/approx_kl": means[3],
            "train/clip_fraction": means[4],
            "train/loss": means[5],
            "train/clip_range": self.clip_range.clone(),
            "train/n_updates": n_applied,
            "train/learning_rate": self._learning_rate_stat(),
        }
        if c.objective == "kl_penalty":
            self._adapt_kl_beta(self._kl_after_update(obs, actions, old_log_prob, masks, sequences))
            stats["train/kl_beta"] = self.kl_beta.clone()
        return stats

    def _minibatch_order(self, by_env: bool) -> torch.Tensor:
        """A random order of the rollout's samples; ``by_env``: whole envs' rollouts together, in a random env order,
        so a sequence network reads each episode once per minibatch (SB3's recurrent PPO minibatches sequences too)."""
        n_steps, num_envs = self.config.n_steps, self.num_envs
        if not by_env:  # a population: [N, n_steps * envs_per_member], each member's own order of its own samples
            keys = draw_uniform((n_steps * num_envs,), self.generator, self.device)
            return keys.view(*self.member_shape, -1).argsort(-1)
        envs = torch.rand(num_envs, generator=self.generator, device=self.device).argsort()
        steps = torch.arange(n_steps, device=self.device)
        return (steps.unsqueeze(0) * num_envs + envs.unsqueeze(1)).flatten()  # flat index t * num_envs + b

    @torch.no_grad()
    def _kl_after_update(self, obs, actions, old_log_prob, masks, sequences=None) -> torch.Tensor:
        """KL(θᵏ‖θ) over the whole rollout once the update is done: what the adaptive rule compares (notes:12961-12963 [PPO])."""
        params = (
            self._policy_params(obs, masks) if sequences is None else self.policy.params_and_value(obs, sequences)[0]
        )
        if sequences is not None and masks is not None:
            params = mask_logits(params, masks)
        new_log_prob = self.distribution.log_prob(params, actions)
        log_ratio = new_log_prob - old_log_prob
        return ((log_ratio.exp() - 1.0) - log_ratio).mean()

    def _adapt_kl_beta(self, kl: torch.Tensor) -> None:
        """Adaptive KL penalty (notes:12961-12963 [PPO]): KL too large → the penalty did not bite, raise β; too small → lower β."""
        c = self.config
        factor = torch.where(kl > c.kl_max, c.kl_beta_factor, torch.where(kl < c.kl_min, 1.0 / c.kl_beta_factor, 1.0))
        self.kl_beta.mul_(factor)
