"""Helpers shared by the agent tests: exact comparison of checkpoint states, TensorBoard tags read back, CLI runs
(and the CLI's one-line errors), the masked identity env's checks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from identity_envs import N_CLASSES, MaskedIdentityEnv, mean_step_reward


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


def tags_of_a_cli_run(runs_root, algo: str, env_id: str, *flags, name: str = "cli") -> set[str]:
    """``rlcourse train ALGO ENV_ID FLAGS --eval-episodes 2 --no-progress --device cpu --runs-root RUNS_ROOT --name
    NAME`` in-process; checks that its run folder, ``RUNS_ROOT/<ENV_ID with / as _>/ALGO/NAME``, holds the checkpoint
    and the evaluation, and returns the scalar tags its TensorBoard files logged."""
    train_with_the_cli(
        algo,
        env_id,
        *flags,
        "--eval-episodes",
        "2",
        "--no-progress",
        "--device",
        "cpu",
        "--runs-root",
        runs_root,
        "--name",
        name,
    )
    run_dir = Path(runs_root) / env_id.replace("/", "_") / algo / name
    assert (run_dir / "checkpoint.pt").is_file() and (run_dir / "eval.json").is_file()
    return scalar_tags(run_dir)


def one_error_line(args: list, capsys) -> str:
    """Run the CLI in-process on bad input; return its one stderr line after checking exit code 2, that the line is
    ``rlcourse: error: ...`` and that no traceback was printed."""
    from rlcourse.app.cli import main

    code = main([str(arg) for arg in args])
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert code == 2, f"exit code {code}; stderr: {err}"
    assert len(lines) == 1 and lines[0].startswith("rlcourse: error: "), err
    assert "Traceback" not in out + err
    return lines[0]


def _taken_actions_were_valid(agent) -> bool:
    buffer = agent.buffer
    return bool(buffer.action_masks.gather(-1, buffer.actions[..., None]).all())


def assert_masked_identity_is_learned_without_a_masked_action(make, steps: int, rollout_steps: int):
    """``make(env)`` (an on-policy agent on ``env = MaskedIdentityEnv(8)``) trains for ``steps`` env steps. After
    each of its ``steps // rollout_steps`` rollouts every stored action is valid under the stored masks; the env
    counted no invalid action; the last rollout's masks really excluded actions; and the agent then earns at least
    0.9 a step on a fresh ``MaskedIdentityEnv(32)``. Returns the agent."""
    env = MaskedIdentityEnv(8)
    agent = make(env)
    assert agent.has_action_masks and agent.buffer.action_masks is not None
    checks: list[bool] = []
    agent.learn(steps, callbacks=[lambda a: checks.append(_taken_actions_were_valid(a))])
    assert len(checks) == steps // rollout_steps and all(checks)
    assert env.invalid_taken.item() == 0
    assert not agent.buffer.action_masks.all()  # the masks really excluded actions
    assert mean_step_reward(agent, MaskedIdentityEnv(32)) >= 0.9
    return agent


def assert_an_agent_ignoring_masks_takes_invalid_actions(make, steps: int) -> None:
    """The control that shows a masked-env test can fail: ``make(env)`` on ``env = MaskedIdentityEnv(8)`` with its
    masks switched off (``has_action_masks = False``) takes invalid actions within ``steps`` env steps."""
    env = MaskedIdentityEnv(8)
    agent = make(env)
    agent.has_action_masks = False
    agent.learn(steps)
    assert env.invalid_taken.item() > 0


def assert_predict_respects_masks(agent, batch: int = 64) -> None:
    """``agent`` has learned the masked identity env: unmasked, greedy ``predict`` returns each one-hot observation's
    target; with a mask that leaves one action valid (the target's or any other) the greedy action and each of
    ``batch`` sampled ones (``deterministic=False``) are that action."""
    eye = np.eye(N_CLASSES, dtype=np.float32)
    for target in range(N_CLASSES):
        assert agent.predict(eye[target]) == target
        for valid in range(N_CLASSES):
            mask = eye[valid].astype(bool)
            assert agent.predict(eye[target], action_masks=mask) == valid
            sampled = agent.predict(
                np.repeat(eye[target][None], batch, 0),
                deterministic=False,
                action_masks=np.repeat(mask[None], batch, 0),
            )
            assert (sampled == valid).all()
