"""Deep Q-Network with every Rainbow component as a flag (notes:13087-13550 [Q-Learning]).

Objective. Learn Q(s, a), the return of taking a in s and then following the greedy policy; acting
greedily on Q improves the policy (notes:13111-13184 [Q-Learning]). Q is fitted by regression onto a target
computed with a frozen copy Q̂, which is synced to Q every ``target_update_interval`` updates
(notes:13188-13216 [Q-Learning]; "c = 100" at notes:13318 [Q-Learning]), on batches drawn from a replay buffer
(notes:13260-13296 [Q-Learning]):

    minimise  E_{(s,a,r,s')~buffer} [ Huber( Q(s,a) − (r + γ · max_a' Q̂(s', a')) ) ]     (notes:13298-13318 [Q-Learning])

The loop is the "typical Q-learning algorithm" of notes:13298-13318 [Q-Learning] (see ``off_policy.py``):
explore with ε-greedy, ε decaying linearly (notes:13218-13250 [Q-Learning]), or Boltzmann exploration, which
samples a ∝ exp(Q(s,a)/T) (notes:13252-13258 [Q-Learning]); store; sample a batch; regress; sync Q̂.

The tips of notes:13322-13550 [Q-Learning], each a flag; ``rainbow.py`` turns them all on ("7 colours", notes:13514-13550 [Q-Learning]):

* ``double``: a* = argmax_a Q(s', a) with the *online* Q, valued by Q̂(s', a*): an action whose value
  one network over-estimates is not also valued by it (notes:13322-13362 [Q-Learning]).
* ``dueling``: Q(s,a) = V(s) + A(s,a) − mean_a A(s,a); the mean-subtraction is the constraint on A
  (notes:13364-13418 [Q-Learning]; the notes' example A = [7,3,2], V = 1 gives Q = [4,0,−1], correcting the
  arithmetic slip at notes:13416 [Q-Learning]).
* ``prioritized``: replay transitions with large TD error more often, weighting their loss by
  importance weights (notes:13420-13432 [Q-Learning]; α, β from Schaul et al., see ``replay.py``).
* ``n_step``: the target sums N rewards and bootstraps from s_{t+N} (notes:13434-13446 [Q-Learning]).
* ``noisy``: explore with Gaussian noise on the *parameters* rather than on the actions
  (notes:13448-13474 [Q-Learning]), in DeepMind's form (learned σ, factorised noise). The notes sample one
  noise per episode, so the same state gets the same action within it (``noise_resample:
  episode``); the paper draws fresh noise every step of acting and every update (``step``, the
  default). Without ``noisy`` the exploration defaults are ε 1 → 0.05; with it, ε = 0.
* ``distributional``: C51, Q is the mean of a categorical distribution over ``n_atoms`` returns
  spaced evenly in [v_min, v_max] (notes:13476-13512 [Q-Learning], whose example is −10..10 with 5 bins); it is
  trained by cross-entropy to the Bellman-updated distribution projected back onto the support
  (Bellemare et al. 2017; the notes skip this part).

Action masks are honoured everywhere an argmax or a random action is taken: acting, ε-random
actions (uniform among the valid ones) and the max/argmax over next-state actions in the target.

Everything stays on the device; an iteration after ``learning_starts`` is captured as one CUDA
graph when the env allows it.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from gymnasium import spaces
from torch import nn

from rlcourse.agents.distributions import Categorical, mask_logits
from rlcourse.agents.networks import ACTIVATIONS, PolicyModule, polyak_update_
from rlcourse.agents.off_policy import OffPolicyAgent, check_off_policy_config
from rlcourse.agents.replay import Batch
from rlcourse.config import hp


@dataclass
class DQNConfig:
    """DQN hyperparameters. Defaults are SB3's DQN (except where noted), with every Rainbow component off."""

    learning_rate: float = hp(1e-4, "Adam step size")
    anneal_lr: bool = hp(False, "decay the learning rate linearly to 0 over training")
    buffer_size: int = hp(
        1_000_000, "transitions kept in replay; the oldest are dropped first (notes:13260-13296 [Q-Learning])"
    )
    learning_starts: int = hp(100, "env steps of uniformly random play before the first update")
    batch_size: int = hp(32, "transitions per update, sampled from the buffer")
    tau: float = hp(
        1.0, "weight of each target sync: 1 copies Q into Q̂ (notes:13188-13216 [Q-Learning]), < 1 averages (Polyak)"
    )
    gamma: float = hp(0.99, "discount γ on future rewards (notes:12777-12779 [PPO])")
    train_freq: int = hp(4, "env steps per env between update phases")
    gradient_steps: int = hp(1, "updates in each update phase")
    target_update_interval: int = hp(
        2500,
        "updates between target syncs (notes:13318 [Q-Learning]: c ≈ 100; SB3 counts 10000 env steps ≈ 2500 updates)",
    )
    exploration_fraction: float = hp(
        0.1, "fraction of training over which ε decays linearly (notes:13244-13250 [Q-Learning])"
    )
    exploration_initial_eps: float | None = hp(None, "ε at the start (null: 1.0, or 0 with noisy nets)")
    exploration_final_eps: float | None = hp(None, "ε after the decay (null: 0.05, or 0 with noisy nets)")
    exploration: Literal["epsilon_greedy", "boltzmann"] = hp(
        "epsilon_greedy",
        "ε-greedy (notes:13218-13250 [Q-Learning]) or Boltzmann sampling ∝ exp(Q/T) (notes:13252-13258 [Q-Learning])",
    )
    temperature: float = hp(1.0, "temperature T of Boltzmann exploration")
    max_grad_norm: float | None = hp(10.0, "clip the global gradient norm to this (null: off)")
    net_arch: tuple[int, ...] = hp((64, 64), "hidden layer sizes of the Q-network")
    activation: Literal["tanh", "relu", "elu"] = hp("relu", "hidden-layer activation")
    adam_eps: float = hp(1e-8, "Adam's epsilon (Rainbow uses 1.5e-4)")
    double: bool = hp(False, "Double DQN: online Q picks a*, target Q̂ values it (notes:13322-13362 [Q-Learning])")
    dueling: bool = hp(False, "dueling heads Q = V + A − mean(A) (notes:13364-13418 [Q-Learning])")
    prioritized: bool = hp(False, "prioritized replay by |TD error| (notes:13420-13432 [Q-Learning])")
    alpha: float = hp(0.6, "prioritized replay: P(i) ∝ p_i^α (0 is uniform)")
    beta0: float = hp(0.4, "prioritized replay: importance-weight exponent β at the start, annealed to 1")
    n_step: int = hp(1, "N of multi-step targets (notes:13434-13446 [Q-Learning])")
    noisy: bool = hp(False, "NoisyNet layers: exploration by parameter noise (notes:13448-13474 [Q-Learning])")
    noisy_sigma0: float = hp(0.5, "σ0 of factorised NoisyNet layers (σ starts at σ0/√fan_in)")
    noise_resample: Literal["step", "episode"] = hp(
        "step", "draw acting noise every step (paper) or once per episode (notes:13458-13474 [Q-Learning])"
    )
    distributional: bool = hp(False, "C51 distributional Q (notes:13476-13512 [Q-Learning])")
    n_atoms: int = hp(51, "atoms of the C51 return distribution")
    v_min: float = hp(-10.0, "lowest return on the C51 support")
    v_max: float = hp(10.0, "highest return on the C51 support")

    def __post_init__(self) -> None:
        check_off_policy_config(self)
        if self.target_update_interval < 1:
            raise ValueError(f"target_update_interval must be >= 1, got {self.target_update_interval!r}")
        if not 0.0 < self.exploration_fraction <= 1.0:
            raise ValueError(f"exploration_fraction must be in (0, 1], got {self.exploration_fraction!r}")
        for name in ("exploration_initial_eps", "exploration_final_eps"):
            value = getattr(self, name)
            if value is not None and not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1] or null, got {value!r}")
        for name in ("temperature", "noisy_sigma0"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)!r}")
        if self.alpha < 0:
            raise ValueError(f"alpha must be >= 0, got {self.alpha!r}")
        if not 0.0 <= self.beta0 <= 1.0:
            raise ValueError(f"beta0 must be in [0, 1], got {self.beta0!r}")
        if self.n_atoms < 2:
            raise ValueError(f"n_atoms must be >= 2, got {self.n_atoms!r}")
        if not self.v_min < self.v_max:
            raise ValueError(f"v_min must be < v_max, got v_min={self.v_min!r}, v_max={self.v_max!r}")

    @property
    def epsilons(self) -> tuple[float, float]:
        """(initial, final) ε, with the NoisyNet default of no ε-randomness."""
        default = 0.0 if self.noisy else None
        initial = (
            self.exploration_initial_eps
            if self.exploration_initial_eps is not None
            else default
            if default is not None
            else 1.0
        )
        final = (
            self.exploration_final_eps
            if self.exploration_final_eps is not None
            else default
            if default is not None
            else 0.05
        )
        return initial, final


# ============================================================================= the network
class NoisyLinear(nn.Module):
    """A linear layer with learned, factorised Gaussian parameter noise (Fortunato et al. 2018; notes:13448-13474 [Q-Learning]).

        W = μ_W + σ_W ⊙ (f(ε_out) f(ε_in)ᵀ),  b = μ_b + σ_b ⊙ f(ε_out),  f(x) = sgn(x)·√|x|,  ε ~ N(0, 1)

    The noise is passed in explicitly as ``(f(ε_in), f(ε_out))`` with shapes ``[rows, in]`` and
    ``[rows, out]``, rows being 1 (one noisy network for the whole batch) or the batch size (one per
    env). Because the noise factorises, Wx = μ_W x + f(ε_out) ⊙ (σ_W (f(ε_in) ⊙ x)), so per-row
    noise costs a second matmul, not a weight matrix per row; one row's W is formed explicitly.
    ``noise=None`` is the mean network.
    """

    def __init__(self, in_features: int, out_features: int, sigma0: float = 0.5):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        bound = 1.0 / math.sqrt(in_features)
        self.weight_mu = nn.Parameter(torch.empty(out_features, in_features).uniform_(-bound, bound))
        self.bias_mu = nn.Parameter(torch.empty(out_features).uniform_(-bound, bound))
        self.weight_sigma = nn.Parameter(torch.full((out_features, in_features), sigma0 * bound))
        self.bias_sigma = nn.Parameter(torch.full((out_features,), sigma0 * bound))

    @staticmethod
    def scale_noise(eps: torch.Tensor) -> torch.Tensor:
        """f(x) = sgn(x)·√|x|."""
        return eps.sign() * eps.abs().sqrt()

    def noisy_parameters(self, noise: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """The explicit (W, b) of one noise row."""
        f_in, f_out = noise[0][0], noise[1][0]
        return self.weight_mu + self.weight_sigma * torch.outer(f_out, f_in), self.bias_mu + self.bias_sigma * f_out

    def forward(self, x: torch.Tensor, noise: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        if noise is None:
            return F.linear(x, self.weight_mu, self.bias_mu)
        if noise[0].shape[0] == 1:  # one network for the whole batch: forming W is cheaper than a second matmul
            return F.linear(x, *self.noisy_parameters(noise))
        f_in, f_out = noise
        return F.linear(x, self.weight_mu, self.bias_mu) + f_out * (
            F.linear(x * f_in, self.weight_sigma) + self.bias_sigma
        )


def dueling_aggregate(value: torch.Tensor, advantage: torch.Tensor) -> torch.Tensor:
    """Q = V + A − mean_a A (notes:13410-13418 [Q-Learning]); actions on dim 1, V broadcast over them."""
    return value + advantage - advantage.mean(dim=1, keepdim=True)


class QNetwork(PolicyModule):
    """s → Q(s, ·) ``[B, n]``, or C51 logits ``[B, n, atoms]``; optionally dueling and/or noisy.

    With dueling, one trunk feeds a value head V(s) and an advantage head A(s, ·) (per atom for C51,
    where the aggregation is applied to the logits as in Rainbow).
    """

    def __init__(
        self,
        obs_dim: int,
        n_actions: int,
        hidden: tuple[int, ...],
        activation: str,
        dueling: bool = False,
        noisy: bool = False,
        n_atoms: int = 1,
        sigma0: float = 0.5,
    ):
        super().__init__()

        def linear(fan_in: int, fan_out: int) -> nn.Module:
            return NoisyLinear(fan_in, fan_out, sigma0) if noisy else nn.Linear(fan_in, fan_out)

        sizes = (obs_dim, *hidden)
        self.hidden = nn.ModuleList(linear(i, o) for i, o in zip(sizes[:-1], sizes[1:]))
        self.activation = ACTIVATIONS[activation]()
        self.advantage = linear(sizes[-1], n_actions * n_atoms)
        self.value = linear(sizes[-1], n_atoms) if dueling else None
        self.n_actions, self.n_atoms = n_actions, n_atoms
        self.distribution = Categorical(n_actions)  # π(a|s) = softmax Q(s, ·) for log_prob/act (PolicyModule)
        self.noisy_layers = [m for m in (*self.hidden, self.advantage, self.value) if isinstance(m, NoisyLinear)]
        self.noise_dim = sum(m.in_features + m.out_features for m in self.noisy_layers)

    def split_noise(self, flat: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Views of a ``[rows, noise_dim]`` tensor as each noisy layer's ``(f(ε_in), f(ε_out))``."""
        sizes = [size for m in self.noisy_layers for size in (m.in_features, m.out_features)]
        parts = flat.split(sizes, dim=1)
        return list(zip(parts[0::2], parts[1::2]))

    def draw_noise(self, rows: int, generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
        """Fresh f(ε) for ``rows`` networks, flat ``[rows, noise_dim]``."""
        return NoisyLinear.scale_noise(torch.randn(rows, self.noise_dim, generator=generator, device=device))

    def forward(self, obs: torch.Tensor, noise: list[tuple[torch.Tensor, torch.Tensor]] | None = None) -> torch.Tensor:
        layer_noise = iter(noise) if noise is not None else None

        def apply(layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
            return layer(x, next(layer_noise)) if layer_noise is not None else layer(x)

        x = obs if obs.is_floating_point() else obs.float()  # an env may give integer ids or counts
        for layer in self.hidden:
            x = self.activation(apply(layer, x))
        advantage = apply(self.advantage, x).view(-1, self.n_actions, self.n_atoms)
        out = (
            advantage
            if self.value is None
            else dueling_aggregate(apply(self.value, x).view(-1, 1, self.n_atoms), advantage)
        )
        return out.squeeze(-1) if self.n_atoms == 1 else out

    def policy_params(self, obs: torch.Tensor) -> torch.Tensor:
        """The core's StochasticPolicy, for imitation: Q(s, ·) read as the logits of π(a|s) = softmax Q(s, ·), whose
        most likely action is DQN's greedy one, so a Q-network cloned by cross-entropy acts as the expert does."""
        if self.n_atoms != 1:
            raise ValueError("a distributional (C51) Q-network has no logits over actions to imitate with")
        return self(obs)


# ============================================================================= targets
def greedy_actions(q_values: torch.Tensor, masks: torch.Tensor | None) -> torch.Tensor:
    """argmax_a Q(s, a) over the valid actions only."""
    return mask_logits(q_values, masks).argmax(dim=-1)


def q_learning_target(
    returns: torch.Tensor,
    discounts: torch.Tensor,
    next_q_target: torch.Tensor,
    next_q_online: torch.Tensor | None = None,
    next_masks: torch.Tensor | None = None,
) -> torch.Tensor:
    """y = G + γ^m · Q̂(s', a*) with a* = argmax over valid a of Q̂(s', a) (DQN, notes:13298-13318 [Q-Learning]) or,
    given ``next_q_online``, of the online Q(s', a) (Double DQN, notes:13356-13362 [Q-Learning])."""
    selector = next_q_online if next_q_online is not None else next_q_target
    best = greedy_actions(selector, next_masks)
    return returns + discounts * next_q_target.gather(1, best[:, None]).squeeze(1)


def categorical_projection(
    next_probs: torch.Tensor, returns: torch.Tensor, discounts: torch.Tensor, support: torch.Tensor
) -> torch.Tensor:
    """Project the Bellman-updated distribution of G + γ^m·Z onto the fixed support (C51).

    Each atom z_i moves to T z_i = clamp(G + γ^m z_i, v_min, v_max), at fractional position
    b_i = (T z_i − v_min)/Δz; its probability is split between the two neighbouring atoms in
    proportion to closeness: m_j = Σ_i p_i · max(0, 1 − |b_i − j|).
    """
    v_min, v_max = support[0], support[-1]
    delta = (v_max - v_min) / (support.numel() - 1)
    moved = (returns[:, None] + discounts[:, None] * support).clamp(v_min, v_max)
    position = (moved - v_min) / delta  # [B, atoms]
    closeness = (1.0 - (position[:, :, None] - torch.arange(support.numel(), device=support.device)).abs()).clamp_min(
        0.0
    )
    return (next_probs[:, :, None] * closeness).sum(dim=1)


# ============================================================================= the agent
class DQN(OffPolicyAgent):
    """DQN and its Rainbow extensions on a flat Box observation and a Discrete (optionally masked) action space."""

    algo = "dqn"
    config_class = DQNConfig
    config: DQNConfig
    warm_start_aliases = {"q_target": "q_net"}  # the target network starts as the loaded Q
    warm_start_hint = "a DQN run, or bc/dagger with network=q_network and the same net_arch and activation"

    def _build(self) -> None:
        c = self.config
        action_space = self.env.single_action_space
        if not isinstance(action_space, spaces.Discrete):
            raise ValueError(f"{self.algo.upper()} supports Discrete action spaces only, got {action_space}")
        obs_dim = self._check_flat_box_obs()
        n_actions = int(action_space.n)
        self.q_net = QNetwork(
            obs_dim,
            n_actions,
            c.net_arch,
            c.activation,
            c.dueling,
            c.noisy,
            c.n_atoms if c.distributional else 1,
            c.noisy_sigma0,
        ).to(self.device)
        self.q_target = copy.deepcopy(self.q_net).requires_grad_(False)
        self.optimizer = self._make_optimizer(self.q_net, c.learning_rate)
        self._build_replay((), torch.int64, c.prioritized, c.alpha)
        self.support = torch.linspace(c.v_min, c.v_max, c.n_atoms, device=self.device)
        self._batch_rows = torch.arange(c.batch_size, device=self.device)
        self.exploration_rate = torch.ones((), device=self.device)  # ε of the latest step (also used by predict)
        self._step_state_names = ("exploration_rate",)
        self._boltzmann = Categorical(n_actions)
        self._loss_fn = torch.compile(self._loss) if self.compile else self._loss
        if c.noisy and c.noise_resample == "episode":
            # One noisy network per env, redrawn when its episode ends (notes:13458-13474 [Q-Learning]).
            self.act_noise = self.q_net.draw_noise(self.num_envs, self.generator, self.device)
            self._step_state_names += ("act_noise",)

    def _modules(self) -> dict[str, nn.Module]:
        return {"q_net": self.q_net, "q_target": self.q_target}

    def _optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"optimizer": self.optimizer}

    def _apply_schedules(self) -> None:
        super()._apply_schedules()
        if self.config.prioritized:
            self.replay.beta.fill_(self.config.beta0 + (1.0 - self.config.beta0) * self._progress())

    # ----------------------------------------------------------------- acting
    def q_values(self, obs: torch.Tensor, noise: list | None = None) -> torch.Tensor:
        """Q(s, ·) of the online network."""
        return self._expected_q(self.q_net(obs, noise))

    def _expected_q(self, out: torch.Tensor) -> torch.Tensor:
        """A Q-network's output as Q-values: itself, or the mean of each C51 distribution (notes:13496-13512 [Q-Learning])."""
        return (out.softmax(dim=-1) * self.support).sum(dim=-1) if self.config.distributional else out

    def _epsilon(self, step: int) -> torch.Tensor:
        """ε of step ``step`` of this iteration: 1 while warming up, then the linear decay (notes:13244-13250 [Q-Learning])."""
        c = self.config
        initial, final = c.epsilons
        decayed = (self._step_number(step) / (c.exploration_fraction * self._total_steps)).clamp(max=1.0)
        scheduled = (
            initial + (final - initial) * decayed if c.exploration == "epsilon_greedy" else torch.zeros_like(decayed)
        )
        return torch.where(self._warming_up(step), 1.0, scheduled).float()

    def _explore(
        self, q: torch.Tensor, masks: torch.Tensor | None, epsilon: torch.Tensor, generator: torch.Generator | None
    ) -> torch.Tensor:
        """With probability ε a uniformly random *valid* action, else greedy (or a Boltzmann sample)."""
        if self.config.exploration == "boltzmann":
            chosen = self._boltzmann.sample(mask_logits(q / self.config.temperature, masks), generator)
        else:
            chosen = greedy_actions(q, masks)
        # argmax of i.i.d. uniforms over the valid actions is a uniform valid action
        scores = torch.rand(q.shape, generator=generator, device=q.device)
        random_valid = (scores if masks is None else torch.where(masks, scores, -1.0)).argmax(dim=-1)
        explore = torch.rand(q.shape[0], generator=generator, device=q.device) < epsilon
        return torch.where(explore, random_valid, chosen)

    def _fresh_noise(self, rows: int, generator: torch.Generator | None) -> list | None:
        """Noise for ``rows`` independent noisy networks (None without NoisyNet: the plain network)."""
        return (
            self.q_net.split_noise(self.q_net.draw_noise(rows, generator, self.device)) if self.config.noisy else None
        )

    def _behaviour_actions(self, obs, masks, step):
        self.exploration_rate.copy_(self._epsilon(step))
        if self.config.noisy and self.config.noise_resample == "episode":
            noise = self.q_net.split_noise(self.act_noise)  # fixed for the whole episode of each env
        else:
            noise = self._fresh_noise(obs.shape[0], self.generator)
        q = self.q_values(obs, noise)
        actions = self._explore(q, masks, self.exploration_rate, self.generator)
        return actions, actions

    def _on_env_step(self, dones: torch.Tensor) -> None:
        if self.config.noisy and self.config.noise_resample == "episode":
            fresh = self.q_net.draw_noise(self.num_envs, self.generator, self.device)
            self.act_noise.copy_(torch.where(dones[:, None], fresh, self.act_noise))

    def _act(self, obs, action_masks, deterministic, generator):
        if deterministic:  # the greedy policy of the mean network
            return greedy_actions(self.q_values(obs), action_masks)
        q = self.q_values(obs, self._fresh_noise(obs.shape[0], generator))
        return self._explore(q, action_masks, self.exploration_rate, generator)

    def _iteration_stats(self) -> dict[str, torch.Tensor]:
        return {"rollout/exploration_rate": self.exploration_rate.clone()}

    # ----------------------------------------------------------------- learning
    def _gradient_step(self) -> dict[str, torch.Tensor]:
        """Regress Q(s, a) onto the target for one replay batch (notes:13298-13318 [Q-Learning]), then maybe sync Q̂."""
        c = self.config
        batch = self.replay.sample(c.batch_size, self.generator)
        # NoisyNet: fresh noise for the online network and, independently, for the target network
        noise, target_noise = self._fresh_noise(1, self.generator), self._fresh_noise(1, self.generator)
        loss, priority = self._loss_fn(batch, noise, target_noise)
        self._clip_and_step(loss, self.q_net, self.optimizer)
        if c.prioritized:
            self.replay.update_priorities(batch.indices, priority)
        # Q̂ ← Q every target_update_interval updates (notes:13188-13216 [Q-Learning]), decided on the device.
        polyak_update_(
            self.q_target, self.q_net, torch.where(self.n_updates % c.target_update_interval == 0, c.tau, 0.0)
        )
        return {"train/loss": loss.detach()}

    def _loss(self, batch: Batch, noise: list | None, target_noise: list | None) -> tuple[torch.Tensor, torch.Tensor]:
        """The importance-weighted regression loss of a batch, and each transition's new priority."""
        c = self.config
        rows = self._batch_rows
        with torch.no_grad():
            next_target = self.q_target(batch.next_obs, target_noise)
            next_online = self.q_values(batch.next_obs, noise) if c.double else None
        out = self.q_net(batch.obs, noise)
        if c.distributional:
            best = greedy_actions(
                next_online if next_online is not None else self._expected_q(next_target), batch.next_masks
            )
            target_probs = categorical_projection(
                next_target[rows, best].softmax(dim=-1), batch.returns, batch.discounts, self.support
            )
            per_sample = -(target_probs * out[rows, batch.actions].log_softmax(dim=-1)).sum(dim=-1)
            priority = per_sample.detach()  # Rainbow: the distribution's cross-entropy, not |δ|
        else:
            target = q_learning_target(batch.returns, batch.discounts, next_target, next_online, batch.next_masks)
            q = out.gather(1, batch.actions[:, None]).squeeze(1)
            per_sample = F.smooth_l1_loss(q, target, reduction="none")
            priority = (target - q).detach()
        return (batch.weights * per_sample).mean(), priority  # the weights are 1 without prioritized replay
