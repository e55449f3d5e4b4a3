"""Rough edges of the CLI and the package (issue 10).

* every unknown name (algorithm, env, hyperparameter, env option, preset, command) gets a "did you mean",
  and Gymnasium's own advice on versions (``Taxi-v3`` -> ``Taxi-v4``) reaches the one-line error;
* a file that is no checkpoint is named as such, never with torch's advice to load it unsafely;
* Python errors name Python arguments (``device="cpu"``), the CLI names flags (``--device cpu``);
* Ctrl-C during start-up exits 130 with one line and no traceback;
* ``rlcourse --help`` imports no torch, and ``import rlcourse`` keeps its API and the Gymnasium ids;
* the source tree imports correctly when the package is installed (non-editable) beside it.
"""

from __future__ import annotations

import ast
import importlib
import io
import os
import pickle
import re
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
import warnings
import zipfile
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from agent_checks import one_error_line

from rlcourse.app.cli import RLCourseGroup, cli, main
from rlcourse.app.inputs import cli_wording
from rlcourse.checkpoint import FORMAT, FORMAT_VERSION, CheckpointError, load_checkpoint
from rlcourse.config import ConfigError, did_you_mean, load_preset, make_config
from rlcourse.registry import make_vec

ROOT = Path(__file__).resolve().parents[1]
CARTPOLE = "rlcourse/CartPole-v1"
#: torch's advice on a refused file, which rlcourse must never repeat.
UNSAFE_ADVICE = ("weights_only=False", "weights_only` set to `False", "add_safe_globals", "trusted source", "trust")


# --------------------------------------------------------------------------- did you mean
def test_did_you_mean_names_the_closest_choices_and_nothing_far_off():
    assert did_you_mean("gama", ["gamma", "gae_lambda", "n_steps"]) == "did you mean 'gamma'?"
    assert "'rlcourse/CartPole-v1'" in did_you_mean("rlcourse/cartpole-v1", ["rlcourse/CartPole-v1", "Pong"])
    assert did_you_mean("learning_rate", ["gamma", "n_steps"]) == ""


def _train(*args):
    return lambda tmp: ["train", *args, "--device", "cpu", "--runs-root", tmp / "runs"]


TYPOS = [
    ("algorithm", _train("pp0", CARTPOLE), "did you mean 'ppo'?"),
    ("algorithm-of-list", lambda tmp: ["list", "--hp", "dqm"], "did you mean 'dqn'"),
    ("rlcourse-env", _train("ppo", "rlcourse/Cartpole-v1"), "did you mean 'rlcourse/CartPole-v1'"),
    ("gymnasium-env", _train("ppo", "Pendulm-v1"), "did you mean 'Pendulum-v1'"),
    ("hyperparameter", _train("ppo", CARTPOLE, "--hp", "gama=0.9"), "did you mean 'gamma'?"),
    (
        "config-file-key",
        lambda tmp: _train("ppo", CARTPOLE, "--config", _write(tmp / "c.yml", "clip_rnge: 0.1\n"))(tmp),
        "did you mean 'clip_range'",
    ),
    ("preset", _train("ppo", CARTPOLE, "--preset", "large_batch_409"), "did you mean 'large_batch_4096'"),
    ("env-option", _train("ppo", CARTPOLE, "--env-opt", "dtipe=float64"), "did you mean 'dtype'?"),
    ("dialogue-env-option", _train("ppo", "rlcourse/SlotFilling-v0", "--env-opt", "nlus=tcbot"), "'nlu'"),
    ("gymnasium-env-option", _train("ppo", "Pendulum-v1", "--env-opt", "G=9.0"), "did you mean 'g'?"),
    ("command", lambda tmp: ["trian", "ppo"], "Did you mean 'train'?"),
    ("command-eager", lambda tmp: ["evl"], "Did you mean 'eval'?"),
]


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.mark.parametrize("make_args,hint", [t[1:] for t in TYPOS], ids=[t[0] for t in TYPOS])
def test_a_typo_gets_a_did_you_mean(make_args, hint, tmp_path, capsys):
    line = one_error_line(make_args(tmp_path), capsys)
    assert hint in line, line
    assert not (tmp_path / "runs").exists()


def test_gymnasium_version_advice_reaches_the_cli(tmp_path, capsys):
    if "Taxi-v4" not in gym.registry:
        pytest.skip("this Gymnasium has no Taxi-v4 to advise")
    line = one_error_line(_train("ppo", "Taxi-v3")(tmp_path), capsys)
    assert "Taxi-v3" in line and "deprecated" in line and "Taxi-v4" in line, line


@pytest.mark.parametrize("env_id", ["FrozenLake-v0", "CartPole-v9", "rlcourse/CartPole-v0"])
def test_gymnasium_version_advice_is_passed_on_word_for_word(env_id):
    with pytest.raises(gym.error.Error) as gymnasium_says:
        gym.spec(env_id)
    assert isinstance(gymnasium_says.value, (gym.error.DeprecatedEnv, gym.error.VersionNotFound))
    with pytest.raises(ValueError) as error:
        make_vec(env_id)
    assert str(gymnasium_says.value) in str(error.value)


def test_the_python_api_gives_the_same_hints():
    from rlcourse.agents import PPO, PPOConfig

    with pytest.raises(ConfigError, match="did you mean 'gamma'"):
        make_config(PPOConfig, {"gama": 0.9})
    with pytest.raises(ConfigError, match="did you mean 'default'"):
        load_preset("ppo", CARTPOLE, "defualt")
    with pytest.raises(ValueError, match="did you mean 'rlcourse/CartPole-v1'"):
        make_vec("rlcourse/Cartpole-v1")
    with pytest.raises(ValueError, match="did you mean 'dtype'"):
        make_vec(CARTPOLE, 2, dtipe=torch.float64)
    with pytest.raises(ValueError, match="did you mean 'gamma'"):
        PPO(CARTPOLE, num_envs=2, device="cpu", gama=0.9)
    if "Taxi-v4" in gym.registry:
        with pytest.raises(ValueError, match="Please use `Taxi-v4` instead"):
            PPO("Taxi-v3", num_envs=2, device="cpu")


def test_an_unknown_env_without_a_close_name_lists_the_rlcourse_envs():
    with pytest.raises(ValueError) as error:
        make_vec("NoSuchThingAtAll-v3")
    assert "did you mean" not in str(error.value) and CARTPOLE in str(error.value)


# --------------------------------------------------------------------------- checkpoints
class _Custom:
    def __init__(self):
        self.weights = torch.zeros(2)


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def _zip_archive(path: Path) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("notes.txt", "not torch")


FOREIGN_FILES = {
    "text": (lambda p: p.write_text("hello world\n"), "not an rlcourse checkpoint"),
    "empty": (lambda p: p.write_bytes(b""), "corrupt or truncated"),
    "random-bytes": (
        lambda p: p.write_bytes(np.random.default_rng(1).integers(0, 256, 2048, dtype=np.uint8).tobytes()),
        "not an rlcourse checkpoint",
    ),
    "pickle-protocol-2": (lambda p: p.write_bytes(pickle.dumps({"a": 1}, protocol=2)), "not an rlcourse checkpoint"),
    "pickle-protocol-4": (lambda p: p.write_bytes(pickle.dumps({"f": print}, protocol=4)), "not an rlcourse"),
    "numpy-array": (lambda p: p.write_bytes(_npy(np.zeros(3))), "not an rlcourse checkpoint"),
    "torch-with-object": (
        lambda p: torch.save({"format": FORMAT, "format_version": FORMAT_VERSION, "obj": _Custom()}, p),
        r"objects other than tensors and plain data \([\w.]*_Custom\)",
    ),
    "torch-with-numpy": (lambda p: torch.save({"x": np.arange(3)}, p), "objects other than tensors"),
    "torch-foreign-dict": (lambda p: torch.save({"weights": torch.zeros(2)}, p), "not an rlcourse checkpoint"),
    "zip-archive": (_zip_archive, "not a readable checkpoint"),
}


def _torch_message(path: Path) -> str:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.load(path, weights_only=True)
    except Exception as error:
        return str(error)
    return ""


@pytest.mark.parametrize("kind", FOREIGN_FILES)
def test_a_foreign_file_is_named_without_advice_to_load_it_unsafely(kind, tmp_path):
    write, problem = FOREIGN_FILES[kind]
    path = tmp_path / "some_file.pt"
    write(path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(CheckpointError) as error:
            load_checkpoint(path)
    message = str(error.value)
    assert "some_file.pt" in message and re.search(problem, message), message
    assert not [advice for advice in UNSAFE_ADVICE if advice in message], message
    assert not [w for w in caught if "pickle protocol" in str(w.message)], "torch's warning leaked out"
    if kind in ("pickle-protocol-4", "torch-with-object"):  # control: torch itself does give that advice here
        assert "weights_only" in _torch_message(path) and "False" in _torch_message(path)


@pytest.mark.parametrize("kind", ["pickle-protocol-4", "torch-with-object", "text"])
def test_eval_of_a_foreign_file_is_one_line_without_unsafe_advice(kind, tmp_path, capsys):
    path = tmp_path / "not_a_run.pt"
    FOREIGN_FILES[kind][0](path)
    line = one_error_line(["eval", path, "--device", "cpu"], capsys)
    assert "not_a_run.pt" in line and re.search(FOREIGN_FILES[kind][1], line), line
    assert not [advice for advice in UNSAFE_ADVICE if advice in line], line


# --------------------------------------------------------------------------- Python words vs CLI words
@pytest.fixture
def no_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


def test_python_errors_name_python_arguments(no_cuda):
    from rlcourse.agents import PPO
    from rlcourse.device import resolve_device

    for make in (lambda: resolve_device("cuda"), lambda: PPO(CARTPOLE, num_envs=2, device="cuda")):
        with pytest.raises(ValueError) as error:
            make()
        assert 'device="cpu"' in str(error.value) and "--device" not in str(error.value), error.value


@pytest.mark.parametrize("command", [["train", "ppo", CARTPOLE], ["eval", "some_run"], ["play", "--expert", CARTPOLE]])
def test_cli_errors_name_flags(command, no_cuda, tmp_path, capsys):
    line = one_error_line(
        [*command, "--device", "cuda", *(["--runs-root", tmp_path] if "train" in command else [])], capsys
    )
    assert "--device cpu" in line and 'device="cpu"' not in line, line


def test_cli_wording_turns_python_arguments_into_flags_and_nothing_else():
    assert cli_wording("use device='cpu', or A2C") == "use --device cpu, or A2C"
    assert cli_wording('(use device="cpu", or device="auto")') == "(use --device cpu, or --device auto)"
    assert cli_wording("preset='large' and seed=3, num_envs=4") == "--preset large and --seed 3, --num-envs 4"
    untouched = "kl_min must be in [0, kl_max), got kl_min=0.5, kl_max=0.1 on device cuda"
    assert cli_wording(untouched) == untouched


def _raised_strings(path: Path) -> list[tuple[int, str]]:
    """The string pieces of every ``raise`` and ``warn(...)`` in a source file, with their line numbers."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        is_warning = isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) == "warn"
        if isinstance(node, ast.Raise) or is_warning:
            for piece in ast.walk(node):
                if isinstance(piece, ast.Constant) and isinstance(piece.value, str):
                    found.append((piece.lineno, piece.value))
    return found


def test_library_errors_name_no_cli_flag():
    library = [p for p in (ROOT / "rlcourse").glob("*.py") if p.name not in ("cli.py", "__main__.py")]
    library += [*(ROOT / "agents").rglob("*.py"), *(ROOT / "envs").rglob("*.py"), *(ROOT / "supervised").rglob("*.py")]
    flags = [
        f"{path.relative_to(ROOT)}:{line}: {text!r}"
        for path in library
        for line, text in _raised_strings(path)
        if re.search(r"(?<![\w-])--[a-z]", text)
    ]
    assert not flags, "the Python API's errors must name Python arguments, not CLI flags:\n" + "\n".join(flags)


# --------------------------------------------------------------------------- Ctrl-C
def _wait_for_torch(process: subprocess.Popen, timeout: float = 120) -> None:
    """Poll until the process maps torch's library: it is inside a command, importing torch (start-up)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if "libtorch" in Path(f"/proc/{process.pid}/maps").read_text():
                return
        except OSError:
            pass
        time.sleep(0.005)
    process.kill()
    pytest.fail(f"the process never loaded torch (exit code {process.poll()})")


def _interrupt(command: list[str], after: float, cwd: Path) -> tuple[int, str, str]:
    process = subprocess.Popen(command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for_torch(process)
        time.sleep(after)
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=180)
    finally:
        if process.poll() is None:
            process.kill()
    return process.returncode, out, err


needs_proc = pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="polls /proc/PID/maps (Linux)")


@needs_proc
@pytest.mark.parametrize("after", [0.0, 0.8], ids=["importing-torch", "later-in-start-up"])
def test_ctrl_c_during_training_start_up_exits_130_without_a_traceback(after, tmp_path):
    command = [sys.executable, "-m", "rlcourse", "train", "ppo", CARTPOLE, "--device", "cpu", "--no-progress"]
    command += ["--total-steps", "100000000", "--runs-root", str(tmp_path / "runs")]
    code, out, err = _interrupt(command, after, tmp_path)
    assert code == 128 + signal.SIGINT, f"exit code {code}\nstdout: {out}\nstderr: {err}"
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    if "Training ppo" in out:  # start-up was over: training's own handler saved a checkpoint and said so
        assert "stopped by SIGINT" in err, err
    else:
        assert err.strip().splitlines()[-1] == "rlcourse: error: interrupted", err


@needs_proc
def test_ctrl_c_during_list_exits_130_without_a_traceback(tmp_path):
    script = Path(sys.executable).with_name("rlcourse")
    command = [str(script), "list"] if script.exists() else [sys.executable, "-m", "rlcourse", "list"]
    code, out, err = _interrupt(command, 0.0, tmp_path)
    assert code == 128 + signal.SIGINT, f"exit code {code}\nstdout: {out}\nstderr: {err}"
    assert "Traceback" not in err and err.strip().splitlines() == ["rlcourse: error: interrupted"], err


def test_a_keyboard_interrupt_anywhere_in_main_is_one_line(monkeypatch, capsys):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "main", interrupted)  # before click's own handling even starts
    assert main(["list"]) == 130
    assert capsys.readouterr().err.strip().splitlines() == ["rlcourse: error: interrupted"]


# --------------------------------------------------------------------------- lazy imports
HEAVY = ("torch", "stable_baselines3", "tensorboard", "rlcourse.agents", "rlcourse.app.train", "rlcourse.app.play")


def _python(code: str, cwd: Path = ROOT, flags: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *flags, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=300)


def test_help_and_version_import_no_torch():
    code = (
        "import sys\n"
        "from rlcourse.app.cli import main\n"
        "assert main(['--help']) == 0 and main(['--version']) == 0\n"
        f"print([name for name in {HEAVY!r} if name in sys.modules])\n"
    )
    done = _python(code, cwd=ROOT.parent)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]", f"--help imported {done.stdout}"


def test_lazy_commands_show_their_own_short_help_and_full_help_when_asked(capsys):
    for name, (module, attribute, short_help) in RLCourseGroup.lazy_commands.items():
        command = getattr(importlib.import_module(module), attribute)
        assert command.get_short_help_str(limit=1000) == short_help, f"update lazy_commands[{name!r}]"
    assert main(["train", "--help"]) == 0
    out = capsys.readouterr().out
    assert all(flag in out for flag in ("--hp KEY=VALUE", "--env-opt KEY=VALUE", "--resume RUN_DIR", "--preset"))


def test_import_rlcourse_keeps_its_api_and_registers_the_gymnasium_ids():
    code = (
        "import sys, rlcourse\n"
        "import gymnasium as gym\n"
        "assert 'rlcourse/CartPole-v1' in gym.registry\n"
        "assert rlcourse.__version__ and callable(rlcourse.make_vec) and callable(rlcourse.register_env)\n"
        "assert 'rlcourse/CartPole-v1' in rlcourse.list_envs()\n"
        "env = gym.make('rlcourse/CartPole-v1'); env.reset(seed=0); env.step(env.action_space.sample())\n"
        "vec = rlcourse.make_vec('rlcourse/CartPole-v1', 2)\n"
        "assert isinstance(vec, rlcourse.TensorVecEnv) and rlcourse.resolve_device('cpu').type == 'cpu'\n"
        "from rlcourse import *\n"
        "assert TensorVecEnv is rlcourse.TensorVecEnv\n"
        "print('ok')\n"
    )
    done = _python(code, cwd=ROOT.parent)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


# --------------------------------------------------------------------------- the source tree beside an installed copy
def _copy_sources(destination: Path) -> Path:
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for folder in ("rlcourse", "envs", "agents", "supervised"):
        shutil.copytree(ROOT / folder, destination / folder, ignore=ignore)
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        if (ROOT / name).exists():
            shutil.copy(ROOT / name, destination / name)
    return destination


@pytest.fixture(scope="module")
def installed_beside_sources(tmp_path_factory):
    """A non-editable ``pip install`` of a copy of the repository, and that copy (the source tree)."""
    sources = _copy_sources(tmp_path_factory.mktemp("repo"))
    target = tmp_path_factory.mktemp("site")
    pip = [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index", "-q"]
    done = subprocess.run(
        [*pip, "--target", str(target), str(sources)],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
    )
    if done.returncode != 0:
        pytest.skip(f"cannot build a non-editable install here: {done.stderr.strip().splitlines()[-1:]}")
    shutil.rmtree(sources / "build", ignore_errors=True)
    return sources, target


def _run_as_an_installed_user(code: str, cwd: Path, site: Path) -> subprocess.CompletedProcess[str]:
    """``python -c`` in ``cwd`` with the package installed (non-editable) in ``site``.

    ``-S`` keeps this checkout's editable-install finder (a .pth file) out, so imports resolve as on a
    user's machine; ``sys.path[0]`` stays the current folder, as ``python -c`` makes it.
    """
    prelude = f"import sys; sys.path[1:1] = [{str(site)!r}]; sys.path.append({sysconfig.get_path('purelib')!r})\n"
    return _python(prelude + code, cwd=cwd, flags=("-S",))


IMPORT_EVERYTHING = (
    "import rlcourse.envs, rlcourse.agents, rlcourse.supervised\n"
    "import gymnasium as gym\n"
    "gym.make('rlcourse/CartPole-v1').reset(seed=0)\n"
    "rlcourse.make_vec('rlcourse/SlotFilling-v0', 2).reset(seed=0)  # reads its domain files from envs/\n"
    "print(rlcourse.__file__); print(rlcourse.envs.__file__); print(rlcourse.agents.__file__)\n"
)


def test_the_source_tree_imports_beside_a_non_editable_install(installed_beside_sources):
    sources, site = installed_beside_sources
    done = _run_as_an_installed_user(IMPORT_EVERYTHING, cwd=sources, site=site)
    assert done.returncode == 0, done.stderr
    package, envs, agents = done.stdout.strip().splitlines()[-3:]
    # The source rlcourse/ shadows the installed one, and its mapped packages come from the same tree.
    assert package == str(sources / "rlcourse" / "__init__.py")
    assert (envs, agents) == (str(sources / "envs" / "__init__.py"), str(sources / "agents" / "__init__.py"))


def test_the_installed_copy_is_used_from_elsewhere(installed_beside_sources, tmp_path):
    _, site = installed_beside_sources
    done = _run_as_an_installed_user(IMPORT_EVERYTHING, cwd=tmp_path, site=site)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-2] == str(site / "rlcourse" / "envs" / "__init__.py")


def test_without_the_source_tree_finder_the_installed_layout_fails_as_reported(installed_beside_sources):
    """The control: this setting does reproduce the bug (the finder is what fixes it)."""
    sources, site = installed_beside_sources
    code = (
        "import rlcourse\n"
        "sys.meta_path[:] = [f for f in sys.meta_path if type(f).__name__ != '_SourceTreeFinder']\n"
        "import rlcourse.agents\n"
    )
    done = _run_as_an_installed_user(code, cwd=sources, site=site)
    assert done.returncode != 0 and "No module named 'rlcourse.agents'" in done.stderr, done.stderr
