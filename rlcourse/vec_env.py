"""The env contract: :class:`TensorVecEnv`, a Gymnasium vector env whose state lives in torch tensors.

A concrete env writes three batched, branch-free methods and a list of its state tensors:

* ``_reset_where(mask)`` re-initialises the sub-envs selected by a bool mask (``torch.where``, never
  boolean indexing, so no host-device sync); it draws the same random numbers whatever the mask, and
  may skip the rest where :meth:`~TensorVecEnv._selects_none` says the mask is empty (a free question
  on the CPU only);
* ``_transition(actions) -> (reward, terminated, truncated, info)`` advances every sub-env one step;
* ``_observe() -> obs`` reads the observation from the state;
* ``state_names``: the attribute names of the tensors that make up the env's state (for checkpoints).

This base class adds everything the contract shares: SAME_STEP autoreset with ``final_obs`` /
``final_info``, on-device episode statistics, seeding through the env's own ``torch.Generator``,
cheap shape/dtype/device checks and opt-in value-range checks.

What an env can do beyond the contract is *declared* on its class, never guessed with ``hasattr``:

* ``outcome_keys``: per-episode outcomes (bool tensors in ``info["final_info"]``), e.g. ``("success",)``;
  agents log each as ``rollout/<key>_rate`` and evaluation returns ``<key>_rate``;
* ``has_action_masks``: :meth:`action_masks` gives the valid actions;
* ``has_transcripts``: :meth:`play_transcripts` shows episodes as text (text envs);
* ``has_rule_expert``: :meth:`rule_expert` gives a hand-written policy;
* ``truncates``: whether an episode can end by truncation (a time limit); an env whose episodes always
  terminate says False, and agents then skip valuing ``final_obs`` for a bootstrap that is always zero;
* ``groupable``: every draw goes through :meth:`~TensorVecEnv._draw_uniform`, one row per sub-env, so
  :meth:`~TensorVecEnv.split_streams` can give groups of consecutive sub-envs their own generators
  (:class:`GeneratorGroup`: a population of agents, each playing its own episodes);
* :meth:`training_callbacks`: callbacks the env needs while an agent trains on it (self-play's snapshot
  pool, which a battle against ``opponent="self"`` fills); ``Agent.learn`` runs them after the caller's,
  so a run from the CLI gets them too. An env returns the same objects on every call (their state lives
  across ``learn`` calls), and ``learn`` leaves one out where the caller passed a callback of its class;
* :attr:`action_names`: what each Discrete action index means (empty where the env does not say);
* ``metadata["render_modes"]``: the render modes of the single-env adapter; ``"ansi"`` means the env
  writes text with :meth:`render_opening` and :meth:`render_turn` while :attr:`recording` is on;
  ``"rgb_array"`` means :meth:`render_frame` draws what an observation shows as a ``uint8`` (H, W, 3)
  picture, and the env takes ``render_mode="rgb_array"`` (its :meth:`render` draws sub-env 0).

Wrappers (:mod:`rlcourse.wrappers`) pass every declaration through.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from rlcourse.device import canonical_device

if TYPE_CHECKING:
    from rlcourse.callbacks import Callback

TensorDict = dict[str, Any]
SUPPORTED_ACTION_SPACES = (spaces.Discrete, spaces.Box, spaces.MultiDiscrete, spaces.MultiBinary)


def _torch_dtype(space: spaces.Space) -> torch.dtype:
    return torch.from_numpy(np.zeros((), dtype=space.dtype)).dtype


def describe_space(space: spaces.Space) -> str:
    """A short human description of what a batched action for ``space`` must look like."""
    if isinstance(space, spaces.Discrete):
        return f"an integer tensor of shape (num_envs,) with values in [{space.start}, {space.start + space.n - 1}] for {space}"
    if isinstance(space, spaces.Box):
        return f"a floating tensor of shape (num_envs, {', '.join(map(str, space.shape))}) for {space}"
    if isinstance(space, spaces.MultiDiscrete):
        return f"an integer tensor of shape (num_envs, {len(space.nvec)}) for {space}"
    return str(space)


def fill_where(tensor: torch.Tensor, mask: torch.Tensor, value: torch.Tensor) -> None:
    """``tensor[mask] = value`` in place, for a 0-d tensor ``value``. Graph safe: on CUDA, ``masked_fill_`` reads a
    tensor value on the host (a sync, which CUDA graph capture refuses), so off the CPU it goes through ``where``."""
    if tensor.device.type == "cpu":
        tensor.masked_fill_(mask, value)
    else:
        tensor.copy_(torch.where(mask, value, tensor))


class GeneratorGroup:
    """One ``torch.Generator`` per group of consecutive rows of a batch, so that each group has a stream of its own
    (a population's members: ``rlcourse.agents.population``).

    :func:`draw_uniform` gives each group's rows what its generator alone draws for a batch of the group's size,
    so a group draws exactly what an ungrouped batch of that size seeded the same way draws.
    ``manual_seed``/``get_state``/``set_state`` work as a generator's do, with one seed or state row per group.
    """

    def __init__(self, generators: Sequence[torch.Generator]):
        self.generators = tuple(generators)
        if not self.generators:
            raise ValueError("a generator group needs at least one generator")

    def __len__(self) -> int:
        return len(self.generators)

    @property
    def device(self) -> torch.device:
        return self.generators[0].device

    def manual_seed(self, seeds: Sequence[int]) -> GeneratorGroup:
        """Seed generator ``k`` with ``seeds[k]`` (one seed per group)."""
        if isinstance(seeds, (int, np.integer)) or len(seeds) != len(self):
            raise ValueError(f"a group of {len(self)} generators takes one seed per group, got {seeds!r}")
        for generator, seed in zip(self.generators, seeds):
            generator.manual_seed(int(seed))
        return self

    def get_state(self) -> torch.Tensor:
        return torch.stack([generator.get_state() for generator in self.generators])

    def set_state(self, state: torch.Tensor) -> None:
        if state.dim() != 2 or state.shape[0] != len(self):
            raise ValueError(
                f"a group of {len(self)} generators needs {len(self)} state rows, got {tuple(state.shape)}"
            )
        for generator, row in zip(self.generators, state):
            generator.set_state(row.clone())


def generators_of(generator: torch.Generator | GeneratorGroup) -> tuple[torch.Generator, ...]:
    """The ``torch.Generator`` objects behind a generator or a group (what a CUDA graph registers)."""
    return generator.generators if isinstance(generator, GeneratorGroup) else (generator,)


def draw_uniform(
    shape: Sequence[int],
    generator: torch.Generator | GeneratorGroup | None,
    device: torch.device,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """U[0, 1) numbers of ``shape``: ``torch.rand`` from ``generator``; from a :class:`GeneratorGroup`, each group of
    ``shape[0] / len(group)`` consecutive rows from its own generator, concatenated (graph safe either way)."""
    if not isinstance(generator, GeneratorGroup):
        return torch.rand(tuple(shape), generator=generator, device=device, dtype=dtype)
    rows, rest = _group_rows(shape, generator)
    return torch.cat([torch.rand((rows, *rest), generator=g, device=device, dtype=dtype) for g in generator.generators])


def draw_normal(
    shape: Sequence[int],
    generator: torch.Generator | GeneratorGroup | None,
    device: torch.device,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """N(0, 1) numbers of ``shape``, drawn as :func:`draw_uniform` draws (``torch.randn`` per generator)."""
    if not isinstance(generator, GeneratorGroup):
        return torch.randn(tuple(shape), generator=generator, device=device, dtype=dtype)
    rows, rest = _group_rows(shape, generator)
    return torch.cat(
        [torch.randn((rows, *rest), generator=g, device=device, dtype=dtype) for g in generator.generators]
    )


def _group_rows(shape: Sequence[int], group: GeneratorGroup) -> tuple[int, tuple[int, ...]]:
    if not shape or shape[0] % len(group):
        raise ValueError(f"a draw of shape {tuple(shape)} does not split into {len(group)} groups of rows")
    return shape[0] // len(group), tuple(shape[1:])


def true_next_obs(next_obs: torch.Tensor, info: TensorDict) -> torch.Tensor:
    """The state each sub-env's step led to: its final observation where an episode ended (SAME_STEP autoreset
    has already put the next episode's first one in ``next_obs``), else ``next_obs``. Graph safe."""
    ended = info["_final_obs"].view(-1, *[1] * (next_obs.dim() - 1))
    return torch.where(ended, info["final_obs"], next_obs)


class TensorVecEnv(VectorEnv):
    """A batched environment whose whole state is torch tensors on ``device``.

    Args:
        num_envs: number of sub-environments stepped together (> 0).
        device: torch device of every tensor going in and out.
        validate: also check action value ranges on every step (costs a host-device sync).
    """

    metadata: ClassVar[dict[str, Any]] = {"autoreset_mode": AutoresetMode.SAME_STEP, "render_modes": []}
    #: Names of the tensor attributes that hold the env's state (besides episode statistics).
    state_names: ClassVar[tuple[str, ...]] = ()
    #: Whether :meth:`state_dict` captures the whole state, so that a resumed run continues exactly.
    restorable: ClassVar[bool] = True
    #: Whether ``step`` is pure device work (no host round trips), so agents may capture it in a CUDA graph.
    graph_safe: ClassVar[bool] = True
    #: Registered Gymnasium id, set by :func:`rlcourse.register_env`.
    env_id: ClassVar[str | None] = None
    #: Names of the per-episode outcomes reported as bool tensors in ``info["final_info"]`` (``("success",)``).
    outcome_keys: ClassVar[tuple[str, ...]] = ()
    #: Whether :meth:`action_masks` gives the valid actions of every sub-env (Discrete action spaces).
    has_action_masks: ClassVar[bool] = False
    #: Whether :meth:`play_transcripts` can show episodes as text.
    has_transcripts: ClassVar[bool] = False
    #: Whether :meth:`rule_expert` gives a hand-written policy for this env.
    has_rule_expert: ClassVar[bool] = False
    #: Whether an episode can end by truncation; where it never does, agents skip bootstrapping from ``final_obs``.
    truncates: ClassVar[bool] = True
    #: Whether every random number is drawn through :meth:`_draw_uniform` with one row per sub-env, so that
    #: :meth:`split_streams` can give each group of consecutive sub-envs a stream of its own.
    groupable: ClassVar[bool] = False

    single_observation_space: spaces.Space
    single_action_space: spaces.Space

    def __init__(
        self, num_envs: int, device: str | torch.device = "cpu", validate: bool = False, render_mode: str | None = None
    ):
        if isinstance(num_envs, bool) or not isinstance(num_envs, (int, np.integer)) or num_envs <= 0:
            raise ValueError(f"num_envs must be a positive integer, got {num_envs!r}")
        if not isinstance(self.single_action_space, SUPPORTED_ACTION_SPACES):
            raise ValueError(
                f"{type(self).__name__} declares the action space {self.single_action_space}; a TensorVecEnv supports "
                f"{', '.join(cls.__name__ for cls in SUPPORTED_ACTION_SPACES)} action spaces"
            )
        self.num_envs = int(num_envs)
        self.device = canonical_device(device)
        self.validate = bool(validate)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self._action_dtype = _torch_dtype(self.single_action_space)
        self._action_shape = (self.num_envs, *self.single_action_space.shape)
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(int(np.random.SeedSequence().generate_state(1)[0]))
        self.episode_return = torch.zeros(self.num_envs, dtype=torch.float32, device=self.device)
        self.episode_length = torch.zeros(self.num_envs, dtype=torch.int32, device=self.device)
        # Tensor operands for the episode statistics: a Python number costs torch a scalar wrap on every op.
        self._zero_return = torch.zeros((), dtype=torch.float32, device=self.device)
        self._zero_length = torch.zeros((), dtype=torch.int32, device=self.device)
        self._one_length = torch.ones((), dtype=torch.int32, device=self.device)
        self._host_reads_free = self.device.type == "cpu"  # see _selects_none
        self._last_asked: tuple[torch.Tensor | None, bool] = (None, False)
        #: While true, a text env puts in ``info`` what :meth:`render_turn` needs (a few copies per step).
        self.recording = False
        modes = self.metadata.get("render_modes", [])
        if render_mode is not None and render_mode not in modes:
            raise ValueError(f"{type(self).__name__} supports render modes {modes or 'none'}, not {render_mode!r}")
        self.render_mode = render_mode

    def split_streams(self, groups: int) -> None:
        """Give each of ``groups`` groups of consecutive sub-envs its own generator (envs that declare ``groupable``).

        Group ``k`` then draws what an env of ``num_envs / groups`` sub-envs draws from that generator alone;
        ``reset(seed=[s_0, ..., s_{groups-1}])`` seeds them (a population's members each play their own episodes).
        """
        if not self.groupable:
            raise ValueError(f"{type(self).__name__} cannot split its random stream into groups (groupable is False)")
        if (
            isinstance(groups, bool)
            or not isinstance(groups, (int, np.integer))
            or groups <= 0
            or self.num_envs % groups
        ):
            raise ValueError(f"groups must be a positive divisor of num_envs ({self.num_envs}), got {groups!r}")
        self.generator = GeneratorGroup([torch.Generator(device=self.device) for _ in range(int(groups))])

    def _draw_uniform(self, shape: Sequence[int], dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """U[0, 1) numbers from the env's stream, one row per sub-env (per group after :meth:`split_streams`)."""
        return draw_uniform(shape, self.generator, self.device, dtype)

    # ----------------------------------------------------------------- hooks for concrete envs
    def _reset_where(self, mask: torch.Tensor) -> None:
        raise NotImplementedError

    def _transition(self, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, TensorDict]:
        raise NotImplementedError

    def _observe(self) -> torch.Tensor:
        raise NotImplementedError

    # ----------------------------------------------------------------- the Gymnasium API
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[torch.Tensor, TensorDict]:
        """Reset every sub-env. ``seed`` re-seeds the env's generator, making the whole stream reproducible."""
        if seed is not None:  # one seed per group for split streams (split_streams)
            self.generator.manual_seed(seed if isinstance(self.generator, GeneratorGroup) else int(seed))
        self._reset_where(torch.ones(self.num_envs, dtype=torch.bool, device=self.device))
        self.episode_return.zero_()
        self.episode_length.zero_()
        return self._observe(), {}

    def step(self, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, TensorDict]:
        """Advance every sub-env; finished ones are reset in the same call (SAME_STEP autoreset).

        ``info["final_obs"]`` / ``info["final_info"]`` hold the last observation and info of the
        episodes that ended (mask ``info["_final_obs"]``); ``info["episode"]`` holds their return
        ``r`` and length ``l`` (mask ``info["_episode"]``). The keys are always present, so reading
        them never needs a host-device sync. Env-specific keys (``success``, ...) at the top level hold
        this step's values for every sub-env; for an episode that ended, read them from ``final_info``.
        """
        actions = self._check_actions(actions)
        reward, terminated, truncated, step_info = self._transition(actions)
        done = terminated | truncated
        final_obs = self._observe()
        self._reset_where(done)
        # Where no episode ended the state is unchanged, so the observation is the one just taken (the same tensor
        # as final_obs, which only counts where _final_obs is set).
        obs = final_obs if self._selects_none(done) else self._observe()
        return obs, reward, terminated, truncated, self._autoreset_info(reward, done, final_obs, step_info)

    def _selects_none(self, mask: torch.Tensor) -> bool:
        """Whether ``mask`` selects no sub-env, asked only where the answer is free: on the CPU. On another device it
        would be a host-device sync, so there the answer is always False and the batched code runs unbranched;
        under ``torch.compile`` too, where reading a value would break the compiled graph in pieces.

        ``_reset_where`` may use it to skip work (never its random draws: the stream must not depend on it). The
        answer for the last mask asked about is kept, as one step asks about its ``done`` mask several times.
        """
        last_mask, answer = self._last_asked
        if last_mask is mask:  # asked already (never under torch.compile: a compiled step leaves the cache alone)
            return answer
        if not self._host_reads_free or torch.compiler.is_compiling():
            return False
        answer = not (mask.item() if mask.numel() == 1 else mask.any().item())
        self._last_asked = (mask, answer)
        return answer

    def _autoreset_info(
        self, reward: torch.Tensor, done: torch.Tensor, final_obs: torch.Tensor, step_info: TensorDict
    ) -> TensorDict:
        """Update the episode statistics and assemble the SAME_STEP info dict (shared by every env)."""
        self.episode_return += reward
        self.episode_length += self._one_length
        if self._selects_none(done):  # no episode ended: nothing to report, nothing to clear
            episode = {"r": torch.zeros_like(self.episode_return), "l": torch.zeros_like(self.episode_length)}
        else:
            episode = {
                "r": torch.where(done, self.episode_return, self._zero_return),
                "l": torch.where(done, self.episode_length, self._zero_length),
            }
            fill_where(self.episode_return, done, self._zero_return)
            fill_where(self.episode_length, done, self._zero_length)
        for key in self.outcome_keys:  # a declaration the env does not keep fails here, by name (free: no sync)
            if (
                key not in step_info
                or not isinstance(step_info[key], torch.Tensor)
                or step_info[key].dtype != torch.bool
            ):
                raise ValueError(
                    f"{type(self).__name__} declares the outcome {key!r} (outcome_keys), so every step's info must "
                    f"hold it as a bool tensor of shape (num_envs,); got {type(step_info.get(key)).__name__}"
                )
        info: TensorDict = dict(step_info)
        info.update(
            final_obs=final_obs,
            _final_obs=done,
            final_info={**step_info, "episode": episode, "_episode": done},
            _final_info=done,
            episode=episode,
            _episode=done,
        )
        return info

    def close_extras(self, **kwargs: Any) -> None:
        pass

    def options(self) -> dict[str, Any]:
        """The constructor options (besides ``num_envs``/``device``) that rebuild this env; JSON-safe.

        Agents use them to make a fresh copy for evaluation and to record the env in checkpoints.
        """
        return {}

    def spawn(self, num_envs: int, device: str | torch.device | None = None) -> TensorVecEnv:
        """A fresh env of the same kind and options with ``num_envs`` sub-envs (for evaluation and transcripts).

        Wrappers spawn their inner env and wrap it again, with their statistics copied and frozen.
        """
        return type(self)(num_envs=num_envs, device=self.device if device is None else device, **self.options())

    # ----------------------------------------------------------------- declared abilities
    def action_masks(self) -> torch.Tensor:
        """``[num_envs, n]`` bool: the actions valid in each sub-env now (envs with ``has_action_masks``)."""
        raise NotImplementedError(f"{type(self).__name__} declares no action masks (has_action_masks is False)")

    def play_transcripts(self, policy: Any, num_episodes: int, seed: int | None = None) -> list[str]:
        """``num_episodes`` episodes played by ``policy(obs, action_masks) -> actions`` on a fresh copy, as text.

        For envs that declare ``has_transcripts``; the copy records what it needs, this env is untouched.
        """
        raise NotImplementedError(f"{type(self).__name__} has no transcripts (has_transcripts is False)")

    def render(self) -> np.ndarray | None:
        """``render_mode="rgb_array"``: the picture of sub-env 0 now (one frame, not one per sub-env); else None.

        Sub-env 0 stands for the batch, as a video of one episode at a time is what a person watches.
        """
        if self.render_mode != "rgb_array":
            return None
        env = self.unwrapped  # wrappers change what the agent sees, never what the world looks like
        return env.render_frame(env._observe()[0])

    def render_frame(self, observation: torch.Tensor | np.ndarray) -> np.ndarray:
        """The ``uint8`` (H, W, 3) picture of one sub-env's ``observation`` (envs with the ``"rgb_array"`` mode).

        It draws from the observation, not the live state, so the single-env adapter can show an episode's
        last state after SAME_STEP autoreset has already moved the state on to the next episode.
        """
        raise NotImplementedError(f"{type(self).__name__} does not render pictures")

    def render_opening(self, index: int = 0) -> list[str]:
        """Text lines for the start of sub-env ``index``'s episode (envs with the ``"ansi"`` render mode)."""
        raise NotImplementedError(f"{type(self).__name__} does not render text")

    def render_turn(self, info: dict[str, Any], index: int = 0) -> list[str]:
        """Text lines for the last ``step`` of sub-env ``index`` (needs :attr:`recording` on during that step)."""
        raise NotImplementedError(f"{type(self).__name__} does not render text")

    def rule_expert(self) -> Any:
        """A hand-written policy ``expert(obs) -> actions`` for this env (envs with ``has_rule_expert``)."""
        raise NotImplementedError(f"{type(self).__name__} has no rule expert (has_rule_expert is False)")

    def training_callbacks(self) -> list[Callback]:
        """The callbacks training on this env needs (see the module docstring); none unless an env declares some."""
        return []

    @property
    def action_names(self) -> tuple[str, ...]:
        """A name for every action index of a Discrete action space, in index order; ``()`` where the env names none.

        An env that names its actions overrides this; a wrapper (whose ``unwrapped`` is another env) reads its
        innermost env's names.
        """
        inner = self.unwrapped
        return () if inner is self else inner.action_names

    # ----------------------------------------------------------------- checks
    def _check_actions(self, actions: Any) -> torch.Tensor:
        if not isinstance(actions, torch.Tensor):
            raise ValueError(
                f"actions must be a torch tensor on {self.device}: {describe_space(self.single_action_space)}; got {type(actions).__name__}"
            )
        if tuple(actions.shape) != self._action_shape:
            raise ValueError(
                f"actions must have shape {self._action_shape}: {describe_space(self.single_action_space)}; got shape {tuple(actions.shape)}"
            )
        if actions.device != self.device:
            raise ValueError(
                f"actions must be on device {self.device}: {describe_space(self.single_action_space)}; got device {actions.device}"
            )
        if actions.dtype.is_floating_point != self._action_dtype.is_floating_point or actions.dtype == torch.bool:
            raise ValueError(f"actions must be {describe_space(self.single_action_space)}; got dtype {actions.dtype}")
        if self.validate:
            self._check_action_values(actions)
        return actions

    def _check_action_values(self, actions: torch.Tensor) -> None:
        space = self.single_action_space
        if isinstance(space, spaces.Discrete):
            bad = (actions < space.start) | (actions >= space.start + space.n)
            if bool(bad.any()):
                raise ValueError(f"action {int(actions[bad][0])} is outside the action space {space}")
        elif isinstance(space, (spaces.MultiDiscrete, spaces.MultiBinary)):
            high = torch.as_tensor(space.nvec if isinstance(space, spaces.MultiDiscrete) else 2, device=self.device)
            if bool(((actions < 0) | (actions >= high)).any()):
                raise ValueError(f"an action is outside the action space {space}")
        elif isinstance(space, spaces.Box):
            low = torch.as_tensor(space.low, device=self.device)
            high = torch.as_tensor(space.high, device=self.device)
            if bool(((actions < low) | (actions > high) | actions.isnan()).any()):
                raise ValueError(f"an action is outside the action space {space}")

    # ----------------------------------------------------------------- checkpoints
    @property
    def generators(self) -> tuple[torch.Generator, ...]:
        """Every ``torch.Generator`` a ``step`` draws from (the env's own, then any part's with its own stream,
        such as a learned NLU's word noise); agents register each one with the CUDA graphs they capture."""
        return generators_of(self.generator)

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Every tensor needed to continue exactly where this env is, generator included."""
        state = {name: getattr(self, name).clone() for name in self.state_names}
        state["episode_return"] = self.episode_return.clone()
        state["episode_length"] = self.episode_length.clone()
        state["generator"] = self.generator.get_state()
        return state

    def check_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Raise ``ValueError`` unless ``state`` fits this env exactly (names, shapes, dtypes, generator kind)."""
        expected = {*self.state_names, "episode_return", "episode_length", "generator"}
        if set(state) != expected:
            raise ValueError(f"env state has keys {sorted(state)}, expected {sorted(expected)}")
        for name in expected - {"generator"}:
            target = getattr(self, name)
            if state[name].shape != target.shape or state[name].dtype != target.dtype:
                raise ValueError(
                    f"env state {name!r} has shape {tuple(state[name].shape)} and dtype {state[name].dtype}, "
                    f"expected {tuple(target.shape)} and {target.dtype} (was it saved with another num_envs?)"
                )
        if state["generator"].shape != self.generator.get_state().shape:
            raise ValueError(
                f"env generator state does not match a {self.device.type} generator (saved on another device?)"
            )

    def statistics_state(self) -> dict[str, Any]:
        """State that holds for any batch size and device (a wrapper's normalisation statistics); {} for an env.

        Checkpoints keep it apart from :meth:`state_dict`, so it loads even where the episodes cannot
        (another ``num_envs``, a GPU run loaded on the CPU, a Gymnasium env that cannot be restored).
        """
        return {}

    def check_statistics(self, state: dict[str, Any]) -> None:
        """Raise ``ValueError`` unless ``state`` fits :meth:`statistics_state`."""
        if state:
            raise ValueError(
                f"{type(self).__name__} keeps no statistics, but the checkpoint has {sorted(state)} (saved wrapped?)"
            )

    def load_statistics(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`statistics_state` in place."""
        self.check_statistics(state)

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Restore a :meth:`state_dict` in place (tensor addresses stay, so captured CUDA graphs stay valid).

        Everything is checked first, so a state that does not fit changes nothing.
        """
        self.check_state_dict(state)
        for name in (*self.state_names, "episode_return", "episode_length"):
            getattr(self, name).copy_(state[name])
        self.generator.set_state(state["generator"])

    def __repr__(self) -> str:
        return f"{type(self).__name__}(num_envs={self.num_envs}, device={self.device})"
