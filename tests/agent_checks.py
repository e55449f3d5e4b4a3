"""Helpers shared by the agent tests: exact comparison of checkpoint states, TensorBoard tags read back, CLI runs."""

from __future__ import annotations

import torch


def assert_equal_tree(x, y, path: str = "") -> None:
    """Assert two nested dicts/lists of tensors and plain values are identical: same keys, dtypes and bits."""
    if isinstance(x, torch.Tensor):
        assert isinstance(y, torch.Tensor) and x.dtype == y.dtype and torch.equal(x, y), path
    elif isinstance(x, dict):
        assert isinstance(y, dict) and x.keys() == y.keys(), path
        for key in x:
            assert_equal_tree(x[key], y[key], f"{path}/{key}")
    elif isinstance(x, (list, tuple)):
        assert isinstance(y, (list, tuple)) and len(x) == len(y), path
        for i, (u, v) in enumerate(zip(x, y)):
            assert_equal_tree(u, v, f"{path}[{i}]")
    else:
        assert x == y, (path, x, y)


def log_without_time(agent) -> dict[str, float]:
    """An agent's last logged statistics without the wall-clock ones (which differ between identical runs)."""
    return {k: v for k, v in agent.last_log.items() if k != "time/fps"}


def assert_resume_matches_an_uninterrupted_run(
    make, tmp_path, total: int, half: int, straight_callbacks=(), after_load=None, **load_kwargs
):
    """Train ``make()`` for ``total`` env steps straight; train ``make(run_dir=...)`` again but stop it at ``half``,
    load its checkpoint (``load_kwargs`` go to ``load``; ``after_load(agent)`` may inspect it) and finish. Both must
    end identical: every checkpointed tensor (networks, optimizer, replay, RNGs, env, counters) bit for bit, and the
    last log. Returns both agents."""
    straight = make()
    straight.learn(total, callbacks=list(straight_callbacks))
    first = make(run_dir=tmp_path / "run")
    first.learn(total, callbacks=[lambda a: a.num_timesteps < half])
    assert first.num_timesteps == half and first.interrupted_by is None
    resumed = type(first).load(
        tmp_path / "run" / "checkpoint.pt", device="cpu", run_dir=tmp_path / "run", **load_kwargs
    )
    assert resumed.num_timesteps == half
    if after_load is not None:
        after_load(resumed)
    resumed.learn(total - half, reset_num_timesteps=False)
    assert resumed.num_timesteps == straight.num_timesteps == total
    assert_equal_tree(straight.checkpoint_state(), resumed.checkpoint_state())
    assert log_without_time(straight) == log_without_time(resumed)
    return straight, resumed


def learning_curves(agents, steps: int, **learn_kwargs) -> list[list[dict[str, float]]]:
    """Train each agent for ``steps`` env steps; returns each one's logs (without wall-clock entries), one per log."""
    curves = []
    for agent in agents:
        curve: list[dict[str, float]] = []
        agent.learn(steps, callbacks=[lambda a, curve=curve: curve.append(log_without_time(a))], **learn_kwargs)
        curves.append(curve)
    return curves


def scalar_tags(run_dir) -> set[str]:
    """The scalar tags in a run folder's TensorBoard event files (read back with tensorboard's EventAccumulator)."""
    from pathlib import Path

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tags: set[str] = set()
    files = sorted(Path(run_dir).glob("**/events.out.tfevents.*"))
    assert files, f"no TensorBoard event file in {run_dir}"
    for path in files:
        accumulator = EventAccumulator(str(path), size_guidance={"scalars": 0})
        accumulator.Reload()
        tags.update(accumulator.Tags()["scalars"])
    return tags


def train_with_the_cli(*args: str) -> str:
    """``rlcourse train ...`` in-process; returns its output, failing the test with it on a non-zero exit."""
    from click.testing import CliRunner

    from rlcourse.app.cli import cli

    result = CliRunner().invoke(cli, ["train", *map(str, args)])
    assert result.exit_code == 0, (result.output, result.exception)
    return result.output
