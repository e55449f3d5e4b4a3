"""Env wrappers: a pass-through :class:`TensorVecEnvWrapper` base, SB3-style normalisation and reward functions.

A wrapper is itself a :class:`~rlcourse.TensorVecEnv`, so agents take it wherever they take an env.
The base passes everything through (spaces, declared abilities, masks, options, the generator,
``state_dict``), so a wrapper overrides only what it changes, through three hooks:

* ``observation(obs)``: a pure transform, applied to every observation and to ``info["final_obs"]``;
* ``reward(reward, terminated, truncated)``: the reward the agent sees (may update the wrapper's state);
* ``_on_inner_obs(obs)``: sees each raw batch of observations first (where statistics are updated).

Rules every wrapper keeps, because agents capture ``step`` in CUDA graphs: no host reads or Python
branches on tensor values, statistics are preallocated tensors on ``env.device`` updated in place.
Python settings such as ``training`` are baked into a graph when it is captured: set them before.

``info["episode"]`` comes from the innermost env, so episode returns are the env's own rewards, not
the normalised or model rewards (as with SB3's ``Monitor`` under ``VecNormalize``).

State layout: ``state_dict() == {"env": inner.state_dict(), "wrapper": {name: tensor}}``, nested once
per level of wrapping; ``check_state_dict`` validates all levels before ``load_state_dict`` changes any.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from gymnasium import spaces
from gymnasium.vector.utils import batch_space

from rlcourse.config import Normalization, parse_normalize
from rlcourse.vec_env import TensorDict, TensorVecEnv, true_next_obs

ResetResult = tuple[torch.Tensor, TensorDict]
StepResult = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, TensorDict]
REWARD_MODES = ("replace", "add")


def _forward(name: str, doc: str) -> property:
    """A read-only attribute that reads the inner env's ``name``."""
    return property(lambda self: getattr(self.env, name), doc=doc)


class TensorVecEnvWrapper(TensorVecEnv):
    """Wraps ``env`` and passes everything through; subclasses override the hooks they need.

    The wrapper owns no generator and no episode statistics: ``generator``, ``episode_return`` and
    the declared abilities are the inner env's. ``env`` is the next env in, ``unwrapped`` the innermost.
    """

    #: Whether :meth:`observation` changes what the inner env shows (then the inner env's rule expert,
    #: which reads raw observations, cannot act on this wrapper's observations).
    transforms_observations: ClassVar[bool] = False

    def __init__(self, env: TensorVecEnv):
        # TensorVecEnv.__init__ is not called on purpose: it would give the wrapper its own generator and statistics.
        if not isinstance(env, TensorVecEnv):
            raise TypeError(f"{type(self).__name__} wraps a TensorVecEnv (rlcourse.make_vec), got {type(env).__name__}")
        self.env = env
        self.single_observation_space = env.single_observation_space
        self.observation_space = env.observation_space
        self.single_action_space = env.single_action_space
        self.action_space = env.action_space

    # ----------------------------------------------------------------- what passes through
    num_envs = _forward("num_envs", "The inner env's number of sub-envs.")
    device = _forward("device", "The inner env's device: every tensor in and out lives there.")
    metadata = _forward("metadata", "The inner env's metadata (autoreset mode, render modes).")
    env_id = _forward("env_id", "The registered id of the inner env.")
    outcome_keys = _forward("outcome_keys", "The inner env's per-episode outcomes (``info['final_info']``).")
    has_action_masks = _forward("has_action_masks", "Whether :meth:`action_masks` works (the inner env's).")
    has_transcripts = _forward("has_transcripts", "Whether :meth:`play_transcripts` works (the inner env's).")
    restorable = _forward("restorable", "Whether :meth:`state_dict` holds the whole state (the wrapper's always does).")
    graph_safe = _forward("graph_safe", "Whether ``step`` may be captured in a CUDA graph.")
    truncates = _forward("truncates", "Whether an episode can end by truncation (the inner env's).")
    generator = _forward("generator", "The inner env's ``torch.Generator`` (agents register it with CUDA graphs).")
    generators = _forward("generators", "Every generator the inner env's ``step`` draws from.")
    episode_return = _forward("episode_return", "The innermost env's running episode returns (its own rewards).")
    episode_length = _forward("episode_length", "The innermost env's running episode lengths.")
    render_mode = _forward("render_mode", "The inner env's render mode.")

    @property
    def has_rule_expert(self) -> bool:
        """Whether :meth:`rule_expert` works: the inner env has one and this wrapper leaves observations alone."""
        return self.env.has_rule_expert and not self.transforms_observations

    @property
    def validate(self) -> bool:
        return self.env.validate

    @validate.setter
    def validate(self, value: bool) -> None:
        self.env.validate = value

    @property
    def recording(self) -> bool:
        return self.env.recording

    @recording.setter
    def recording(self, value: bool) -> None:
        self.env.recording = value

    @property
    def unwrapped(self) -> TensorVecEnv:
        return self.env.unwrapped

    def options(self) -> dict[str, Any]:
        """The inner env's options: a checkpoint records the env, and the caller rebuilds the wrappers."""
        return self.env.options()

    def action_masks(self) -> torch.Tensor:
        return self.env.action_masks()

    def rule_expert(self) -> Any:
        if self.transforms_observations:
            raise NotImplementedError(
                f"{type(self).__name__} changes the observations the rule expert reads; "
                "use wrapper.env.rule_expert() on the inner env's observations"
            )
        return self.env.rule_expert()

    def training_callbacks(self) -> list[Any]:
        """The inner env's training callbacks (self-play's snapshot pool), so a wrapped env trains as the bare one."""
        return self.env.training_callbacks()

    def render_opening(self, index: int = 0) -> list[str]:
        return self.env.render_opening(index)

    def render_turn(self, info: dict[str, Any], index: int = 0) -> list[str]:
        return self.env.render_turn(info, index)

    def play_transcripts(self, policy: Any, num_episodes: int, seed: int | None = None) -> list[str]:
        """The inner env's transcripts, with ``policy`` shown this wrapper's observations (statistics stay put)."""
        return self.env.play_transcripts(lambda obs, masks: policy(self.observation(obs), masks), num_episodes, seed)

    def close_extras(self, **kwargs: Any) -> None:
        self.env.close(**kwargs)

    # ----------------------------------------------------------------- hooks and the Gymnasium API
    def observation(self, obs: torch.Tensor) -> torch.Tensor:
        """The observation the agent sees, from the inner env's (pure: no state changes)."""
        return obs

    def reward(self, reward: torch.Tensor, terminated: torch.Tensor, truncated: torch.Tensor) -> torch.Tensor:
        """The reward the agent sees, from the inner env's; called once per step."""
        return reward

    def _on_inner_obs(self, obs: torch.Tensor) -> None:
        """Sees every batch of inner observations (after reset and each step) before :meth:`observation`."""

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> ResetResult:
        obs, info = self.env.reset(seed=seed, options=options)
        self._on_inner_obs(obs)
        return self.observation(obs), info

    def step(self, actions: torch.Tensor) -> StepResult:
        obs, reward, terminated, truncated, info = self.env.step(actions)
        self._on_inner_obs(obs)
        reward = self.reward(reward, terminated, truncated)
        info = {**info, "final_obs": self.observation(info["final_obs"])}  # a new dict: the inner env's stays as it was
        return self.observation(obs), reward, terminated, truncated, info

    # ----------------------------------------------------------------- copies and checkpoints
    def wrapper_options(self) -> dict[str, Any]:
        """The constructor arguments besides ``env`` that rebuild this wrapper."""
        return {}

    def spawn(self, num_envs: int, device: str | torch.device | None = None) -> TensorVecEnvWrapper:
        """The inner env spawned and wrapped again with the same settings (statistics wrappers copy and freeze theirs)."""
        return type(self)(self.env.spawn(num_envs, device), **self.wrapper_options())

    def _own_tensors(self) -> dict[str, torch.Tensor]:
        """The wrapper's own state: live tensors, restored in place."""
        return {}

    def state_dict(self) -> dict[str, Any]:
        return {
            "env": self.env.state_dict(),
            "wrapper": {name: value.clone() for name, value in self._own_tensors().items()},
        }

    def check_state_dict(self, state: dict[str, Any]) -> None:
        """Raise ``ValueError`` unless ``state`` fits this wrapper and every env inside it."""
        name = type(self).__name__
        if not isinstance(state, dict) or set(state) != {"env", "wrapper"}:
            keys = sorted(state) if isinstance(state, dict) else type(state).__name__
            raise ValueError(f"{name} state must have the keys ['env', 'wrapper'], got {keys} (saved unwrapped?)")
        own, saved = self._own_tensors(), state["wrapper"]
        if not isinstance(saved, dict) or set(saved) != set(own):
            keys = sorted(saved) if isinstance(saved, dict) else type(saved).__name__
            raise ValueError(f"{name} state has the entries {keys}, expected {sorted(own)} (another wrapper's?)")
        for key, target in own.items():
            value = saved[key]
            if not isinstance(value, torch.Tensor) or value.shape != target.shape or value.dtype != target.dtype:
                got = (
                    f"shape {tuple(value.shape)} and dtype {value.dtype}"
                    if isinstance(value, torch.Tensor)
                    else type(value).__name__
                )
                raise ValueError(
                    f"{name} state {key!r} has {got}, expected shape {tuple(target.shape)} and dtype "
                    f"{target.dtype} (saved with another num_envs or observation space?)"
                )
        self.env.check_state_dict(state["env"])

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore in place (tensor addresses stay, for captured CUDA graphs); a state that does not fit changes nothing."""
        self.check_state_dict(state)
        self.env.load_state_dict(state["env"])
        for key, target in self._own_tensors().items():
            target.copy_(state["wrapper"][key])

    def _statistics(self) -> dict[str, torch.Tensor]:
        """The part of :meth:`_own_tensors` that holds for any batch size (learned statistics)."""
        return {}

    def statistics_state(self) -> dict[str, Any]:
        own = {name: value.clone() for name, value in self._statistics().items()}
        inner = self.env.statistics_state()
        return {"env": inner, "wrapper": own} if own or inner else {}

    def check_statistics(self, state: dict[str, Any]) -> None:
        expected = self.statistics_state()
        if not state and not expected:
            return
        name = type(self).__name__
        if not isinstance(state, dict) or set(state) != {"env", "wrapper"}:
            raise ValueError(
                f"{name} statistics must have the keys ['env', 'wrapper'], got {sorted(state) if isinstance(state, dict) else state!r} (saved without this wrapper?)"
            )
        for key, target in expected["wrapper"].items():
            value = state["wrapper"].get(key)
            if not isinstance(value, torch.Tensor) or value.shape != target.shape or value.dtype != target.dtype:
                raise ValueError(
                    f"{name} statistics {key!r} do not fit: expected shape {tuple(target.shape)} and dtype {target.dtype}"
                )
        if set(state["wrapper"]) != set(expected["wrapper"]):
            raise ValueError(
                f"{name} statistics have the entries {sorted(state['wrapper'])}, expected {sorted(expected['wrapper'])}"
            )
        self.env.check_statistics(state["env"])

    def load_statistics(self, state: dict[str, Any]) -> None:
        self.check_statistics(state)
        if not state:
            return
        self.env.load_statistics(state["env"])
        for key, target in self._statistics().items():
            target.copy_(state["wrapper"][key])

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.env!r})"


class RunningMeanStd:
    """SB3's ``RunningMeanStd`` on the device: a running mean and variance by Chan et al.'s parallel update.

    ``mean``, ``var`` and ``count`` are float64 tensors (as SB3's numpy ones), updated in place. The
    count starts at ``epsilon`` (SB3's 1e-4) so the first update needs no special case.
    """

    def __init__(self, shape: tuple[int, ...], device: torch.device, epsilon: float = 1e-4):
        self.mean = torch.zeros(shape, dtype=torch.float64, device=device)
        self.var = torch.ones(shape, dtype=torch.float64, device=device)
        self.count = torch.full((), epsilon, dtype=torch.float64, device=device)

    def update(self, batch: torch.Tensor) -> None:
        """Fold in ``batch`` (``[n, *shape]``). Its moments are taken in its own dtype, as SB3's ``np.mean`` does."""
        batch_var, batch_mean = torch.var_mean(batch, dim=0, correction=0)
        n = batch.shape[0]
        delta = batch_mean.double() - self.mean
        total = self.count + n
        # The same operation order as SB3's update_from_moments, so both round alike.
        m2 = self.var * self.count + batch_var.double() * n + delta.square() * self.count * n / total
        self.mean += delta * n / total
        self.var.copy_(m2 / total)
        self.count += n

    def tensors(self) -> dict[str, torch.Tensor]:
        return {"mean": self.mean, "var": self.var, "count": self.count}

    def copy_(self, other: RunningMeanStd) -> None:
        for name, value in self.tensors().items():
            value.copy_(other.tensors()[name])


class _Normalize(TensorVecEnvWrapper):
    """What both normalisers share: a :class:`RunningMeanStd`, ``epsilon``, ``clip`` and the ``training`` switch."""

    rms: RunningMeanStd

    def __init__(self, env: TensorVecEnv, epsilon: float, clip: float, training: bool):
        super().__init__(env)
        if not epsilon > 0 or not clip > 0:
            raise ValueError(
                f"{type(self).__name__} needs epsilon > 0 and clip > 0, got epsilon={epsilon!r}, clip={clip!r}"
            )
        self.epsilon, self.clip = float(epsilon), float(clip)
        #: While true, every step updates the statistics; false freezes them (evaluation copies).
        self.training = bool(training)

    def _std(self) -> torch.Tensor:
        return (self.rms.var + self.epsilon).sqrt()

    def wrapper_options(self) -> dict[str, Any]:
        return {"epsilon": self.epsilon, "clip": self.clip, "training": self.training}

    def spawn(self, num_envs: int, device: str | torch.device | None = None) -> _Normalize:
        """A copy for evaluation: this wrapper's statistics, frozen."""
        spawned = super().spawn(num_envs, device)
        spawned.rms.copy_(self.rms)
        spawned.training = False
        return spawned

    def _own_tensors(self) -> dict[str, torch.Tensor]:
        return dict(self.rms.tensors())

    def _statistics(self) -> dict[str, torch.Tensor]:
        return dict(self.rms.tensors())


class NormalizeObservation(_Normalize):
    """SB3 ``VecNormalize(norm_obs=True)``: ``clip((obs - mean) / sqrt(var + epsilon), -clip, clip)``.

    The statistics take in every observation the inner env returns (reset and step, not the final
    observations), before it is normalised. The statistics and the normalisation are float64 (the
    batch moments are taken in the observation's dtype, as SB3's ``np.mean``); the result has the
    observation's dtype. The observation space becomes ``Box(-clip, clip)``.
    """

    transforms_observations = True

    def __init__(self, env: TensorVecEnv, epsilon: float = 1e-8, clip: float = 10.0, training: bool = True):
        super().__init__(env, epsilon, clip, training)
        space = env.single_observation_space
        if not isinstance(space, spaces.Box) or not np.issubdtype(space.dtype, np.floating):
            raise ValueError(f"NormalizeObservation needs a floating Box observation space, got {space}")
        self.rms = RunningMeanStd(space.shape, self.device)
        self.single_observation_space = spaces.Box(-self.clip, self.clip, space.shape, dtype=np.float32)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)

    def _on_inner_obs(self, obs: torch.Tensor) -> None:
        if self.training:
            self.rms.update(obs)

    def observation(self, obs: torch.Tensor) -> torch.Tensor:
        # In float64, as SB3: in float32, a feature whose mean is large against its std loses digits in obs - mean.
        return ((obs.double() - self.rms.mean) / self._std()).clamp(-self.clip, self.clip).to(obs.dtype)


class NormalizeReward(_Normalize):
    """SB3 ``VecNormalize(norm_reward=True)``: rewards divided by the std of the discounted return.

    Each sub-env keeps ``returns = gamma * returns + reward`` (float64, zeroed where an episode ends
    and at reset); the statistics take in every step's returns, then ``clip(reward / sqrt(var +
    epsilon), -clip, clip)``. The mean is not subtracted, so a reward keeps its sign.
    """

    def __init__(
        self, env: TensorVecEnv, gamma: float = 0.99, epsilon: float = 1e-8, clip: float = 10.0, training: bool = True
    ):
        super().__init__(env, epsilon, clip, training)
        if not 0.0 <= gamma <= 1.0:
            raise ValueError(f"NormalizeReward needs 0 <= gamma <= 1, got {gamma!r}")
        self.gamma = float(gamma)
        self.rms = RunningMeanStd((), self.device)
        self.returns = torch.zeros(self.num_envs, dtype=torch.float64, device=self.device)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> ResetResult:
        self.returns.zero_()
        return super().reset(seed=seed, options=options)

    def reward(self, reward: torch.Tensor, terminated: torch.Tensor, truncated: torch.Tensor) -> torch.Tensor:
        if self.training:
            self.returns.mul_(self.gamma).add_(reward)
            self.rms.update(self.returns)
        normalised = (reward.double() / self._std()).clamp(-self.clip, self.clip).float()
        self.returns.masked_fill_(terminated | truncated, 0.0)
        return normalised

    def wrapper_options(self) -> dict[str, Any]:
        return {"gamma": self.gamma, **super().wrapper_options()}

    def _own_tensors(self) -> dict[str, torch.Tensor]:
        return {**super()._own_tensors(), "returns": self.returns}


@dataclass(frozen=True)
class TransitionBatch:
    """One step of every sub-env, as :class:`RewardFunction` hands it to a reward function or ``RewardModel``.

    ``obs``/``next_obs``: ``[B, *obs_shape]``, ``next_obs`` the true next observation (the final one
    where an episode ended); ``actions``: ``[B, *action_shape]``; ``rewards``: the env's ``[B]``
    float32 rewards; ``terminated``/``truncated``: ``[B]`` bool; ``action_masks``: ``[B, n]`` bool, the
    valid actions in ``obs`` for envs with action masks, else None. Read them, do not keep them: the
    buffers are reused next step.
    """

    obs: torch.Tensor
    actions: torch.Tensor
    next_obs: torch.Tensor
    rewards: torch.Tensor
    terminated: torch.Tensor
    truncated: torch.Tensor
    action_masks: torch.Tensor | None = None

    @property
    def dones(self) -> torch.Tensor:
        """``terminated | truncated``, under the name :class:`rlcourse.callbacks.RolloutBatch` uses."""
        return self.terminated | self.truncated


class RewardFunction(TensorVecEnvWrapper):
    """Rewards from a function of the transition: ``mode="replace"`` gives ``scale * fn(batch)``, ``"add"``
    gives ``env_reward + scale * fn(batch)``.

    ``fn`` is a :class:`~rlcourse.supervised` ``RewardModel`` (an ``nn.Module`` with ``reward(batch)``,
    called that way) or any callable ``fn(batch) -> Tensor[B]``; ``batch`` is a :class:`TransitionBatch`.
    It runs under ``torch.no_grad()``, and must be graph safe unless ``graph_safe=False`` is given. A
    module's parameters are not part of this wrapper's state: the plug-in saves itself.

    ``batch`` holds the observations of the env this wraps (put it inside ``NormalizeObservation`` for
    raw ones) and ``info["episode"]`` still reports the env's own rewards; wrap it in ``NormalizeReward``
    to normalise the rewards it gives.
    """

    def __init__(
        self,
        env: TensorVecEnv,
        fn: Callable[[TransitionBatch], torch.Tensor] | torch.nn.Module,
        mode: str = "replace",
        scale: float = 1.0,
        graph_safe: bool = True,
    ):
        super().__init__(env)
        if mode not in REWARD_MODES:
            raise ValueError(f"RewardFunction mode must be one of {', '.join(map(repr, REWARD_MODES))}, got {mode!r}")
        reward_method = getattr(fn, "reward", None)  # the RewardModel protocol of DESIGN's plug-ins
        self._compute = reward_method if callable(reward_method) else fn
        if not callable(self._compute):
            raise TypeError(
                f"RewardFunction needs a callable fn(batch) or a module with reward(batch), got {type(fn).__name__}"
            )
        if isinstance(fn, torch.nn.Module):
            for tensor in (*fn.parameters(), *fn.buffers()):
                if tensor.device != self.device:
                    raise ValueError(
                        f"the reward module is on {tensor.device}, the env on {self.device}; move it with .to()"
                    )
        self.fn, self.mode, self.scale, self._fn_graph_safe = fn, mode, float(scale), bool(graph_safe)
        dtype = torch.from_numpy(np.zeros((), dtype=self.single_observation_space.dtype)).dtype
        #: The observation each sub-env is in (the ``obs`` of the next transition); preallocated for CUDA graphs.
        self.last_obs = torch.zeros(self.observation_space.shape, dtype=dtype, device=self.device)
        #: The valid actions in ``last_obs`` (envs with action masks), which a reward of log π(a|s) needs.
        self.last_masks = (
            torch.zeros((self.num_envs, int(self.single_action_space.n)), dtype=torch.bool, device=self.device)
            if self.has_action_masks
            else None
        )

    graph_safe = property(lambda self: self.env.graph_safe and self._fn_graph_safe)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> ResetResult:
        obs, info = super().reset(seed=seed, options=options)
        self._remember(obs)
        return obs, info

    def step(self, actions: torch.Tensor) -> StepResult:
        obs, reward, terminated, truncated, info = self.env.step(actions)
        batch = TransitionBatch(
            self.last_obs, actions, true_next_obs(obs, info), reward, terminated, truncated, self.last_masks
        )
        with torch.no_grad():
            model_reward = self._checked(self._compute(batch))
        self._remember(obs)
        reward = self.scale * model_reward if self.mode == "replace" else reward + self.scale * model_reward
        return obs, reward, terminated, truncated, info

    def _remember(self, obs: torch.Tensor) -> None:
        self.last_obs.copy_(obs)
        if self.last_masks is not None:
            self.last_masks.copy_(self.env.action_masks())

    def _checked(self, value: Any) -> torch.Tensor:
        """The reward function's output as float32, after the free checks (shape, device)."""
        expected = (self.num_envs,)
        if not isinstance(value, torch.Tensor) or tuple(value.shape) != expected:
            got = f"shape {tuple(value.shape)}" if isinstance(value, torch.Tensor) else type(value).__name__
            raise ValueError(
                f"the reward function must return a tensor of shape {expected} (one reward per sub-env), got {got}"
            )
        if value.device != self.device:
            raise ValueError(f"the reward function must return a tensor on {self.device}, got one on {value.device}")
        return value.float()

    def wrapper_options(self) -> dict[str, Any]:
        return {"fn": self.fn, "mode": self.mode, "scale": self.scale, "graph_safe": self._fn_graph_safe}

    def _own_tensors(self) -> dict[str, torch.Tensor]:
        own = {"last_obs": self.last_obs}
        if self.last_masks is not None:
            own["last_masks"] = self.last_masks
        return own


# --------------------------------------------------------------------------- normalisation as a setting
def normalize_env(env: TensorVecEnv, normalize: Any, gamma: float | None = None) -> TensorVecEnv:
    """``env`` under the normalisation a ``normalize`` setting asks for (:func:`rlcourse.config.parse_normalize`):
    :class:`NormalizeObservation` first, then :class:`NormalizeReward` with ``gamma`` (the algorithm's γ; SB3's
    0.99 when None), both with SB3's defaults. ``false`` returns ``env`` itself.

    A level ``env`` already has is refused (a ``ValueError``): statistics would be gathered twice.
    """
    setting = parse_normalize(normalize)
    present = normalization_of(env)
    for wanted, already, name in (
        (setting.observation, present.observation, "NormalizeObservation"),
        (setting.reward, present.reward, "NormalizeReward"),
    ):
        if wanted and already:
            raise ValueError(f"normalize: this env is under {name} already; it would normalise twice")
    if setting.observation:
        env = NormalizeObservation(env)
    if setting.reward:
        env = NormalizeReward(env) if gamma is None else NormalizeReward(env, gamma=gamma)
    return env


def wrapper_chain(env: TensorVecEnv) -> list[TensorVecEnvWrapper]:
    """The wrappers around ``env``'s innermost env, outermost first ([] for an env that is not wrapped)."""
    chain = []
    while isinstance(env, TensorVecEnvWrapper):
        chain.append(env)
        env = env.env
    return chain


def normalization_of(env: TensorVecEnv) -> Normalization:
    """What ``env`` normalises: whether a :class:`NormalizeObservation` / :class:`NormalizeReward` is in its chain."""
    chain = wrapper_chain(env)
    return Normalization(
        observation=any(isinstance(level, NormalizeObservation) for level in chain),
        reward=any(isinstance(level, NormalizeReward) for level in chain),
    )


def wrapper_levels(env: TensorVecEnv) -> list[dict[str, Any]]:
    """``env``'s wrappers as plain data, outermost first, as a checkpoint records them: each one's class name,
    whether it learns statistics, and for those its numeric settings (``epsilon``, ``clip``, ``gamma``), which must
    be the same where the statistics load."""
    levels = []
    for level in wrapper_chain(env):
        learns = bool(level._statistics())
        options = {
            name: value
            for name, value in level.wrapper_options().items()
            if learns and name != "training" and isinstance(value, (int, float, str)) and not isinstance(value, bool)
        }
        levels.append({"wrapper": type(level).__name__, "statistics": learns, "options": options})
    return levels


def wrapped_observation(env: TensorVecEnv, obs: torch.Tensor) -> torch.Tensor:
    """What the agent sees of ``obs``, an observation of ``env``'s innermost env: every wrapper's
    :meth:`~TensorVecEnvWrapper.observation`, innermost first (statistics stay put)."""
    for level in reversed(wrapper_chain(env)):
        obs = level.observation(obs)
    return obs
