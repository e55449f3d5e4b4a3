"""Checkpoints: safe loading with clear errors, atomic writes, RNG capture, and SIGINT during ``learn``."""

from __future__ import annotations

import json
import os
import pickle
import random
import shlex
import signal
import stat
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

import rlcourse.checkpoint as checkpoint_module
from rlcourse.agents import PPO
from rlcourse.checkpoint import (
    FORMAT_VERSION,
    CheckpointError,
    atomic_torch_save,
    capture_global_rng,
    load_checkpoint,
    restore_global_rng,
    save_checkpoint,
)

SMALL = dict(n_steps=16, batch_size=32, n_epochs=2)


def small_agent(**overrides) -> PPO:
    return PPO("rlcourse/CartPole-v1", num_envs=2, device="cpu", seed=0, **{**SMALL, **overrides})


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A real checkpoint of a briefly trained agent (written once for the module)."""
    path = tmp_path_factory.mktemp("ckpt") / "agent.pt"
    agent = small_agent()
    agent.learn(64)
    agent.save(path)
    return path


# ----------------------------------------------------------------------------- a good checkpoint
def test_checkpoint_holds_format_versions_and_state(saved):
    payload = load_checkpoint(saved)
    assert payload["format"] == "rlcourse-checkpoint" and payload["format_version"] == FORMAT_VERSION
    assert set(payload["versions"]) >= {"rlcourse", "torch", "gymnasium", "numpy"}
    assert payload["algo"] == "ppo" and payload["env_id"] == "rlcourse/CartPole-v1"
    assert payload["counters"]["num_timesteps"] == 64
    assert set(payload["rng"]["global"]) >= {"torch", "numpy", "python"}
    assert isinstance(payload["modules"]["policy"]["policy_net.0.weight"], torch.Tensor)
    # plain data only: torch's own weights-only loader accepts it
    torch.load(saved, weights_only=True)


def test_save_leaves_no_temp_file(tmp_path):
    save_checkpoint({"x": torch.ones(3)}, tmp_path / "sub" / "c.pt")
    assert sorted(p.name for p in (tmp_path / "sub").iterdir()) == ["c.pt"]
    assert torch.equal(load_checkpoint(tmp_path / "sub" / "c.pt")["x"], torch.ones(3))


def test_checkpoint_file_mode_follows_the_umask(tmp_path):
    previous = os.umask(0o022)
    try:
        save_checkpoint({"x": torch.ones(1)}, tmp_path / "c.pt")
        (tmp_path / "plain.txt").write_text("x")
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "plain.txt").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "c.pt").stat().st_mode) == 0o644


# ----------------------------------------------------------------------------- load errors
def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint"):
        load_checkpoint(tmp_path / "absent.pt")
    with pytest.raises(CheckpointError, match="no checkpoint"):
        load_checkpoint(tmp_path)  # a folder is not a checkpoint either


def test_truncated_file(tmp_path, saved):
    data = saved.read_bytes()
    path = tmp_path / "half.pt"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        load_checkpoint(path)


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"hello world\n", id="text"),
        pytest.param(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes(), id="random-bytes"),
    ],
)
def test_garbage_file_is_reported_as_corrupt(tmp_path, content):
    path = tmp_path / "garbage.pt"
    path.write_bytes(content)
    with pytest.raises(CheckpointError) as error:
        load_checkpoint(path)
    message = str(error.value)
    assert "garbage.pt" in message
    assert "corrupt" in message or "not an rlcourse checkpoint" in message, message
    assert "objects other than tensors" not in message, message


def test_foreign_torch_file(tmp_path):
    path = tmp_path / "foreign.pt"
    torch.save({"a": torch.zeros(1)}, path)
    with pytest.raises(CheckpointError, match="not an rlcourse checkpoint"):
        load_checkpoint(path)
    torch.save([torch.zeros(1)], path)  # not even a dict
    with pytest.raises(CheckpointError, match="not an rlcourse checkpoint"):
        load_checkpoint(path)


class _RunsCode:
    """Unpickling this runs a shell command (``__reduce__``): the classic pickle exploit."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.system, (f"touch {shlex.quote(self.marker)}",)


class _PlainObject:
    def __init__(self):
        self.weights = torch.zeros(2)


def test_pickle_payload_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    raw = tmp_path / "raw.pkl"
    raw.write_bytes(pickle.dumps(_RunsCode(marker), protocol=2))
    # Control: the payload is live (plain pickle runs it) ...
    with raw.open("rb") as handle:
        pickle.load(handle)
    assert marker.exists()
    marker.unlink()
    # ... but loading it as a checkpoint refuses it without running anything, in raw and in torch's format.
    as_torch = tmp_path / "torch.pt"
    torch.save({"format": "rlcourse-checkpoint", "format_version": FORMAT_VERSION, "evil": _RunsCode(marker)}, as_torch)
    with pytest.raises(CheckpointError, match="raw.pkl"):
        load_checkpoint(raw)
    assert not marker.exists()
    with pytest.raises(CheckpointError, match="objects other than tensors"):
        load_checkpoint(as_torch)
    assert not marker.exists()


def test_checkpoint_holding_a_custom_object_is_refused(tmp_path):
    path = tmp_path / "object.pt"
    torch.save({"format": "rlcourse-checkpoint", "format_version": FORMAT_VERSION, "obj": _PlainObject()}, path)
    with pytest.raises(CheckpointError, match="weights_only"):
        load_checkpoint(path)


def test_wrong_format_version(tmp_path, saved):
    payload = load_checkpoint(saved)
    payload["format_version"] = FORMAT_VERSION + 98
    path = tmp_path / "future.pt"
    atomic_torch_save(payload, path)
    with pytest.raises(CheckpointError, match=f"format {FORMAT_VERSION + 98}"):
        load_checkpoint(path)


def _other_spaces(payload):
    payload["spaces"] = {**payload["spaces"], "action": "Discrete(3)"}


def _other_algorithm(payload):
    payload["algo"] = "dqn"


def _missing_modules(payload):
    del payload["modules"]


def _smaller_network(payload):
    payload["config"]["net_arch"] = [8]  # the weights in the file are 64x64


@pytest.mark.parametrize(
    "edit, match",
    [
        (_other_spaces, "spaces"),
        (_other_algorithm, "DQN"),
        (_missing_modules, "modules"),
        (_smaller_network, "does not fit"),
    ],
)
def test_load_of_a_mismatched_checkpoint_is_refused(tmp_path, saved, edit, match):
    payload = load_checkpoint(saved)
    edit(payload)
    path = tmp_path / "edited.pt"
    save_checkpoint(payload, path)
    with pytest.raises(CheckpointError, match=match):
        PPO.load(path, device="cpu")


# ----------------------------------------------------------------------------- atomic writes
def test_failed_save_keeps_the_previous_checkpoint_and_leaves_no_temp_file(tmp_path, monkeypatch):
    path = tmp_path / "checkpoint.pt"
    agent = small_agent()
    agent.learn(32)
    agent.save(path)
    good = path.read_bytes()
    agent.learn(32, reset_num_timesteps=False)

    def broken_save(obj, handle, *args, **kwargs):
        handle.write(b"PK\x03\x04 half a zip")
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint_module.torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        agent.save(path)
    monkeypatch.undo()
    assert path.read_bytes() == good
    assert load_checkpoint(path)["counters"]["num_timesteps"] == 32
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt"]
    # a new save then goes through and replaces it
    agent.save(path)
    assert load_checkpoint(path)["counters"]["num_timesteps"] == 64


# ----------------------------------------------------------------------------- RNG capture
def _draws():
    return (
        torch.rand(5).tolist(),
        torch.randn(3).tolist(),
        np.random.rand(4).tolist(),
        np.random.normal(size=3).tolist(),
        [random.random() for _ in range(4)],
        [random.gauss(0, 1) for _ in range(3)],
    )


def test_capture_and_restore_global_rng_round_trip(tmp_path):
    torch.manual_seed(1)
    np.random.seed(2)
    random.seed(3)
    # leave a cached Gaussian in numpy's legacy state and in Python's, so those parts of the state matter too
    np.random.normal()
    random.gauss(0, 1)
    state = capture_global_rng()
    expected = _draws()
    assert _draws() != expected  # the streams moved on
    restore_global_rng(state)
    assert _draws() == expected
    # ... and the state survives a checkpoint file (weights-only loading)
    save_checkpoint({"rng": state}, tmp_path / "rng.pt")
    _draws()
    restore_global_rng(load_checkpoint(tmp_path / "rng.pt")["rng"])
    assert _draws() == expected


# ----------------------------------------------------------------------------- SIGINT during learn
SIGINT_SCRIPT = textwrap.dedent("""
    import json, os, signal, sys
    from rlcourse.agents import PPO

    agent = PPO("rlcourse/CartPole-v1", num_envs=2, device="cpu", seed=0, run_dir=sys.argv[1],
                n_steps=16, batch_size=32, n_epochs=1)

    def interrupt(agent):
        if agent.iteration == 3:
            os.kill(os.getpid(), signal.SIGINT)

    agent.learn(100_000, callbacks=[interrupt], checkpoint_interval_s=1e9)
    print(json.dumps({"interrupted_by": agent.interrupted_by, "num_timesteps": agent.num_timesteps}))
""")


def test_sigint_during_learn_writes_a_checkpoint_and_returns(tmp_path):
    run_dir = tmp_path / "run"
    result = subprocess.run(
        [sys.executable, "-c", SIGINT_SCRIPT, str(run_dir)], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    steps = 3 * 16 * 2  # three iterations of n_steps * num_envs
    assert report == {"interrupted_by": int(signal.SIGINT), "num_timesteps": steps}
    payload = load_checkpoint(run_dir / "checkpoint.pt")
    assert payload["counters"]["num_timesteps"] == steps
    assert payload["counters"]["iteration"] == 3
    resumed = PPO.load(run_dir / "checkpoint.pt", device="cpu")
    assert resumed.num_timesteps == steps


def test_checkpoint_from_another_device_type_loads_networks_but_not_rng_streams(tmp_path, saved):
    # A CUDA checkpoint's generator states cannot drive CPU generators: the networks, optimizer and counters
    # load; the streams and env keep their fresh seeds (exact continuation needs the same device type).
    payload = load_checkpoint(saved)
    payload["device_type"] = "cuda"
    payload["rng"]["agent"] = torch.zeros(16, dtype=torch.uint8)  # a Philox state's size, useless on the CPU
    payload["env"]["generator"] = torch.zeros(16, dtype=torch.uint8)
    path = tmp_path / "from_cuda.pt"
    save_checkpoint(payload, path)
    agent = PPO.load(path, device="cpu")
    original = PPO.load(saved, device="cpu")
    assert all(torch.equal(p, q) for p, q in zip(agent.policy.parameters(), original.policy.parameters()))
    assert agent.num_timesteps == original.num_timesteps
    obs = np.zeros((3, 4), np.float32)
    assert np.array_equal(agent.predict(obs), original.predict(obs))


def test_malformed_entries_are_refused_not_crashing(tmp_path, saved):
    for key, bad in (("counters", [1, 2, 3]), ("config", "not a mapping")):
        payload = load_checkpoint(saved)
        payload[key] = bad
        path = tmp_path / f"{key}.pt"
        save_checkpoint(payload, path)
        with pytest.raises(CheckpointError):
            PPO.load(path, device="cpu")


def test_failed_env_load_changes_nothing():
    agent = small_agent()
    state = agent.env.state_dict()
    before = {k: v.clone() for k, v in agent.env.state_dict().items()}
    state["physics"] = torch.ones_like(state["physics"])
    state["elapsed"] = torch.zeros(5, dtype=state["elapsed"].dtype)  # wrong num_envs, checked before any copy
    with pytest.raises(ValueError, match="num_envs"):
        agent.env.load_state_dict(state)
    after = agent.env.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


@pytest.mark.parametrize(
    ("algo", "settings"),
    [
        ("a2c", {"num_envs": 2}),
        ("ppo", {"num_envs": 2, "n_steps": 16, "batch_size": 16, "n_epochs": 2}),
        ("dqn", {"num_envs": 2, "learning_starts": 8, "train_freq": 4, "gradient_steps": 2, "batch_size": 8}),
    ],
)
def test_loading_keeps_the_optimizer_state_tensors_in_place(algo, settings):
    """A captured CUDA graph holds the optimizer state's addresses, and its first capture follows a load of the
    pre-warm-up snapshot, which for a fresh run has no optimizer state: the load must zero the live state in
    place (a fresh state) rather than drop it, and copy loaded values into it, never swap the tensors."""
    from rlcourse.agents import ALGOS
    from rlcourse.agents.graphs import _clone_tree

    def state_tensors(agent):
        return [
            value
            for state in agent.optimizer.state.values()
            for value in state.values()
            if isinstance(value, torch.Tensor)
        ]

    def weights(agent):
        return [p.detach().clone() for module in agent._modules().values() for p in module.parameters()]

    agent = ALGOS[algo]("rlcourse/CartPole-v1", device="cpu", seed=5, **settings)
    fresh = _clone_tree(agent.checkpoint_state())
    assert not agent.optimizer.state
    agent.learn(3 * agent.steps_per_iteration + settings.get("learning_starts", 0))
    live = state_tensors(agent)
    assert live and any(bool(value.any()) for value in live)
    trained = _clone_tree(agent.checkpoint_state())

    agent.load_state(_clone_tree(fresh))  # back to the start: the same tensors, zeroed
    assert [value.data_ptr() for value in state_tensors(agent)] == [value.data_ptr() for value in live]
    assert not any(bool(value.any()) for value in state_tensors(agent))
    agent.learn(2 * agent.steps_per_iteration + settings.get("learning_starts", 0))
    twin = ALGOS[algo]("rlcourse/CartPole-v1", device="cpu", seed=5, **settings)
    twin.learn(2 * twin.steps_per_iteration + settings.get("learning_starts", 0))
    for mine, theirs in zip(weights(agent), weights(twin)):  # a zeroed state is exactly a fresh one
        assert torch.equal(mine, theirs)

    agent.load_state(_clone_tree(trained))  # loaded values are copied into the same tensors
    assert [value.data_ptr() for value in state_tensors(agent)] == [value.data_ptr() for value in live]
    for mine, saved in zip(
        state_tensors(agent),
        [
            v
            for s in trained["optimizers"]["optimizer"]["state"].values()
            for v in s.values()
            if isinstance(v, torch.Tensor)
        ],
    ):
        assert torch.equal(mine, saved)


def test_loading_a_state_of_other_entries_replaces_the_optimizer_state():
    """A loaded state whose optimizer keeps other entries (amsgrad on) is taken as loaded, not squeezed into the
    live tensors, and the optimizer steps on."""
    from rlcourse.agents.optimizer_state import load_optimizer_keeping_setup

    param = torch.nn.Parameter(torch.ones(3))
    plain = torch.optim.Adam([param], lr=0.1)
    param.grad = torch.ones(3)
    plain.step()
    other = torch.optim.Adam([torch.nn.Parameter(torch.ones(3))], lr=0.1, amsgrad=True)
    load_optimizer_keeping_setup(plain, other.state_dict())  # fresh amsgrad state
    assert plain.param_groups[0]["amsgrad"] and not plain.state[param]
    plain.step()
    assert set(plain.state[param]) == {"step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"}
