"""What the on-policy agents (REINFORCE, A2C, PPO) share: collect a fixed-length rollout, then update.

Policy gradient is on-policy: the actor that learns is the one that plays, so each iteration plays
``n_steps`` steps in every env with the current θ, uses that batch for its update, and throws it
away (notes:12713-12733 [PPO], notes:12787-12809 [PPO]). :class:`OnPolicyAgent` writes that loop once:

* ``_collect_rollout`` samples a ~ π_θ(·|s), steps the batched env, records s, a, log π(a|s), V(s),
  r and done into the preallocated :class:`~rlcourse.agents.rollout.RolloutBuffer`, and then asks
  ``_compute_targets`` for the weights of the log-likelihoods (GAE by default; REINFORCE overrides it);
* a truncated episode (time limit) did not end in the MDP, so its last reward gets γ·V(final state)
  added: the estimate bootstraps from where the limit cut it off. Without a critic V is 0 here;
* ``_train_iteration`` applies the learning-rate schedule and runs collect-then-update eagerly, or
  captured once as a CUDA graph and replayed (every tensor stays at a fixed address, no host syncs).

A subclass writes ``_build`` (calling :meth:`_setup_rollout`), ``_update`` and the checkpoint hooks.
Its config has ``n_steps``, ``gamma``, ``gae_lambda`` (where GAE is used), ``learning_rate`` and
``anneal_lr``, and its network ``self.policy`` has ``policy_params(obs)`` (and ``value(obs)`` when
the agent has a critic).
"""

from __future__ import annotations

import abc
import contextlib
import copy
import warnings
from dataclasses import dataclass

import torch
from gymnasium import spaces

from rlcourse.agents.base import Agent
from rlcourse.agents.distributions import mask_logits
from rlcourse.agents.networks import PolicyModule
from rlcourse.agents.rollout import (
    RolloutBuffer,
    explained_variance,
    generalized_advantages,
)
from rlcourse.config import hp
from rlcourse.vec_env import true_next_obs


def float32(outputs):
    """A network's outputs (tensors, None, or nested tuples of them) with every floating tensor as float32, after a
    bf16 forward pass (masks and indices pass through)."""
    if isinstance(outputs, tuple):
        return tuple(float32(part) for part in outputs)
    return outputs.float() if isinstance(outputs, torch.Tensor) and outputs.is_floating_point() else outputs


@dataclass
class ReferenceKL:
    """The KL penalty to a reference policy, RLHF-style (the fields of PPO's and REINFORCE's configs)."""

    kl_ref_coef: float = hp(
        0.0,
        "β of the per-token KL penalty: every reward gets −β·(log π(a|s) − log π_ref(a|s)), π_ref the policy "
        "training starts from (the --init-from weights); 0: off",
    )
    kl_ref_target: float | None = hp(
        None, "adapt β after each rollout to hold the mean per-token KL to π_ref near this (null: a fixed β)"
    )
    kl_ref_adapt_rate: float = hp(
        0.1, "K of the adaptive β: β ← β·(1 + K·clip(KL/target − 1, ±0.2)) per rollout (Ziegler et al. 2019's K_β)"
    )


class OnPolicyAgent(Agent):
    """An :class:`Agent` whose iteration is "play ``n_steps`` with θ, then update θ on that batch"."""

    #: The policy network (agents that act through another network, such as PQN's Q, leave it None).
    policy: PolicyModule | None = None
    #: Whether V(s) is learned; without a critic V is 0 wherever the rollout reads it.
    has_critic: bool = True

    def _graph_safe_network(self) -> bool:
        """A token GRU policy reads to the host while it acts (how many rows start a new sequence)."""
        return getattr(self.config, "policy_network", "mlp") != "token_gru"

    @property
    def steps_per_iteration(self) -> int:
        return self.config.n_steps * self.num_envs

    def _setup_rollout(self) -> None:
        """Allocate the rollout storage and pick the (optionally compiled) hot functions; call from ``_build``."""
        obs_space, action_space = self.env.single_observation_space, self.env.single_action_space
        mask_dim = int(action_space.n) if self.has_action_masks else None
        action_dtype = torch.int64 if isinstance(action_space, spaces.Discrete) else torch.float32
        self.buffer = RolloutBuffer.allocate(
            self.config.n_steps,
            self.num_envs,
            obs_space.shape,
            action_space.shape,
            action_dtype,
            mask_dim,
            self.device,
            groups=self.member_shape[0] if self.member_shape else None,  # a population's members (one or more)
        )
        self._setup_reference()
        self._rollout_step = torch.compile(self._policy_and_env_step) if self.compile else self._policy_and_env_step
        self._advantages = torch.compile(generalized_advantages) if self.compile else generalized_advantages

    # ----------------------------------------------------------------- the reference policy of the KL penalty
    def _setup_reference(self) -> None:
        """A frozen copy of the starting policy, where the config asks for a KL penalty to it (else None)."""
        coef, target = getattr(self.config, "kl_ref_coef", 0.0), getattr(self.config, "kl_ref_target", None)
        if not coef >= 0 or (target is not None and not target > 0):
            raise ValueError(f"kl_ref_coef must be >= 0 and kl_ref_target > 0 or null, got {coef!r} and {target!r}")
        if not getattr(self.config, "kl_ref_adapt_rate", 0.1) > 0:
            raise ValueError(f"kl_ref_adapt_rate must be > 0, got {self.config.kl_ref_adapt_rate!r}")
        if target is not None and coef == 0:
            raise ValueError("kl_ref_target adapts kl_ref_coef, so it needs a starting kl_ref_coef > 0")
        self.reference = None
        if coef > 0:
            self.reference = copy.deepcopy(self.policy).requires_grad_(False)
        self.kl_ref_coef = torch.tensor(float(coef), device=self.device)
        self._warm_started = False
        self._ref_kl_sum = torch.zeros((), device=self.device)

    def _extra_state(self) -> dict[str, torch.Tensor]:
        """β of the KL penalty (it adapts), besides what a subclass adds."""
        return {} if self.reference is None else {"kl_ref_coef": self.kl_ref_coef}

    def _on_warm_start(self) -> None:
        """π_ref is the policy training starts from: after a warm start, the loaded weights (whatever the source's own)."""
        if self.reference is not None:
            self.reference.load_state_dict(self.policy.state_dict())
            self._warm_started = True

    def _on_state_loaded(self) -> None:
        super()._on_state_loaded()
        self._warm_started = True  # a checkpoint's π_ref is the one its run started from

    def _before_learning(self) -> None:
        """A KL penalty to a random network anchors to noise: say so once (a warm start or a checkpoint sets it)."""
        if self.reference is not None and not self._warm_started and self.num_timesteps == 0:
            warnings.warn(
                f"kl_ref_coef={self.config.kl_ref_coef} holds the policy near its random initial weights; warm-start "
                "it with init_from (a pre-trained language model, for instance) or set kl_ref_coef=0",
                stacklevel=3,
            )

    def _reference_modules(self) -> dict[str, torch.nn.Module]:
        """``{"reference": π_ref}`` for the checkpoint where there is one."""
        return {} if self.reference is None else {"reference": self.reference}

    def _reference_penalty(self, obs, action_masks, actions, log_prob) -> torch.Tensor:
        """β·(log π(a|s) − log π_ref(a|s)) per sub-env: its mean over a rollout estimates KL(π‖π_ref) per token."""
        reference = self.reference
        params = reference.rollout_params_and_value(obs)[0] if reference.keeps_state else reference.policy_params(obs)
        params = mask_logits(params, action_masks) if action_masks is not None else params
        kl = log_prob - self.distribution.log_prob(params, actions)
        self._ref_kl_sum += kl.mean()
        return self.kl_ref_coef * kl

    def _reference_stats(self) -> dict[str, torch.Tensor]:
        """``train/ref_kl`` (the rollout's mean per-token KL) and β; an adaptive β moves toward its target here."""
        if self.reference is None:
            return {}
        kl = self._mean_over_ranks(self._ref_kl_sum / self.config.n_steps)  # every rank adapts β alike
        self._ref_kl_sum.zero_()
        stats = {"train/ref_kl": kl, "train/ref_kl_coef": self.kl_ref_coef.clone()}
        target = self.config.kl_ref_target
        if target is not None:
            error = torch.clamp(kl / target - 1.0, -0.2, 0.2)
            self.kl_ref_coef.mul_(1.0 + self.config.kl_ref_adapt_rate * error)
        return stats

    # ----------------------------------------------------------------- acting
    def _policy_params(self, obs: torch.Tensor, action_masks: torch.Tensor | None):
        params = self.policy.policy_params(obs)
        return mask_logits(params, action_masks) if action_masks is not None else params

    def _act(self, obs, action_masks, deterministic, generator):
        params = self._policy_params(obs, action_masks)
        return self.distribution.mode(params) if deterministic else self.distribution.sample(params, generator)

    def _value(self, obs: torch.Tensor) -> torch.Tensor:
        """V(s), the critic's estimate (agents without a critic return zeros)."""
        return self.policy.value(obs)

    def _policy_and_value(self, obs: torch.Tensor, action_masks: torch.Tensor | None):
        """The (masked) distribution parameters and V(s) of a batch of states."""
        return self._policy_params(obs, action_masks), self._value(obs)

    def _rollout_policy_and_value(self, obs: torch.Tensor, action_masks: torch.Tensor | None):
        """What a rollout step reads: :meth:`_policy_and_value`, or the network's own stepping where it keeps state."""
        with self._forward_precision():
            if self.policy is None or not self.policy.keeps_state:
                return float32(self._policy_and_value(obs, action_masks))
            params, value = float32(self.policy.rollout_params_and_value(obs))
        params = mask_logits(params, action_masks) if action_masks is not None else params
        return params, value if self.has_critic else torch.zeros_like(value)

    def _forward_precision(self) -> contextlib.AbstractContextManager:
        """The networks' forward passes in bfloat16 (``torch.autocast``) where the config has ``precision: bf16``.

        Matrix products and the GRU run in bf16; their outputs are cast back, so log-probabilities, advantages,
        losses and the optimizer stay in float32. The rollout's π and V and the update's use the same precision,
        so the probability ratio starts near 1. The bootstrap values (V of a truncated episode's final state and
        of the rollout's last state), the KL reference and ``predict``/``evaluate`` stay in float32.
        """
        if getattr(self.config, "precision", "fp32") == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=torch.bfloat16)

    # ----------------------------------------------------------------- one iteration
    def _train_iteration(self) -> dict[str, torch.Tensor]:
        self._apply_schedules()
        if not self.cuda_graphs:
            return self._collect_and_update()
        return self._replay_captured(self._collect_and_update)

    def _progress_remaining(self) -> float:
        """1 → 0 over training, from host-side counters (no device read).

        As in SB3, the update of an iteration sees the progress *after* its rollout, so the last
        update runs at (almost) zero when annealing.
        """
        done_after_rollout = self.num_timesteps + self.steps_per_iteration_all_ranks
        return max(0.0, 1.0 - done_after_rollout / self.total_timesteps) if self.total_timesteps else 1.0

    def _apply_schedules(self) -> None:
        """Set this iteration's learning rate (decayed linearly to 0 with ``anneal_lr``)."""
        c = self.config
        lr = c.learning_rate * self._progress_remaining() if c.anneal_lr else c.learning_rate
        self._set_learning_rate(lr)

    def _collect_and_update(self) -> dict[str, torch.Tensor]:
        rollout_stats = self._collect_rollout()
        return {**rollout_stats, **self._update()}

    @abc.abstractmethod
    def _update(self) -> dict[str, torch.Tensor]:
        """Update θ on the rollout in ``self.buffer``; return on-device statistics."""

    # ----------------------------------------------------------------- the rollout
    def _policy_and_env_step(self, obs: torch.Tensor, action_masks: torch.Tensor | None):
        """Interact with θ for one step: sample a ~ π_θ(·|s), step the env, value the states."""
        params, value = self._rollout_policy_and_value(obs, action_masks)
        actions = self.distribution.sample(params, self.generator)
        log_prob = self.distribution.log_prob(params, actions)
        penalty = 0.0 if self.reference is None else self._reference_penalty(obs, action_masks, actions, log_prob)
        env_actions = self._env_action(actions)
        next_obs, env_reward, terminated, truncated, info = self.env.step(env_actions)
        # A truncated episode did not end in the MDP: its last reward gets γ·V(final state) added,
        # so the return estimate bootstraps from where the time limit cut it off.
        # (An env whose episodes never truncate needs no V(final state): the bootstrap is always 0.)
        final_value = self._value(info["final_obs"]) if self.env.truncates else torch.zeros_like(env_reward)
        reward = env_reward + self.config.gamma * torch.where(truncated & ~terminated, final_value, 0.0) - penalty
        step = (env_actions, env_reward, terminated)  # what the env saw, for the callbacks' batch
        return actions, log_prob, value, next_obs, reward, terminated | truncated, info, step

    @torch.no_grad()
    def _collect_rollout(self) -> dict[str, torch.Tensor]:
        buf = self.buffer
        for network in (self.policy, self.reference):
            if network is not None:
                network.forget()
        for t in range(self.config.n_steps):
            masks = self.env.action_masks() if self.has_action_masks else None
            actions, log_prob, value, next_obs, reward, done, info, env_step = self._rollout_step(self.obs, masks)
            buf.obs[t].copy_(self.obs)
            buf.actions[t].copy_(actions)
            buf.log_probs[t].copy_(log_prob)
            buf.values[t].copy_(value)
            buf.rewards[t].copy_(reward)
            buf.dones[t].copy_(done)
            if masks is not None:
                buf.action_masks[t].copy_(masks)
            if self.batch is not None:
                env_actions, env_reward, terminated = env_step
                next_state = true_next_obs(next_obs, info)
                self.batch.record(t, self.obs, env_actions, env_reward, next_state, terminated, done, masks)
            self.episodes.record(info)
            self.obs.copy_(next_obs)
        return {**self._compute_targets(), **self._reference_stats()}

    def _compute_targets(self) -> dict[str, torch.Tensor]:
        """Fill ``buffer.advantages`` (the weights of log π) and ``buffer.returns`` (the critic's targets).

        Default: GAE(λ) over the critic, bootstrapped from V(s_T) for the episodes the rollout cut off;
        with λ = 1 that is the n-step return minus V(s_t).
        """
        c, buf = self.config, self.buffer
        last_value = self._value(self.obs)
        buf.advantages.copy_(self._advantages(buf.rewards, buf.values, buf.dones, last_value, c.gamma, c.gae_lambda))
        buf.returns.copy_(buf.advantages + buf.values)
        return {"train/explained_variance": explained_variance(buf.flat("values"), buf.flat("returns"))}

    # ----------------------------------------------------------------- updating
    def _optimizer_step(self, skip: torch.Tensor | None) -> None:
        """Optimizer step; with ``skip`` (a 0-d bool tensor, true) parameters and optimizer state stay as they were.

        A tensor mask rather than a Python branch, so the decision never syncs and can be captured. In
        data-parallel training a step is skipped on every rank when any rank skips it (an OR on the device),
        so the ranks' parameters stay equal.
        """
        if skip is None:
            self.optimizer.step()
            return
        skip = self._any_rank(skip)
        tensors = [p for group in self.optimizer.param_groups for p in group["params"]]
        tensors += [v for state in self.optimizer.state.values() for v in state.values() if isinstance(v, torch.Tensor)]
        before = [t.detach().clone() for t in tensors]
        self.optimizer.step()
        with torch.no_grad():
            for tensor, old in zip(tensors, before):
                tensor.copy_(torch.where(skip, old, tensor))

    def _learning_rate_stat(self) -> torch.Tensor:
        """``train/learning_rate`` as an on-device 0-d tensor."""
        return torch.as_tensor(self.optimizer.param_groups[0]["lr"], device=self.device).clone()
