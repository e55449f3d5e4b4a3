"""The ``rlcourse`` command line: run folders, TensorBoard tags, settings precedence, resume, eval, list,
help, and the one-line exit-2 error for every bad input.

Happy paths run in-process through click's ``CliRunner``; bad inputs go through :func:`rlcourse.app.cli.main`
(the console script's entry point, which owns the error formatting); two subprocess tests check a real
process. Training runs are tiny (512 CartPole steps at most).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import traceback
from pathlib import Path

import pytest
import torch
import yaml
from click.testing import CliRunner

from rlcourse.app.cli import cli, main

CARTPOLE = "rlcourse/CartPole-v1"
TINY = [
    "--total-steps",
    "512",
    "--num-envs",
    "4",
    "--hp",
    "n_steps=16",
    "--hp",
    "batch_size=32",
    "--hp",
    "n_epochs=1",
    "--eval-episodes",
    "3",
    "--no-progress",
    "--device",
    "cpu",
]
TAGS = [
    "rollout/ep_rew_mean",
    "rollout/ep_len_mean",
    "time/fps",
    "train/approx_kl",
    "train/clip_fraction",
    "train/entropy_loss",
    "train/policy_gradient_loss",
    "train/value_loss",
    "train/explained_variance",
    "train/learning_rate",
    "eval/mean_reward",
]


def _runner() -> CliRunner:
    try:
        return CliRunner(mix_stderr=False)  # click < 8.2 mixes stderr into stdout unless told not to
    except TypeError:
        return CliRunner()


def assert_tensorboard_command(out: str, run_dir: Path) -> None:
    """The last line names this run's folder and a tensorboard that a shell finds as typed (venv active or not)."""
    line = out.strip().splitlines()[-1]
    assert line.startswith("TensorBoard: "), line
    program, *args = shlex.split(line.removeprefix("TensorBoard: "))
    assert args == ["--logdir", str(run_dir)], line
    found = shutil.which(program) if "/" not in program else program
    assert found is not None and Path(found).is_file() and os.access(found, os.X_OK), line
    assert Path(found).resolve() == (Path(sys.executable).parent / "tensorboard").resolve(), (
        "this install's tensorboard"
    )


def invoke(*args, expect: int = 0):
    """Run the CLI in-process and check its exit code, showing its output and traceback when it differs."""
    result = _runner().invoke(cli, [str(arg) for arg in args])
    if result.exit_code != expect:
        trace = (
            ""
            if result.exc_info is None or isinstance(result.exception, SystemExit)
            else "".join(traceback.format_exception(*result.exc_info))
        )
        pytest.fail(
            f"exit code {result.exit_code}, expected {expect}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}\n{trace}"
        )
    return result


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """Tiny networks run fastest on one thread, far faster on a busy 2-core CI machine.

    Module-scoped and autouse, so it is in force before ``finished`` trains: runs that are compared
    bit for bit must use the same thread count.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def interrupt_at(monkeypatch):
    """``interrupt_at(step)``: the next ``learn`` gets a real SIGINT once it has trained ``step`` steps.

    ``signal.raise_signal`` runs the agent's handler before it returns, so the stop is exact and the
    run goes through the same path as a user's Ctrl-C.
    """
    from rlcourse.agents.base import Agent

    original = Agent.learn

    def arm(step: int) -> None:
        sent = []

        def learn(self, total_timesteps, **kwargs):
            def send_sigint(agent):
                if agent.num_timesteps >= step and not sent:
                    sent.append(agent.num_timesteps)
                    signal.raise_signal(signal.SIGINT)

            kwargs["callbacks"] = [*kwargs.get("callbacks", ()), send_sigint]
            return original(self, total_timesteps, **kwargs)

        monkeypatch.setattr(Agent, "learn", learn)

    return arm


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """One uninterrupted tiny run: (runs root, run folder, CliRunner result)."""
    root = tmp_path_factory.mktemp("finished") / "runs"
    result = invoke("train", "ppo", CARTPOLE, *TINY, "--runs-root", root, "--name", "full")
    return root, root / "rlcourse_CartPole-v1" / "ppo" / "full", result


def read_config(run_dir: Path) -> dict:
    return yaml.safe_load((run_dir / "config.yaml").read_text())


def load_payload(run_dir: Path) -> dict:
    return torch.load(run_dir / "checkpoint.pt", weights_only=True)


def assert_same(a, b, where: str = "") -> None:
    """Exact equality of nested checkpoint data (tensors compared with torch.equal)."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b), f"tensors differ at {where}"
    elif isinstance(a, dict):
        assert isinstance(b, dict) and set(a) == set(b), f"keys differ at {where}"
        for key in a:
            assert_same(a[key], b[key], f"{where}/{key}")
    elif isinstance(a, (list, tuple)):
        assert isinstance(b, (list, tuple)) and len(a) == len(b), f"lengths differ at {where}"
        for index, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{where}[{index}]")
    else:
        assert a == b, f"{a!r} != {b!r} at {where}"


def scalar_events(run_dir: Path) -> dict[str, list]:
    """Every scalar event of every events file under ``run_dir``, read back with TensorBoard's reader."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events: dict[str, list] = {}
    files = sorted(run_dir.glob("**/events.out.tfevents.*"))
    assert files, f"no TensorBoard event file in {run_dir}"
    for path in files:
        accumulator = EventAccumulator(str(path), size_guidance={"scalars": 0})
        accumulator.Reload()
        for tag in accumulator.Tags()["scalars"]:
            events.setdefault(tag, []).extend(accumulator.Scalars(tag))
    return events


# --------------------------------------------------------------------------- train
def test_train_writes_a_complete_run_folder(finished):
    root, run_dir, result = finished
    assert sorted(p.name for p in run_dir.iterdir() if not p.name.startswith("events.")) == [
        "checkpoint.pt",
        "config.yaml",
        "eval.json",
    ]
    config = read_config(run_dir)
    assert {k: config[k] for k in ("algo", "env", "num_envs", "total_timesteps", "seed", "device", "compile")} == {
        "algo": "ppo",
        "env": CARTPOLE,
        "num_envs": 4,
        "total_timesteps": 512,
        "seed": 0,
        "device": "cpu",
        "compile": False,
    }
    assert config["rlcourse_version"]
    assert config["preset"] == "default" and config["eval_freq"] is None and config["checkpoint_freq"] is None
    assert config["eval_episodes"] == 3
    hparams = config["hyperparameters"]
    assert (hparams["n_steps"], hparams["batch_size"], hparams["n_epochs"]) == (16, 32, 1)  # --hp over the preset
    assert hparams["gamma"] == 0.98 and hparams["clip_range"] == 0.2  # the preset over PPOConfig's defaults
    evaluation = json.loads((run_dir / "eval.json").read_text())
    assert evaluation["n_episodes"] == 3 and evaluation["num_timesteps"] == 512
    assert load_payload(run_dir)["counters"]["num_timesteps"] == 512
    out = result.stdout
    assert str(run_dir) in out
    assert_tensorboard_command(out, run_dir)
    assert f"{evaluation['mean_reward']:.2f} ± {evaluation['std_reward']:.2f} over 3 episodes" in out
    assert "512 env steps" in out and "steps/s" in out and "training mean return" in out


def test_event_files_hold_sb3_tags_and_the_final_evaluation(finished):
    _, run_dir, _ = finished
    events = scalar_events(run_dir)
    missing = [tag for tag in TAGS if tag not in events]
    assert not missing, f"missing TensorBoard tags {missing}; found {sorted(events)}"
    evaluation = json.loads((run_dir / "eval.json").read_text())
    (final,) = events["eval/mean_reward"]
    assert final.step == 512 and final.value == pytest.approx(evaluation["mean_reward"])
    assert max(event.step for event in events["rollout/ep_len_mean"]) == 512


def test_settings_precedence(tmp_path):
    """defaults < preset < --config < --hp < --num-envs/--total-steps."""
    config_file = tmp_path / "my.yml"
    config_file.write_text("n_steps: 8\nbatch_size: 32\ngamma: 0.9\nnum_envs: 2\ntotal_timesteps: 64\n")
    root = tmp_path / "runs"
    invoke(
        "train",
        "ppo",
        CARTPOLE,
        "--config",
        config_file,
        "--hp",
        "gamma=0.95",
        "--num-envs",
        "4",
        "--hp",
        "n_epochs=1",
        "--eval-episodes",
        "1",
        "--no-progress",
        "--device",
        "cpu",
        "--runs-root",
        root,
        "--name",
        "p",
    )
    config = read_config(root / "rlcourse_CartPole-v1" / "ppo" / "p")
    hparams = config["hyperparameters"]
    assert config["num_envs"] == 4  # flag over file
    assert config["total_timesteps"] == 64  # file over preset (100000)
    assert hparams["n_steps"] == 8  # file over preset (32)
    assert hparams["gamma"] == 0.95  # --hp over file
    assert hparams["gae_lambda"] == 0.8  # preset over default (0.95)
    assert hparams["clip_range_vf"] is None  # default


def test_a_runs_config_yaml_can_seed_a_new_run(finished, tmp_path):
    _, run_dir, _ = finished
    root = tmp_path / "runs"
    invoke(
        "train",
        "ppo",
        CARTPOLE,
        "--config",
        run_dir / "config.yaml",
        "--total-steps",
        "64",
        "--eval-episodes",
        "1",
        "--no-progress",
        "--device",
        "cpu",
        "--runs-root",
        root,
        "--name",
        "again",
    )
    config = read_config(root / "rlcourse_CartPole-v1" / "ppo" / "again")
    assert config["hyperparameters"] == read_config(run_dir)["hyperparameters"]
    assert (config["num_envs"], config["total_timesteps"]) == (4, 64)


def test_defaults_without_preset_and_interrupt_message(tmp_path, interrupt_at):
    """A Gymnasium id with no preset gets 8 envs and 100000 steps; SIGINT saves, prints the resume line, exits 130."""
    root = tmp_path / "runs"
    interrupt_at(1)
    result = invoke(
        "train",
        "ppo",
        "Acrobot-v1",
        "--seed",
        "3",
        "--hp",
        "n_steps=8",
        "--hp",
        "batch_size=64",
        "--hp",
        "n_epochs=1",
        "--no-progress",
        "--device",
        "cpu",
        "--runs-root",
        root,
        expect=128 + signal.SIGINT,
    )
    (run_dir,) = (root / "Acrobot-v1" / "ppo").iterdir()
    assert re.fullmatch(r"seed3-\d{8}-\d{6}", run_dir.name)
    config = read_config(run_dir)
    assert (config["num_envs"], config["total_timesteps"]) == (8, 100_000)
    assert load_payload(run_dir)["counters"]["num_timesteps"] == 64
    assert not (run_dir / "eval.json").exists()
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "SIGINT" in lines[0] and str(run_dir / "checkpoint.pt") in lines[0]
    assert lines[0].endswith(f"rlcourse train --resume {shlex.quote(str(run_dir))}")
    assert "Traceback" not in result.stdout + result.stderr


# --------------------------------------------------------------------------- resume
def test_resume_after_sigint_equals_an_uninterrupted_run(finished, interrupt_at):
    root, full_dir, _ = finished
    run_dir = root / "rlcourse_CartPole-v1" / "ppo" / "cut"
    interrupt_at(256)
    stopped = invoke("train", "ppo", CARTPOLE, *TINY, "--runs-root", root, "--name", "cut", expect=130)
    assert f"rlcourse train --resume {shlex.quote(str(run_dir))}" in stopped.stderr
    assert load_payload(run_dir)["counters"]["num_timesteps"] == 256
    assert not (run_dir / "eval.json").exists()

    resumed = invoke("train", "--resume", run_dir, "--no-progress", "--eval-episodes", "3")
    assert "at step 256 of 512" in resumed.stdout
    assert_tensorboard_command(resumed.stdout, run_dir)
    full, cut = load_payload(full_dir), load_payload(run_dir)
    assert cut["counters"] == full["counters"]
    assert_same(cut["modules"], full["modules"], "modules")
    assert_same(cut["optimizers"], full["optimizers"], "optimizers")
    assert json.loads((run_dir / "eval.json").read_text()) == json.loads((full_dir / "eval.json").read_text())


def test_resume_of_a_finished_run_only_evaluates(finished, tmp_path):
    _, full_dir, _ = finished
    root = tmp_path / "runs"
    run_dir = root / "rlcourse_CartPole-v1" / "ppo" / "copy"
    shutil.copytree(full_dir, run_dir)
    (run_dir / "eval.json").unlink()
    before = (run_dir / "checkpoint.pt").read_bytes()
    events_before = sorted(path.name for path in run_dir.glob("events.out.tfevents.*"))
    result = invoke("train", "ppo", CARTPOLE, "--resume", run_dir, "--no-progress", "--eval-episodes", "3")
    assert "nothing left to train" in result.stdout
    assert_tensorboard_command(result.stdout, run_dir)
    assert (run_dir / "checkpoint.pt").read_bytes() == before
    assert sorted(path.name for path in run_dir.glob("events.out.tfevents.*")) == events_before, "no new events"
    assert json.loads((run_dir / "eval.json").read_text()) == json.loads((full_dir / "eval.json").read_text())


# --------------------------------------------------------------------------- presets
def test_preset_none_applies_no_preset(tmp_path):
    from rlcourse.agents import PPOConfig
    from rlcourse.config import load_preset

    root = tmp_path / "runs"
    invoke(
        "train",
        "ppo",
        CARTPOLE,
        "--preset",
        "none",
        "--total-steps",
        "64",
        "--num-envs",
        "2",
        "--hp",
        "n_steps=16",
        "--hp",
        "batch_size=32",
        "--hp",
        "n_epochs=1",
        "--eval-episodes",
        "1",
        "--no-progress",
        "--device",
        "cpu",
        "--runs-root",
        root,
        "--name",
        "bare",
    )
    config = read_config(root / "rlcourse_CartPole-v1" / "ppo" / "bare")
    assert config["preset"] is None
    hparams, defaults, preset = config["hyperparameters"], PPOConfig(), load_preset("ppo", CARTPOLE)
    assert (preset["gamma"], preset["gae_lambda"]) != (
        defaults.gamma,
        defaults.gae_lambda,
    )  # so the check below can fail
    assert (hparams["gamma"], hparams["gae_lambda"], hparams["learning_rate"]) == (
        defaults.gamma,
        defaults.gae_lambda,
        defaults.learning_rate,
    )


def test_a_named_preset_variant_is_applied_and_recorded(tmp_path):
    root = tmp_path / "runs"
    result = invoke(
        "train", "ppo", CARTPOLE, "--preset", "large_batch_4096", *TINY, "--runs-root", root, "--name", "big"
    )
    config = read_config(root / "rlcourse_CartPole-v1" / "ppo" / "big")
    assert config["preset"] == "large_batch_4096"
    hparams = config["hyperparameters"]
    assert (hparams["clip_range"], hparams["learning_rate"], hparams["anneal_clip_range"], hparams["gamma"]) == (
        0.1,
        0.003,
        False,
        0.99,
    )  # the variant's values, not the default preset's
    assert (hparams["n_steps"], hparams["batch_size"], hparams["n_epochs"]) == (16, 32, 1)  # --hp over the variant
    assert (config["num_envs"], config["total_timesteps"]) == (4, 512)  # flags over the variant
    assert "preset large_batch_4096" in result.stdout


# --------------------------------------------------------------------------- periodic evaluation and checkpoints
@pytest.fixture
def saves(monkeypatch):
    """``(file name, env step)`` of every checkpoint file the next runs write (checkpoint.pt and best.pt)."""
    from rlcourse.agents.base import Agent

    original, written = Agent.save, []

    def save(self, path):
        written.append((Path(path).name, self.num_timesteps))
        return original(self, path)

    monkeypatch.setattr(Agent, "save", save)
    return written


def test_eval_freq_and_checkpoint_freq(tmp_path, saves):
    root = tmp_path / "runs"
    result = invoke(
        "train",
        "ppo",
        CARTPOLE,
        *TINY,
        "--eval-freq",
        "128",
        "--checkpoint-freq",
        "192",
        "--runs-root",
        root,
        "--name",
        "cb",
    )
    run_dir = root / "rlcourse_CartPole-v1" / "ppo" / "cb"
    config = read_config(run_dir)
    assert (config["eval_freq"], config["eval_episodes"], config["checkpoint_freq"]) == (128, 3, 192)
    # Iterations are 4 envs × 16 steps: a checkpoint every 192 steps, then the final one.
    assert [step for name, step in saves if name == "checkpoint.pt"] == [192, 384, 512]
    events = scalar_events(run_dir)
    assert [event.step for event in events["eval/mean_ep_length"]] == [128, 256, 384, 512]
    rewards: dict[int, list[float]] = {}
    for event in events["eval/mean_reward"]:
        rewards.setdefault(event.step, []).append(event.value)
    assert sorted(rewards) == [128, 256, 384, 512] and len(rewards[512]) == 2  # the final evaluation is at 512 too
    periodic = {step: values[0] for step, values in rewards.items()}
    improved = [
        step
        for step in sorted(periodic)
        if periodic[step] > max([periodic[earlier] for earlier in periodic if earlier < step], default=-float("inf"))
    ]
    # best.pt is written when, and only when, the mean reward beats every earlier evaluation.
    assert [step for name, step in saves if name == "best.pt"] == improved and improved[0] == 128
    assert (run_dir / "best.pt").is_file() and str(run_dir / "best.pt") in result.stdout
    final = (run_dir / "eval.json").read_text()
    invoke("eval", run_dir / "best.pt", "--episodes", "3")  # the same evaluation seed as the callback's
    best_reward = json.loads((run_dir / "eval-best.json").read_text())["mean_reward"]
    assert best_reward == pytest.approx(max(periodic.values()), rel=1e-6)
    assert (run_dir / "eval.json").read_text() == final, "evaluating best.pt leaves the run's final evaluation alone"


def test_resume_rebuilds_the_callbacks(tmp_path, interrupt_at):
    root = tmp_path / "runs"
    flags = [*TINY, "--eval-freq", "128", "--checkpoint-freq", "64", "--runs-root", root]
    invoke("train", "ppo", CARTPOLE, *flags, "--name", "whole")
    interrupt_at(192)
    invoke("train", "ppo", CARTPOLE, *flags, "--name", "cut", expect=130)
    whole, cut = (root / "rlcourse_CartPole-v1" / "ppo" / name for name in ("whole", "cut"))
    state = load_payload(cut)["callbacks"]
    assert list(state) == ["0:EvalCallback"] and state["0:EvalCallback"]["last_eval_step"] == 128
    invoke("train", "--resume", cut, "--no-progress")  # no --eval-episodes: the run's own 3
    full, resumed = load_payload(whole), load_payload(cut)
    assert resumed["counters"] == full["counters"]
    assert_same(resumed["modules"], full["modules"], "modules")
    assert resumed["callbacks"] == full["callbacks"]
    assert [event.step for event in scalar_events(cut)["eval/mean_ep_length"]] == [128, 256, 384, 512]
    assert json.loads((cut / "eval.json").read_text()) == json.loads((whole / "eval.json").read_text())
    assert_same(
        torch.load(cut / "best.pt", weights_only=True)["modules"],
        torch.load(whole / "best.pt", weights_only=True)["modules"],
        "best.pt",
    )


def test_every_outcome_rate_is_printed_and_logged(tmp_path):
    from rlcourse.app.runs import describe_eval, log_eval
    from rlcourse.run_dir import RunDir

    result = {
        "mean_reward": 1.0,
        "std_reward": 0.5,
        "mean_length": 7.0,
        "n_episodes": 4,
        "win_rate": 0.5,
        "draw_rate": 0.25,
    }
    assert describe_eval(result) == (
        "1.00 ± 0.50 over 4 episodes (deterministic; mean length 7.0; win rate 50.0%; draw rate 25.0%)"
    )
    run = RunDir.claim(tmp_path / "run")
    log_eval(run, result, 10)
    logged = {tag: [(event.step, event.value) for event in events] for tag, events in scalar_events(run.path).items()}
    assert logged == {"eval/mean_reward": [(10, 1.0)], "eval/win_rate": [(10, 0.5)], "eval/draw_rate": [(10, 0.25)]}


# --------------------------------------------------------------------------- eval, list, help
def test_eval_prints_and_writes_eval_json(finished, tmp_path):
    _, full_dir, _ = finished
    run_dir = tmp_path / "run"
    shutil.copytree(full_dir, run_dir)
    (run_dir / "eval.json").unlink()
    result = invoke("eval", run_dir, "--episodes", "3", "--device", "cpu")
    written = json.loads((run_dir / "eval.json").read_text())
    assert written == json.loads((full_dir / "eval.json").read_text())  # same checkpoint, same evaluation seed
    assert f"{written['mean_reward']:.2f} ± {written['std_reward']:.2f} over 3 episodes" in result.stdout
    assert str(run_dir / "eval.json") in result.stdout
    invoke("eval", run_dir / "checkpoint.pt", "--episodes", "2")  # a checkpoint file works too
    assert json.loads((run_dir / "eval.json").read_text())["n_episodes"] == 2


def test_list_shows_algorithms_envs_presets_and_hyperparameters():
    import dataclasses

    from rlcourse.agents import PPOConfig

    out = invoke("list").stdout
    assert re.search(r"^\s+ppo\s", out, re.MULTILINE) and CARTPOLE in out
    assert re.search(r"^\s+ppo\s+.*rlcourse/CartPole-v1", out.split("Presets")[1], re.MULTILINE)
    assert re.search(
        r"^\s+rlcourse/CartPole-v1: default, large_batch_64, large_batch_1024, large_batch_4096, "
        r"large_batch_262144$",
        out.split("Presets")[1],
        re.MULTILINE,
    )
    out = invoke("list", "--hp", "ppo").stdout
    assert re.search(r"^\s+clip_range\s+0\.2\s+\S", out, re.MULTILINE)
    assert all(re.search(rf"^\s+{field.name}\s", out, re.MULTILINE) for field in dataclasses.fields(PPOConfig))


@pytest.mark.parametrize(
    "command", [[], ["train"], ["eval"], ["list"], ["bench"]], ids=lambda c: " ".join(c) or "rlcourse"
)
def test_help(command):
    result = invoke(*command, "--help")
    assert result.stdout.startswith(f"Usage: rlcourse {' '.join(command)}".rstrip())
    if not command:
        assert all(
            re.search(rf"^\s+{name}\s", result.stdout, re.MULTILINE) for name in ("train", "eval", "list", "bench")
        )


def test_plain_rlcourse_shows_help(capsys):
    assert main([]) == 0
    assert capsys.readouterr().out.startswith("Usage: rlcourse")


def test_help_imports_neither_sb3_nor_bench():
    code = (
        "import sys; from rlcourse.app.cli import main\n"
        "for args in (['--help'], ['train', '--help'], ['eval', '--help'], ['list', '--help']):\n"
        "    assert main(args) == 0, args\n"
        "heavy = [m for m in ('stable_baselines3', 'rlcourse.app.bench', 'rlcourse.agents') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


# --------------------------------------------------------------------------- bad input
class NotATensor:
    """Pickled into a checkpoint, it must be refused by weights_only loading."""


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _checkpoint(path: Path, payload) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(payload, bytes):
        path.write_bytes(payload)
    else:
        torch.save(payload, path)
    return path.parent


def _train(*extra):
    return lambda tmp, run: ["train", "ppo", CARTPOLE, "--runs-root", tmp / "runs", *extra]


NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")

BAD_INPUTS = [
    (
        "unknown-algo",
        lambda tmp, run: ["train", "nope_algo", CARTPOLE, "--runs-root", tmp / "runs"],
        ["nope_algo", "ppo"],
    ),
    (
        "unknown-env",
        lambda tmp, run: ["train", "ppo", "NoSuchEnv-v9", "--runs-root", tmp / "runs"],
        ["NoSuchEnv-v9", CARTPOLE],
    ),
    ("unknown-hp", _train("--hp", "no_such_hp=1"), ["no_such_hp"]),
    ("hp-bad-type", _train("--hp", "n_steps=many"), ["n_steps", "many"]),
    ("hp-out-of-range", _train("--hp", "gamma=1.5"), ["gamma"]),
    ("hp-bad-choice", _train("--hp", "objective=trpo"), ["objective", "trpo"]),
    ("hp-no-equals", _train("--hp", "n_steps"), ["n_steps", "key=value"]),
    ("hp-bad-yaml", _train("--hp", "net_arch=[64,"), ["net_arch"]),
    ("hp-is-a-flag", _train("--hp", "seed=3"), ["seed", "--seed"]),
    ("batch-does-not-divide", _train("--hp", "batch_size=7"), ["batch_size"]),
    ("num-envs-zero", _train("--num-envs", "0"), ["--num-envs"]),
    ("num-envs-negative-hp", _train("--hp", "num_envs=-2"), ["num_envs", "-2"]),
    ("total-steps-zero", _train("--total-steps", "0"), ["--total-steps"]),
    (
        "total-steps-config",
        lambda tmp, run: _train("--config", _write(tmp / "c.yml", "total_timesteps: -5\n"))(tmp, run),
        ["total_timesteps", "-5"],
    ),
    ("seed-negative", _train("--seed", "-1"), ["--seed"]),
    ("config-missing", _train("--config", "missing_cfg.yml"), ["missing_cfg.yml"]),
    (
        "config-not-a-mapping",
        lambda tmp, run: _train("--config", _write(tmp / "list.yml", "- a\n- b\n"))(tmp, run),
        ["list.yml"],
    ),
    pytest.param("cuda-absent", _train("--device", "cuda"), ["cuda"], marks=NO_CUDA, id="cuda-absent"),
    ("device-unknown", _train("--device", "tpu"), ["tpu"]),
    ("name-with-slash", _train("--name", "../x"), ["--name"]),
    (
        "run-exists",
        lambda tmp, run: ["train", "ppo", CARTPOLE, "--runs-root", run[0], "--name", "full"],
        ["already exists"],
    ),
    ("unknown-option", _train("--no-such-flag"), ["--no-such-flag"]),
    ("unknown-command", lambda tmp, run: ["frobnicate"], ["frobnicate"]),
    ("missing-env", lambda tmp, run: ["train", "ppo", "--runs-root", tmp / "runs"], ["ENV"]),
    ("eval-no-checkpoint", lambda tmp, run: ["eval", tmp], ["checkpoint"]),
    (
        "eval-truncated-checkpoint",
        lambda tmp, run: [
            "eval",
            _checkpoint(tmp / "t" / "checkpoint.pt", (run[1] / "checkpoint.pt").read_bytes()[:3000]),
        ],
        ["checkpoint.pt", "corrupt"],
    ),
    (
        "eval-garbage-checkpoint",
        lambda tmp, run: ["eval", _checkpoint(tmp / "g" / "checkpoint.pt", b"not a checkpoint")],
        ["checkpoint.pt"],
    ),
    (
        "eval-foreign-checkpoint",
        lambda tmp, run: ["eval", _checkpoint(tmp / "f" / "checkpoint.pt", {"weights": torch.zeros(2)})],
        ["not an rlcourse checkpoint"],
    ),
    (
        "eval-pickle-checkpoint",
        lambda tmp, run: ["eval", _checkpoint(tmp / "p" / "checkpoint.pt", {"x": NotATensor()})],
        ["weights_only"],
    ),
    ("eval-episodes-zero", lambda tmp, run: ["eval", run[1], "--episodes", "0"], ["--episodes"]),
    ("resume-not-a-folder", lambda tmp, run: ["train", "--resume", tmp / "nowhere"], ["nowhere"]),
    ("resume-no-config", lambda tmp, run: ["train", "--resume", tmp], ["config.yaml"]),
    (
        "resume-no-checkpoint",
        lambda tmp, run: [
            "train",
            "--resume",
            _write(tmp / "r" / "config.yaml", (run[1] / "config.yaml").read_text()).parent,
        ],
        ["checkpoint"],
    ),
    ("resume-with-hp", lambda tmp, run: ["train", "--resume", run[1], "--hp", "n_steps=8"], ["--hp"]),
    (
        "resume-with-run-flags",
        lambda tmp, run: [
            "train",
            "--resume",
            run[1],
            "--num-envs",
            "2",
            "--total-steps",
            "9",
            "--name",
            "x",
            "--config",
            tmp / "c.yml",
        ],
        ["--num-envs", "--total-steps", "--name", "--config"],
    ),
    (
        "resume-other-env",
        lambda tmp, run: ["train", "ppo", "CartPole-v1", "--resume", run[1]],
        ["CartPole-v1", CARTPOLE],
    ),
    ("list-unknown-algo", lambda tmp, run: ["list", "--hp", "nope_algo"], ["nope_algo"]),
    (
        "unknown-preset",
        _train("--preset", "large_batch_9"),
        ["'large_batch_9'", "default", "large_batch_64", "large_batch_4096", "large_batch_262144"],
    ),
    (
        "preset-for-an-env-without-presets",
        lambda tmp, run: ["train", "ppo", "Acrobot-v1", "--preset", "fast", "--runs-root", tmp / "runs"],
        ["'fast'", "Acrobot-v1", "none"],
    ),
    ("preset-in-hp", _train("--hp", "preset=large_batch_4096"), ["preset", "--preset"]),
    ("eval-freq-zero", _train("--eval-freq", "0"), ["--eval-freq"]),
    ("checkpoint-freq-zero", _train("--checkpoint-freq", "-5"), ["--checkpoint-freq"]),
    (
        "eval-freq-in-config",
        lambda tmp, run: _train("--config", _write(tmp / "e.yml", "eval_freq: 100\n"))(tmp, run),
        ["eval_freq", "--eval-freq"],
    ),
    (
        "resume-with-callback-flags",
        lambda tmp, run: [
            "train",
            "--resume",
            run[1],
            "--preset",
            "none",
            "--eval-freq",
            "64",
            "--checkpoint-freq",
            "64",
        ],
        ["--preset", "--eval-freq", "--checkpoint-freq"],
    ),
]


@pytest.mark.parametrize(
    "name,make_args,mentions",
    [case if hasattr(case, "marks") else pytest.param(*case, id=case[0]) for case in BAD_INPUTS],
)
def test_bad_input_exits_2_with_one_line(name, make_args, mentions, tmp_path, finished, capsys):
    args = [str(arg) for arg in make_args(tmp_path, finished[:2])]
    code = main(args)
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert code == 2, f"exit code {code}; stderr: {err}"
    assert len(lines) == 1 and lines[0].startswith("rlcourse: error: "), err
    for word in mentions:
        assert word in lines[0], f"{word!r} not in {lines[0]!r}"
    assert "Traceback" not in out + err and "Usage:" not in out + err
    assert not (tmp_path / "runs").exists(), "a bad input left a run folder behind"


def test_real_process_bad_input():
    bad = subprocess.run(
        [sys.executable, "-m", "rlcourse", "train", "ppo", CARTPOLE, "--hp", "no_such_hp=1"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == [bad.stderr.strip()] and bad.stderr.startswith("rlcourse: error: ")
    assert "no_such_hp" in bad.stderr and bad.stdout == ""


def test_run_folders_are_claimed_exclusively(tmp_path):
    from rlcourse.run_dir import RunDir

    first = RunDir.create(tmp_path, "rlcourse/CartPole-v1", "ppo", None, 0).path
    second = RunDir.create(tmp_path, "rlcourse/CartPole-v1", "ppo", None, 0).path  # same second, same seed
    assert first.is_dir() and second.is_dir() and first != second
