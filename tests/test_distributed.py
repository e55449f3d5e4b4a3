"""Data-parallel training (``--distributed`` under torchrun, ``distributed=True`` in Python) on the CPU with gloo.

The ranks are ``torch.multiprocessing`` processes with torchrun's environment variables (RANK, WORLD_SIZE,
LOCAL_RANK, the rendezvous address), forked from this process so that none pays torch's import again: one set
runs every Python-API scenario (the gradient averaging by hand, identical data against a single process, different
data staying in sync, a signal on one rank, a resume), others run ``rlcourse train`` as torchrun would (learning,
which rank writes and prints what, a stopped run resumed bit-identically). The scale bench launches real torchrun
processes. The CUDA test needs two GPUs.
"""

from __future__ import annotations

import json
import math
import os
import signal
import socket
import sys
from pathlib import Path

import pytest
import torch
import yaml

from rlcourse.app.cli import main

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # runs compared bit for bit share the thread count

CARTPOLE = "rlcourse/CartPole-v1"
#: Small PPO settings for the Python-API scenarios (per rank: 4 envs × 16 steps, two minibatches).
API_HP = {"n_steps": 16, "batch_size": 32, "n_epochs": 2, "learning_rate": 1e-3}
PER_RANK_ENVS = 4
#: Iterations of the API scenarios.
ITERATIONS = 4
#: The CLI runs: 2 ranks × 8 envs, RL Zoo's CartPole discounts; PPO balances the pole within this budget
#: (deterministic returns of 256, 129 and 130 for seeds 0, 1, 2 on the 2026-12-02 CPU).
CLI_STEPS = 8192
CLI_ARGS = [
    "ppo",
    CARTPOLE,
    "--distributed",
    "--no-progress",
    "--device",
    "cpu",
    "--preset",
    "none",
    "--num-envs",
    "16",
    "--total-steps",
    str(CLI_STEPS),
    "--hp",
    "n_steps=32",
    "--hp",
    "batch_size=64",
    "--hp",
    "n_epochs=4",
    "--hp",
    "learning_rate=0.002",
    "--hp",
    "gamma=0.98",
    "--hp",
    "gae_lambda=0.8",
    "--eval-episodes",
    "20",
]
#: The deterministic evaluation a trained 2-rank run must reach (CartPole's random policy: about 20).
LEARNED_RETURN = 100.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {key: value.detach().cpu().clone() for key, value in module.state_dict().items()}


def assert_same_state(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], what: str) -> None:
    assert set(a) == set(b), what
    for key in a:
        assert torch.equal(a[key], b[key]), f"{what}: {key} differs"


def _same(a, b) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and set(a) == set(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return isinstance(b, (list, tuple)) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b or (isinstance(a, float) and math.isnan(a) and math.isnan(b))


# --------------------------------------------------------------------------- the Python API, in spawned ranks
def _scenarios(rank: int, out: Path, device: str) -> dict:
    """What every rank runs (see the module docstring); returns what the test checks."""
    from rlcourse import distributed as parallel
    from rlcourse.agents import PPO

    here = parallel.setup(device).device  # what Agent(distributed=True) does (cuda:LOCAL_RANK on CUDA)
    result: dict = {"pid": os.getpid()}
    hp = {**API_HP, "preset": None, "device": device}
    num_envs = PER_RANK_ENVS * 2
    steps = ITERATIONS * API_HP["n_steps"] * num_envs

    # 1. The averager by hand: rank r's loss w·x_r with x_r = (r+1)·[1, 2] and w = [1, 1], so its gradient is x_r
    #    and the average over the two ranks is [1.5, 3.0]; a second backward (2·w·x_r, no zero_grad) adds [3, 6].
    layer = torch.nn.Linear(2, 1, bias=False).to(here)
    with torch.no_grad():
        layer.weight.fill_(1.0)
    averager = parallel.GradientAverager(layer.parameters())
    x = torch.tensor([[1.0, 2.0]], device=here) * (rank + 1)
    layer(x).sum().backward()
    result["grad_once"] = layer.weight.grad.cpu().clone()
    result["clip_norm"] = float(torch.nn.utils.clip_grad_norm_(layer.parameters(), 1e9))
    (2 * layer(x)).sum().backward()
    result["grad_twice"] = layer.weight.grad.cpu().clone()
    averager.remove()
    result["any_rank"] = bool(parallel.any_rank(torch.tensor(rank == 1, device=here)))

    if device != "cpu":  # the CUDA test: in sync under CUDA graphs, and learning
        agent = PPO(CARTPOLE, num_envs=num_envs, seed=0, distributed=True, **hp)
        agent.learn(steps * 4)
        result["cuda_graphs"] = agent.cuda_graphs
        result["synced"] = _state(agent.policy)
        result["return"] = agent.last_log.get("rollout/ep_rew_mean")
        return result

    # 2. Identical data on both ranks (every rank seeded as rank 0), rank 1's weights spoilt before learn:
    #    learn starts from rank 0's, and averaging identical gradients is the single-process update.
    original = parallel.rank_seed
    parallel.rank_seed = lambda seed, rank: seed
    try:
        agent = PPO(CARTPOLE, num_envs=num_envs, seed=3, distributed=True, **hp)
    finally:
        parallel.rank_seed = original
    if rank == 1:
        with torch.no_grad():
            for parameter in agent.policy.parameters():
                parameter.add_(1.0)
    agent.learn(steps)
    result["identical"] = _state(agent.policy)

    # 3. Different data (each rank its own streams): the weights stay equal on every rank.
    agent = PPO(CARTPOLE, num_envs=num_envs, seed=5, distributed=True, **hp)
    result["first_obs"] = agent.obs.clone()
    agent.learn(steps)
    result["synced"] = _state(agent.policy)
    result["uninterrupted"] = _state(agent.policy)
    result["uninterrupted_optimizer"] = agent.optimizer.state_dict()

    # 4. SIGINT on rank 1 only, half-way: both ranks stop after the same iteration, rank 0 saves every rank's state;
    #    PPO.load(..., distributed=True) then continues each rank to the same weights as the uninterrupted run.
    run = out / "api-run"
    agent = PPO(CARTPOLE, num_envs=num_envs, seed=5, distributed=True, run_dir=run, **hp)
    sent = []

    def interrupt(a):
        if rank == 1 and a.num_timesteps >= steps // 2 and not sent:
            sent.append(a.num_timesteps)
            signal.raise_signal(signal.SIGINT)

    agent.learn(steps, callbacks=[interrupt])
    result["interrupted_by"], result["stopped_at"] = agent.interrupted_by, agent.num_timesteps
    resumed = PPO.load(run / "checkpoint.pt", device=device, distributed=True, run_dir=run)
    result["resumed_at"] = resumed.num_timesteps
    resumed.learn(steps - resumed.num_timesteps, reset_num_timesteps=False)
    result["resumed"] = _state(resumed.policy)
    result["resumed_optimizer"] = resumed.optimizer.state_dict()
    return result


def _rank_main(task, rank: int, world_size: int, port: int, out: Path, env: dict[str, str]) -> None:
    """One rank: torchrun's environment variables, its own stdout/stderr files, ``task(rank, out)``'s result saved."""
    torch.set_num_threads(1)
    os.environ.update(
        RANK=str(rank),
        WORLD_SIZE=str(world_size),
        LOCAL_RANK=str(rank),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        **env,
    )
    from rlcourse import distributed as parallel

    with open(out / f"rank{rank}.stdout", "w") as stdout, open(out / f"rank{rank}.stderr", "w") as stderr:
        sys.stdout, sys.stderr = stdout, stderr
        try:
            torch.save(task(rank, out), out / f"rank{rank}.pt")
        finally:
            parallel.shutdown()
            stdout.flush()
            stderr.flush()


def _run_ranks(task, out: Path, world_size: int = 2, start: str = "fork", env: dict[str, str] | None = None):
    """``task`` on ``world_size`` ranks of a gloo (or NCCL) group, as torchrun would start them; their results.

    Forked from this process on the CPU (torch is imported already, so a rank starts at once); spawned for CUDA.
    """
    out.mkdir(parents=True, exist_ok=True)
    context = torch.multiprocessing.get_context(start)
    port = _free_port()
    processes = [
        context.Process(target=_rank_main, args=(task, rank, world_size, port, out, env or {}))
        for rank in range(world_size)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=300)
    for process in processes:
        if process.is_alive():
            process.kill()
    logs = "".join((out / f"rank{rank}.stderr").read_text()[-2000:] for rank in range(world_size))
    assert [process.exitcode for process in processes] == [0] * world_size, logs
    return [torch.load(out / f"rank{rank}.pt", weights_only=False) for rank in range(world_size)]


def _api_task(device: str):
    return lambda rank, out: _scenarios(rank, out, device)


def _scenario_cuda(rank: int, out: Path) -> dict:
    return _scenarios(rank, out, "cuda")  # a module function: spawned ranks unpickle it


@pytest.fixture(scope="module")
def api_ranks(tmp_path_factory):
    out = tmp_path_factory.mktemp("api")
    return out, _run_ranks(_api_task("cpu"), out)


def test_gradients_are_averaged_at_the_end_of_backward_before_clipping(api_ranks):
    _, ranks = api_ranks
    for result in ranks:
        assert torch.equal(result["grad_once"], torch.tensor([[1.5, 3.0]]))
        assert result["clip_norm"] == pytest.approx(math.hypot(1.5, 3.0))  # the clip saw the average
        assert torch.equal(result["grad_twice"], torch.tensor([[4.5, 9.0]]))  # accumulated: the average of the sums
        assert result["any_rank"] is True


def test_identical_data_on_two_ranks_is_the_single_process_run(api_ranks):
    """Averaging identical gradients (g + g) / 2 = g is exact, so two ranks that play the same episodes end where one
    process with one rank's envs ends: proof that gradients are averaged (a sum would double them) and that rank 1's
    spoilt weights were overwritten by rank 0's at the start of training."""
    from rlcourse.agents import PPO

    _, ranks = api_ranks
    single = PPO(CARTPOLE, num_envs=PER_RANK_ENVS, seed=3, device="cpu", preset=None, **API_HP)
    single.learn(ITERATIONS * API_HP["n_steps"] * PER_RANK_ENVS)
    for result in ranks:
        assert_same_state(result["identical"], _state(single.policy), "a rank against the single process")


def test_ranks_play_different_episodes_and_stay_in_sync(api_ranks):
    _, (rank0, rank1) = api_ranks
    assert not torch.equal(rank0["first_obs"], rank1["first_obs"])  # rank-derived env seeds
    assert_same_state(rank0["synced"], rank1["synced"], "rank 0 against rank 1")


def test_a_signal_on_one_rank_stops_every_rank_and_resume_is_bit_identical(api_ranks):
    out, (rank0, rank1) = api_ranks
    assert rank0["interrupted_by"] == rank1["interrupted_by"] == signal.SIGINT  # rank 0 learns of rank 1's signal
    assert rank0["stopped_at"] == rank1["stopped_at"] == rank0["resumed_at"] < ITERATIONS * 16 * 8
    payload = torch.load(out / "api-run" / "checkpoint.pt", weights_only=True)
    record = payload["distributed"]
    assert record["world_size"] == 2 and len(record["ranks"]) == 2
    assert not torch.equal(record["ranks"][0]["obs"], record["ranks"][1]["obs"])
    assert torch.equal(payload["obs"], record["ranks"][0]["obs"])  # rank 0's own state is the file's
    for result in (rank0, rank1):
        assert_same_state(result["resumed"], result["uninterrupted"], "resumed against uninterrupted")
        assert _same(result["resumed_optimizer"], result["uninterrupted_optimizer"])
    # rank 0 wrote every file (TensorBoard names its files with the writer's pid); rank 1 none
    pids = {path.name.split(".")[-2] for path in (out / "api-run").glob("events.out.tfevents.*")}
    assert pids == {str(rank0["pid"])}


@pytest.mark.skipif(
    not torch.cuda.is_available() or torch.cuda.device_count() < 2, reason="needs two CUDA devices (NCCL)"
)
def test_two_gpus_stay_in_sync_under_cuda_graphs(tmp_path, monkeypatch):
    monkeypatch.setenv("NCCL_NVLS_ENABLE", "0")
    rank0, rank1 = _run_ranks(_scenario_cuda, tmp_path, start="spawn")
    for result in (rank0, rank1):
        assert torch.equal(result["grad_once"], torch.tensor([[1.5, 3.0]]))
        assert result["cuda_graphs"] is True
    assert_same_state(rank0["synced"], rank1["synced"], "GPU 0 against GPU 1")


# --------------------------------------------------------------------------- the CLI
def _train_task(*args: str):
    """``rlcourse train ARGS`` on a rank, as torchrun runs it (``python -m rlcourse``'s entry point)."""
    return lambda rank, out: {"code": main(["train", *args])}


def _train_on_ranks(out: Path, *args: str, env: dict[str, str] | None = None) -> list[str]:
    """Run ``rlcourse train ARGS`` on two ranks; each rank's stdout."""
    codes = _run_ranks(_train_task(*args), out, env=env)
    assert [result["code"] for result in codes] == [0, 0], (out / "rank0.stderr").read_text()
    return [(out / f"rank{rank}.stdout").read_text() for rank in range(2)]


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    scratch = tmp_path_factory.mktemp("cli")
    root = scratch / "runs"
    stdouts = _train_on_ranks(scratch / "full", *CLI_ARGS, "--runs-root", str(root), "--name", "full")
    return root, root / "rlcourse_CartPole-v1" / "ppo" / "full", stdouts


def test_two_ranks_learn_cartpole_and_only_rank_0_writes(full_run):
    root, run_dir, (stdout0, stdout1) = full_run
    assert [path.name for path in (root / "rlcourse_CartPole-v1" / "ppo").iterdir()] == ["full"]
    assert stdout0.count("Training ppo") == 1 and stdout0.count("Done:") == 1
    assert "2 ranks (8 envs each, cpu)" in stdout0
    assert stdout1 == ""  # rank 1 trains in silence
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert config["num_envs"] == 16 and config["device"] == "cpu"
    assert config["distributed"] == {"world_size": 2, "backend": "gloo", "num_envs_per_rank": 8}
    evaluation = json.loads((run_dir / "eval.json").read_text())
    assert evaluation["num_timesteps"] == CLI_STEPS
    assert evaluation["mean_reward"] >= LEARNED_RETURN
    payload = torch.load(run_dir / "checkpoint.pt", weights_only=True)
    assert payload["num_envs"] == 8 and len(payload["distributed"]["ranks"]) == 2
    assert len({path.name.split(".")[-2] for path in run_dir.glob("events.out.tfevents.*")}) == 1


def test_stopped_and_resumed_on_two_ranks_equals_the_uninterrupted_run(full_run, tmp_path):
    root, full_dir, _ = full_run
    cut_dir = root / "rlcourse_CartPole-v1" / "ppo" / "cut"
    # RLCOURSE_MAX_STEPS stops the first session at exactly half the budget; --resume then trains the rest
    _train_on_ranks(
        tmp_path / "cut", *CLI_ARGS, "--runs-root", str(root), "--name", "cut", env={"RLCOURSE_MAX_STEPS": "4096"}
    )
    assert torch.load(cut_dir / "checkpoint.pt", weights_only=True)["counters"]["num_timesteps"] == 4096
    stdout0, stdout1 = _train_on_ranks(tmp_path / "resume", "--resume", str(cut_dir), "--no-progress")
    assert "at step 4,096 of 8,192 on 2 ranks (cpu)" in stdout0 and stdout1 == ""
    full, cut = (torch.load(d / "checkpoint.pt", weights_only=True) for d in (full_dir, cut_dir))
    for key in ("modules", "optimizers", "counters", "rng", "env", "obs", "episodes", "distributed"):
        assert _same(full[key], cut[key]), key  # every rank's streams and envs included
    assert json.loads((cut_dir / "eval.json").read_text()) == json.loads((full_dir / "eval.json").read_text())


def test_a_distributed_run_resumes_only_on_as_many_ranks(full_run, monkeypatch, capsys):
    _, run_dir, _ = full_run
    assert main(["train", "--resume", str(run_dir)]) == 2  # not under torchrun
    assert f"torchrun --nproc_per_node 2 -m rlcourse train --resume {run_dir}" in capsys.readouterr().err
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "1")
    monkeypatch.setenv("LOCAL_RANK", "0")
    assert main(["train", "--resume", str(run_dir)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "2 ranks" in err[0] and "not on 1" in err[0]


def test_eval_of_a_distributed_run_is_a_single_process(full_run, capsys, tmp_path):
    _, run_dir, _ = full_run
    copy = tmp_path / "copy"
    copy.mkdir()
    for name in ("config.yaml", "checkpoint.pt"):
        (copy / name).write_bytes((run_dir / name).read_bytes())
    assert main(["eval", str(copy), "--episodes", "3", "--device", "cpu"]) == 0
    assert json.loads((copy / "eval.json").read_text())["n_episodes"] == 3


# --------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["ppo", CARTPOLE, "--distributed"], "--distributed runs under torchrun: torchrun --nproc_per_node N"),
        (["a3c", CARTPOLE, "--distributed"], "a3c cannot train data-parallel"),
        (["gail", CARTPOLE, "--distributed"], "--distributed does not run plug-ins"),
    ],
)
def test_distributed_refusals_are_one_line(args, says, capsys, tmp_path):
    assert main(["train", *args, "--device", "cpu", "--runs-root", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and says in err[0], err
    assert not any(tmp_path.iterdir())


def test_python_api_refusals():
    from rlcourse import distributed as parallel
    from rlcourse.agents import A3C, PPO

    with pytest.raises(ValueError, match="a3c cannot train data-parallel"):
        A3C(CARTPOLE, device="cpu", distributed=True)
    with pytest.raises(ValueError, match="runs under torchrun"):
        PPO(CARTPOLE, device="cpu", distributed=True)
    assert parallel.rank_seed(7, 0) == 7 and parallel.rank_seed(7, 1) != parallel.rank_seed(7, 2)


# --------------------------------------------------------------------------- the scale bench
def test_the_scale_bench_runs_one_and_two_ranks_and_writes_its_table(tmp_path, capsys):
    code = main(
        [
            "bench",
            "--suite",
            "scale",
            "--nproc",
            "1,2",
            "--device",
            "cpu",
            "--max-steps",
            "512",
            "--out",
            str(tmp_path),
        ]
    )
    assert code == 0, capsys.readouterr().err
    (markdown,) = tmp_path.glob("bench-scale-cpu-*.md")
    report = json.loads(markdown.with_suffix(".json").read_text())
    assert [row["ranks"] for row in report["rows"]] == [1, 2]
    assert [row["num_envs"] for row in report["rows"]] == [8, 16]
    assert all(run["steps_trained"] == 512 and run["steps_per_s"] > 0 for run in report["runs"])
    assert report["rows"][0]["speedup"] == 1.0
    lines = markdown.read_text().splitlines()
    assert lines[0] == "# rlcourse bench: data-parallel scaling"
    assert any(line.startswith("| 2 | 16 (8) |") for line in lines)
