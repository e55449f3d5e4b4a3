"""``rlcourse tune``: search spaces, trials that train with the sampled values, pruning, best.yml, shared studies.

Budgets are tiny (PPO on CartPole for 1-2k steps, a handful of evaluation episodes): the tests check where values
go and what the study records, not how well the search does.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import optuna
import pytest
import yaml
from agent_checks import one_error_line

from rlcourse.agents import ALGOS
from rlcourse.app.cli import main
from rlcourse.app.tune import objective_metric, prepare, tune
from rlcourse.app.tune_space import Param, check_space, load_space, parse_space, shipped_spaces
from rlcourse.config import ConfigError, load_preset
from rlcourse.run_dir import RunDir

ROOT = Path(__file__).resolve().parents[1]
CARTPOLE = "rlcourse/CartPole-v1"
PPO_CONFIG = ALGOS["ppo"].config_class
#: Two hyperparameters, one of each kind that needs care: a log-uniform float and a list-valued choice.
SMALL_SPACE = {
    "learning_rate": {"type": "float", "low": 1e-4, "high": 3e-3, "log": True},
    "net_arch": {"type": "categorical", "choices": [[16], [32, 32]]},
}
#: A study's settings that keep a trial to about a second on one CPU thread.
TINY = dict(total_timesteps=1024, eval_freq=512, eval_episodes=4, device="cpu", threads=1, space=SMALL_SPACE)


@pytest.fixture(autouse=True)
def _quiet_optuna():
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    yield
    optuna.logging.set_verbosity(verbosity)


# --------------------------------------------------------------------------- search spaces
def test_every_shipped_space_fits_its_algorithm_and_a_preset():
    assert {"ppo", "a2c", "dqn", "reinforce"} <= set(shipped_spaces())
    for algo in shipped_spaces():
        config_class = ALGOS[algo].config_class
        space = load_space(algo, config_class)
        env = "Pendulum-v1" if algo == "ddpg" else CARTPOLE
        preset = {k: v for k, v in load_preset(algo, env).items() if k not in ("num_envs", "total_timesteps")}
        check_space(space, config_class, preset)  # raises on any end or choice the config refuses


def test_a_space_entry_becomes_the_draw_it_describes():
    space = parse_space(
        {
            "learning_rate": {"type": "float", "low": 1e-5, "high": 1e-2, "log": True},
            "n_epochs": {"type": "int", "low": 2, "high": 8},
            "net_arch": {"type": "categorical", "choices": [[64, 64], [256]]},
            "activation": {"type": "categorical", "choices": ["tanh", "relu"]},
        },
        PPO_CONFIG,
    )
    assert space["learning_rate"] == Param("learning_rate", "float", 1e-5, 1e-2, log=True)
    assert space["n_epochs"] == Param("n_epochs", "int", 2, 8)
    # Optuna stores scalar choices: a list is drawn as its JSON text and handed back as the list.
    trial = optuna.trial.FixedTrial({"learning_rate": 3e-4, "n_epochs": 5, "net_arch": "[256]", "activation": "relu"})
    drawn = {name: param.suggest(trial) for name, param in space.items()}
    assert drawn == {"learning_rate": 3e-4, "n_epochs": 5, "net_arch": [256], "activation": "relu"}


BAD_SPACES = [
    ("unknown-name", {"learning_rat": {"type": "float", "low": 0.1, "high": 1}}, "did you mean 'learning_rate'"),
    ("no-type", {"gamma": {"low": 0.9, "high": 0.99}}, "gamma must be a mapping with type"),
    ("bad-type", {"gamma": {"type": "uniform", "low": 0.9, "high": 0.99}}, "gamma must be a mapping with type"),
    ("not-a-mapping", {"gamma": [0.9, 0.99]}, "gamma must be a mapping"),
    ("unknown-key", {"gamma": {"type": "float", "low": 0.9, "high": 0.99, "step": 0.01}}, "unknown key 'step'"),
    ("missing-high", {"gamma": {"type": "float", "low": 0.9}}, "gamma: high must be a number"),
    ("int-of-floats", {"n_epochs": {"type": "int", "low": 1.5, "high": 4}}, "n_epochs: low must be an integer"),
    ("empty-range", {"gamma": {"type": "float", "low": 0.99, "high": 0.9}}, "gamma: low must be below high"),
    ("log-of-zero", {"ent_coef": {"type": "float", "low": 0.0, "high": 0.1, "log": True}}, "ent_coef: log: true"),
    ("no-choices", {"activation": {"type": "categorical", "choices": []}}, "activation: choices must be"),
    ("nested-choice", {"net_arch": {"type": "categorical", "choices": [[[64]]]}}, "net_arch: a choice must be"),
    ("duplicate-choice", {"n_steps": {"type": "categorical", "choices": [32, 32]}}, "n_steps: choices has a dup"),
    ("empty", {}, "must map hyperparameters"),
]


@pytest.mark.parametrize("data,message", [b[1:] for b in BAD_SPACES], ids=[b[0] for b in BAD_SPACES])
def test_a_malformed_space_is_an_error_that_names_the_entry(data, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        parse_space(data, PPO_CONFIG, "space.yml")


def test_every_end_and_choice_must_make_a_valid_config():
    words = parse_space({"learning_rate": {"type": "categorical", "choices": [0.001, "fast"]}}, PPO_CONFIG)
    with pytest.raises(ConfigError, match=r"learning_rate: bad value 'fast' for learning_rate: expected a number"):
        check_space(words, PPO_CONFIG, {})
    gamma = parse_space({"gamma": {"type": "float", "low": 0.9, "high": 1.5}}, PPO_CONFIG)
    with pytest.raises(ConfigError, match=r"gamma: gamma must be in \(0, 1\], got 1.5"):
        check_space(gamma, PPO_CONFIG, {})
    check_space(parse_space({"gamma": {"type": "float", "low": 0.9, "high": 1.0}}, PPO_CONFIG), PPO_CONFIG, {})


def test_the_objective_is_the_first_declared_outcome_rate_else_the_return():
    assert objective_metric(()) == "mean_reward"
    assert objective_metric(("success",)) == "success_rate"
    assert objective_metric(("win", "draw")) == "win_rate"


# --------------------------------------------------------------------------- a study
def test_trials_train_with_the_drawn_values_and_best_yml_reproduces_the_best_with_train(tmp_path, capsys):
    study = tune("ppo", CARTPOLE, 2, study_name="s", sampler="random", pruner="none", runs_root=tmp_path, **TINY)
    folder = tmp_path / "rlcourse_CartPole-v1" / "ppo" / "tune-s"
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.COMPLETE] * 2
    assert study.trials[0].params != study.trials[1].params
    preset = load_preset("ppo", CARTPOLE)
    for trial in study.trials:
        run = RunDir.open(folder / f"trial-{trial.number}")
        config = run.read_config()
        hparams = config["hyperparameters"]
        assert hparams["learning_rate"] == trial.params["learning_rate"]
        assert hparams["net_arch"] == json.loads(trial.params["net_arch"])
        assert (hparams["n_steps"], hparams["gamma"], config["num_envs"]) == (
            preset["n_steps"],
            preset["gamma"],
            preset["num_envs"],
        )  # what the space leaves alone comes from the preset
        assert config["total_timesteps"] == 1024 and run.event_files() and run.best.is_file()
        assert sorted(trial.intermediate_values) == [1, 2]  # one report per evaluation, at steps 512 and 1024
        assert trial.value == pytest.approx(run.read_eval()["mean_reward"])
    best = study.best_trial
    assert best.value == max(t.value for t in study.trials)

    best_yml = folder / "best.yml"
    assert yaml.safe_load(best_yml.read_text())["net_arch"] == json.loads(best.params["net_arch"])
    args = ["train", "ppo", CARTPOLE, "--config", best_yml, "--seed", "0", "--device", "cpu", "--eval-episodes", "4"]
    assert main([str(a) for a in [*args, "--runs-root", tmp_path / "again", "--name", "r", "--no-progress"]]) == 0
    capsys.readouterr()
    again = RunDir(tmp_path / "again" / "rlcourse_CartPole-v1" / "ppo" / "r")
    assert again.read_config()["hyperparameters"] == best.user_attrs["hyperparameters"]
    assert again.read_eval()["mean_reward"] == pytest.approx(best.value)  # the same seed reproduces the trial

    # A worker that joins the study with other settings is refused by name, before it trains anything.
    with pytest.raises(ConfigError, match="was started with total_timesteps 1024, not 2048"):
        prepare("ppo", CARTPOLE, study_name="s", runs_root=tmp_path, **{**TINY, "total_timesteps": 2048})
    assert sorted(p.name for p in folder.iterdir()) == ["best.yml", "study.db", "trial-0", "trial-1"]


class PruneEverything(optuna.pruners.BasePruner):
    def prune(self, study, trial) -> bool:
        return True


def test_a_pruned_trial_stops_training_at_the_report_that_pruned_it(tmp_path):
    study = tune(
        "ppo", CARTPOLE, 2, study_name="p", pruner=PruneEverything(), runs_root=tmp_path, **{**TINY, "eval_freq": 256}
    )
    folder = tmp_path / "rlcourse_CartPole-v1" / "ppo" / "tune-p"
    for trial in study.trials:
        assert trial.state == optuna.trial.TrialState.PRUNED
        assert list(trial.intermediate_values) == [1] and trial.user_attrs["pruned_at"] == 256
        run = RunDir(folder / f"trial-{trial.number}")
        assert not run.eval.exists()  # learn stopped through the callback, and no final evaluation followed
        assert ALGOS["ppo"].load(run.checkpoint, device="cpu").num_timesteps == 256  # of the trial's 1024
    assert not (folder / "best.yml").exists()  # nothing complete, so no best settings


def test_the_median_pruner_waits_for_five_trials_and_spares_the_first_third_of_each():
    from rlcourse.app.tune import _make_pruner

    study = optuna.create_study(direction="maximize", pruner=_make_pruner("median", 6))  # 6 evaluations a trial
    at_ten = dict.fromkeys(range(1, 7), 10.0)
    for _ in range(4):
        study.add_trial(optuna.trial.create_trial(value=10.0, intermediate_values=at_ten))
    assert _pruned_at(study, 0.0) is None  # 4 trials finished: too few to judge (it completes, as the fifth)
    study.add_trial(optuna.trial.create_trial(value=10.0, intermediate_values=at_ten))
    assert _pruned_at(study, 0.0) == 3  # below the median of 10, but evaluations 1-2 (a third of 6) are spared
    assert _pruned_at(study, 11.0) is None  # above the median: never pruned


def _pruned_at(study: optuna.Study, value: float) -> int | None:
    """The evaluation at which a trial that reports ``value`` at each of 6 evaluations is pruned (None: never)."""
    trial = study.ask()
    for step in range(1, 7):
        trial.report(value, step)
        if trial.should_prune():
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            return step
    study.tell(trial, value)
    return None


def test_a_combination_the_algorithm_refuses_fails_that_trial_with_the_reason(tmp_path):
    space = {"batch_size": {"type": "categorical", "choices": [4096]}}  # 8 envs x 32 steps = 256 per rollout
    study = tune("ppo", CARTPOLE, 1, runs_root=tmp_path, **{**TINY, "space": space})
    (trial,) = study.trials
    assert trial.state == optuna.trial.TrialState.FAIL
    assert "batch_size (4096) must divide n_steps * num_envs" in trial.user_attrs["failed_because"]


# --------------------------------------------------------------------------- the command's bad input
def _tune(*args):
    return lambda tmp: ["tune", *args, "--device", "cpu", "--runs-root", tmp / "runs", "--total-steps", "256"]


def _space_file(tmp: Path, text: str) -> Path:
    path = tmp / "space.yml"
    path.write_text(text)
    return path


BAD_INPUTS = [
    ("algorithm", _tune("pp0", CARTPOLE), "did you mean 'ppo'"),
    ("env", _tune("ppo", "rlcourse/Cartpole-v1"), "did you mean 'rlcourse/CartPole-v1'"),
    ("trials-0", _tune("ppo", CARTPOLE, "--trials", "0"), "'--trials': 0 is not in the range x>=1"),
    ("sampler", _tune("ppo", CARTPOLE, "--sampler", "grid"), "'grid' is not one of 'tpe', 'random'"),
    ("storage-not-a-url", _tune("ppo", CARTPOLE, "--storage", "study.db"), "bad storage 'study.db': expected"),
    ("storage-dialect", _tune("ppo", CARTPOLE, "--storage", "nosuchdb://h/x"), "cannot open storage 'nosuchdb://h/x'"),
    (
        "storage-unreachable",
        _tune("ppo", CARTPOLE, "--storage", "postgresql+psycopg://me:s3cret@127.0.0.1:9/db"),
        "cannot open storage 'postgresql+psycopg://me:***@127.0.0.1:9/db'",
    ),
    ("hp-unknown", _tune("ppo", CARTPOLE, "--hp", "gama=0.9"), "did you mean 'gamma'"),
    ("hp-flag-key", _tune("ppo", CARTPOLE, "--hp", "seed=3"), "'seed' is not a hyperparameter"),
    ("no-shipped-space", _tune("rainbow", CARTPOLE), "no search space ships for rainbow"),
    (
        "space-file-key",
        lambda tmp: _tune("ppo", CARTPOLE, "--space", _space_file(tmp, "clip_rnge: {type: float}\n"))(tmp),
        "unknown hyperparameter 'clip_rnge' for PPOConfig; did you mean 'clip_range'",
    ),
    (
        "space-file-entry",
        lambda tmp: _tune("ppo", CARTPOLE, "--space", _space_file(tmp, "gamma: {type: float, low: 0.9}\n"))(tmp),
        "gamma: high must be a number, got None",
    ),
    ("space-file-missing", _tune("ppo", CARTPOLE, "--space", "nope.yml"), "config file 'nope.yml' does not exist"),
]


@pytest.mark.parametrize("make_args,message", [b[1:] for b in BAD_INPUTS], ids=[b[0] for b in BAD_INPUTS])
def test_bad_input_is_one_line_and_exit_2_and_leaves_no_folder(make_args, message, tmp_path, capsys):
    line = one_error_line(make_args(tmp_path), capsys)
    assert message in line, line
    assert "s3cret" not in line
    assert not (tmp_path / "runs").exists()


def test_help_imports_no_optuna_and_tune_has_its_own_help(capsys):
    code = "import sys\nfrom rlcourse.app.cli import main\nmain(['--help'])\nprint('optuna' in sys.modules)\n"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT.parent, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "tune " in done.stdout, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "False", "rlcourse --help imported optuna"
    assert main(["tune", "--help"]) == 0
    out = capsys.readouterr().out
    assert all(flag in out for flag in ("--storage URL", "--study-name NAME", "--space FILE")), out


# --------------------------------------------------------------------------- workers sharing a study
#: Each worker's share of a shared study: two trials of 512 steps, evaluated twice each.
WORKER = dict(total_timesteps=512, eval_freq=256, eval_episodes=2, pruner="none", device="cpu", threads=1)


def _start_worker(tmp_path: Path, study: str, storage: str | None, seed: int) -> subprocess.Popen[str]:
    """``rlcourse tune`` in its own process, with :data:`WORKER`'s settings."""
    space = tmp_path / "space.yml"
    space.write_text(yaml.safe_dump(SMALL_SPACE))
    args = [sys.executable, "-m", "rlcourse", "tune", "ppo", CARTPOLE, "--trials", "2", "--study-name", study]
    args += ["--total-steps", "512", "--eval-freq", "256", "--eval-episodes", "2", "--pruner", "none"]
    args += ["--device", "cpu", "--space", str(space), "--runs-root", str(tmp_path / "runs"), "--seed", str(seed)]
    args += ["--storage", storage] if storage else []
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(args, cwd=tmp_path, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _finish(worker: subprocess.Popen[str]) -> None:
    out, err = worker.communicate(timeout=300)
    assert worker.returncode == 0, err
    assert "Best settings (trial " in out and "--config" in out, out


def _check_shared(study: optuna.Study) -> None:
    """The study holds both workers' trials, numbered across them, each with its own trial folder."""
    trials = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    assert sorted(t.number for t in trials) == [0, 1, 2, 3]
    assert sorted(t.user_attrs["seed"] for t in trials) == [0, 0, 1, 1]  # two trials from each worker
    for trial in trials:
        assert RunDir.open(trial.user_attrs["run_dir"]).read_config()["tune"]["trial"] == trial.number


def test_two_workers_share_a_sqlite_study(tmp_path):
    # This test's process is one worker (it has torch imported already) and `rlcourse tune` the other.
    other = _start_worker(tmp_path, "shared", None, seed=1)
    try:
        tune("ppo", CARTPOLE, 2, study_name="shared", runs_root=tmp_path / "runs", space=SMALL_SPACE, **WORKER)
    finally:
        _finish(other)
    db = tmp_path / "runs" / "rlcourse_CartPole-v1" / "ppo" / "tune-shared" / "study.db"
    _check_shared(optuna.load_study(study_name="shared", storage=f"sqlite:///{db}"))


def test_postgres_two_workers(tmp_path):
    url = os.environ.get("RLCOURSE_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("RLCOURSE_TEST_POSTGRES_URL is not set (.ci/run starts a local PostgreSQL server and sets it)")
    name = f"test-{uuid.uuid4().hex[:8]}"
    workers = [_start_worker(tmp_path, name, url, seed) for seed in (0, 1)]
    try:
        for worker in workers:
            _finish(worker)
        _check_shared(optuna.load_study(study_name=name, storage=url))
    finally:
        for worker in workers:
            worker.kill()  # only if an assertion left it running
        if name in optuna.get_all_study_names(storage=url):
            optuna.delete_study(study_name=name, storage=url)
