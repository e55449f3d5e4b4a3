"""The README and examples/ run as written: every code block and every script, in a fresh folder.

Only the budgets are smaller: ``RLCOURSE_MAX_STEPS`` caps every ``learn`` (the same code path, shorter), except
for the dialogue example, which runs its whole preset budget and must reach the success it promises.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
import yaml

from rlcourse.agents.base import MAX_STEPS_VARIABLE
from rlcourse.app.cli import main

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
BLOCKS = re.findall(r"^```(\w*)\n(.*?)^```", README, flags=re.MULTILINE | re.DOTALL)
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))
#: Steps of every capped ``learn`` (a few iterations of any preset).
SMOKE_STEPS = "512"
#: The two commands: set-up, then the part a test can run in this installation.
SETUP = 'python3 -m venv .venv && .venv/bin/pip install torch==2.13.0 && .venv/bin/pip install -e ".[dev]" && '


def blocks(language: str) -> list[str]:
    return [code for lang, code in BLOCKS if lang == language]


def bin_dir() -> Path:
    return Path(sys.executable).parent


def smoke_env() -> dict[str, str]:
    return {**os.environ, MAX_STEPS_VARIABLE: SMOKE_STEPS, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


#: What each example must print (its result, not only its exit code).
EXAMPLE_OUTPUT = {
    "cartpole_tour.py": r"one Gymnasium episode: return \d+",
    "custom_env.py": r"success rate \d\.\d\d, mean length",
    "chatbot_rlhf.py": r"PPO: KL to the language model -?\d\.\d{3} per token",
    "sb3_dialogue.py": r"MaskablePPO after [\d,]+ turns \(with the env's action masks\): mean return",
}


def test_every_block_has_a_known_language():
    assert {lang for lang, _ in BLOCKS} <= {"bash", "python", "yaml", ""}, {lang for lang, _ in BLOCKS}
    assert len(blocks("python")) >= 2 and len(blocks("bash")) >= 4


def test_the_test_command_is_what_ci_runs():
    test_command = next(code.strip() for code in blocks("bash") if "pytest" in code)
    assert test_command.startswith(SETUP)
    assert test_command in (ROOT / ".ci" / "run").read_text()


def test_the_training_command_prints_results_and_a_tensorboard_command_that_works(tmp_path):
    command = next(code.strip() for code in blocks("bash") if code.startswith(SETUP) and " train " in code)
    program, *args = shlex.split(command.removeprefix(SETUP))
    assert program == ".venv/bin/rlcourse" and args[:2] == ["train", "ppo"]
    # The venv is not active (its bin is not on PATH), as right after the README's one-liner.
    inactive = os.defpath
    done = subprocess.run(
        [str(bin_dir() / "rlcourse"), *args],
        cwd=tmp_path,
        env={**smoke_env(), "PATH": inactive},
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert re.search(r"success rate \d+\.\d%", out) and "mean length" in out, out
    assert "sample dialogues: TensorBoard's TEXT tab" in out
    tensorboard = shlex.split(out.strip().splitlines()[-1].removeprefix("TensorBoard: "))
    assert tensorboard[1] == "--logdir" and (tmp_path / tensorboard[2] / "config.yaml").is_file()
    assert_tensorboard_serves(tensorboard, tmp_path, inactive)


def assert_tensorboard_serves(command: list[str], cwd: Path, path: str) -> None:
    """Start ``command`` as a shell with this ``PATH`` finds it, wait for its URL, stop it."""
    program = shutil.which(command[0], path=path) if "/" not in command[0] else command[0]
    assert program is not None, f"{command[0]} is not on PATH={path}"
    process = subprocess.Popen(
        [program, *command[1:], "--port", "0"],
        cwd=cwd,
        env={**os.environ, "PATH": path},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline, seen = time.monotonic() + 120, b""
        while time.monotonic() < deadline and b"http://" not in seen:
            line = process.stdout.readline()
            if not line and process.poll() is not None:
                break
            seen += line
        assert b"http://" in seen, seen.decode(errors="replace")
    finally:
        process.kill()
        process.wait()


def test_the_command_line_tour_runs_in_order(tmp_path, tmp_path_factory, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(MAX_STEPS_VARIABLE, SMOKE_STEPS)
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path_factory.mktemp("minari")))  # `collect` writes there
    tour = next(code for code in blocks("bash") if code.startswith("rlcourse train"))
    lines = [line for line in tour.splitlines() if line.strip()]
    assert len(lines) >= 15
    for line in lines:
        words = shlex.split(line, comments=True)
        assert words[0] == "rlcourse", line
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the budget cap says it shortens each run
            assert main(words[1:]) == 0, line
    assert sorted(path.name for path in tmp_path.iterdir()) == ["runs"], "the tour writes only under runs/"
    assert (tmp_path / "runs" / "cartpole.mp4").stat().st_size > 0


def test_the_tensorboard_block_serves_the_runs_folder(tmp_path):
    (tmp_path / "runs").mkdir()
    (command,) = [code.strip() for code in blocks("bash") if code.startswith("tensorboard")]
    active = f"{bin_dir()}{os.pathsep}{os.defpath}"  # after `source .venv/bin/activate`, as the README says
    assert_tensorboard_serves(shlex.split(command), tmp_path, active)


def test_the_config_file_block_is_a_valid_config(tmp_path, monkeypatch):
    from rlcourse.app.settings import run_settings

    (config,) = blocks("yaml")
    path = tmp_path / "my_ppo.yml"
    path.write_text(config)
    run, hparams, _ = run_settings("ppo", "rlcourse/CartPole-v1", None, str(path), (), None, None)
    assert yaml.safe_load(config) == {**run, **hparams}
    assert run == {"num_envs": 16, "total_timesteps": 200_000} and hparams == {"n_steps": 256, "learning_rate": 0.0003}


@pytest.mark.parametrize("index", range(len(blocks("python"))))
def test_each_python_block_runs_as_written(index, tmp_path):
    code = blocks("python")[index]
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=smoke_env(), capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr
    assert {path.name for path in tmp_path.iterdir()} <= {"runs"}, "a README block writes only under runs/"


@pytest.mark.parametrize(
    "script", [path for path in EXAMPLES if path.name != "train_dialogue.py"], ids=lambda p: p.name
)
def test_each_example_runs_as_written(script, tmp_path):
    done = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, env=smoke_env(), capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr
    assert re.search(EXAMPLE_OUTPUT[script.name], done.stdout), done.stdout
    assert {path.name for path in tmp_path.iterdir()} <= {"runs"}, "an example writes only under runs/"


def test_the_dialogue_example_reaches_its_promised_success_within_the_preset_budget(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop(MAX_STEPS_VARIABLE, None)
    script = ROOT / "examples" / "train_dialogue.py"
    done = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=1200
    )
    assert done.returncode == 0, done.stderr
    success = float(re.search(r"success rate (\d\.\d+)", done.stdout).group(1))
    assert success >= 0.95, done.stdout
    assert [path.name for path in tmp_path.iterdir()] == ["runs"]


def test_every_example_is_in_the_readme():
    for script in EXAMPLES:
        assert script.name in README, f"{script.name} is not mentioned in the README"
