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
    return evaluate_groups(env, policy, 1, seed, max_steps)[0]


@torch.no_grad()
def evaluate_groups(
    env: TensorVecEnv, policy: Policy, groups: int, seed: int | list[int] | None = None, max_steps: int = MAX_STEPS
) -> list[dict[str, float]]:
    """:func:`evaluate_policy`'s summary for each of ``groups`` groups of consecutive sub-envs (a population's
    members, each playing its own episodes); ``seed`` is what ``env.reset`` takes (one per group for split streams)."""
    n, device = env.num_envs, env.device
    if isinstance(groups, bool) or not isinstance(groups, int) or groups <= 0 or n % groups:
        raise ValueError(f"groups must be a positive divisor of the env's {n} sub-envs, got {groups!r}")
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
    returns, lengths = returns.view(groups, -1), lengths.view(groups, -1)
    columns = [returns.mean(-1), returns.std(-1, unbiased=False), lengths.mean(-1)]
    columns += [values.view(groups, -1).mean(-1) for values in outcomes.values()]
    results = []
    for values in torch.stack(columns, 1).tolist():  # one host read for every group
        result = {
            "mean_reward": values[0],
            "std_reward": values[1],
            "mean_length": values[2],
            "n_episodes": n // groups,
        }
        result.update({outcome_stat(key): value for key, value in zip(outcomes, values[3:])})
        results.append(result)
    return results
