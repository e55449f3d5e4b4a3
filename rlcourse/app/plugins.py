"""Plug-ins in ``rlcourse train``: adversarial imitation (``train gail|airl ENV --demos D``) and ``--hp curiosity=...``.

The app is the layer that composes: the env is built here, wrapped by the plug-in's reward
(:class:`~rlcourse.supervised.reward.ModelReward`), handed to the agent as an instance, and the callback
that trains the plug-in joins the run's callbacks. Nothing in the agents changes.

* ``gail`` / ``airl``: the generator is an on-policy agent (``generator`` in ``rlcourse/presets/<method>.yml``,
  PPO by default) with its own preset for the env; ``discriminator`` holds the discriminator's settings
  (:class:`~rlcourse.supervised.imitation.gail.GAILConfig` / ``AIRLConfig``); the env's reward is replaced.
* ``curiosity``: ``true`` (the ICM's published defaults) or a mapping of
  :class:`~rlcourse.supervised.curiosity.CuriosityConfig` settings, for any agent; its reward is added.
* ``reward_model``: a fitted reward-model plug-in file, or a list of them (``rlcourse fit preference`` writes
  one), frozen, each adding its reward to the env's (``ModelReward``, mode ``add``); the run records each file's
  digest, so a resumed run refuses a file that changed.

The env's normalisation (``normalize``) is applied around the plug-ins in the order they need
(:func:`build_env`): ``NormalizeObservation`` inside them, so the plug-in's model and the agent's callbacks read
the same observations, and ``NormalizeReward`` outside, so the sum of the env's and the plug-in's rewards is
normalised. The adversarial methods compare the agent's observations with recorded raw ones, so they refuse
observation normalisation.

The run's checkpoint is the generator's (``rlcourse eval`` and ``play`` read it as such, on the env under its
normalisation only); the plug-in's weights and optimizer are the callback's state inside it, and the wrapper's
state is the env's.
``config.yaml`` records the plug-ins (:meth:`Plugins.record`), with the dataset folder the demonstrations were
read from and a digest of them, so ``train --resume`` rebuilds the same env and callbacks
(:func:`plugins_of`, then :func:`build_env`) and refuses demonstrations that are gone or changed.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from rlcourse.app.inputs import BadInput
from rlcourse.config import ENV_KEYS, RUN_KEYS, ConfigError, Normalization, load_preset, make_config, parse_normalize

#: Adversarial imitation methods (the ALGO of ``rlcourse train``), which train a generator agent.
ADVERSARIAL = ("gail", "airl")
#: Agents that can be the generator: on-policy ones, whose rollouts the discriminator reads.
GENERATORS = ("ppo", "a2c", "reinforce")
PLUGIN_KEYS = ("generator", "discriminator", "curiosity", "reward_model")
#: Agents whose iterations give callbacks no rollout of their own (imitation learns from labels; A3C's workers).
NO_ROLLOUT_PLUGINS = ("bc", "dagger", "a3c")


@dataclass
class Plugins:
    """What a run plugs in: the adversarial method (or None), its generator and settings, and curiosity."""

    method: str | None = None
    generator: str | None = None
    discriminator: dict[str, Any] = field(default_factory=dict)
    curiosity: dict[str, Any] | None = None
    demos: str | None = None
    #: The dataset folder ``demos`` was read from, and a digest of its transitions (set by :func:`build_env`).
    demos_path: str | None = None
    demos_digest: str | None = None
    #: Frozen reward-model files (absolute paths) and, once the run is built, their digests.
    reward_models: list[str] = field(default_factory=list)
    reward_digests: list[str] | None = None

    @property
    def active(self) -> bool:
        return self.method is not None or self.curiosity is not None or bool(self.reward_models)

    def record(self) -> dict[str, Any]:
        """The plug-in keys of the run's config.yaml."""
        return {
            "plugins": {
                "method": self.method,
                "generator": self.generator,
                "discriminator": self.discriminator,
                "curiosity": self.curiosity,
                "demos": self.demos,
                "demos_path": self.demos_path,
                "demos_digest": self.demos_digest,
                "reward_models": self.reward_models,
                "reward_digests": self.reward_digests,
            }
        }


def split_plugins(algo: str, hparams: dict[str, Any], demos: str | None) -> tuple[str, Plugins]:
    """Take the plug-in keys out of ``hparams`` (in place); returns the algorithm that trains and the plug-ins."""
    plugins = Plugins(demos=demos)
    curiosity = hparams.pop("curiosity", None)
    if curiosity is True:
        plugins.curiosity = {}
    elif isinstance(curiosity, dict):
        plugins.curiosity = dict(curiosity)
    elif curiosity not in (None, False):
        raise ConfigError(f"curiosity must be true, false or a mapping of ICM settings, got {curiosity!r}")
    if plugins.curiosity is not None:
        from rlcourse.supervised.curiosity import CuriosityConfig

        if algo in NO_ROLLOUT_PLUGINS:
            raise ConfigError(f"curiosity trains on the agent's rollouts, which {algo} does not hand to callbacks")

        make_config(CuriosityConfig, plugins.curiosity)  # a bad setting is named before anything is built
    plugins.reward_models = _reward_model_files(hparams.pop("reward_model", None))
    generator, discriminator = hparams.pop("generator", None), hparams.pop("discriminator", None)
    if algo not in ADVERSARIAL:
        for name, value in (("generator", generator), ("discriminator", discriminator)):
            if value is not None:
                raise ConfigError(f"{name} is a setting of {' and '.join(ADVERSARIAL)}, not of {algo}")
        return algo, plugins
    if demos is None:
        raise BadInput(f"{algo} learns from demonstrations: give --demos DATASET (`rlcourse collect` records them)")
    generator = generator or "ppo"
    if generator not in GENERATORS:
        raise ConfigError(
            f"the {algo} generator must be an on-policy agent ({', '.join(GENERATORS)}), got {generator!r}"
        )
    if discriminator is not None and not isinstance(discriminator, dict):
        raise ConfigError(f"discriminator must be a mapping of {algo} settings, got {discriminator!r}")
    plugins.method, plugins.generator, plugins.discriminator = algo, generator, dict(discriminator or {})
    _discriminator_config(plugins)  # a bad setting is named before anything is built
    return generator, plugins


def _reward_model_files(value: Any) -> list[str]:
    """``reward_model`` (a path or a list of paths, or None) as absolute paths of existing files."""
    if value is None:
        return []
    paths = [value] if isinstance(value, str) else value
    if not isinstance(paths, list) or not paths or not all(isinstance(p, str) and p for p in paths):
        raise ConfigError(f"reward_model must be a reward-model file or a list of them, got {value!r}")
    missing = [p for p in paths if not Path(p).is_file()]
    if missing:
        raise BadInput(f"reward_model: no such file {missing[0]!r} (`rlcourse fit preference` writes one)")
    return [str(Path(p).resolve()) for p in paths]


def plugins_of(config: dict[str, Any]) -> tuple[str, Plugins]:
    """The algorithm that trains and the plug-ins a run's config.yaml records, checked as a new run's are.

    A plain run (no ``plugins`` key) gives ``(config["algo"], Plugins())``; a bad record is a ``ConfigError``.
    """
    record = config.get("plugins")
    if record is None:
        return config["algo"], Plugins()
    names = [entry.name for entry in fields(Plugins)]
    if not isinstance(record, dict) or not set(record) <= set(names):
        raise ConfigError(f"the run's plugins must be a mapping of {', '.join(names)}, got {record!r}")
    hparams = {key: record.get(key) for key in PLUGIN_KEYS if record.get(key) is not None}
    if record.get("reward_models"):
        hparams["reward_model"] = record["reward_models"]
    if config["algo"] not in ADVERSARIAL and not hparams.get("discriminator"):
        hparams.pop("discriminator", None)  # a plain run records an empty mapping
    agent_algo, plugins = split_plugins(config["algo"], hparams, record.get("demos"))
    for key in ("demos_path", "demos_digest"):
        value = record.get(key)
        if value is not None and not isinstance(value, str):
            raise ConfigError(f"the run's plugins.{key} must be a string, got {value!r}")
        setattr(plugins, key, value)
    digests = record.get("reward_digests")
    if digests is not None and (not isinstance(digests, list) or len(digests) != len(plugins.reward_models)):
        raise ConfigError(f"the run's plugins.reward_digests must list one digest per reward model, got {digests!r}")
    plugins.reward_digests = digests
    return agent_algo, plugins


def _discriminator_config(plugins: Plugins) -> Any:
    from rlcourse.supervised.imitation.gail import AIRLConfig, GAILConfig

    return make_config({"gail": GAILConfig, "airl": AIRLConfig}[plugins.method], plugins.discriminator)


def generator_preset(generator: str, env_id: str) -> dict[str, Any]:
    """The generator's own default preset for the env, its hyperparameters only (the method's preset sets the run
    and the env, normalisation included)."""
    return {key: value for key, value in load_preset(generator, env_id).items() if key not in (*RUN_KEYS, *ENV_KEYS)}


def build_env(
    plugins: Plugins,
    env_id: str,
    num_envs: int,
    device: Any,
    env_kwargs: dict[str, Any],
    seed: int,
    normalize: Any = None,
    gamma: float | None = None,
):
    """The env with the plug-ins' rewards on it, and the callbacks that train them, always in the same order.

    ``normalize`` (a :func:`~rlcourse.config.parse_normalize` setting; None: none) puts ``NormalizeObservation``
    between the env and the plug-ins and ``NormalizeReward`` (with ``gamma``, the agent's γ) outside them.
    The demonstrations come from ``plugins.demos_path`` when it is set (a resumed run), else from ``demos``; their
    folder and digest are set on ``plugins`` for the run's config, and a digest that differs from a recorded one
    is a :class:`BadInput` (the run would not continue the same way).
    """
    import rlcourse
    from rlcourse.wrappers import normalize_env

    setting = Normalization() if normalize is None else parse_normalize(normalize)
    if plugins.method is not None and setting.observation:
        raise ConfigError(
            f"{plugins.method} compares the agent's observations with the demonstrations' raw ones, so it cannot "
            "normalise observations; use normalize={observation: false, reward: true} or normalize=false"
        )
    env = rlcourse.make_vec(env_id, num_envs, device, **env_kwargs)
    env = normalize_env(env, Normalization(observation=setting.observation))
    callbacks: list[Any] = []
    if plugins.method is not None:
        from rlcourse.supervised.imitation.demos import load_demonstrations
        from rlcourse.supervised.imitation.gail import adversarial_imitation

        demos = load_demonstrations(plugins.demos_path or plugins.demos, device, env=env)
        digest = demonstrations_digest(demos)
        if plugins.demos_digest is not None and digest != plugins.demos_digest:
            raise BadInput(
                f"the demonstrations {plugins.demos!r} at {plugins.demos_path or plugins.demos} are not the ones this "
                f"run trained on (digest {digest}, the run recorded {plugins.demos_digest}); put the run's dataset back"
            )
        plugins.demos_path = plugins.demos_path or dataset_folder(plugins.demos)
        plugins.demos_digest = digest
        env, training = adversarial_imitation(env, demos, plugins.method, _discriminator_config(plugins), seed)
        callbacks.append(training)
    if plugins.curiosity is not None:
        from rlcourse.supervised.curiosity import add_curiosity

        env, training = add_curiosity(env, plugins.curiosity, seed)
        callbacks.append(training)
    env = _add_reward_models(env, plugins, device)
    return normalize_env(env, Normalization(reward=setting.reward), gamma=gamma), callbacks


def _add_reward_models(env: Any, plugins: Plugins, device: Any) -> Any:
    """``env`` with each frozen reward model's reward added (``ModelReward``), the files' digests checked or set."""
    from rlcourse.checkpoint import CheckpointError
    from rlcourse.supervised import ModelReward
    from rlcourse.supervised.storage import load_plugin

    digests = [file_digest(path) for path in plugins.reward_models]
    if plugins.reward_digests is not None:
        for path, digest, recorded in zip(plugins.reward_models, digests, plugins.reward_digests):
            if digest != recorded:
                raise BadInput(
                    f"the reward model {path} is not the file this run trained with (it changed); put it back"
                )
    plugins.reward_digests = digests
    for path in plugins.reward_models:
        try:
            model = load_plugin(path, device, env.single_observation_space, env.single_action_space)
            env = ModelReward(env, model.requires_grad_(False), mode="add")
        except (CheckpointError, ValueError, TypeError) as error:
            raise BadInput(f"reward_model {path}: {error}") from None
    return env


def file_digest(path: str | Path) -> str:
    """A short sha256 digest of a file's bytes."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def attach_generator(plugins: Plugins, agent: Any, callbacks: list[Any]) -> None:
    """AIRL's discriminator reads the generator's log π: give it the agent's policy network."""
    from rlcourse.supervised.training import DiscriminatorTraining

    if plugins.method == "airl":
        (training,) = [callback for callback in callbacks if isinstance(callback, DiscriminatorTraining)]
        training.model.attach(agent.policy)


def dataset_folder(demos: str) -> str:
    """The absolute folder of the dataset ``--demos`` names: the folder itself, or the id's under Minari's root."""
    path = Path(demos)
    if path.is_dir():
        return str(path.resolve())
    from minari.storage import get_dataset_path

    return str(Path(get_dataset_path(demos)).resolve())


def demonstrations_digest(demos: Any) -> str:
    """A short digest of every transition of ``demos`` (read from the device once, when the run is built)."""
    digest = hashlib.sha256()
    for name in ("obs", "actions", "next_obs", "rewards", "terminated", "truncated", "action_masks"):
        tensor = getattr(demos, name)
        if tensor is not None:
            digest.update(f"{name}{tuple(tensor.shape)}{tensor.dtype}".encode())
            digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


__all__ = [
    "ADVERSARIAL",
    "GENERATORS",
    "Plugins",
    "attach_generator",
    "build_env",
    "dataset_folder",
    "demonstrations_digest",
    "file_digest",
    "plugins_of",
    "split_plugins",
]
