"""The agent contract, written once: construction, ``learn``, logging, checkpoints, ``predict``, ``evaluate``.

The pieces live where a reader looks for them: the bookkeeping between iterations in
:mod:`~rlcourse.agents.training`, what a checkpoint holds in :mod:`~rlcourse.agents.checkpointing`,
optimizer state under CUDA graphs in :mod:`~rlcourse.agents.optimizer_state`, evaluation in the core
(:mod:`rlcourse.evaluation`), callbacks in the core (:mod:`rlcourse.callbacks`).

An algorithm module subclasses :class:`Agent` and writes only its own parts:

* ``_build()`` creates networks, optimizers and preallocated storage;
* ``_train_iteration()`` collects experience and updates, returning ``{tag: 0-d tensor}`` statistics
  that stay on the device (the loop reads them once per log interval);
* ``_act(obs, action_masks, deterministic)`` picks actions for ``predict``/``evaluate``;
* ``steps_per_iteration`` and the ``_modules``/``_optimizers``/``_extra_state`` used by checkpoints.

Data-parallel training (``distributed=True``, under torchrun) is written here once for every agent that runs the
shared loop, through :mod:`rlcourse.distributed`: each rank runs ``num_envs / world_size`` envs with its own
streams, the networks start as rank 0's, every backward pass ends with the gradients averaged over the ranks
(before any clipping or optimizer step), statistics are summed over the ranks once per log interval, and only
rank 0 logs and writes files (docs/distributed.md).
"""

from __future__ import annotations

import abc
import math
import os
import random
import time
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from gymnasium import spaces

from rlcourse import distributed as parallel
from rlcourse.agents import graphs
from rlcourse.agents.checkpointing import (
    agent_state,
    check_networks_fit,
    check_rank_states,
    load_agent_state,
    load_warm_start,
    per_rank_state,
    with_rank_states,
)
from rlcourse.agents.training import StopOnSignal, TrainingLoop
from rlcourse.callbacks import Callback, CallbackList, RolloutBatch
from rlcourse.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from rlcourse.config import (
    DEFAULT_PRESET,
    ENV_KWARGS_KEY,
    NORMALIZE_KEY,
    Normalization,
    config_to_dict,
    load_preset,
    make_config,
    parse_normalize,
)
from rlcourse.device import DEFAULT_THREADS, resolve_device, set_threads
from rlcourse.episode_stats import EpisodeStats
from rlcourse.evaluation import evaluate_policy
from rlcourse.logger import RunLogger
from rlcourse.registry import make_vec
from rlcourse.run_dir import RunDir
from rlcourse.vec_env import TensorVecEnv, generators_of
from rlcourse.wrappers import normalization_of, normalize_env

__all__ = ["Agent", "Callback", "derive_seeds"]

#: Deprecated: the run folder's file names live in :class:`rlcourse.run_dir.RunDir`.
CHECKPOINT_NAME = RunDir.CHECKPOINT


#: Environment variable that caps every ``learn`` budget: the tests run the README and examples/ as written,
#: only shorter (``RLCOURSE_MAX_STEPS=2000 python examples/train_dialogue.py``).
MAX_STEPS_VARIABLE = "RLCOURSE_MAX_STEPS"


def capped_budget(total_timesteps: int, warn: bool = True) -> int:
    """``total_timesteps``, or less when :data:`MAX_STEPS_VARIABLE` is set (with a warning saying so)."""
    cap = os.environ.get(MAX_STEPS_VARIABLE)
    if not cap:
        return total_timesteps
    if not cap.isdigit() or int(cap) <= 0:
        raise ValueError(f"{MAX_STEPS_VARIABLE} must be a positive integer, got {cap!r}")
    if int(cap) < total_timesteps:
        if warn:
            warnings.warn(
                f"{MAX_STEPS_VARIABLE}={cap} caps this learn() at {int(cap):,} of {total_timesteps:,} steps",
                stacklevel=3,
            )
        return int(cap)
    return total_timesteps


def derive_seeds(seed: int, count: int) -> list[int]:
    """``count`` independent 63-bit seeds from one user seed (numpy's SeedSequence spawning)."""
    return [
        int(child.generate_state(2, np.uint64)[0] >> np.uint64(1))
        for child in np.random.SeedSequence(seed).spawn(count)
    ]


#: How far an evaluation's default seed is from the training seed, so evaluating never replays training's streams.
EVALUATION_SEED_OFFSET = 1_000_003


def evaluation_seeds(seed: int, offset: bool = True) -> tuple[int, int]:
    """The (env, agent) seeds of an evaluation: derived from ``seed``, moved by :data:`EVALUATION_SEED_OFFSET` when
    the caller gave no seed of its own (``offset``)."""
    return tuple(derive_seeds(seed + EVALUATION_SEED_OFFSET if offset else seed, 2))


class Agent(abc.ABC):
    """Base class of every rlcourse agent (see the module docstring for what a subclass writes).

    Args:
        env: an env id (``rlcourse/CartPole-v1``, ``Pendulum-v1``, ...) or a :class:`TensorVecEnv`.
        num_envs: number of parallel envs when ``env`` is an id.
        device: ``auto`` (CUDA when available), ``cpu``, ``cuda`` or ``cuda:N``.
        seed: seeds the networks, the env stream and the agent's sampling.
        run_dir: folder for TensorBoard events and checkpoints (None: log nothing to disk). A path must be
            absent or empty (a run never reuses another run's folder); a :class:`~rlcourse.run_dir.RunDir`
            is used as given (the CLI claims its folders itself).
        compile: run the hot functions through ``torch.compile``.
        cuda_graphs: capture the rollout and update as CUDA graphs (default: on for CUDA devices).
        env_kwargs: options for the env's constructor when ``env`` is an id (``{"nlu": "tcbot"}``).
        normalize: observation and reward normalisation (SB3's ``VecNormalize``, RL Zoo's ``normalize``):
            ``True`` (both), ``False`` (neither), ``{"observation": True, "reward": False}``, or None (the
            default) for the preset's ``normalize``, which is none unless the preset has one. The env is
            wrapped in ``NormalizeObservation``, then ``NormalizeReward`` with the config's ``gamma``
            (:func:`rlcourse.wrappers.normalize_env`). An env instance is wrapped only when ``normalize`` is
            given (the caller built it, as with ``env_kwargs``). :attr:`normalize` says what the env normalises.
        preset: the shipped preset of ``rlcourse/presets/<algo>.yml`` to apply for this env, as the CLI does:
            ``"default"`` (the default: the env's ``default`` variant, or nothing for an env without presets),
            a named variant such as ``"large_batch_4096"``, or None for none. Explicit arguments override
            its values, and its ``total_timesteps`` becomes ``learn``'s default. For an env instance, the
            preset of its ``env_id`` supplies hyperparameters and the budget; its ``num_envs``, env
            options and normalisation cannot apply to an env that is already built.
        threads: torch's CPU thread count for this process (``torch.set_num_threads``), set before anything
            is built. One (the default) suits rlcourse's small networks and keeps a busy machine from
            slowing training down several times over; None leaves torch's setting alone.
        distributed: data-parallel training in a process started by torchrun (every rank builds the same agent):
            ``num_envs`` is the total, split evenly over the ranks (an env instance is this rank's share); the
            device is the CPU (gloo) or ``cuda:LOCAL_RANK`` (NCCL); hyperparameters such as ``batch_size`` apply
            per rank, so one optimizer step averages ``world_size × batch_size`` samples; step counts
            (``total_timesteps``, ``num_timesteps``) are totals over the ranks. See docs/distributed.md.
        **hparams: fields of the algorithm's config dataclass.
    """

    algo: ClassVar[str]
    config_class: ClassVar[type]
    #: ``learn``'s log interval when none is given: 1 for big iterations; agents with tiny ones (A2C) log less often.
    default_log_interval: ClassVar[int] = 1
    #: Whether the agent runs on the CPU only (A3C's worker processes); ``device="auto"`` then means the CPU.
    cpu_only: ClassVar[bool] = False

    #: Env steps of ``learn`` when neither the call nor a preset gives them, and envs when neither gives them.
    default_num_envs: ClassVar[int] = 8
    #: Warm starts (:meth:`init_from`): this agent's network -> the checkpoint network it may start from instead.
    warm_start_aliases: ClassVar[dict[str, str]] = {"reference": "policy"}
    #: What :meth:`init_from` can load into this agent, for its error message.
    warm_start_hint: ClassVar[str] = "a run of the same algorithm with the same network settings"
    #: Whether the agent can train data-parallel (``distributed=True``); see :meth:`data_parallel_refusal`.
    data_parallel: ClassVar[bool] = True
    #: The shape of one training statistic: ``()`` for an agent, ``(N,)`` for a population of N members.
    member_shape: tuple[int, ...] = ()

    def __init__(
        self,
        env: str | TensorVecEnv,
        num_envs: int | None = None,
        device: str | torch.device = "auto",
        seed: int = 0,
        run_dir: str | Path | RunDir | None = None,
        compile: bool = False,
        cuda_graphs: bool | None = None,
        env_kwargs: dict[str, Any] | None = None,
        preset: str | None = DEFAULT_PRESET,
        threads: int | None = DEFAULT_THREADS,
        normalize: bool | dict[str, bool] | Normalization | None = None,
        distributed: bool = False,
        **hparams: Any,
    ):
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
        if not isinstance(distributed, bool):
            raise ValueError(f"distributed must be True or False, got {distributed!r}")
        refusal = self.data_parallel_refusal() if distributed else None
        if refusal is not None:
            raise ValueError(refusal)
        self.preset = preset
        preset_values = self._preset_values(env, preset)
        self.preset_timesteps: int | None = preset_values.pop("total_timesteps", None)
        preset_num_envs = preset_values.pop("num_envs", None)
        preset_env_kwargs = preset_values.pop(ENV_KWARGS_KEY, None)
        preset_normalize = preset_values.pop(NORMALIZE_KEY, None)
        if normalize is None and not isinstance(env, TensorVecEnv):  # an instance: its builder chose its wrappers
            normalize = preset_normalize
        requested = Normalization() if normalize is None else parse_normalize(normalize)
        if num_envs is None:
            num_envs = preset_num_envs if preset_num_envs is not None else self.default_num_envs
        self.config = make_config(self.config_class, {**preset_values, **hparams})
        #: Data-parallel training: this process's rank among ``world_size`` (0 of 1 otherwise).
        self.distributed, self.rank, self.world_size = distributed, 0, 1
        if distributed:
            place = parallel.setup(device)
            self.rank, self.world_size, self.device = place.rank, place.world_size, place.device
            if not isinstance(env, TensorVecEnv):
                num_envs = self._rank_share(num_envs)
        else:
            self.device = resolve_device(device)
        set_threads(threads)
        if env_kwargs is not None and not isinstance(env_kwargs, dict):
            raise ValueError(f"env_kwargs must be a mapping of env options, got {type(env_kwargs).__name__}")
        if preset_env_kwargs and not isinstance(env, TensorVecEnv):  # explicit options override the preset's
            env_kwargs = {**preset_env_kwargs, **(env_kwargs or {})}
        if isinstance(env, TensorVecEnv):
            self.env = env
            if env.device != self.device:
                raise ValueError(f"the env is on {env.device} but the agent was asked to run on {self.device}")
            if env_kwargs:
                raise ValueError("env_kwargs apply to an env id; this env instance is already built")
        else:
            self.env = make_vec(env, num_envs, self.device, **(env_kwargs or {}))
        self.env = normalize_env(self.env, requested, gamma=getattr(self.config, "gamma", None))
        #: What the env normalises (applied here, or by whoever built an env instance); checkpoints record it.
        self.normalize: Normalization = normalization_of(self.env)
        self.env_id = self.env.env_id
        self.num_envs = self.env.num_envs
        self.seed = int(seed)
        # A path is claimed once the agent is built, so a bad setting leaves no folder behind.
        self.run_dir = run_dir if run_dir is None or isinstance(run_dir, RunDir) else None
        self.compile = bool(compile)
        if cuda_graphs is None:
            cuda_graphs = self.device.type == "cuda" and self.env.graph_safe and self._graph_safe_network()
        self.cuda_graphs = bool(cuda_graphs)
        self._graph: torch.cuda.CUDAGraph | None = None  # the captured iteration (see _replay_captured)
        self._graph_stats: dict[str, torch.Tensor] = {}
        if self.cuda_graphs and self.device.type != "cuda":
            raise ValueError("cuda_graphs=True needs a CUDA device")
        if self.cuda_graphs and not self.env.graph_safe:
            raise ValueError(f"cuda_graphs=True needs an env that steps on the device; {self.env_id} steps on the host")
        if self.cuda_graphs and not self._graph_safe_network():
            raise ValueError("cuda_graphs=True cannot capture this policy network: it reads to the host while it acts")
        action_space = self.env.single_action_space
        self._action_bounds = None
        if isinstance(action_space, spaces.Box):  # kept on the device: no host copy inside a captured step
            self._action_bounds = (
                torch.as_tensor(action_space.low, device=self.device),
                torch.as_tensor(action_space.high, device=self.device),
            )
        # Policies index actions from 0; Discrete(n, start=k) envs want k..k+n-1.
        self._action_offset = int(action_space.start) if isinstance(action_space, spaces.Discrete) else 0
        self.num_timesteps = 0
        self.iteration = 0
        self.total_timesteps = 0
        self.interrupted_by: int | None = None
        self.last_log: dict[str, float] = {}
        self.has_action_masks = self.env.has_action_masks
        self.batch: RolloutBatch | None = None  # filled each iteration while a callback needs it
        self._callbacks = CallbackList(())
        self._saved_callback_states: dict[str, Any] = {}  # from a loaded checkpoint, for the next learn's callbacks
        self._logger: RunLogger | None = None

        # Each rank plays its own episodes: rank 0 draws what a single-process run of this seed draws, the
        # others from seeds derived from (seed, rank). self.seed stays the run's seed (evaluation uses it).
        stream_seed = parallel.rank_seed(self.seed, self.rank)
        torch.manual_seed(stream_seed)
        np.random.seed(stream_seed)
        random.seed(stream_seed)
        self._seed_streams(stream_seed)
        try:
            self._build()
        except ValueError as error:  # a preset's batch geometry may not fit another env count: say where it came from
            if not preset_values or self.num_envs == preset_num_envs:
                raise
            raise type(error)(
                f"{error} (preset {preset!r} for {self.algo} on {self.env_id} is tuned for "
                f"num_envs={preset_num_envs}; pass the settings that fit {self.num_envs} envs, or preset=None)"
            ) from None
        self._gradient_averager: parallel.GradientAverager | None = None
        if distributed:
            self._gradient_averager = parallel.GradientAverager(
                p for optimizer in self._optimizers().values() for g in optimizer.param_groups for p in g["params"]
            )
            self._broadcast_networks()
        if run_dir is not None and not isinstance(run_dir, RunDir):
            # Rank 0 claims the folder; the other ranks only name it (they write nothing into it).
            self.run_dir = RunDir.claim(run_dir) if self.is_main else RunDir(run_dir)

    def _seed_streams(self, stream_seed: int) -> None:
        """The agent's and the env's random streams from ``stream_seed``, the first observations and the episode sums.

        The env and the agent draw from separate generators with unrelated seeds, so their streams never overlap.
        A population (:mod:`~rlcourse.agents.population`) seeds each member's streams as this seeds one agent's.
        """
        env_seed, agent_seed, predict_seed = derive_seeds(stream_seed, 3)
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(agent_seed)
        self._predict_generator = torch.Generator(device=self.device)  # predict() never moves the training stream
        self._predict_generator.manual_seed(predict_seed)
        self.obs, _ = self.env.reset(seed=env_seed)
        self.episodes = EpisodeStats(self.env.outcome_keys, self.device)

    def _network(self, build: Callable[[], torch.nn.Module]) -> torch.nn.Module:
        """The network ``build()`` makes, on the agent's device; ``_build`` makes its networks through this.

        A population overrides it to build one network per member, each initialised under its member's seed.
        """
        return build().to(self.device)

    def _member_tensor(self, value: float | torch.Tensor) -> torch.Tensor:
        """A device tensor of shape :attr:`member_shape` holding ``value`` (a number, or one value per member)."""
        return torch.as_tensor(value, dtype=torch.float32, device=self.device).expand(self.member_shape).clone()

    def _config_record(self) -> dict[str, Any]:
        """The config as plain values, for checkpoints and the hparams tab."""
        return config_to_dict(self.config)

    # ----------------------------------------------------------------- data-parallel training
    @classmethod
    def data_parallel_refusal(cls) -> str | None:
        """Why this algorithm cannot train data-parallel, or None when it can.

        Data parallelism is written once, in the shared training loop; an agent with a loop of its own (A3C's
        worker processes) or one that opts out (``data_parallel = False``) cannot use it.
        """
        if cls._train_loop is not Agent._train_loop:
            return (
                f"{cls.algo} cannot train data-parallel (distributed): it runs its own training loop "
                "(worker processes); data-parallel training needs the shared loop"
            )
        if not cls.data_parallel:
            return f"{cls.algo} cannot train data-parallel (distributed)"
        return None

    @property
    def is_main(self) -> bool:
        """Whether this process logs and writes files: always outside data-parallel training, rank 0 within it."""
        return self.rank == 0

    @property
    def steps_per_iteration_all_ranks(self) -> int:
        """Env steps of one iteration summed over the ranks (what the step counters count)."""
        return self.steps_per_iteration * self.world_size

    def _rank_share(self, num_envs: int | None) -> int | None:
        """This rank's envs of ``num_envs`` in total; the total must split evenly."""
        if num_envs is None:
            return None
        if isinstance(num_envs, bool) or not isinstance(num_envs, (int, np.integer)) or num_envs <= 0:
            raise ValueError(f"num_envs must be a positive integer, got {num_envs!r}")
        if num_envs % self.world_size:
            raise ValueError(
                f"num_envs ({num_envs}) must be divisible by the number of ranks ({self.world_size}): "
                f"each rank runs num_envs / {self.world_size} envs"
            )
        return int(num_envs) // self.world_size

    def _broadcast_networks(self) -> None:
        """Every network's parameters and buffers as rank 0's (no-op outside data-parallel training)."""
        if self.distributed:
            parallel.broadcast_tensors(
                tensor for module in self._modules().values() for tensor in module.state_dict().values()
            )

    def _any_rank(self, flag: torch.Tensor) -> torch.Tensor:
        """``flag`` (a 0-d bool tensor) OR-ed over the ranks, on the device; ``flag`` itself in a single process."""
        return parallel.any_rank(flag) if self.distributed else flag

    def _mean_over_ranks(self, value: torch.Tensor) -> torch.Tensor:
        """``value``'s mean over the ranks, on the device (a new tensor; ``value`` itself in a single process)."""
        if not self.distributed:
            return value
        return parallel.all_reduce_sum(value.detach().clone()) / self.world_size

    def _agree_between_ranks(self, loop: TrainingLoop, going_on: bool) -> bool:
        """After each iteration, the ranks decide together: stop when any rank stops (a signal, a callback), and
        write the timed checkpoint when rank 0's clock says so. One small host all-reduce, no GPU sync."""
        due = self.is_main and self.run_dir is not None and time.monotonic() >= self._next_checkpoint
        stop, signum, checkpoint = parallel.host_max([int(not going_on), int(self.interrupted_by or 0), int(due)])
        if signum and self.interrupted_by is None:
            self.interrupted_by = signum
        if stop:
            loop.stopped = True
            return False
        if checkpoint and self.run_dir is not None:
            self.save_checkpoint()
            self._next_checkpoint = time.monotonic() + self._checkpoint_interval_s
        return True

    def _preset_values(self, env: str | TensorVecEnv, preset: str | None) -> dict[str, Any]:
        """The settings of ``preset`` for this algorithm and env ({} for None, or ``default`` where none ships)."""
        if preset is None:
            return {}
        if not isinstance(preset, str):
            raise ValueError(f"preset must be a variant name or None, got {type(preset).__name__}")
        env_id = env if isinstance(env, str) else env.env_id
        if env_id is None:
            if preset == DEFAULT_PRESET:
                return {}
            raise ValueError(f"preset={preset!r} needs a registered env (this env instance has no env_id)")
        return load_preset(self.algo, env_id, preset)

    # ----------------------------------------------------------------- what an algorithm writes
    @property
    @abc.abstractmethod
    def steps_per_iteration(self) -> int:
        """Env steps (summed over envs) taken by one ``_train_iteration``."""

    @abc.abstractmethod
    def _build(self) -> None:
        """Create networks, optimizers and storage."""

    @abc.abstractmethod
    def _train_iteration(self) -> dict[str, torch.Tensor]:
        """One collect-and-update cycle; returns statistics as on-device 0-d tensors."""

    @abc.abstractmethod
    def _act(
        self,
        obs: torch.Tensor,
        action_masks: torch.Tensor | None,
        deterministic: bool,
        generator: torch.Generator | None,
    ) -> torch.Tensor:
        """Batched actions for batched observations (no gradients)."""

    def _graph_safe_network(self) -> bool:
        """Whether the configured networks act with no host reads, so an iteration can be captured (default: yes)."""
        return True

    @abc.abstractmethod
    def _modules(self) -> dict[str, torch.nn.Module]:
        """The networks to checkpoint."""

    @abc.abstractmethod
    def _optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """The optimizers to checkpoint."""

    def _extra_state(self) -> dict[str, torch.Tensor]:
        """Other tensors an algorithm carries between iterations (e.g. PPO's adaptive KL β)."""
        return {}

    def _load_extra_state(self, state: dict[str, torch.Tensor]) -> None:
        for name, value in state.items():
            getattr(self, name).copy_(value)

    def _on_state_loaded(self) -> None:
        """Called after a checkpoint was loaded: the loaded RNG and env state are read anew, so capture again."""
        self._graph = None

    def _apply_schedules(self) -> None:
        """Set this iteration's host-known schedules (learning rates, ...) on the device; ``fill_`` only, graph safe."""
        return None

    def _replay_captured(self, iteration: Callable[[], dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        """Run ``iteration`` as a CUDA graph, captured on the first call (and again after a load), replayed after.

        Capture starts from the state before its warm-up runs (``graphs.capture``), with this iteration's
        schedules; the returned statistics are the graph's output tensors, refreshed by each replay.
        """
        if self._graph is None:
            self._graph, self._graph_stats = graphs.capture(
                iteration,
                snapshot=self.checkpoint_state,
                restore=self._restore_for_capture,
                generators=[*generators_of(self.generator), *self.env.generators],
            )
        self._graph.replay()
        return self._graph_stats

    def _restore_for_capture(self, state: dict[str, Any]) -> None:
        self.load_state(state)
        self._apply_schedules()

    # ----------------------------------------------------------------- training
    def learn(
        self,
        total_timesteps: int | None = None,
        progress_bar: bool = False,
        callbacks: Iterable[Callback | Callable[[Agent], bool | None]] = (),
        log_interval: int | None = None,
        reset_num_timesteps: bool = True,
        checkpoint_interval_s: float = 300.0,
    ) -> Agent:
        """Train for ``total_timesteps`` env steps (more, not in total, when ``reset_num_timesteps=False``).

        Without ``total_timesteps``, the preset's budget is used. Statistics are read from the device once
        every ``log_interval`` iterations (default: the agent's ``default_log_interval``), and after the
        last one. ``callbacks`` are :class:`rlcourse.callbacks.Callback` objects or functions of the agent
        (called after every iteration; ``False`` stops training); the env's own
        :meth:`~rlcourse.TensorVecEnv.training_callbacks` run after them (one of a class the caller already
        passes is left out: the caller's settings win). With a ``run_dir``, a checkpoint is
        written every ``checkpoint_interval_s`` seconds, at the end, and when SIGINT or SIGTERM arrives
        (training then stops after the current iteration; see ``interrupted_by``).
        """
        if total_timesteps is None:
            if self.preset_timesteps is None:
                raise ValueError("learn() needs total_timesteps (no preset with a budget was applied)")
            total_timesteps = self.preset_timesteps
        if (
            isinstance(total_timesteps, bool)
            or not isinstance(total_timesteps, (int, np.integer))
            or total_timesteps <= 0
        ):
            raise ValueError(f"total_timesteps must be a positive integer, got {total_timesteps!r}")
        total_timesteps = capped_budget(int(total_timesteps), warn=self.is_main)
        if log_interval is None:
            log_interval = self.default_log_interval
        if isinstance(log_interval, bool) or not isinstance(log_interval, (int, np.integer)) or log_interval <= 0:
            raise ValueError(f"log_interval must be a positive integer, got {log_interval!r}")
        given = list(callbacks)
        declared = [own for own in self.env.training_callbacks() if not any(isinstance(c, type(own)) for c in given)]
        callback_list = CallbackList([*given, *declared])
        if reset_num_timesteps:
            self.num_timesteps, self.iteration = 0, 0
            self._saved_callback_states = {}  # a fresh count: callbacks start afresh too
        self.total_timesteps = self.num_timesteps + int(total_timesteps)
        self.interrupted_by = None
        self._record_batches(callback_list.needs_batch)
        self._before_learning()
        per_iteration = self.steps_per_iteration_all_ranks
        iterations_left = -(-(self.total_timesteps - self.num_timesteps) // per_iteration)
        self._broadcast_networks()  # whatever happened to a rank's networks since, training starts from rank 0's
        writes = self.run_dir if self.is_main else None  # the other ranks of a data-parallel run stay silent
        logger = RunLogger(
            writes,
            self.num_timesteps + iterations_left * per_iteration,
            progress_bar and self.is_main,
            start_step=self.num_timesteps,
            purge_step=self.num_timesteps if self.num_timesteps > 0 and writes else None,
        )
        self._callbacks, self._logger = callback_list, logger
        # Ranks write timed checkpoints together, when they agree to (_agree_between_ranks), not on their own clocks.
        self._checkpoint_interval_s = checkpoint_interval_s
        self._next_checkpoint = time.monotonic() + checkpoint_interval_s
        loop_interval = math.inf if self.distributed else checkpoint_interval_s
        try:
            callback_list.start(self, self._saved_callback_states)
            with StopOnSignal() as stop:
                self._train_loop(TrainingLoop(self, logger, stop, callback_list, log_interval, loop_interval))
            callback_list.end()
            # Only a run that stopped between iterations is saved: after an exception the state may be
            # half-updated, and the last good checkpoint must not be overwritten by it.
            if self.run_dir is not None:
                self.save_checkpoint()
                if self.is_main:
                    self._log_transcripts(logger)
                logger.hparams(self._hparams(), self._hparam_metrics())
        finally:
            self._saved_callback_states = callback_list.state_dicts()
            self._callbacks, self._logger = CallbackList(()), None
            logger.close()
        return self

    def _train_loop(self, loop: TrainingLoop) -> None:
        """Iterate until ``total_timesteps``, a callback returns ``False`` or a signal arrives (A3C replaces this)."""
        while self.num_timesteps < self.total_timesteps:
            stats = self._train_iteration()
            going_on = loop.iteration_done(self.steps_per_iteration_all_ranks, stats, self.batch)
            if self.distributed:
                going_on = self._agree_between_ranks(loop, going_on)
            if not going_on:
                break

    def _record_batches(self, needed: bool) -> None:
        """Allocate (or drop) the callback batch; the iteration's code changes, so a captured graph is redone."""
        if needed == (self.batch is not None):
            return
        self.batch = self._allocate_batch() if needed else None
        self._graph = None

    def _allocate_batch(self) -> RolloutBatch:
        """Storage for one iteration's transitions (``steps_per_iteration / num_envs`` steps of every env)."""
        obs_space, action_space = self.env.single_observation_space, self.env.single_action_space
        action_dtype = torch.int64 if isinstance(action_space, spaces.Discrete) else torch.float32
        mask_dim = int(action_space.n) if self.has_action_masks else None
        steps = self.steps_per_iteration // self.num_envs
        return RolloutBatch.allocate(
            steps, self.num_envs, obs_space.shape, action_space.shape, action_dtype, mask_dim, self.device
        )

    def _set_learning_rate(self, lr: float) -> None:
        """This iteration's learning rate into every optimizer: ``fill_`` on a device tensor that a captured graph
        reads, a plain assignment otherwise."""
        for optimizer in self._optimizers().values():
            for group in optimizer.param_groups:
                if isinstance(group["lr"], torch.Tensor):
                    group["lr"].fill_(lr)
                else:
                    group["lr"] = lr

    def _log(self, logger: RunLogger, stats: dict[str, torch.Tensor], fps: float) -> dict[str, float]:
        """The one host-device sync of a log interval: read every statistic at once; returns what was logged.

        In data-parallel training the statistics are first averaged, and the episode sums summed, over the
        ranks (one all-reduce on the device), so every rank logs, and rank 0 writes, the whole run's figures.
        """
        names = list(stats)
        gathered = torch.cat([torch.stack([stats[n].double() for n in names]).reshape(-1), self.episodes.sums])
        if self.distributed:
            gathered = parallel.all_reduce_sum(gathered.clone())
            gathered[: len(names)] /= self.world_size
        values = gathered.tolist()
        scalars: dict[str, float] = dict(zip(names, values[: len(names)]))
        scalars.update(self.episodes.summarise(values[len(names) :]))
        scalars["time/fps"] = fps
        scalars["time/iterations"] = float(self.iteration)
        self.last_log = {**self.last_log, **scalars}
        logger.scalars(scalars, self.num_timesteps)
        return scalars

    def log_scalars(self, values: dict[str, float]) -> None:
        """Log scalars at the current step while ``learn`` runs (what callbacks use); no-op otherwise."""
        if self._logger is not None:
            self._logger.scalars(values, self.num_timesteps)

    def _hparams(self) -> dict[str, Any]:
        return {
            "algo": self.algo,
            "env": self.env_id,
            "num_envs": self.num_envs * self.world_size,
            "seed": self.seed,
            **({"world_size": self.world_size} if self.distributed else {}),
            **self._config_record(),
        }

    def _hparam_metrics(self) -> dict[str, float]:
        """The HPARAMS tab's metrics: the final return and length and every outcome rate of the env."""
        names = [
            "rollout/ep_rew_mean",
            "rollout/ep_len_mean",
            *[f"rollout/{key}_rate" for key in self.env.outcome_keys],
        ]
        return {name: self.last_log.get(name, float("nan")) for name in names}

    def _callback_states(self) -> dict[str, Any]:
        """The state of the running callbacks (or of the last ``learn``'s), for checkpoints."""
        return self._callbacks.state_dicts() if self._callbacks.callbacks else dict(self._saved_callback_states)

    # ----------------------------------------------------------------- using a policy
    def predict(self, obs: Any, deterministic: bool = True, action_masks: Any = None) -> Any:
        """Actions for ``obs`` (one observation or a batch; numpy in, numpy out; tensor in, tensor out)."""
        as_numpy = not isinstance(obs, torch.Tensor)
        obs_t = torch.as_tensor(np.asarray(obs) if as_numpy else obs, dtype=torch.float32, device=self.device)
        obs_shape = self.env.single_observation_space.shape
        single = tuple(obs_t.shape) == tuple(obs_shape)
        if single:
            obs_t = obs_t.unsqueeze(0)
        if tuple(obs_t.shape[1:]) != tuple(obs_shape):
            raise ValueError(
                f"obs must have shape {obs_shape} or (batch, {', '.join(map(str, obs_shape))}), got {tuple(obs_t.shape)}"
            )
        masks = None
        if action_masks is not None:
            masks = torch.as_tensor(
                np.asarray(action_masks) if not isinstance(action_masks, torch.Tensor) else action_masks,
                dtype=torch.bool,
                device=self.device,
            ).reshape(obs_t.shape[0], -1)
        with torch.no_grad():
            actions = self._env_action(self._act(obs_t, masks, deterministic, self._predict_generator))
        if single:
            actions = actions[0]
        return actions.cpu().numpy() if as_numpy else actions

    def evaluate(self, n_episodes: int = 100, deterministic: bool = True, seed: int | None = None) -> dict[str, float]:
        """Play ``n_episodes`` episodes on a fresh env (one per parallel copy) and summarise them.

        Returns ``mean_reward``, ``std_reward``, ``mean_length``, ``n_episodes`` and ``<key>_rate`` for each
        of the env's ``outcome_keys`` (:func:`rlcourse.evaluation.evaluate_policy`). Training state (env,
        RNGs) is untouched, so evaluating never changes a run's outcome.
        """
        if isinstance(n_episodes, bool) or not isinstance(n_episodes, (int, np.integer)) or n_episodes <= 0:
            raise ValueError(f"n_episodes must be a positive integer, got {n_episodes!r}")
        env_seed, agent_seed = evaluation_seeds(self.seed if seed is None else seed, offset=seed is None)
        policy = self._policy_function(deterministic, agent_seed)
        env = self._spawn_env(int(n_episodes))
        try:
            with torch.no_grad():
                return evaluate_policy(env, policy, seed=env_seed)
        finally:
            env.close()

    def transcripts(self, n: int = 3, deterministic: bool = True, seed: int | None = None) -> list[str]:
        """``n`` sample episodes played by this policy on a fresh env, as text (envs with ``has_transcripts``)."""
        if not self.env.has_transcripts:
            raise ValueError(
                f"{self.env_id or type(self.env).__name__} has no transcripts (only text envs such as rlcourse/SlotFilling-v0 do)"
            )
        seed = self.seed + 2_000_003 if seed is None else seed
        policy = self._policy_function(deterministic, derive_seeds(seed, 1)[0])
        with torch.no_grad():
            return self.env.play_transcripts(policy, n, seed=seed)

    def _policy_function(
        self, deterministic: bool, seed: int
    ) -> Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor]:
        """``policy(obs, masks) -> env actions`` sampling from its own generator (the training streams stay put)."""
        generator = torch.Generator(device=self.device)
        generator.manual_seed(seed)
        return lambda obs, masks: self._env_action(self._act(obs, masks, deterministic, generator))

    def _log_transcripts(self, logger: RunLogger, n: int = 3) -> None:
        """Sample episodes to TensorBoard's TEXT tab at the end of training (text envs only)."""
        if self.env.has_transcripts:
            for index, text in enumerate(self.transcripts(n)):
                logger.text(f"transcripts/{index}", text, self.num_timesteps)

    def _spawn_env(self, num_envs: int) -> TensorVecEnv:
        """A fresh copy of the training env with ``num_envs`` sub-envs (for evaluation)."""
        try:
            return self.env.spawn(num_envs)
        except TypeError as error:  # an unregistered TensorVecEnv whose constructor options() cannot rebuild
            raise ValueError(
                f"cannot make another {type(self.env).__name__} for evaluation ({error}); "
                "give it an options() that rebuilds it, or register it with rlcourse.register_env"
            ) from None

    def _env_action(self, actions: torch.Tensor) -> torch.Tensor:
        """Policy output -> env action: Box actions clipped to the bounds (as SB3 does), Discrete shifted by ``start``."""
        if self._action_bounds is not None:
            return actions.clamp(*self._action_bounds)
        return actions + self._action_offset if self._action_offset else actions

    # ----------------------------------------------------------------- checkpoints
    def checkpoint_state(self) -> dict[str, Any]:
        """Everything needed to continue this run exactly (see :mod:`rlcourse.agents.checkpointing`)."""
        return agent_state(self)

    def save(self, path: str | Path) -> Path:
        """Write a checkpoint to ``path`` atomically (temp file, then rename).

        In data-parallel training only rank 0 writes, and only its own streams and env (the networks are
        every rank's): enough to evaluate, play or warm-start from; :meth:`save_checkpoint` writes every rank's.
        """
        state = self.checkpoint_state()
        if not self.distributed:
            return save_checkpoint(state, path)
        if self.is_main:
            save_checkpoint(with_rank_states(state, self.world_size, None), path)
        return Path(path)

    def save_checkpoint(self) -> Path:
        """The run's checkpoint, ``run_dir/checkpoint.pt``.

        In data-parallel training every rank must call it at the same point (the training loop does): rank 0
        gathers every rank's streams, env and episode sums into the file, so ``--resume`` restores each its own.
        """
        if self.run_dir is None:
            raise ValueError("this agent has no run_dir to checkpoint into")
        if not self.distributed:
            return self.save(self.run_dir.checkpoint)
        state = self.checkpoint_state()
        gathered = parallel.gather_to_main(per_rank_state(state))
        if self.is_main:
            save_checkpoint(with_rank_states(state, self.world_size, gathered), self.run_dir.checkpoint)
        parallel.barrier()  # once it returns on any rank, the file is there
        return self.run_dir.checkpoint

    @classmethod
    def load(
        cls,
        path: str | Path,
        device: str | torch.device = "auto",
        run_dir: str | Path | RunDir | None = None,
        env: TensorVecEnv | None = None,
        distributed: bool = False,
        **overrides: Any,
    ) -> Agent:
        """Rebuild an agent from a checkpoint written by :meth:`save`.

        The env and config come from the file, and the env's normalisation too (its statistics load from the
        file); pass ``env`` for an env that is not registered, or a wrapped one (its wrappers are rebuilt by the
        caller; their state loads from the file). Without ``env``, wrappers that learn nothing (a plug-in's
        reward) are left out, so a plug-in run's policy loads onto the env it acts in. A ``run_dir`` given
        here continues that run, so it may hold the run's files already.

        ``distributed=True`` (every rank of a torchrun run calls it) continues a data-parallel run's
        ``save_checkpoint()`` file with the same number of ranks, each rank from its own saved state; a
        data-parallel run's checkpoint loads without it too (evaluation, play): as rank 0's single process.
        """
        if run_dir is not None and not isinstance(run_dir, RunDir):
            run_dir = RunDir(run_dir)
        payload = load_checkpoint(path)
        if payload.get("algo") != cls.algo:
            raise CheckpointError(
                f"{str(path)!r} was written by {str(payload.get('algo')).upper()}, not {cls.algo.upper()}"
            )
        if env is None and payload.get("env_id") is None:
            raise CheckpointError(f"{str(path)!r} was saved for an unregistered env; pass it as load(..., env=...)")
        config = payload.get("config")
        if not isinstance(config, dict):
            raise CheckpointError(f"{str(path)!r} has no config mapping (found {type(config).__name__})")
        world_size = 1
        if distributed:
            world_size = parallel.setup(device).world_size
            check_rank_states(payload, world_size, repr(str(path)))
        try:
            env_kwargs = None if env is not None else payload.get("env_kwargs") or None
            normalize = overrides.pop(NORMALIZE_KEY, None if env is not None else payload.get(NORMALIZE_KEY))
            agent = cls(
                env if env is not None else payload["env_id"],
                num_envs=overrides.pop("num_envs", payload["num_envs"] * world_size),
                threads=overrides.pop("threads", DEFAULT_THREADS),
                device=device,
                seed=payload["seed"],
                run_dir=run_dir,
                env_kwargs=env_kwargs,
                preset=None,  # the file's config is complete; a preset must not add env options to it
                normalize=normalize,
                distributed=distributed,
                **{**config, **overrides},
            )
        except KeyError as missing:
            raise CheckpointError(f"{str(path)!r} lacks the entry {missing}") from None
        agent.load_state(payload, source=str(path))
        return agent

    def init_from(self, source: str | Path) -> Agent:
        """Warm start: load the network weights of a run folder or checkpoint file, e.g. a behaviour-cloned policy.

        Only the networks load: the optimizer, step counters, RNG streams and env stay this agent's own, so
        training starts afresh from the loaded weights. A network that does not fit is a ``CheckpointError``
        naming both shapes. Returns the agent.
        """
        path = Path(source)
        if path.is_dir():
            path = RunDir.open(path).checkpoint
        load_warm_start(self, load_checkpoint(path), repr(str(source)))
        self._graph = None
        self._on_warm_start()
        return self

    def _before_learning(self) -> None:
        """Called at the start of every :meth:`learn` (after its arguments are checked)."""
        return None

    def _on_warm_start(self) -> None:
        """Called after :meth:`init_from` loaded its weights (on-policy agents reset their KL reference there)."""
        return None

    def load_state(self, payload: dict[str, Any], source: str = "checkpoint") -> None:
        """Load a checkpoint payload into this (already built) agent, checking that it fits first."""
        load_agent_state(self, payload, source)
        self._on_state_loaded()

    def _check_fits(self, payload: dict[str, Any], restores_env: bool) -> None:
        """Raise before anything is changed if an entry is missing or a network's or the env's tensors differ."""
        check_networks_fit(self, payload)
        if restores_env:
            self.env.check_state_dict(payload["env"])

    def write_eval(self, n_episodes: int = 100, path: str | Path | None = None) -> dict[str, float]:
        """Evaluate and write ``run_dir/eval.json`` (or ``path``; rank 0 only in data-parallel training)."""
        result = self.evaluate(n_episodes)
        if self.run_dir is not None and self.is_main:
            self.run_dir.path.mkdir(parents=True, exist_ok=True)
            self.run_dir.write_eval({"num_timesteps": self.num_timesteps, **result}, path)
        return result
