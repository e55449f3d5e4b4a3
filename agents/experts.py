"""Who can play the expert for imitation: the env's rule expert, or a trained run.

``resolve_expert(name, env)`` turns the name a user types (``rlcourse collect POLICY``, ``rlcourse train dagger
--expert NAME``) into an :data:`rlcourse.policy.Expert`, a batched ``expert(obs, masks) -> env actions``:

* ``expert``: the env's hand-written rule expert (envs with ``has_rule_expert``, e.g. the dialogue);
* a run folder (its ``checkpoint.pt``) or a checkpoint file: that agent's deterministic policy (its greedy
  action), on the env's device. Its env's spaces must be ``env``'s.

Anything else is a ``ValueError`` that says what is accepted, with a did-you-mean.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from rlcourse.checkpoint import load_checkpoint
from rlcourse.config import did_you_mean
from rlcourse.policy import Expert
from rlcourse.run_dir import RunDir
from rlcourse.vec_env import TensorVecEnv

#: The name of the env's own rule expert.
RULE_EXPERT = "expert"


@dataclass
class ResolvedExpert:
    """An expert policy and what it is, for messages and dataset metadata."""

    policy: Expert
    kind: str  #: ``rule expert`` or the run's algorithm (``ppo``)
    description: str  #: one line naming it


def _checkpoint_of(path: Path) -> Path:
    return RunDir.open(path).checkpoint if path.is_dir() else path


def resolve_expert(name: str | Path, env: TensorVecEnv) -> ResolvedExpert:
    """The expert ``name`` stands for on ``env`` (see the module docstring); ``ValueError`` if there is none."""
    text = str(name)
    if text == RULE_EXPERT:
        if not env.has_rule_expert:
            raise ValueError(
                f"{env.env_id or type(env).__name__} has no rule expert; give a run folder or checkpoint of a "
                f"trained agent as the expert instead (e.g. from `rlcourse train ppo {env.env_id}`)"
            )
        rule = env.rule_expert()
        return ResolvedExpert(lambda obs, masks: rule(obs), "rule expert", "the rule expert")
    path = Path(text)
    if not path.exists():
        siblings = [p.name for p in path.parent.iterdir()] if path.parent.is_dir() else []
        hint = did_you_mean(path.name, [RULE_EXPERT, *siblings])
        raise ValueError(
            f"unknown expert {text!r}: give {RULE_EXPERT!r} (the env's rule expert), a run folder or a checkpoint "
            f"file{'; ' + hint if hint else ''}"
        )
    return _run_expert(_checkpoint_of(path), env, text)


def checkpoint_description(path: str | Path) -> tuple[str, dict[str, Any]]:
    """The env id and options a run folder's or checkpoint file's agent was trained on."""
    payload = load_checkpoint(_checkpoint_of(Path(path)))
    if payload.get("env_id") is None:
        raise ValueError(f"{str(path)!r} was trained on an unregistered env; it cannot be rebuilt by id")
    return str(payload["env_id"]), dict(payload.get("env_kwargs") or {})


def _run_expert(checkpoint: Path, env: TensorVecEnv, text: str) -> ResolvedExpert:
    from rlcourse.agents import ALGOS
    from rlcourse.agents.checkpointing import env_spaces, space_summary

    algo = load_checkpoint(checkpoint).get("algo")
    if algo not in ALGOS:
        raise ValueError(f"{str(checkpoint)!r} was written by {algo!r}, which is not an rlcourse algorithm")
    agent: Any = ALGOS[algo].load(checkpoint, device=env.device, threads=None)
    expected = {"observation": env.single_observation_space, "action": env.single_action_space}
    if env_spaces(agent) != {key: space_summary(space) for key, space in expected.items()}:
        raise ValueError(
            f"the expert {text!r} ({algo} on {agent.env_id}) acts on observations {agent.env.single_observation_space} "
            f"and actions {agent.env.single_action_space}, but {env.env_id or type(env).__name__} has "
            f"{env.single_observation_space} and {env.single_action_space}"
        )

    def policy(obs: torch.Tensor, masks: torch.Tensor | None) -> torch.Tensor:
        return agent.predict(obs, deterministic=True, action_masks=masks)

    return ResolvedExpert(policy, algo, f"{algo} run {text} ({agent.num_timesteps:,} steps on {agent.env_id})")


__all__ = ["RULE_EXPERT", "ResolvedExpert", "checkpoint_description", "resolve_expert"]
