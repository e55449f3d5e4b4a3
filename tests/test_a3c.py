"""A3C with 2 worker processes: learning, shared parameters and optimizer state updated by the workers, clean
stops (end of budget, SIGINT, SIGTERM, a failing worker), save/load/resume, and bad inputs."""

from __future__ import annotations

import multiprocessing
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from agent_checks import scalar_tags
from identity_envs import IdentityEnv, mean_step_reward

from rlcourse.agents import A3C
from rlcourse.config import ConfigError, load_preset

HPARAMS = {"num_workers": 2, "n_steps": 8, "gamma": 0.5, "learning_rate": 3e-3}
BUDGET = 4096


class FailingEnv(IdentityEnv):
    """An identity env that breaks after a few steps (in a worker process)."""

    def _transition(self, actions):
        if int(self.elapsed.max()) >= 2:
            raise RuntimeError("the env broke on purpose")
        return super()._transition(actions)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One A3C run on the identity env (2 workers, 4 envs each), shared by the tests below."""
    agent = A3C(IdentityEnv(4), seed=0, run_dir=tmp_path_factory.mktemp("a3c"), **HPARAMS)
    before = [p.detach().clone() for p in agent.policy.parameters()]
    accuracy_before = mean_step_reward(agent, IdentityEnv(32))
    seen_children = []
    agent.learn(BUDGET, callbacks=[lambda a: seen_children.append(len(multiprocessing.active_children()))])
    return agent, before, accuracy_before, seen_children


def test_two_workers_learn_the_identity_env(trained):
    agent, _, accuracy_before, _ = trained
    assert accuracy_before < 0.6
    assert mean_step_reward(agent, IdentityEnv(32)) >= 0.9
    assert agent.last_log["rollout/ep_len_mean"] == 4.0


def test_the_workers_updated_the_shared_parameters_and_optimizer_state(trained):
    agent, before, _, seen_children = trained
    assert max(seen_children) == 2  # two worker processes did the work
    assert all(p.is_shared() for p in agent.policy.parameters())
    assert any(not torch.equal(b, p) for b, p in zip(before, agent.policy.parameters()))
    # The main process never stepped the optimizer: the statistics in its state came from the workers.
    states = [agent.optimizer.state[p] for p in agent.policy.parameters()]
    assert all(s["square_avg"].is_shared() and s["step"].is_shared() for s in states)
    assert all(s["square_avg"].abs().sum() > 0 for s in states)
    steps = states[0]["step"].item()
    # one optimizer step per worker rollout; lock-free increments from two processes may occasionally collide
    assert 0.9 * agent.iteration <= steps <= agent.iteration


def test_the_budget_is_split_among_workers_and_they_stop(trained):
    agent, *_ = trained
    assert agent.num_timesteps == BUDGET
    assert agent.iteration == BUDGET // (HPARAMS["n_steps"] * 4)
    assert multiprocessing.active_children() == []  # joined, none left running
    for tag in ("rollout/ep_rew_mean", "train/policy_loss", "train/value_loss", "train/entropy_loss", "time/fps"):
        assert tag in agent.last_log, tag
    assert {
        "rollout/ep_rew_mean",
        "train/policy_loss",
        "train/value_loss",
        "train/explained_variance",
        "time/fps",
    } <= scalar_tags(agent.run_dir)


def test_save_and_load_give_identical_predictions_and_shared_state(trained, tmp_path):
    agent, *_ = trained
    path = agent.save(tmp_path / "a3c.pt")
    loaded = A3C.load(path, env=IdentityEnv(4))
    obs = torch.eye(4)
    assert torch.equal(agent.predict(obs), loaded.predict(obs))
    assert loaded.num_timesteps == BUDGET and loaded.config == agent.config
    states = [loaded.optimizer.state[p] for p in loaded.policy.parameters()]
    assert all(v.is_shared() for s in states for v in s.values())  # loaded state is shared again for the workers
    assert all(p.is_shared() for p in loaded.policy.parameters())
    for saved, live in zip(agent.optimizer.state.values(), states):
        assert all(torch.equal(saved[k], live[k]) for k in saved)


def test_a_failing_worker_stops_the_run_with_its_traceback():
    agent = A3C(FailingEnv(2), seed=0, **HPARAMS)
    with pytest.raises(RuntimeError, match=r"A3C worker \d failed(.|\n)*the env broke on purpose"):
        agent.learn(10_000)
    assert multiprocessing.active_children() == []


def test_ctrl_c_on_the_cli_stops_the_workers_and_writes_a_checkpoint(tmp_path):
    command = [
        sys.executable,
        "-m",
        "rlcourse",
        "train",
        "a3c",
        "rlcourse/CartPole-v1",
        "--hp",
        "num_workers=2",
        "--num-envs",
        "2",
        "--total-steps",
        "100000000",
        "--no-progress",
        "--device",
        "cpu",
        "--runs-root",
        str(tmp_path),
        "--name",
        "cut",
    ]
    # A new session, so that SIGINT can go to the whole group (workers included) as a terminal's Ctrl-C does.
    proc = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    try:
        worker_pids = []
        deadline = time.monotonic() + 60
        while len(worker_pids) < 2 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
            worker_pids = _spawned_children(proc.pid)
        assert len(worker_pids) == 2, proc.communicate(timeout=5) if proc.poll() is not None else "no workers"
        time.sleep(1.0)  # a Ctrl-C at any moment must work; mostly this lands while the workers start up
        os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 128 + signal.SIGINT, (out, err)
    match = re.search(r"stopped by SIGINT at step ([\d,]+) of", err)
    assert match, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err  # the workers ignored the Ctrl-C themselves
    run_dir = tmp_path / "rlcourse_CartPole-v1" / "a3c" / "cut"
    assert A3C.load(run_dir / "checkpoint.pt").num_timesteps == int(match.group(1).replace(",", ""))
    _assert_gone(worker_pids)


def _spawned_children(pid: int) -> list[int]:
    """Pids of the multiprocessing workers started by ``pid`` (not its resource tracker)."""
    children = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid and b"spawn_main" in cmdline:
            children.append(int(entry))
    return children


def test_sigterm_to_the_main_process_stops_the_workers_and_the_run_resumes(tmp_path):
    agent = A3C(IdentityEnv(2), seed=1, run_dir=tmp_path, **HPARAMS)
    worker_pids = []

    def terminate_once(a):
        if not worker_pids and a.iteration >= 5:
            worker_pids.extend(p.pid for p in multiprocessing.active_children())
            signal.raise_signal(signal.SIGTERM)  # runs the agent's handler now, as a `kill` would

    agent.learn(10_000_000, callbacks=[terminate_once])
    assert agent.interrupted_by == signal.SIGTERM
    assert len(worker_pids) == 2 and multiprocessing.active_children() == []
    assert agent.num_timesteps < 10_000_000
    _assert_gone(worker_pids)
    resumed = A3C.load(tmp_path / "checkpoint.pt", env=IdentityEnv(2), run_dir=tmp_path)
    assert resumed.num_timesteps == agent.num_timesteps
    step_before = resumed.optimizer.state[next(resumed.policy.parameters())]["step"].item()
    params_before = [p.detach().clone() for p in resumed.policy.parameters()]
    resumed.learn(1024, reset_num_timesteps=False)
    assert resumed.num_timesteps == agent.num_timesteps + 1024 and resumed.interrupted_by is None
    assert resumed.optimizer.state[next(resumed.policy.parameters())]["step"].item() > step_before
    assert any(not torch.equal(b, p) for b, p in zip(params_before, resumed.policy.parameters()))
    assert multiprocessing.active_children() == []


def _assert_gone(pids: list[int]) -> None:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(_alive(pid) for pid in pids):
        time.sleep(0.05)
    assert not any(_alive(pid) for pid in pids)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_the_preset_runs_the_lectures_8_workers():
    preset = load_preset("a3c", "rlcourse/CartPole-v1")
    assert preset["num_workers"] == 8 and preset["total_timesteps"] == 500_000  # notes:13770; RL Zoo's A2C budget
    assert load_preset("a3c", "CartPole-v1") == preset


# ============================================================================= bad inputs
@pytest.mark.parametrize("device", ["cuda", "cuda:0", torch.device("cuda")])
def test_cuda_is_refused_with_the_reason(device):
    with pytest.raises(ValueError, match="A3C runs its workers as CPU processes.*A2C"):
        A3C("rlcourse/CartPole-v1", device=device, num_workers=2)


def test_cuda_graphs_are_refused():
    with pytest.raises(ValueError, match="CUDA graphs"):
        A3C("rlcourse/CartPole-v1", num_workers=2, cuda_graphs=True)


def test_auto_device_means_cpu_and_a_bad_name_gets_the_usual_error():
    assert A3C("rlcourse/CartPole-v1", device="auto", num_workers=2).device.type == "cpu"
    with pytest.raises(ValueError, match="device"):
        A3C("rlcourse/CartPole-v1", device="tpu", num_workers=2)


@pytest.mark.parametrize(
    "overrides, key",
    [
        ({"num_workers": 0}, "num_workers"),
        ({"worker_threads": 0}, "worker_threads"),
        ({"optimizer": "sgd"}, "optimizer"),
        ({"gae_lambda": 2.0}, "gae_lambda"),
    ],
)
def test_bad_hyperparameters_name_the_key(overrides, key):
    with pytest.raises(ConfigError, match=key):
        A3C("rlcourse/CartPole-v1", **overrides)


def test_the_clis_device_auto_means_the_cpu_for_a3c_when_cuda_is_there(monkeypatch):
    """``--device auto`` (the CLI default) resolves to the CPU for A3C (train, resume, eval and play all resolve
    through ``device_of`` with the agent's class), even on a machine with a GPU."""
    from rlcourse.app.inputs import device_of as _resolve_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert A3C.cpu_only
    assert _resolve_device("auto", agent_class=A3C) == torch.device("cpu")
    assert _resolve_device("cpu", agent_class=A3C) == torch.device("cpu")


def test_a_registered_env_run_loads_without_env_and_refuses_normalize(tmp_path):
    """A checkpoint records the env's normalisation (none here): A3C.load must read it back, not refuse it."""
    agent = A3C("rlcourse/CartPole-v1", num_envs=2, seed=0, preset=None, n_steps=4, num_workers=1)
    loaded = A3C.load(agent.save(tmp_path / "a3c.pt"))
    obs = torch.zeros(3, 4)
    assert torch.equal(agent.predict(obs), loaded.predict(obs))
    with pytest.raises(ValueError, match="normalize would not reach them"):
        A3C("rlcourse/CartPole-v1", num_envs=2, preset=None, normalize=True)
