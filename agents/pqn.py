"""PQN (Gallici et al. 2024): the Q-learning of notes:13298-13318 [Q-Learning] with Q(λ) targets, no replay, no target network.

Objective. As DQN, learn Q(s, a), the return of taking a in s and then acting greedily; acting greedily
on Q improves the policy (notes:13111-13184 [Q-Learning]). Q is fitted by regression, a loss one can
watch go down (notes:13552-13560 [Q-Learning]), onto the λ-return of the rollout just played:

    minimise  E_{(s_t,a_t) ~ rollout} [ ½ (Q(s_t, a_t) − R^λ_t)² ]          (or Huber, ``loss: huber``)

    R^λ_t = r_t + γ (1 − d_t) [ (1 − λ) max_a Q(s_{t+1}, a) + λ R^λ_{t+1} ],    R^λ_T = max_a Q(s_T, a)

with d_t marking that the episode ended at t and the max taken over the valid actions only. The target
is held fixed while Q regresses onto it (computed once per rollout, before the update).

Where it sits in the lecture. TD regresses onto r_t + V(s_{t+1}) from single steps; Monte Carlo onto
the whole return, unbiased but with a variance that grows with every reward summed
(notes:13039-13063 [Q-Learning]). Multi-step targets sum N real rewards before bootstrapping, a
hyperparameter between the two (notes:13434-13446 [Q-Learning]); R^λ averages *every* N with weights
(1 − λ)λ^{N−1}: λ = 0 is the one-step target r_t + γ max_a Q(s_{t+1}, a) of the typical Q-learning
algorithm (notes:13298-13318 [Q-Learning]), λ = 1 the discounted return (γ as notes:12777-12779 [PPO]).
The backup takes the max even where the rollout explored (Peng's Q(λ): no correction for the
off-greedy actions, as the paper does).

What PQN drops from DQN, and why that still works:

* **the replay buffer** (notes:13260-13296 [Q-Learning]), whose job was to decorrelate the batches and to
  reuse experience: ``num_envs`` parallel envs give decorrelated batches by themselves, and each rollout
  is reused for ``n_epochs`` passes of minibatches before it is thrown away, as PPO reuses its batch
  (notes:12953-12959 [PPO]);
* **the target network** Q̂ (notes:13188-13216 [Q-Learning]), whose job was to keep the regression
  target still: LayerNorm in every hidden layer of Q (``layer_norm``) keeps TD from diverging without
  it, Gallici et al.'s main result. The target moves once per rollout, when it is recomputed.

Exploration is ε-greedy, ε decayed linearly from ``exploration_initial_eps`` to ``exploration_final_eps``
over the first ``exploration_fraction`` of training (notes:13218-13250 [Q-Learning]); a random action is
uniform over the *valid* actions, and a greedy one the argmax over them, so a masked action is never
played. The learning rate may decay linearly to 0 (``anneal_lr``) and the gradient norm is clipped.

Beyond the notes (from the paper): LayerNorm, the λ-return, and the CartPole/MinAtar defaults (32 envs
of 64 steps, 4 epochs of 16 minibatches, lr 1e-4 decayed to 0, γ 0.99, λ 0.95, gradient norm 10). The
paper optimises with RAdam; Adam is used here, as by every rlcourse agent (its fused, capturable kernel
keeps the whole iteration in one CUDA graph).

Structure. PQN is "collect a rollout, then update on it", so the rollout storage, the truncation
bootstrap (a time-limited episode gets γ·max_a Q(final state, a) added to its last reward; the final
state's mask is not part of the env contract, so that max runs over every action, as in DQN's replay),
the learning-rate schedule and the CUDA-graph capture of a whole iteration are
:class:`~rlcourse.agents.on_policy.OnPolicyAgent`'s. V(s) there is max_a Q(s, a), and the R^λ recursion
is GAE(λ) over that V plus V (:func:`q_lambda_returns`). This module holds the ε-greedy policy, the
targets and the regression.

Reading order: ``OnPolicyAgent._train_iteration`` → ``_collect_rollout`` (acting with
:class:`EpsilonGreedy`) → ``PQN._compute_targets`` (R^λ) → ``PQN._update`` → ``PQN._loss``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from gymnasium import spaces

from rlcourse.agents.distributions import mask_logits
from rlcourse.agents.networks import mlp
from rlcourse.agents.on_policy import OnPolicyAgent
from rlcourse.agents.rollout import generalized_advantages
from rlcourse.config import check_fields, hp


@dataclass
class PQNConfig:
    """PQN hyperparameters (defaults: the paper's CartPole settings, with 128-wide layers and its MinAtar final ε)."""

    n_steps: int = hp(64, "env steps collected per env in each rollout")
    batch_size: int = hp(128, "minibatch size; must divide n_steps * num_envs")
    n_epochs: int = hp(4, "passes over each rollout, each in shuffled minibatches")
    learning_rate: float = hp(1e-4, "Adam step size")
    anneal_lr: bool = hp(True, "decay the learning rate linearly to 0 over training")
    gamma: float = hp(0.99, "discount γ on future rewards (notes:12777-12779 [PPO])")
    q_lambda: float = hp(
        0.95,
        "λ of the Q(λ) return: 0 is one-step Q-learning, 1 the Monte-Carlo return (notes:13434-13446 [Q-Learning])",
    )
    exploration_initial_eps: float = hp(1.0, "ε of ε-greedy at the start (notes:13218-13250 [Q-Learning])")
    exploration_final_eps: float = hp(0.05, "ε once the decay is over")
    exploration_fraction: float = hp(0.2, "fraction of training over which ε decays linearly")
    loss: Literal["mse", "huber"] = hp(
        "mse", "regression loss: mse = ½(Q − R^λ)² (the paper), huber = smooth L1 (DQN's)"
    )
    max_grad_norm: float | None = hp(10.0, "clip the global gradient norm to this (null: off)")
    net_arch: tuple[int, ...] = hp((128, 128), "hidden layer sizes of the Q-network")
    activation: Literal["tanh", "relu", "elu"] = hp("relu", "hidden-layer activation")
    layer_norm: bool = hp(True, "LayerNorm before each hidden activation: what stands in for the target network")
    adam_eps: float = hp(1e-8, "Adam's epsilon")

    def __post_init__(self) -> None:
        check_fields(
            self,
            positive=("n_steps", "batch_size", "n_epochs", "learning_rate", "adam_eps"),
            positive_or_none=("max_grad_norm",),
        )
        if not 0.0 < self.gamma <= 1.0:
            raise ValueError(f"gamma must be in (0, 1], got {self.gamma!r}")
        if not 0.0 <= self.q_lambda <= 1.0:
            raise ValueError(f"q_lambda must be in [0, 1], got {self.q_lambda!r}")
        for name in ("exploration_initial_eps", "exploration_final_eps"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)!r}")
        if not 0.0 < self.exploration_fraction <= 1.0:
            raise ValueError(f"exploration_fraction must be in (0, 1], got {self.exploration_fraction!r}")


def q_lambda_returns(
    rewards: torch.Tensor,
    max_q: torch.Tensor,
    dones: torch.Tensor,
    last_max_q: torch.Tensor,
    gamma: float,
    lam: float,
) -> torch.Tensor:
    """R^λ_t of ``[T, B]`` rollouts (module docstring), ``max_q[t]`` = max_a Q(s_t, a) and ``last_max_q`` that of s_T.

    Written as R^λ_t = A_t + max_q[t] with A = GAE(λ) over V = max_a Q: expanding GAE's recursion
    A_t = r_t + γ(1 − d_t)V_{t+1} − V_t + γλ(1 − d_t)A_{t+1} and substituting A_{t+1} = R^λ_{t+1} − V_{t+1}
    gives R^λ_t = r_t + γ(1 − d_t)[(1 − λ)V_{t+1} + λR^λ_{t+1}], the Q(λ) recursion, one backward pass.
    """
    return generalized_advantages(rewards, max_q, dones, last_max_q, gamma, lam) + max_q


def regression_loss(q_taken: torch.Tensor, targets: torch.Tensor, kind: str) -> torch.Tensor:
    """mean ½(Q − R)² (``mse``) or mean smooth-L1(Q − R) (``huber``: quadratic within 1, linear beyond)."""
    if kind == "huber":
        return F.smooth_l1_loss(q_taken, targets)
    return 0.5 * (q_taken - targets).square().mean()


class EpsilonGreedy:
    """ε-greedy over Q-values as an action distribution; its parameters are ``(Q [B, n], valid mask [B, n] | None)``.

    ``epsilon`` is a 0-d device tensor that the schedule refills, read anew at each call (graph safe).
    """

    def __init__(self, epsilon: torch.Tensor):
        self.epsilon = epsilon

    def mode(self, params: tuple[torch.Tensor, torch.Tensor | None]) -> torch.Tensor:
        """argmax_a Q(s, a) over the valid actions."""
        q, masks = params
        return mask_logits(q, masks).argmax(dim=-1)

    def sample(
        self, params: tuple[torch.Tensor, torch.Tensor | None], generator: torch.Generator | None
    ) -> torch.Tensor:
        """With probability ε a uniformly random valid action, else the greedy one."""
        q, masks = params
        scores = torch.rand(q.shape, generator=generator, device=q.device)
        # the argmax of i.i.d. uniforms over the valid actions is a uniform valid action
        random_valid = (scores if masks is None else torch.where(masks, scores, -1.0)).argmax(dim=-1)
        explore = torch.rand(q.shape[0], generator=generator, device=q.device) < self.epsilon
        return torch.where(explore, random_valid, self.mode(params))

    def log_prob(self, params: tuple[torch.Tensor, torch.Tensor | None], actions: torch.Tensor) -> torch.Tensor:
        """log π(a|s) = log((1 − ε)·[a greedy] + ε / #valid) for a valid a, −∞ for a masked one."""
        q, masks = params
        greedy = (actions == self.mode(params)).to(q.dtype)
        if masks is None:
            return ((1.0 - self.epsilon) * greedy + self.epsilon / q.shape[-1]).log()
        probability = (1.0 - self.epsilon) * greedy + self.epsilon / masks.sum(dim=-1)
        return torch.where(masks.gather(-1, actions[:, None]).squeeze(-1), probability, 0.0).log()


class PQN(OnPolicyAgent):
    """PQN on a flat Box observation and a Discrete (optionally masked) action space."""

    algo = "pqn"
    config_class = PQNConfig
    config: PQNConfig
    default_num_envs = 32  # the paper's CartPole setting: PQN wants many envs, they replace the replay buffer
    warm_start_hint = "a PQN run with the same net_arch, activation and layer_norm"

    def _build(self) -> None:
        c = self.config
        obs_space, action_space = self.env.single_observation_space, self.env.single_action_space
        if not isinstance(obs_space, spaces.Box) or len(obs_space.shape) != 1:
            raise ValueError(f"PQN needs a flat Box observation space, got {obs_space}")
        if not isinstance(action_space, spaces.Discrete):
            raise ValueError(f"PQN supports Discrete action spaces only, got {action_space}")
        if self.steps_per_iteration % c.batch_size:
            raise ValueError(
                f"batch_size ({c.batch_size}) must divide n_steps * num_envs "
                f"({c.n_steps} * {self.num_envs} = {self.steps_per_iteration})"
            )
        self.q_net = mlp(
            obs_space.shape[0], c.net_arch, int(action_space.n), c.activation, out_gain=1.0, layer_norm=c.layer_norm
        ).to(self.device)
        # Under CUDA graphs the learning rate must be a device tensor that a replay reads, not a constant baked into it.
        lr = torch.tensor(c.learning_rate, device=self.device) if self.cuda_graphs else c.learning_rate
        self.optimizer = torch.optim.Adam(
            self.q_net.parameters(), lr=lr, eps=c.adam_eps, capturable=self.cuda_graphs, fused=True
        )
        self.exploration_rate = torch.tensor(c.exploration_initial_eps, device=self.device)  # ε, refilled per iteration
        self.distribution = EpsilonGreedy(self.exploration_rate)
        self._setup_rollout()
        self._lambda_returns = torch.compile(q_lambda_returns) if self.compile else q_lambda_returns
        self._minibatch_loss = torch.compile(self._loss) if self.compile else self._loss

    def _modules(self) -> dict[str, torch.nn.Module]:
        return {"q_net": self.q_net}

    def _optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"optimizer": self.optimizer}

    def _extra_state(self) -> dict[str, torch.Tensor]:
        return {"exploration_rate": self.exploration_rate}  # what predict(deterministic=False) explores with

    # ----------------------------------------------------------------- schedules
    def _epsilon(self) -> float:
        """ε for this iteration's rollout: linear from the initial to the final value over ``exploration_fraction``."""
        c = self.config
        decay_steps = c.exploration_fraction * max(self.total_timesteps, 1)
        done = min(1.0, self.num_timesteps / decay_steps)
        return c.exploration_initial_eps + (c.exploration_final_eps - c.exploration_initial_eps) * done

    def _apply_schedules(self) -> None:
        """The learning rate (shared) and ε, both host-known: ``fill_`` into device tensors, graph safe."""
        super()._apply_schedules()
        self.exploration_rate.fill_(self._epsilon())

    # ----------------------------------------------------------------- acting: ε-greedy on Q
    def _policy_params(self, obs: torch.Tensor, action_masks: torch.Tensor | None):
        return self.q_net(obs), action_masks

    def _policy_and_value(self, obs: torch.Tensor, action_masks: torch.Tensor | None):
        """ε-greedy's parameters and V(s) = max over the valid a of Q(s, a), from one pass through Q."""
        q = self.q_net(obs)
        return (q, action_masks), mask_logits(q, action_masks).max(dim=-1).values

    def _value(self, obs: torch.Tensor) -> torch.Tensor:
        """max_a Q(s, a) over every action (the truncation bootstrap: a final state's mask is unknown)."""
        return self.q_net(obs).max(dim=-1).values

    # ----------------------------------------------------------------- targets and regression
    def _compute_targets(self) -> dict[str, torch.Tensor]:
        """``buffer.returns`` ← R^λ, bootstrapped from max over the valid a of Q(s_T, a) where the rollout cut off."""
        c, buf = self.config, self.buffer
        masks = self.env.action_masks() if self.has_action_masks else None
        last_max_q = mask_logits(self.q_net(self.obs), masks).max(dim=-1).values
        buf.returns.copy_(self._lambda_returns(buf.rewards, buf.values, buf.dones, last_max_q, c.gamma, c.q_lambda))
        return {}

    def _loss(self, obs: torch.Tensor, actions: torch.Tensor, returns: torch.Tensor) -> torch.Tensor:
        """The regression loss of Q(s_t, a_t) onto R^λ_t for one minibatch (the target carries no gradient)."""
        q_taken = self.q_net(obs).gather(1, actions[:, None]).squeeze(1)
        return regression_loss(q_taken, returns, self.config.loss)

    def _update(self) -> dict[str, torch.Tensor]:
        """``n_epochs`` passes of shuffled minibatches over the rollout, one Adam step each."""
        c, buf = self.config, self.buffer
        n = self.steps_per_iteration
        obs, actions, returns = buf.flat("obs"), buf.flat("actions"), buf.flat("returns")
        loss_sum = torch.zeros((), device=self.device)
        for _ in range(c.n_epochs):
            order = torch.rand(n, generator=self.generator, device=self.device).argsort()
            for start in range(0, n, c.batch_size):
                idx = order[start : start + c.batch_size]
                loss = self._minibatch_loss(obs[idx], actions[idx], returns[idx])
                self.optimizer.zero_grad(set_to_none=False)
                loss.backward()
                if c.max_grad_norm is not None:
                    torch.nn.utils.clip_grad_norm_(self.q_net.parameters(), c.max_grad_norm)
                self.optimizer.step()
                loss_sum += loss.detach()
        return {
            "train/loss": loss_sum / (c.n_epochs * (n // c.batch_size)),
            "train/learning_rate": self._learning_rate_stat(),
            "rollout/exploration_rate": self.exploration_rate.clone(),
        }
