"""``rlcourse collect POLICY [ENV]``: record demonstrations of an expert as a Minari dataset.

POLICY is who plays (:func:`rlcourse.agents.experts.resolve_expert`):

* ``expert``: the env's rule expert (rlcourse/SlotFilling-v0); ENV is required;
* a run folder or a checkpoint file: that agent's deterministic policy, on the env it was trained on
  (ENV may be left out; given, it must be the run's env).

The episodes are played on the batched env (``--num-envs`` copies at once) and written with Minari's own
``create_dataset_from_buffers`` (:mod:`rlcourse.supervised.imitation.demos`), so ``minari.load_dataset`` and
every imitation algorithm (``rlcourse train bc ENV --demos ID``) read them. The dataset goes under Minari's
root (``MINARI_DATASETS_PATH``, default ``~/.minari/datasets``) or ``--root DIR``, as ``--dataset-id`` or, by
default, ``rlcourse/<Env>/<policy>-v<k>`` with the first version that is free.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import click

from rlcourse.app.inputs import CONTEXT, BadInput, device_of
from rlcourse.config import did_you_mean, parse_hp


def default_dataset_id(env_id: str, policy_kind: str, root: Path | None) -> str:
    """``rlcourse/SlotFilling/expert-v0`` (the next free version), from the env id and who played."""
    from minari.storage import get_dataset_path

    from rlcourse.supervised.imitation.demos import minari_root

    env_name = re.sub(r"-v\d+$", "", env_id)
    if "/" not in env_name:
        env_name = f"gymnasium/{env_name}"
    name = re.sub(r"[^-_\w]", "_", policy_kind.replace(" ", "_").replace("rule_expert", "expert"))
    with minari_root(root):
        for version in range(1000):
            dataset_id = f"{env_name}/{name}-v{version}"
            if not Path(get_dataset_path(dataset_id)).exists():
                return dataset_id
    raise BadInput(f"every version of {env_name}/{name} up to v999 exists; give --dataset-id")


def _check_dataset_id(dataset_id: str, root: Path | None) -> None:
    from minari.dataset.minari_dataset import parse_dataset_id
    from minari.storage import get_dataset_path

    from rlcourse.supervised.imitation.demos import minari_root

    try:
        parse_dataset_id(dataset_id)
    except ValueError:
        raise BadInput(
            f"--dataset-id {dataset_id!r} is not a Minari id: use (namespace/)name-v<version>, "
            "e.g. rlcourse/SlotFilling/expert-v0"
        ) from None
    with minari_root(root):
        if Path(get_dataset_path(dataset_id)).exists():
            raise BadInput(f"--dataset-id: a dataset {dataset_id!r} exists already at {get_dataset_path(dataset_id)}")


def _policy_env(policy: str, env_id: str | None, env_opts: tuple[str, ...], num_envs: int, device: Any) -> Any:
    """The batched env to record on: ENV with --env-opt for the rule expert, the run's own env for a run."""
    from rlcourse.agents.experts import RULE_EXPERT
    from rlcourse.registry import list_envs, make_vec

    options = parse_hp(env_opts, flag="--env-opt")
    if policy == RULE_EXPERT:
        if env_id is None:
            raise BadInput(
                f"POLICY {RULE_EXPERT!r} needs ENV: the env whose rule expert plays (e.g. rlcourse/SlotFilling-v0)"
            )
        return make_vec(env_id, num_envs, device, **options)
    path = Path(policy)
    if not path.exists():
        hint = did_you_mean(policy, [RULE_EXPERT, *list_envs()])
        raise BadInput(
            f"unknown POLICY {policy!r}: give {RULE_EXPERT!r} (the env's rule expert), a run folder or a checkpoint "
            f"file{'; ' + hint if hint else ''}"
        )
    from rlcourse.agents.experts import checkpoint_description

    run_env_id, run_options = checkpoint_description(path)
    if env_id is not None and env_id != run_env_id:
        raise BadInput(f"POLICY {policy!r} was trained on {run_env_id}, not {env_id}; leave ENV out or make them agree")
    return make_vec(run_env_id, num_envs, device, **{**run_options, **options})


@click.command("collect", context_settings=CONTEXT)
@click.argument("policy")
@click.argument("env", required=False)
@click.option("--episodes", type=click.IntRange(min=1), default=1000, show_default=True, help="Episodes to record.")
@click.option(
    "--env-opt", "env_opts", multiple=True, metavar="KEY=VALUE", help="An env option (nlu=tcbot); repeatable."
)
@click.option(
    "--num-envs",
    type=click.IntRange(min=1),
    default=256,
    show_default=True,
    help="Envs played at once (each plays its share of the episodes in turn).",
)
@click.option("--dataset-id", metavar="ID", help="Minari id (default: rlcourse/<Env>/<policy>-v<next free>).")
@click.option(
    "--root",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Write under this folder instead of Minari's root (MINARI_DATASETS_PATH or ~/.minari/datasets).",
)
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, help="Seed of the episodes.")
@click.option(
    "--device", default="auto", show_default=True, help="auto (CUDA when present, else CPU), cpu, cuda or cuda:N."
)
def collect_command(
    policy: str,
    env: str | None,
    episodes: int,
    env_opts: tuple[str, ...],
    num_envs: int,
    dataset_id: str | None,
    root: Path | None,
    seed: int,
    device: str,
) -> None:
    """Record an expert's or a run's episodes as a Minari dataset of demonstrations.

    POLICY is 'expert' (ENV's rule expert) or a run folder or checkpoint (then ENV defaults to the run's env).
    Train on the result with `rlcourse train bc ENV --demos DATASET_ID`.
    """
    import torch

    from rlcourse.agents.experts import resolve_expert
    from rlcourse.supervised.imitation.demos import record_episodes, save_demonstrations

    resolved_device = device_of(device)
    if dataset_id is not None:
        _check_dataset_id(dataset_id, root)
    vec_env = _policy_env(policy, env, env_opts, min(num_envs, episodes), resolved_device)
    expert = resolve_expert(policy, vec_env)
    dataset_id = dataset_id or default_dataset_id(vec_env.env_id, expert.kind, root)
    with torch.no_grad():
        recorded = record_episodes(vec_env, expert.policy, episodes, seed=seed)
    description = f"{episodes} episodes of {expert.description} on {vec_env.env_id} {vec_env.options()}, seed {seed}"
    path = save_demonstrations(recorded, dataset_id, vec_env, expert.kind, description, root=root)
    returns = recorded.returns
    rates = "".join(f", {key} rate {100 * values.mean():.1f}%" for key, values in recorded.outcomes.items())
    click.echo(
        f"Recorded {len(recorded.episodes):,} episodes ({recorded.num_steps:,} steps) of {expert.description} "
        f"on {vec_env.env_id} {vec_env.options()}: mean return {returns.mean():.2f} ± {returns.std():.2f}{rates}"
    )
    click.echo(f"  dataset {dataset_id}: {path}")
    demos_arg = dataset_id if root is None else str(path)
    click.echo(f"  imitate it: rlcourse train bc {vec_env.env_id} --demos {demos_arg}")


__all__ = ["collect_command"]
