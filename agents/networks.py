"""Networks shared by the agents: MLPs with orthogonal init (optionally with LayerNorm, for PQN), a policy alone (REINFORCE), the separate
actor-critic used by PPO and the shared-trunk actor-critic used by A2C/A3C.

The init follows common practice for PPO (and SB3's default): orthogonal weights with gain √2 in
hidden layers, 0.01 for the policy head and 1 for the value head, zero biases.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from gymnasium import spaces
from torch import nn

from rlcourse.agents.distributions import Categorical, DiagGaussian, mask_logits

ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU, "elu": nn.ELU}


def mlp(
    in_dim: int,
    hidden: tuple[int, ...],
    out_dim: int,
    activation: str,
    out_gain: float,
    layer_norm: bool = False,
) -> MLP:
    """``in_dim -> hidden... -> out_dim`` with orthogonal init; the last layer has gain ``out_gain``.

    With ``layer_norm`` every hidden layer is Linear → LayerNorm → activation (PQN's Q-network): the
    normalisation bounds what a layer passes on however its weights drift, which is what lets TD learn
    without a target network (Gallici et al. 2024).
    """
    layers: list[nn.Module] = []
    sizes = (in_dim, *hidden)
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        layers.append(_orthogonal(nn.Linear(fan_in, fan_out), math.sqrt(2)))
        if layer_norm:
            layers.append(nn.LayerNorm(fan_out))
        layers.append(ACTIVATIONS[activation]())
    layers.append(_orthogonal(nn.Linear(sizes[-1], out_dim), out_gain))
    return MLP(*layers)


class MLP(nn.Sequential):
    """The layers of :func:`mlp`, reading any observation as float32 (an env may give integer ids or counts)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x if x.is_floating_point() else x.float())


def _orthogonal(layer: nn.Linear, gain: float) -> nn.Linear:
    nn.init.orthogonal_(layer.weight, gain)
    nn.init.zeros_(layer.bias)
    return layer


class PolicyModule(nn.Module):
    """A network with ``policy_params(obs)`` and a ``distribution``, as the core's :class:`~rlcourse.policy.StochasticPolicy`.

    ``log_prob`` and ``act`` are what imitation (behaviour cloning, DAgger) trains and drives it with.
    """

    distribution: Categorical | DiagGaussian
    #: Whether the network keeps state between a rollout's steps (:meth:`rollout_params_and_value`, :meth:`forget`).
    keeps_state: bool = False

    def policy_params(self, obs: torch.Tensor):
        raise NotImplementedError

    def params_and_value(self, obs: torch.Tensor, sequences: torch.Tensor | None = None):
        """The distribution's parameters and V(s) (networks that share work between the two override it).

        ``sequences``: what :meth:`rollout_sequences` gave for these samples (networks that read sequences).
        """
        return self.policy_params(obs), self.value(obs)

    def rollout_sequences(self, obs: torch.Tensor, actions: torch.Tensor, dones: torch.Tensor) -> torch.Tensor | None:
        """For a sequence network, what each sample of a ``[T, B]`` rollout is best read from; None for the others."""
        return None

    def rollout_params_and_value(self, obs: torch.Tensor):
        """:meth:`params_and_value` for the next step of a rollout (a network that ``keeps_state`` steps from it)."""
        return self.params_and_value(obs)

    def forget(self) -> None:
        """Drop any state kept between rollout steps (called before every rollout: the weights have changed)."""

    def clip_grad_norm_(self, max_norm: float | torch.Tensor) -> None:
        """Scale the gradients down so that their global norm is at most ``max_norm`` (a stack of member networks,
        :class:`~rlcourse.agents.population.StackedPolicy`, clips each member by its own norm)."""
        torch.nn.utils.clip_grad_norm_(self.parameters(), max_norm)

    def _masked_params(self, obs: torch.Tensor, action_masks: torch.Tensor | None):
        params = self.policy_params(obs)
        return mask_logits(params, action_masks) if action_masks is not None else params

    def log_prob(
        self, obs: torch.Tensor, actions: torch.Tensor, action_masks: torch.Tensor | None = None
    ) -> torch.Tensor:
        """log π(a|s) of a batch, invalid actions masked out."""
        return self.distribution.log_prob(self._masked_params(obs, action_masks), actions)

    def act(
        self,
        obs: torch.Tensor,
        action_masks: torch.Tensor | None = None,
        deterministic: bool = True,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """The most likely valid action, or one sampled with ``generator``."""
        params = self._masked_params(obs, action_masks)
        return self.distribution.mode(params) if deterministic else self.distribution.sample(params, generator)


class ActorCritic(PolicyModule):
    """Separate policy and value MLPs over a flat observation (π(a|s) and V(s), notes:13744-13752 [Actor-Critic]).

    ``policy_params(obs)`` gives the distribution's parameters: logits for ``Categorical``,
    ``(mean, log_std)`` for ``DiagGaussian``.
    """

    def __init__(
        self,
        obs_dim: int,
        distribution: Categorical | DiagGaussian,
        hidden: tuple[int, ...],
        activation: str,
        log_std_init: float = 0.0,
    ):
        super().__init__()
        self.distribution = distribution
        self.policy_net = mlp(obs_dim, hidden, distribution.param_dim, activation, out_gain=0.01)
        self.value_net = mlp(obs_dim, hidden, 1, activation, out_gain=1.0)
        self.log_std = _log_std_parameter(distribution, log_std_init)

    def policy_params(self, obs: torch.Tensor):
        out = self.policy_net(obs)
        return out if self.log_std is None else (out, self.log_std)

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        return self.value_net(obs).squeeze(-1)


def _log_std_parameter(distribution: Categorical | DiagGaussian, log_std_init: float) -> nn.Parameter | None:
    """The state-independent log standard deviation of a Gaussian policy (None for a Categorical one)."""
    if not isinstance(distribution, DiagGaussian):
        return None
    return nn.Parameter(torch.full((distribution.param_dim,), float(log_std_init)))


class Actor(PolicyModule):
    """A policy MLP alone, π(a|s), for policy gradient without a learned baseline (notes:12713-12733 [PPO])."""

    def __init__(
        self,
        obs_dim: int,
        distribution: Categorical | DiagGaussian,
        hidden: tuple[int, ...],
        activation: str,
        log_std_init: float = 0.0,
    ):
        super().__init__()
        self.distribution = distribution
        self.policy_net = mlp(obs_dim, hidden, distribution.param_dim, activation, out_gain=0.01)
        self.log_std = _log_std_parameter(distribution, log_std_init)

    def policy_params(self, obs: torch.Tensor):
        out = self.policy_net(obs)
        return out if self.log_std is None else (out, self.log_std)


class SharedActorCritic(PolicyModule):
    """Actor and critic on one shared trunk, with separate heads (the first tip of notes:13744-13752 [Actor-Critic]).

    ``trunk`` is the list of shared hidden sizes; each head adds ``head_hidden`` layers of its own and
    then its output layer (with ``head_hidden=()`` a head is one linear layer). Both losses train the
    trunk, so features learnt for V(s) serve π(a|s) and the other way round.
    """

    def __init__(
        self,
        obs_dim: int,
        distribution: Categorical | DiagGaussian,
        trunk: tuple[int, ...],
        activation: str,
        log_std_init: float = 0.0,
        head_hidden: tuple[int, ...] = (),
    ):
        super().__init__()
        if not trunk:
            raise ValueError("a shared trunk needs at least one hidden layer")
        self.distribution = distribution
        # mlp() ends in a linear layer; the trunk's last layer is a hidden one, so it gets the hidden gain and an activation.
        self.trunk = MLP(
            *mlp(obs_dim, trunk[:-1], trunk[-1], activation, out_gain=math.sqrt(2)), ACTIVATIONS[activation]()
        )
        self.policy_head = mlp(trunk[-1], head_hidden, distribution.param_dim, activation, out_gain=0.01)
        self.value_head = mlp(trunk[-1], head_hidden, 1, activation, out_gain=1.0)
        self.log_std = _log_std_parameter(distribution, log_std_init)

    def _policy_out(self, features: torch.Tensor):
        out = self.policy_head(features)
        return out if self.log_std is None else (out, self.log_std)

    def params_and_value(self, obs: torch.Tensor, sequences: torch.Tensor | None = None):
        """The distribution's parameters and V(s) from one pass through the trunk."""
        features = self.trunk(obs)
        return self._policy_out(features), self.value_head(features).squeeze(-1)

    def policy_params(self, obs: torch.Tensor):
        return self._policy_out(self.trunk(obs))

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        return self.value_head(self.trunk(obs)).squeeze(-1)


POLICY_NETWORKS = ("mlp", "token_gru")


def policy_network(
    kind: str,
    observation_space: Any,
    action_space: Any,
    distribution: Categorical | DiagGaussian,
    net_arch: tuple[int, ...],
    activation: str,
    log_std_init: float,
    critic: bool = True,
) -> PolicyModule:
    """The policy network an on-policy agent's ``policy_network`` names (SB3's choice of policy class).

    ``mlp``: :class:`ActorCritic` (or :class:`Actor` without a critic) over a flat observation, ``net_arch``
    the hidden sizes. ``token_gru``: :class:`~rlcourse.agents.token_policy.TokenActorCritic` over token ids,
    ``net_arch`` = (embedding, GRU) sizes; its value head goes unused without a critic.
    """
    if kind == "token_gru":
        from rlcourse.agents.token_policy import TokenActorCritic

        return TokenActorCritic(observation_space, action_space, net_arch)
    if kind != "mlp":
        raise ValueError(f"policy_network must be one of {', '.join(POLICY_NETWORKS)}, got {kind!r}")
    if not isinstance(observation_space, spaces.Box) or len(observation_space.shape) != 1:
        raise ValueError(f"policy_network mlp needs a flat Box observation space, got {observation_space}")
    network = ActorCritic if critic else Actor
    return network(observation_space.shape[0], distribution, net_arch, activation, log_std_init)


@torch.no_grad()
def polyak_update_(target: nn.Module, online: nn.Module, weight: float | torch.Tensor) -> None:
    """θ̂ ← θ̂ + w·(θ − θ̂) for every parameter: w = 1 copies (a hard target sync), 0 < w < 1 averages (Polyak).

    ``weight`` may be a 0-d device tensor, so whether a sync happens can be decided on the device
    (no host read, CUDA-graph safe); ``lerp`` with weight exactly 1 or 0 gives θ or θ̂ bit for bit.
    """
    targets, sources = list(target.parameters()), list(online.parameters())
    # A tensor weight goes in as a list: as a plain Scalar, torch would read it to the host (.item()).
    torch._foreach_lerp_(targets, sources, [weight] * len(targets) if isinstance(weight, torch.Tensor) else weight)
