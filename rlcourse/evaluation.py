"""Evaluating a policy, written once: ``Agent.evaluate``, callbacks, the bench and the CLI all use it.

:func:`evaluate_policy` plays exactly one episode in each sub-env of a fresh env, so ``n`` episodes
run side by side, and reads the episode statistics and declared outcomes (``env.outcome_keys``) of
the first episode each sub-env finishes. The loop checks for the end every few steps only, so it
syncs with the device rarely.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from rlcourse.vec_env import TensorVecEnv

#: ``policy(obs, action_masks) -> actions``: batched tensors in and out; masks are None for envs without them.
Policy = Callable[[torch.Tensor, "torch.Tensor | None"], torch.Tensor]
#: Steps between two checks of whether every sub-env has finished (each check is one host read).
CHECK_EVERY = 32
#: Steps after which an evaluation gives up: an episode that long never ends (a policy that stalls an env without
#: a time limit).
MAX_STEPS = 1_000_000


def outcome_stat(key: str) -> str:
    """The name of an outcome's rate: ``success`` -> ``success_rate``."""
    return f"{key}_rate"


@torch.no_grad()
def evaluate_policy(
    env: TensorVecEnv, policy: Policy, seed: int | None = None, max_steps: int = MAX_STEPS
) -> dict[str, float]:
    """One episode per sub-env of ``env`` played by ``policy``; their mean and std return, mean length, rates.

    Returns ``mean_reward``, ``std_reward``, ``mean_length``, ``n_episodes`` and ``<key>_rate`` for each
    of ``env.outcome_keys``. ``env`` is reset with ``seed`` first; it should be a fresh copy (``spawn``).
    """
    n, device = env.num_envs, env.device
    obs, _ = env.reset(seed=seed)
    returns = torch.zeros(n, device=device)
    lengths = torch.zeros(n, device=device)
    outcomes = {key: torch.zeros(n, device=device) for key in env.outcome_keys}
    finished = torch.zeros(n, dtype=torch.bool, device=device)
    step = 0
    while True:
        masks = env.action_masks() if env.has_action_masks else None
        obs, _, _, _, info = env.step(policy(obs, masks))
        first = info["_episode"] & ~finished
        returns = torch.where(first, info["episode"]["r"], returns)
        lengths = torch.where(first, info["episode"]["l"].float(), lengths)
        for key, values in outcomes.items():
            outcomes[key] = torch.where(first, info["final_info"][key].float(), values)
        finished |= first
        step += 1
        if step % CHECK_EVERY == 0 and bool(finished.all()):
            break
        if step >= max_steps:
            raise ValueError(
                f"{env!r}: {int((~finished).sum())} of {n} episodes had not ended after {max_steps:,} steps; "
                "give the env a time limit (truncation) or evaluate with a larger max_steps"
            )
    summary = torch.stack(
        [returns.mean(), returns.std(unbiased=False), lengths.mean(), *[v.mean() for v in outcomes.values()]]
    )
    values = summary.tolist()
    result = {"mean_reward": values[0], "std_reward": values[1], "mean_length": values[2], "n_episodes": int(n)}
    result.update({outcome_stat(key): value for key, value in zip(outcomes, values[3:])})
    return result
