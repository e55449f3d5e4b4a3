"""Demonstrations: expert episodes recorded as Minari datasets, and read back as transitions on a device.

Imitation learning starts from an expert's demonstrations τ̂ = {s₁, a₁, s₂, a₂, ...}: no reward is needed,
only what the expert did in the states it saw (notes:14042-14066 [Imitation Learning]). They are stored in
the Farama ecosystem's offline-RL format, a `Minari <https://minari.farama.org>`_ dataset, so other tools
read them too and every imitation plug-in here (behaviour cloning, DAgger, GAIL, AIRL) reads the same files.

Layout of one episode of T steps (Minari's own): ``observations`` [T+1, ...] (the last one is the state the
final step led to: under SAME_STEP autoreset that is ``info["final_obs"]``, never the next episode's first
observation), ``actions`` [T, ...] (the env's actions), ``rewards``, ``terminations``, ``truncations`` [T],
and for envs with action masks ``infos["action_masks"]`` [T, n]: the valid actions in ``observations[t]``.

* :func:`record_episodes` plays a policy on a batched :class:`~rlcourse.vec_env.TensorVecEnv` and cuts its
  steps into whole episodes; :func:`save_demonstrations` writes them with ``minari.create_dataset_from_buffers``
  under Minari's root (``MINARI_DATASETS_PATH``, default ``~/.minari/datasets``).
* :func:`load_demonstrations` reads a dataset id or folder back as one :class:`Demonstrations` batch of
  flat transitions, checked against an env's spaces when one is given.
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from gymnasium import spaces

from rlcourse.config import did_you_mean
from rlcourse.vec_env import TensorVecEnv, true_next_obs

#: The ``infos`` entry holding the valid actions of each step (envs with ``has_action_masks``).
MASKS_KEY = "action_masks"
#: Steps a recording may take before it gives up (a policy that never ends an episode).
MAX_RECORDING_STEPS = 1_000_000


@dataclasses.dataclass
class Demonstrations:
    """Flat transitions (s, a, r, s', terminated, truncated) of some expert episodes, as tensors on one device."""

    obs: torch.Tensor  #: [N, *obs_shape], the env's observation dtype
    actions: torch.Tensor  #: [N, *action_shape], int64 for Discrete (the env's actions)
    next_obs: torch.Tensor  #: [N, *obs_shape], the true next observation (the final one at episode ends)
    rewards: torch.Tensor  #: [N] float32
    terminated: torch.Tensor  #: [N] bool
    truncated: torch.Tensor  #: [N] bool
    action_masks: torch.Tensor | None  #: [N, n] bool: the valid actions in ``obs``, or None
    num_episodes: int

    def __len__(self) -> int:
        return int(self.obs.shape[0])

    def _map(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> Demonstrations:
        return Demonstrations(
            fn(self.obs),
            fn(self.actions),
            fn(self.next_obs),
            fn(self.rewards),
            fn(self.terminated),
            fn(self.truncated),
            None if self.action_masks is None else fn(self.action_masks),
            self.num_episodes,
        )

    def to(self, device: str | torch.device) -> Demonstrations:
        """The same transitions on ``device``."""
        return self._map(lambda tensor: tensor.to(device))

    def sample(self, batch_size: int, generator: torch.Generator) -> Demonstrations:
        """``batch_size`` transitions drawn uniformly with replacement, on this batch's device (no host sync)."""
        index = torch.randint(len(self), (int(batch_size),), generator=generator, device=self.obs.device)
        return self._map(lambda tensor: tensor[index])


# --------------------------------------------------------------------------- recording
@dataclasses.dataclass
class RecordedEpisodes:
    """Whole episodes as numpy arrays (Minari's per-episode layout), with each episode's outcomes."""

    episodes: list[dict[str, Any]]
    outcomes: dict[str, np.ndarray]  #: outcome key -> [episodes] bool (``env.outcome_keys``)

    @property
    def returns(self) -> np.ndarray:
        return np.array([float(np.sum(episode["rewards"])) for episode in self.episodes])

    @property
    def num_steps(self) -> int:
        return int(sum(len(episode["rewards"]) for episode in self.episodes))


def record_episodes(
    env: TensorVecEnv, policy: Callable, num_episodes: int, seed: int | None = None
) -> RecordedEpisodes:
    """``num_episodes`` whole episodes of ``policy(obs, action_masks) -> env actions`` on the batched ``env``.

    Every sub-env plays its episodes one after another; sub-env ``b`` contributes its first episodes, so
    short episodes are not favoured (the first ``num_episodes`` to *end* would be the shortest ones). The
    steps stay on the device until the end, when they are cut into episodes on the host.
    """
    if num_episodes <= 0:
        raise ValueError(f"num_episodes must be positive, got {num_episodes!r}")
    quota = -(-num_episodes // env.num_envs)  # episodes each sub-env must finish
    columns: dict[str, list[torch.Tensor]] = {"obs": [], "actions": [], "rewards": [], "terminated": []}
    columns.update({"truncated": [], "next_obs": [], "done": []})
    if env.has_action_masks:
        columns["masks"] = []
    outcome_columns: dict[str, list[torch.Tensor]] = {key: [] for key in env.outcome_keys}
    obs, _ = env.reset(seed=seed)
    finished = torch.zeros(env.num_envs, dtype=torch.int64, device=env.device)
    for step in range(MAX_RECORDING_STEPS):
        masks = env.action_masks() if env.has_action_masks else None
        actions = policy(obs, masks)
        next_obs, rewards, terminated, truncated, info = env.step(actions)
        done = terminated | truncated
        for name, value in (("obs", obs), ("actions", actions), ("rewards", rewards), ("masks", masks)):
            if name in columns:
                columns[name].append(value.clone())
        columns["terminated"].append(terminated.clone())
        columns["truncated"].append(truncated.clone())
        columns["next_obs"].append(true_next_obs(next_obs, info).clone())
        columns["done"].append(done.clone())
        for key in env.outcome_keys:
            outcome_columns[key].append(info["final_info"][key].clone() & done)
        finished += done.long()
        obs = next_obs
        if step % 16 == 15 and bool((finished >= quota).all()):
            break
    else:
        raise ValueError(f"{num_episodes} episodes had not ended after {MAX_RECORDING_STEPS:,} steps of {env!r}")
    host = {name: torch.stack(values).cpu().numpy() for name, values in columns.items()}
    host_outcomes = {key: torch.stack(values).cpu().numpy() for key, values in outcome_columns.items()}
    found: list[tuple[int, int, dict[str, Any], dict[str, bool]]] = []  # (index within its sub-env, sub-env, ...)
    for b in range(env.num_envs):
        ends = np.flatnonzero(host["done"][:, b])[:quota]
        starts = np.concatenate([[0], ends[:-1] + 1])
        for k, (start, end) in enumerate(zip(starts, ends)):
            steps = slice(start, end + 1)
            episode = {
                "observations": np.concatenate([host["obs"][steps, b], host["next_obs"][end, b][None]]),
                "actions": host["actions"][steps, b],
                "rewards": host["rewards"][steps, b].astype(np.float32),
                "terminations": host["terminated"][steps, b],
                "truncations": host["truncated"][steps, b],
                "infos": {MASKS_KEY: host["masks"][steps, b]} if "masks" in host else {},
            }
            found.append((k, b, episode, {key: bool(host_outcomes[key][end, b]) for key in env.outcome_keys}))
    found.sort(key=lambda item: (item[0], item[1]))
    chosen = found[:num_episodes]
    outcomes = {key: np.array([item[3][key] for item in chosen], dtype=bool) for key in env.outcome_keys}
    return RecordedEpisodes([item[2] for item in chosen], outcomes)


@contextmanager
def minari_root(root: str | Path | None):
    """Minari's dataset root set to ``root`` inside the block (None: leave ``MINARI_DATASETS_PATH`` alone)."""
    if root is None:
        yield
        return
    before = os.environ.get("MINARI_DATASETS_PATH")
    os.environ["MINARI_DATASETS_PATH"] = str(Path(root).resolve())
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("MINARI_DATASETS_PATH", None)
        else:
            os.environ["MINARI_DATASETS_PATH"] = before


def _env_spec(env: TensorVecEnv) -> Any:
    """The Gymnasium spec that rebuilds ``env`` as one env (with its options), or None when there is none."""
    import gymnasium as gym

    from rlcourse.registry import list_envs

    if env.env_id is None:
        return None
    try:
        spec = gym.spec(env.env_id)
    except gym.error.Error:
        return None
    options = env.options()
    kwargs = options if env.env_id in list_envs() else options.get("env_kwargs", {})
    return dataclasses.replace(spec, kwargs={**spec.kwargs, **kwargs})


def save_demonstrations(
    recorded: RecordedEpisodes,
    dataset_id: str,
    env: TensorVecEnv,
    algorithm_name: str,
    description: str | None = None,
    root: str | Path | None = None,
) -> Path:
    """Write ``recorded`` as the Minari dataset ``dataset_id`` (under ``root``, else Minari's root); returns its folder.

    The env's spec (id and options) goes into the dataset, so ``dataset.recover_environment()`` rebuilds it.
    """
    import minari
    from minari.data_collector.episode_buffer import EpisodeBuffer
    from minari.storage import get_dataset_path

    buffers = [EpisodeBuffer(id=index, **episode) for index, episode in enumerate(recorded.episodes)]
    with minari_root(root):
        if get_dataset_path(dataset_id).exists():
            raise ValueError(f"a Minari dataset {dataset_id!r} exists already at {get_dataset_path(dataset_id)}")
        with warnings.catch_warnings():  # Minari asks for authors, permalinks and an eval env: optional metadata
            warnings.simplefilter("ignore", UserWarning)
            minari.create_dataset_from_buffers(
                dataset_id,
                buffers,
                env=_env_spec(env),
                algorithm_name=algorithm_name,
                observation_space=env.single_observation_space,
                action_space=env.single_action_space,
                description=description,
            )
        return Path(get_dataset_path(dataset_id))


# --------------------------------------------------------------------------- reading
def local_dataset_ids() -> list[str]:
    """The ids of the Minari datasets under the current root."""
    from minari.storage import get_dataset_path

    root = Path(get_dataset_path())
    return sorted(path.parent.relative_to(root).as_posix() for path in root.glob("**/data") if path.is_dir())


def _open_dataset(dataset: str | Path) -> Any:
    """A ``MinariDataset`` from a dataset folder (or its ``data`` folder) or an id under Minari's root."""
    import minari
    from minari.storage import get_dataset_path

    path = Path(dataset)
    for candidate in (path / "data", path):
        if (candidate / "metadata.json").is_file():
            return minari.MinariDataset(str(candidate))
    text = str(dataset)
    if (Path(get_dataset_path(text)) / "data").is_dir():
        return minari.load_dataset(text)
    known = local_dataset_ids()
    hint = did_you_mean(text, known)
    raise ValueError(
        f"no Minari dataset {text!r}: not a dataset folder, nor a dataset id under {get_dataset_path()} "
        f"(MINARI_DATASETS_PATH); {hint + ' ' if hint else ''}local datasets: {', '.join(known) or 'none'}"
    )


def _describe(space: spaces.Space) -> str:
    if isinstance(space, spaces.Discrete):
        return f"Discrete({space.n})"
    return f"{type(space).__name__}{tuple(space.shape or ())} {space.dtype}"


def _spaces_fit(ours: spaces.Space, theirs: spaces.Space) -> bool:
    same = type(ours) is type(theirs) and ours.shape == theirs.shape and ours.dtype == theirs.dtype
    if isinstance(ours, spaces.Discrete):
        same = same and int(ours.n) == int(theirs.n) and int(ours.start) == int(theirs.start)
    return same


def load_demonstrations(dataset: str | Path, device: str | torch.device = "cpu", env: Any = None) -> Demonstrations:
    """Every transition of a Minari dataset (an id under Minari's root, or a dataset folder) as one batch on ``device``.

    With ``env`` (a :class:`TensorVecEnv`), the dataset's observation and action spaces must be the env's:
    a mismatch is a ``ValueError`` naming both. An unknown id or path is a ``ValueError`` that lists the
    local datasets.
    """
    data = _open_dataset(dataset)
    if env is not None:
        obs_space, action_space = env.single_observation_space, env.single_action_space
        if not (_spaces_fit(obs_space, data.observation_space) and _spaces_fit(action_space, data.action_space)):
            raise ValueError(
                f"dataset {str(dataset)!r} has observations {_describe(data.observation_space)} and actions "
                f"{_describe(data.action_space)}, but {env.env_id or type(env).__name__} has observations "
                f"{_describe(obs_space)} and actions {_describe(action_space)}"
            )
    parts: dict[str, list[np.ndarray]] = {name: [] for name in ("obs", "actions", "next_obs", "rewards", "term")}
    parts.update({"trunc": [], "masks": []})
    episodes = list(data.iterate_episodes())
    if not episodes:
        raise ValueError(f"dataset {str(dataset)!r} holds no episodes")
    with_masks = all(MASKS_KEY in (episode.infos or {}) for episode in episodes)
    for episode in episodes:
        steps = len(episode.rewards)
        observations = np.asarray(episode.observations)
        parts["obs"].append(observations[:steps])
        parts["next_obs"].append(observations[1 : steps + 1])
        parts["actions"].append(np.asarray(episode.actions))
        parts["rewards"].append(np.asarray(episode.rewards, dtype=np.float32))
        parts["term"].append(np.asarray(episode.terminations, dtype=bool))
        parts["trunc"].append(np.asarray(episode.truncations, dtype=bool))
        if with_masks:
            parts["masks"].append(np.asarray(episode.infos[MASKS_KEY], dtype=bool)[:steps])

    def tensor(name: str, dtype: torch.dtype | None = None) -> torch.Tensor:
        return torch.as_tensor(np.concatenate(parts[name]), dtype=dtype, device=device)

    discrete = isinstance(data.action_space, spaces.Discrete)
    return Demonstrations(
        obs=tensor("obs"),
        actions=tensor("actions", torch.int64 if discrete else torch.float32),
        next_obs=tensor("next_obs"),
        rewards=tensor("rewards", torch.float32),
        terminated=tensor("term", torch.bool),
        truncated=tensor("trunc", torch.bool),
        action_masks=tensor("masks", torch.bool) if with_masks else None,
        num_episodes=len(episodes),
    )


__all__ = [
    "MASKS_KEY",
    "Demonstrations",
    "RecordedEpisodes",
    "load_demonstrations",
    "local_dataset_ids",
    "minari_root",
    "record_episodes",
    "save_demonstrations",
]
