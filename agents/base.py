"""The agent contract, written once: construction, ``learn``, logging, checkpoints, ``predict``, ``evaluate``.

An algorithm module subclasses :class:`Agent` and writes only its own parts:

* ``_build()`` creates networks, optimizers and preallocated storage;
* ``_train_iteration()`` collects experience and updates, returning ``{tag: 0-d tensor}`` statistics
  that stay on the device (the loop reads them once per log interval);
* ``_act(obs, action_masks, deterministic)`` picks actions for ``predict``/``evaluate``;
* ``steps_per_iteration`` and the ``_modules``/``_optimizers``/``_extra_state`` used by checkpoints.
"""

from __future__ import annotations

import abc
import json
import random
import signal
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from gymnasium import spaces

from rlcourse.agents import graphs
from rlcourse.checkpoint import CheckpointError, capture_global_rng, load_checkpoint, restore_global_rng, save_checkpoint
from rlcourse.config import config_to_dict, make_config
from rlcourse.device import resolve_device
from rlcourse.logger import RunLogger
from rlcourse.registry import make_vec
from rlcourse.vec_env import TensorVecEnv

#: A callback is called after every iteration with the agent; returning ``False`` stops training.
Callback = Callable[["Agent"], "bool | None"]

CHECKPOINT_NAME = "checkpoint.pt"


class EpisodeTracker:
    """Sums over finished episodes (count, return, length, successes), kept on the device until read."""

    def __init__(self, device: torch.device):
        self.sums = torch.zeros(4, dtype=torch.float64, device=device)  # float64: exact counts over long intervals
        self.has_success = False

    def record(self, info: dict[str, Any]) -> None:
        done = info["_episode"]
        success = info["final_info"].get("success")
        self.has_success = self.has_success or success is not None
        success_sum = (success & done).sum() if success is not None else torch.zeros((), device=done.device)
        self.sums += torch.stack((done.sum(), info["episode"]["r"].sum(), info["episode"]["l"].sum(), success_sum)).to(self.sums.dtype)

    def summarise(self, sums: list[float]) -> dict[str, float]:
        """Turn sums read from :attr:`sums` into SB3's rollout statistics, and start counting afresh."""
        count, ret, length, success = sums
        self.sums.zero_()
        if count == 0:
            return {}
        stats = {"rollout/ep_rew_mean": ret / count, "rollout/ep_len_mean": length / count}
        if self.has_success:
            stats["rollout/success_rate"] = success / count
        return stats


class _StopOnSignal:
    """Turns SIGINT/SIGTERM into a flag the loop checks between iterations (so a checkpoint gets written)."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> _StopOnSignal:
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signum is not None:  # a second signal: stop now, without a checkpoint
            raise SystemExit(128 + signum)
        self.signum = signum

    def __exit__(self, *exc: Any) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)


def derive_seeds(seed: int, count: int) -> list[int]:
    """``count`` independent 63-bit seeds from one user seed (numpy's SeedSequence spawning)."""
    return [int(child.generate_state(2, np.uint64)[0] >> np.uint64(1)) for child in np.random.SeedSequence(seed).spawn(count)]


def _space_summary(space: spaces.Space) -> dict[str, Any]:
    """What must match for a checkpoint to fit an env: the space's type, shape, dtype and bounds or sizes."""
    summary: dict[str, Any] = {"type": type(space).__name__, "shape": list(space.shape or ()), "dtype": str(space.dtype)}
    if isinstance(space, spaces.Box):
        summary["low"], summary["high"] = space.low.flatten().tolist(), space.high.flatten().tolist()
    elif isinstance(space, spaces.Discrete):
        summary["n"], summary["start"] = int(space.n), int(space.start)
    elif isinstance(space, spaces.MultiDiscrete):
        summary["nvec"] = space.nvec.flatten().tolist()
    return summary


#: Optimizers whose per-parameter state starts as zeros (step, first and second moments), so a zeroed
#: state is exactly a fresh one.
ZERO_STATE_OPTIMIZERS = (torch.optim.Adam, torch.optim.AdamW, torch.optim.RMSprop)
#: Param-group flags that decide which state entries those optimizers keep (a state of other keys is not reused).
STATE_SHAPING_FLAGS = ("amsgrad", "momentum", "centered")


def _refill_live_state(optimizer: torch.optim.Optimizer, live_state: dict[Any, dict[str, Any]]) -> None:
    """Put the optimizer's state tensors of before a load back in place, holding the loaded values.

    A captured CUDA graph reads and writes the state tensors at the addresses it saw; ``load_state_dict``
    allocates new ones. The first capture happens right after a load (``graphs.capture`` restores the
    pre-warm-up snapshot), and a fresh run's snapshot has no optimizer state at all: without this, the
    graph would create the state inside the capture, and every replay would start the optimizer afresh
    (Adam/RMSprop reset at every iteration). So a parameter whose state the load leaves empty keeps its
    tensors, zeroed (a fresh state), and one with loaded state gets the values copied in.
    """
    for param, old in live_state.items():
        loaded = optimizer.state.get(param)
        if loaded is None:  # the loaded state is fresh for this parameter
            for value in old.values():
                if isinstance(value, torch.Tensor):
                    value.zero_()
            optimizer.state[param] = old
            continue
        if loaded.keys() == old.keys() and all(
                not isinstance(value, torch.Tensor) or (isinstance(old[key], torch.Tensor) and old[key].shape == value.shape)
                for key, value in loaded.items()):
            for key, value in loaded.items():
                if isinstance(value, torch.Tensor):
                    old[key].copy_(value)
                else:
                    old[key] = value
            optimizer.state[param] = old


def _load_optimizer_keeping_setup(optimizer: torch.optim.Optimizer, state: dict[str, Any]) -> None:
    """Load an optimizer's state but keep how this run drives it.

    ``load_state_dict`` replaces the param groups wholesale; that would swap a device learning-rate
    tensor (read by a captured CUDA graph) for the checkpoint's copy, and bring back another device's
    ``capturable``/``fused`` flags. The saved values are copied into the live objects instead.
    """
    live = [{key: group[key] for key in ("lr", "capturable", "fused", "foreach") if key in group}
            for group in optimizer.param_groups]
    live_state = {param: dict(entries) for param, entries in optimizer.state.items()}
    shape_flags = [{key: group.get(key) for key in STATE_SHAPING_FLAGS} for group in optimizer.param_groups]
    optimizer.load_state_dict(state)
    same_shape = shape_flags == [{key: group.get(key) for key in STATE_SHAPING_FLAGS} for group in optimizer.param_groups]
    if isinstance(optimizer, ZERO_STATE_OPTIMIZERS) and same_shape:
        _refill_live_state(optimizer, live_state)
    for group, kept in zip(optimizer.param_groups, live):
        saved_lr = float(group["lr"])
        group.update(kept)
        if isinstance(group["lr"], torch.Tensor):
            group["lr"].fill_(saved_lr)
        else:
            group["lr"] = saved_lr
        if group.get("capturable") or group.get("fused"):
            # A CPU checkpoint keeps `step` on the CPU; a capturable or fused optimizer needs it beside its parameter.
            for param in group["params"]:
                step = optimizer.state.get(param, {}).get("step")
                if isinstance(step, torch.Tensor) and step.device != param.device:
                    optimizer.state[param]["step"] = step.to(device=param.device, dtype=torch.float32)


class Agent(abc.ABC):
    """Base class of every rlcourse agent (see the module docstring for what a subclass writes).

    Args:
        env: an env id (``rlcourse/CartPole-v1``, ``Pendulum-v1``, ...) or a :class:`TensorVecEnv`.
        num_envs: number of parallel envs when ``env`` is an id.
        device: ``auto`` (CUDA when available), ``cpu``, ``cuda`` or ``cuda:N``.
        seed: seeds the networks, the env stream and the agent's sampling.
        run_dir: folder for TensorBoard events and checkpoints (None: log nothing to disk).
        compile: run the hot functions through ``torch.compile``.
        cuda_graphs: capture the rollout and update as CUDA graphs (default: on for CUDA devices).
        env_kwargs: options for the env's constructor when ``env`` is an id (``{"nlu": "tcbot"}``).
        **hparams: fields of the algorithm's config dataclass.
    """

    algo: ClassVar[str]
    config_class: ClassVar[type]
    #: ``learn``'s log interval when none is given: 1 for big iterations; agents with tiny ones (A2C) log less often.
    default_log_interval: ClassVar[int] = 1
    #: Whether the agent runs on the CPU only (A3C's worker processes); ``device="auto"`` then means the CPU.
    cpu_only: ClassVar[bool] = False

    def __init__(self, env: str | TensorVecEnv, num_envs: int = 8, device: str | torch.device = "auto", seed: int = 0,
                 run_dir: str | Path | None = None, compile: bool = False, cuda_graphs: bool | None = None,
                 env_kwargs: dict[str, Any] | None = None, **hparams: Any):
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
        self.config = make_config(self.config_class, hparams)
        self.device = resolve_device(device)
        if env_kwargs is not None and not isinstance(env_kwargs, dict):
            raise ValueError(f"env_kwargs must be a mapping of env options, got {type(env_kwargs).__name__}")
        if isinstance(env, TensorVecEnv):
            self.env = env
            if env.device != self.device:
                raise ValueError(f"the env is on {env.device} but the agent was asked to run on {self.device}")
            if env_kwargs:
                raise ValueError("env_kwargs apply to an env id; this env instance is already built")
        else:
            self.env = make_vec(env, num_envs, self.device, **(env_kwargs or {}))
        self.env_id = self.env.env_id
        self.num_envs = self.env.num_envs
        self.seed = int(seed)
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.compile = bool(compile)
        if cuda_graphs is None:
            cuda_graphs = self.device.type == "cuda" and self.env.graph_safe
        self.cuda_graphs = bool(cuda_graphs)
        self._graph: torch.cuda.CUDAGraph | None = None  # the captured iteration (see _replay_captured)
        self._graph_stats: dict[str, torch.Tensor] = {}
        if self.cuda_graphs and self.device.type != "cuda":
            raise ValueError("cuda_graphs=True needs a CUDA device")
        if self.cuda_graphs and not self.env.graph_safe:
            raise ValueError(f"cuda_graphs=True needs an env that steps on the device; {self.env_id} steps on the host")
        action_space = self.env.single_action_space
        self._action_bounds = None
        if isinstance(action_space, spaces.Box):  # kept on the device: no host copy inside a captured step
            self._action_bounds = (torch.as_tensor(action_space.low, device=self.device),
                                   torch.as_tensor(action_space.high, device=self.device))
        # Policies index actions from 0; Discrete(n, start=k) envs want k..k+n-1.
        self._action_offset = int(action_space.start) if isinstance(action_space, spaces.Discrete) else 0
        self.num_timesteps = 0
        self.iteration = 0
        self.total_timesteps = 0
        self.interrupted_by: int | None = None
        self.last_log: dict[str, float] = {}
        self.has_action_masks = hasattr(self.env, "action_masks")

        torch.manual_seed(self.seed)
        np.random.seed(self.seed)
        random.seed(self.seed)
        # The env and the agent draw from separate generators with unrelated seeds, so their streams never overlap.
        env_seed, agent_seed, predict_seed = derive_seeds(self.seed, 3)
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(agent_seed)
        self._predict_generator = torch.Generator(device=self.device)  # predict() never moves the training stream
        self._predict_generator.manual_seed(predict_seed)
        self.obs, _ = self.env.reset(seed=env_seed)
        self.episodes = EpisodeTracker(self.device)
        self._build()

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
    def _act(self, obs: torch.Tensor, action_masks: torch.Tensor | None, deterministic: bool,
             generator: torch.Generator | None) -> torch.Tensor:
        """Batched actions for batched observations (no gradients)."""

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

    def _replay_captured(self, iteration: Callable[[], dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        """Run ``iteration`` as a CUDA graph, captured on the first call (and again after a load), replayed after.

        Capture starts from the state before its warm-up runs (``graphs.capture``), with this iteration's
        schedules; the returned statistics are the graph's output tensors, refreshed by each replay.
        """
        if self._graph is None:
            self._graph, self._graph_stats = graphs.capture(
                iteration, snapshot=self.checkpoint_state, restore=self._restore_for_capture,
                generators=[self.generator, self.env.generator])
        self._graph.replay()
        return self._graph_stats

    def _restore_for_capture(self, state: dict[str, Any]) -> None:
        self.load_state(state)
        self._apply_schedules()

    # ----------------------------------------------------------------- training
    def learn(self, total_timesteps: int, progress_bar: bool = False, callbacks: Iterable[Callback] = (),
              log_interval: int | None = None, reset_num_timesteps: bool = True, checkpoint_interval_s: float = 300.0) -> Agent:
        """Train for ``total_timesteps`` env steps (more, not in total, when ``reset_num_timesteps=False``).

        Statistics are read from the device once every ``log_interval`` iterations (default: the
        agent's ``default_log_interval``), and after the last one. With a ``run_dir``,
        a checkpoint is written every ``checkpoint_interval_s`` seconds, at the end, and when SIGINT or
        SIGTERM arrives (training then stops after the current iteration; see ``interrupted_by``).
        """
        if isinstance(total_timesteps, bool) or not isinstance(total_timesteps, (int, np.integer)) or total_timesteps <= 0:
            raise ValueError(f"total_timesteps must be a positive integer, got {total_timesteps!r}")
        if log_interval is None:
            log_interval = self.default_log_interval
        if isinstance(log_interval, bool) or not isinstance(log_interval, (int, np.integer)) or log_interval <= 0:
            raise ValueError(f"log_interval must be a positive integer, got {log_interval!r}")
        if reset_num_timesteps:
            self.num_timesteps, self.iteration = 0, 0
        self.total_timesteps = self.num_timesteps + int(total_timesteps)
        self.interrupted_by = None
        callbacks = list(callbacks)
        iterations_left = -(-(self.total_timesteps - self.num_timesteps) // self.steps_per_iteration)
        logger = RunLogger(self.run_dir, self.num_timesteps + iterations_left * self.steps_per_iteration, progress_bar,
                           start_step=self.num_timesteps,
                           purge_step=self.num_timesteps if self.num_timesteps > 0 and self.run_dir else None)
        try:
            with _StopOnSignal() as stop:
                self._train_loop(logger, stop, callbacks, log_interval, checkpoint_interval_s)
            # Only a run that stopped between iterations is saved: after an exception the state may be
            # half-updated, and the last good checkpoint must not be overwritten by it.
            if self.run_dir is not None:
                self.save_checkpoint()
                self._log_transcripts(logger)
                logger.hparams({"algo": self.algo, "env": self.env_id, "num_envs": self.num_envs, "seed": self.seed,
                                **config_to_dict(self.config)},
                               {k: v for k, v in self.last_log.items() if k.startswith("rollout/")})
        finally:
            logger.close()
        return self

    def _train_loop(self, logger: RunLogger, stop: _StopOnSignal, callbacks: list[Callback], log_interval: int,
                    checkpoint_interval_s: float) -> None:
        """Iterate until ``total_timesteps``, a callback returns ``False`` or a signal arrives (A3C replaces this)."""
        last_log_time, last_log_steps = time.perf_counter(), self.num_timesteps
        last_checkpoint = time.monotonic()
        while self.num_timesteps < self.total_timesteps:
            stats = self._train_iteration()
            self.num_timesteps += self.steps_per_iteration
            self.iteration += 1
            finished = self.num_timesteps >= self.total_timesteps
            if self.iteration % log_interval == 0 or finished:
                now = time.perf_counter()
                fps = (self.num_timesteps - last_log_steps) / max(now - last_log_time, 1e-9)
                self._log(logger, stats, fps)
                last_log_time, last_log_steps = time.perf_counter(), self.num_timesteps
            if any(callback(self) is False for callback in callbacks):
                break
            if stop.signum is not None:
                self.interrupted_by = stop.signum
                break
            if self.run_dir is not None and time.monotonic() - last_checkpoint > checkpoint_interval_s:
                self.save_checkpoint()
                last_checkpoint = time.monotonic()

    def _log(self, logger: RunLogger, stats: dict[str, torch.Tensor], fps: float) -> None:
        """The one host-device sync of a log interval: read every statistic at once."""
        names = list(stats)
        values = torch.cat([torch.stack([stats[n].double() for n in names]).reshape(-1), self.episodes.sums]).tolist()
        scalars: dict[str, float] = dict(zip(names, values[:len(names)]))
        scalars.update(self.episodes.summarise(values[len(names):]))
        scalars["time/fps"] = fps
        scalars["time/iterations"] = float(self.iteration)
        self.last_log = {**self.last_log, **scalars}
        logger.scalars(scalars, self.num_timesteps)

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
            raise ValueError(f"obs must have shape {obs_shape} or (batch, {', '.join(map(str, obs_shape))}), got {tuple(obs_t.shape)}")
        masks = None
        if action_masks is not None:
            masks = torch.as_tensor(np.asarray(action_masks) if not isinstance(action_masks, torch.Tensor) else action_masks,
                                    dtype=torch.bool, device=self.device).reshape(obs_t.shape[0], -1)
        with torch.no_grad():
            actions = self._env_action(self._act(obs_t, masks, deterministic, self._predict_generator))
        if single:
            actions = actions[0]
        return actions.cpu().numpy() if as_numpy else actions

    def evaluate(self, n_episodes: int = 100, deterministic: bool = True, seed: int | None = None) -> dict[str, float]:
        """Play ``n_episodes`` episodes on a fresh env (one per parallel copy) and summarise them.

        Training state (env, RNGs) is untouched, so evaluating never changes a run's outcome.
        """
        if isinstance(n_episodes, bool) or not isinstance(n_episodes, (int, np.integer)) or n_episodes <= 0:
            raise ValueError(f"n_episodes must be a positive integer, got {n_episodes!r}")
        seed = self.seed + 1_000_003 if seed is None else seed
        env = self._make_env(n_episodes)
        env_seed, agent_seed = derive_seeds(seed, 2)
        generator = torch.Generator(device=self.device)
        generator.manual_seed(agent_seed)
        obs, _ = env.reset(seed=env_seed)
        returns = torch.zeros(n_episodes, device=self.device)
        lengths = torch.zeros(n_episodes, device=self.device)
        successes = torch.zeros(n_episodes, device=self.device)
        finished = torch.zeros(n_episodes, dtype=torch.bool, device=self.device)
        has_success = False
        step = 0
        with torch.no_grad():
            while True:
                masks = env.action_masks() if self.has_action_masks else None
                obs, _, _, _, info = env.step(self._env_action(self._act(obs, masks, deterministic, generator)))
                first = info["_episode"] & ~finished
                returns = torch.where(first, info["episode"]["r"], returns)
                lengths = torch.where(first, info["episode"]["l"].float(), lengths)
                if "success" in info["final_info"]:
                    has_success = True
                    successes = torch.where(first, info["final_info"]["success"].float(), successes)
                finished |= first
                step += 1
                if step % 32 == 0 and bool(finished.all()):
                    break
        env.close()
        result = {
            "mean_reward": returns.mean().item(),
            "std_reward": returns.std(unbiased=False).item(),
            "mean_length": lengths.mean().item(),
            "n_episodes": int(n_episodes),
        }
        if has_success:
            result["success_rate"] = successes.mean().item()
        return result

    def transcripts(self, n: int = 3, deterministic: bool = True, seed: int | None = None) -> list[str]:
        """``n`` sample episodes played by this policy on a fresh env, as text (envs with transcripts only)."""
        if not hasattr(self.env, "play_transcripts"):
            raise ValueError(f"{self.env_id or type(self.env).__name__} has no transcripts (only text envs such as rlcourse/SlotFilling-v0 do)")
        env = self._make_env(n, record_acts=True)
        generator = torch.Generator(device=self.device)
        generator.manual_seed(derive_seeds(self.seed + 2_000_003 if seed is None else seed, 1)[0])
        with torch.no_grad():
            return env.play_transcripts(lambda obs, masks: self._env_action(self._act(obs, masks, deterministic, generator)),
                                        seed=self.seed + 2_000_003 if seed is None else seed)

    def _log_transcripts(self, logger: RunLogger, n: int = 3) -> None:
        """Sample dialogues to TensorBoard's TEXT tab at the end of training (text envs only)."""
        if hasattr(self.env, "play_transcripts"):
            for index, text in enumerate(self.transcripts(n)):
                logger.text(f"transcripts/{index}", text, self.num_timesteps)

    def _make_env(self, num_envs: int, **extra: Any) -> TensorVecEnv:
        """A fresh copy of the training env with ``num_envs`` sub-envs (for evaluation and transcripts)."""
        if self.env_id is not None:
            return make_vec(self.env_id, num_envs, self.device, **self.env.options(), **extra)
        try:  # an unregistered TensorVecEnv passed as an instance
            return type(self.env)(num_envs=num_envs, device=self.device, **self.env.options(), **extra)
        except TypeError as error:
            raise ValueError(f"cannot make another {type(self.env).__name__} for evaluation ({error}); register it with rlcourse.register_env") from None

    def _env_action(self, actions: torch.Tensor) -> torch.Tensor:
        """Policy output -> env action: Box actions clipped to the bounds (as SB3 does), Discrete shifted by ``start``."""
        if self._action_bounds is not None:
            return actions.clamp(*self._action_bounds)
        return actions + self._action_offset if self._action_offset else actions

    # ----------------------------------------------------------------- checkpoints
    def checkpoint_state(self) -> dict[str, Any]:
        """Everything needed to continue this run exactly: networks, optimizers, RNGs, env, counters, config."""
        return {
            "algo": self.algo,
            "device_type": self.device.type,
            "env_id": self.env_id,
            "env_kwargs": self.env.options(),
            "num_envs": self.num_envs,
            "seed": self.seed,
            "config": config_to_dict(self.config),
            "spaces": {"observation": _space_summary(self.env.single_observation_space),
                       "action": _space_summary(self.env.single_action_space)},
            "counters": {"num_timesteps": int(self.num_timesteps), "iteration": int(self.iteration),
                         "total_timesteps": int(self.total_timesteps)},
            "modules": {name: module.state_dict() for name, module in self._modules().items()},
            "optimizers": {name: opt.state_dict() for name, opt in self._optimizers().items()},
            "extra": {name: value.detach().clone() for name, value in self._extra_state().items()},
            "rng": {"global": capture_global_rng(), "agent": self.generator.get_state()},
            "env": self.env.state_dict() if self.env.restorable else None,
            "obs": self.obs.clone(),
            "episodes": self.episodes.sums.clone(),
        }

    def save(self, path: str | Path) -> Path:
        """Write a checkpoint to ``path`` atomically (temp file, then rename)."""
        return save_checkpoint(self.checkpoint_state(), path)

    def save_checkpoint(self) -> Path:
        """The run's checkpoint, ``run_dir/checkpoint.pt``."""
        if self.run_dir is None:
            raise ValueError("this agent has no run_dir to checkpoint into")
        return self.save(self.run_dir / CHECKPOINT_NAME)

    @classmethod
    def load(cls, path: str | Path, device: str | torch.device = "auto", run_dir: str | Path | None = None,
             env: TensorVecEnv | None = None, **overrides: Any) -> Agent:
        """Rebuild an agent from a checkpoint written by :meth:`save`.

        The env and config come from the file; pass ``env`` for an env that is not registered.
        """
        payload = load_checkpoint(path)
        if payload.get("algo") != cls.algo:
            raise CheckpointError(f"{str(path)!r} was written by {str(payload.get('algo')).upper()}, not {cls.algo.upper()}")
        if env is None and payload.get("env_id") is None:
            raise CheckpointError(f"{str(path)!r} was saved for an unregistered env; pass it as load(..., env=...)")
        config = payload.get("config")
        if not isinstance(config, dict):
            raise CheckpointError(f"{str(path)!r} has no config mapping (found {type(config).__name__})")
        try:
            env_kwargs = None if env is not None else payload.get("env_kwargs") or None
            agent = cls(env if env is not None else payload["env_id"], num_envs=overrides.pop("num_envs", payload["num_envs"]),
                        device=device, seed=payload["seed"], run_dir=run_dir, env_kwargs=env_kwargs, **{**config, **overrides})
        except KeyError as missing:
            raise CheckpointError(f"{str(path)!r} lacks the entry {missing}") from None
        agent.load_state(payload, source=str(path))
        return agent

    def load_state(self, payload: dict[str, Any], source: str = "checkpoint") -> None:
        """Load a checkpoint payload into this (already built) agent, checking that it fits first.

        Networks, optimizer state and counters always load. The RNG streams, the env's state and the
        current observations load only when the checkpoint comes from the same device type and batch
        size (a CUDA generator's state means nothing to a CPU one): then training continues exactly;
        otherwise the env keeps its fresh episodes and the streams their fresh seeds.
        """
        expected = {"observation": _space_summary(self.env.single_observation_space),
                    "action": _space_summary(self.env.single_action_space)}
        if payload.get("spaces") != expected:
            raise CheckpointError(f"{source} was saved for spaces {payload.get('spaces')}, but {self.env_id} has {expected}")
        try:
            restores_env = (payload.get("device_type") == self.device.type and payload["env"] is not None
                            and self.env.restorable and payload["num_envs"] == self.num_envs)
            self._check_fits(payload, restores_env)
            for name, module in self._modules().items():
                module.load_state_dict(payload["modules"][name])
            for name, optimizer in self._optimizers().items():
                _load_optimizer_keeping_setup(optimizer, payload["optimizers"][name])
            self._load_extra_state(payload["extra"])
            counters = payload["counters"]
            self.num_timesteps, self.iteration = int(counters["num_timesteps"]), int(counters["iteration"])
            self.total_timesteps = int(counters["total_timesteps"])
            if payload.get("device_type") == self.device.type:
                restore_global_rng(payload["rng"]["global"])
                self.generator.set_state(payload["rng"]["agent"])
                if restores_env:
                    self.env.load_state_dict({k: v if k == "generator" else v.to(self.env.device) for k, v in payload["env"].items()})
                    self.obs.copy_(payload["obs"])
                    self.episodes.sums.copy_(payload["episodes"])
        except (KeyError, RuntimeError, ValueError, TypeError, AttributeError, IndexError) as error:
            raise CheckpointError(f"{source} does not fit this {self.algo.upper()} agent: {str(error).splitlines()[0]}") from None
        self._on_state_loaded()

    def _check_fits(self, payload: dict[str, Any], restores_env: bool) -> None:
        """Raise before anything is changed if an entry is missing or a network's or the env's tensors differ."""
        missing = [key for key in ("modules", "optimizers", "extra", "counters", "rng", "obs", "episodes") if key not in payload]
        if missing:
            raise KeyError(missing[0])
        for name, module in self._modules().items():
            saved, live = payload["modules"][name], module.state_dict()
            if set(saved) != set(live):
                raise ValueError(f"network {name!r} has entries {sorted(set(live) ^ set(saved))} that the checkpoint does not share")
            for key, tensor in live.items():
                if tuple(saved[key].shape) != tuple(tensor.shape):
                    raise ValueError(f"{name}.{key} has shape {tuple(saved[key].shape)} in the checkpoint, {tuple(tensor.shape)} here")
        if restores_env:
            self.env.check_state_dict(payload["env"])

    def write_eval(self, n_episodes: int = 100) -> dict[str, float]:
        """Evaluate and write ``run_dir/eval.json``."""
        result = self.evaluate(n_episodes)
        if self.run_dir is not None:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            (self.run_dir / "eval.json").write_text(json.dumps({"num_timesteps": self.num_timesteps, **result}, indent=2))
        return result
