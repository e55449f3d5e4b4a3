"""A run as the commands see it: the agent saved in a run folder, and its evaluation printed and logged.

The folder layout itself is :class:`rlcourse.run_dir.RunDir`'s; this module only adds what ``train``,
``eval`` and ``play`` share on top of it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rlcourse.app.inputs import device_of, run_dir_errors
from rlcourse.checkpoint import CheckpointError
from rlcourse.run_dir import RunDir

#: The suffix of every outcome rate in an evaluation result (``success_rate``, ``win_rate``, ...).
RATE_SUFFIX = "_rate"


def rates(result: dict[str, Any]) -> dict[str, float]:
    """The outcome rates of an evaluation result: whatever the env declares, not only ``success_rate``."""
    return {key: value for key, value in result.items() if key.endswith(RATE_SUFFIX)}


def describe_eval(result: dict[str, Any]) -> str:
    """One line of an evaluation: mean ± std return, episodes, mean length and every outcome rate."""
    text = (
        f"{result['mean_reward']:.2f} ± {result['std_reward']:.2f} over {result['n_episodes']} episodes "
        f"(deterministic; mean length {result['mean_length']:.1f}"
    )
    for key, value in rates(result).items():
        text += f"; {key.removesuffix(RATE_SUFFIX).replace('_', ' ')} rate {100 * value:.1f}%"
    return text + ")"


def log_eval(run_dir: RunDir, result: dict[str, Any], step: int) -> None:
    """The final evaluation as TensorBoard scalars: ``eval/mean_reward`` and ``eval/<key>_rate`` for every outcome."""
    from torch.utils.tensorboard import SummaryWriter

    with SummaryWriter(log_dir=str(run_dir.path)) as writer:
        writer.add_scalar("eval/mean_reward", result["mean_reward"], step)
        for key, value in rates(result).items():
            writer.add_scalar(f"eval/{key}", value, step)


def load_run_agent(path: Path, device: str) -> Any:
    """The agent saved in a run folder (its checkpoint.pt) or a checkpoint file, on ``--device``.

    Given a file, the folder it lies in is the run folder, so eval.json is written beside it.
    """
    from rlcourse.agents import ALGOS
    from rlcourse.agents.population import POPULATION_KEY, population_class
    from rlcourse.checkpoint import load_checkpoint

    if path.is_dir():
        with run_dir_errors():
            run = RunDir.open(path)
        checkpoint = run.checkpoint
    else:
        checkpoint, run = path, RunDir(path.parent)
    payload = load_checkpoint(checkpoint)
    algo = payload.get("algo")
    if algo not in ALGOS:
        raise CheckpointError(
            f"{str(checkpoint)!r} was written by algorithm {algo!r}, which this rlcourse does not have "
            f"(available: {', '.join(sorted(ALGOS))})"
        )
    agent_class = ALGOS[algo]
    if payload.get(POPULATION_KEY) is not None:  # a --seeds run: the batch of its seeds
        agent_class = population_class(algo)
    return agent_class.load(checkpoint, device=device_of(device, agent_class=agent_class), run_dir=run)
