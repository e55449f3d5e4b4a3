"""Plug-in files under the checkpoint rules: plain tensors and data, written atomically, read with ``weights_only=True``.

A file holds the plug-in's registered name (:data:`PLUGINS`), its settings, the spaces it was built
for, its ``state_dict`` and, when it has one, its optimizer's. :func:`load_plugin` rebuilds the class
the name stands for and loads the weights, so a discriminator or curiosity model trained in one run
plugs into another; a file of another kind, or a plug-in built for other spaces, gets a clear error.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import numpy as np
import torch
from gymnasium import spaces

from rlcourse.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from rlcourse.config import config_to_dict, did_you_mean

#: Plug-in name -> its class as "module:Class" (imported when a file of that kind is loaded).
PLUGINS = {
    "gail": "rlcourse.supervised.imitation.gail:GAILDiscriminator",
    "airl": "rlcourse.supervised.imitation.gail:AIRLDiscriminator",
    "icm": "rlcourse.supervised.curiosity:ICM",
    "chat_lm": "rlcourse.supervised.chat.language_model:ChatLanguageModel",
    "preference": "rlcourse.supervised.chat.preference:PreferenceRewardModel",
    "seqgan": "rlcourse.supervised.chat.discriminator:SeqGANDiscriminator",
}
KIND = "rlcourse-plugin"


def plugin_class(name: str) -> type:
    """The plug-in class registered as ``name``; an unknown name is a ``ValueError`` that lists the known ones."""
    if name not in PLUGINS:
        hint = did_you_mean(name, PLUGINS)
        raise ValueError(f"unknown plug-in {name!r}; {hint + ' ' if hint else ''}known: {', '.join(PLUGINS)}")
    module, _, attribute = PLUGINS[name].partition(":")
    return getattr(importlib.import_module(module), attribute)


def plugin_name(plugin: Any) -> str:
    """The registered name of ``plugin``'s class."""
    reference = f"{type(plugin).__module__}:{type(plugin).__name__}"
    for name, registered in PLUGINS.items():
        if registered == reference:
            return name
    raise ValueError(f"{type(plugin).__name__} is not a registered plug-in (rlcourse.supervised.storage.PLUGINS)")


def space_spec(space: spaces.Space) -> dict[str, Any]:
    """A Box or Discrete space as plain data that :func:`space_from_spec` turns back into the space."""
    if isinstance(space, spaces.Discrete):
        return {"type": "Discrete", "n": int(space.n), "start": int(space.start)}
    if isinstance(space, spaces.Box):
        return {
            "type": "Box",
            "shape": list(space.shape),
            "dtype": str(space.dtype),
            "low": space.low.flatten().tolist(),
            "high": space.high.flatten().tolist(),
        }
    raise ValueError(f"plug-ins support Box and Discrete spaces, got {space}")


def space_from_spec(spec: dict[str, Any]) -> spaces.Space:
    if spec["type"] == "Discrete":
        return spaces.Discrete(spec["n"], start=spec["start"])
    shape, dtype = tuple(spec["shape"]), np.dtype(spec["dtype"])
    low = np.array(spec["low"], dtype=dtype).reshape(shape)
    return spaces.Box(low=low, high=np.array(spec["high"], dtype=dtype).reshape(shape), dtype=dtype)


def save_plugin(plugin: Any, path: str | Path) -> Path:
    """Write ``plugin`` (a registered :class:`~rlcourse.supervised.protocol.RewardModel`) to ``path`` atomically."""
    optimizer = getattr(plugin, "optimizer", None)
    return save_checkpoint(
        {
            "kind": KIND,
            "plugin": plugin_name(plugin),
            "config": config_to_dict(plugin.config),
            "observation_space": space_spec(plugin.observation_space),
            "action_space": space_spec(plugin.action_space),
            "state": {key: value.detach().cpu() for key, value in plugin.state_dict().items()},
            "optimizer": None if optimizer is None else optimizer.state_dict(),
        },
        path,
    )


def load_plugin(
    path: str | Path,
    device: str | torch.device = "cpu",
    observation_space: spaces.Space | None = None,
    action_space: spaces.Space | None = None,
) -> Any:
    """The plug-in saved at ``path``, on ``device``; given spaces must equal the ones it was built for."""
    payload = load_checkpoint(path)
    if payload.get("kind") != KIND:
        raise CheckpointError(f"{str(path)!r} is an rlcourse checkpoint but not a plug-in (an agent's, perhaps)")
    built_for = {"observation": payload["observation_space"], "action": payload["action_space"]}
    for which, space in (("observation", observation_space), ("action", action_space)):
        if space is not None and space_spec(space) != built_for[which]:
            raise ValueError(
                f"the plug-in at {str(path)!r} was built for the {which} space "
                f"{space_from_spec(built_for[which])}, not {space}"
            )
    cls = plugin_class(payload["plugin"])
    plugin = cls(
        space_from_spec(built_for["observation"]), space_from_spec(built_for["action"]), dict(payload["config"])
    )
    plugin.load_state_dict(payload["state"])
    plugin.to(device)
    if payload["optimizer"] is not None and getattr(plugin, "optimizer", None) is not None:
        plugin.optimizer.load_state_dict(payload["optimizer"])
    return plugin
