"""Plug-ins in ``rlcourse train``: adversarial imitation (``train gail|airl ENV --demos D``) and ``--hp curiosity=...``.

The app is the layer that composes: the env is built here, wrapped by the plug-in's reward
(:class:`~rlcourse.supervised.reward.ModelReward`), handed to the agent as an instance, and the callback
that trains the plug-in joins the run's callbacks. Nothing in the agents changes.

* ``gail`` / ``airl``: the generator is an on-policy agent (``generator`` in ``rlcourse/presets/<method>.yml``,
  PPO by default) with its own preset for the env; ``discriminator`` holds the discriminator's settings
  (:class:`~rlcourse.supervised.imitation.gail.GAILConfig` / ``AIRLConfig``); the env's reward is replaced.
* ``curiosity``: ``true`` (the ICM's published defaults) or a mapping of
  :class:`~rlcourse.supervised.curiosity.CuriosityConfig` settings, for any agent; its reward is added.

The run's checkpoint is the generator's (``rlcourse eval`` and ``play`` read it as such, on the plain env);
the plug-in's weights and optimizer are the callback's state inside it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rlcourse.app.inputs import BadInput
from rlcourse.config import ENV_KWARGS_KEY, RUN_KEYS, ConfigError, load_preset, make_config

#: Adversarial imitation methods (the ALGO of ``rlcourse train``), which train a generator agent.
ADVERSARIAL = ("gail", "airl")
#: Agents that can be the generator: on-policy ones, whose rollouts the discriminator reads.
GENERATORS = ("ppo", "a2c", "reinforce")
PLUGIN_KEYS = ("generator", "discriminator", "curiosity")
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

    @property
    def active(self) -> bool:
        return self.method is not None or self.curiosity is not None

    def record(self) -> dict[str, Any]:
        """The plug-in keys of the run's config.yaml."""
        return {
            "plugins": {
                "method": self.method,
                "generator": self.generator,
                "discriminator": self.discriminator,
                "curiosity": self.curiosity,
                "demos": self.demos,
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


def _discriminator_config(plugins: Plugins) -> Any:
    from rlcourse.supervised.imitation.gail import AIRLConfig, GAILConfig

    return make_config({"gail": GAILConfig, "airl": AIRLConfig}[plugins.method], plugins.discriminator)


def generator_preset(generator: str, env_id: str) -> dict[str, Any]:
    """The generator's own default preset for the env, its hyperparameters only (the method's preset sets the run)."""
    return {
        key: value for key, value in load_preset(generator, env_id).items() if key not in (*RUN_KEYS, ENV_KWARGS_KEY)
    }


def build_env(plugins: Plugins, env_id: str, num_envs: int, device: Any, env_kwargs: dict[str, Any], seed: int):
    """The env with the plug-ins' rewards on it, and the callbacks that train them."""
    import rlcourse

    env = rlcourse.make_vec(env_id, num_envs, device, **env_kwargs)
    callbacks: list[Any] = []
    if plugins.method is not None:
        from rlcourse.supervised.imitation.demos import load_demonstrations
        from rlcourse.supervised.imitation.gail import adversarial_imitation

        demos = load_demonstrations(plugins.demos, device, env=env)
        env, training = adversarial_imitation(env, demos, plugins.method, _discriminator_config(plugins), seed)
        callbacks.append(training)
    if plugins.curiosity is not None:
        from rlcourse.supervised.curiosity import add_curiosity

        env, training = add_curiosity(env, plugins.curiosity, seed)
        callbacks.append(training)
    return env, callbacks


def attach_generator(plugins: Plugins, agent: Any, callbacks: list[Any]) -> None:
    """AIRL's discriminator reads the generator's log π: give it the agent's policy network."""
    from rlcourse.supervised.training import DiscriminatorTraining

    if plugins.method == "airl":
        (training,) = [callback for callback in callbacks if isinstance(callback, DiscriminatorTraining)]
        training.model.attach(agent.policy)


def refuse_resume(config: dict[str, Any]) -> None:
    """Runs with plug-ins are not resumable yet: say so instead of resuming without them."""
    if config.get("plugins") and (config["plugins"].get("method") or config["plugins"].get("curiosity") is not None):
        raise BadInput(
            "this run trained with plug-ins (adversarial imitation or curiosity), which --resume cannot rebuild yet; "
            "start a new run, or --init-from this one"
        )


__all__ = ["ADVERSARIAL", "GENERATORS", "Plugins", "attach_generator", "build_env", "refuse_resume", "split_plugins"]
