"""``rlcourse play`` for every env: per-step tables, dialogues for the text env, ``--video`` and bad inputs.

Runs are tiny (128 CartPole steps, 512 dialogue steps), trained once per module through the Python API.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pytest

from rlcourse.app.cli import main
from rlcourse.app.runs import load_run_agent
from rlcourse.evaluation import evaluate_policy

CARTPOLE = "rlcourse/CartPole-v1"
ROW = re.compile(r"^\s*(\d+)  (.+?)\s{2,}(\S+)\s+(-?\d+\.\d{3})\s+(-?\d+\.\d{3})(?:  (terminated|truncated))?$")
SUMMARY = re.compile(r"^return (-?\d+\.\d{3}) in (\d+) steps, (terminated|truncated|not ended after [\d,]+ steps);")


@pytest.fixture(scope="module", autouse=True)
def _one_thread(one_torch_thread):
    """Tiny networks on a busy 2-core machine: one intra-op thread."""


def _train(run_dir: Path, env_id: str, steps: int, num_envs: int, **hparams) -> Path:
    from rlcourse.agents import PPO

    agent = PPO(env_id, device="cpu", preset=None, num_envs=num_envs, seed=0, run_dir=run_dir, n_epochs=1, **hparams)
    agent.learn(steps)
    return run_dir


@pytest.fixture(scope="module")
def cartpole_run(tmp_path_factory) -> Path:
    return _train(tmp_path_factory.mktemp("play") / "cartpole", CARTPOLE, 128, 4, n_steps=16, batch_size=32)


@pytest.fixture(scope="module")
def dialogue_run(tmp_path_factory) -> Path:
    return _train(
        tmp_path_factory.mktemp("play") / "dialogue", "rlcourse/SlotFilling-v0", 512, 8, n_steps=16, batch_size=64
    )


def play(capsys, *args) -> tuple[int, str, list[str]]:
    """Run ``rlcourse play ARGS`` in-process: exit code, stdout, and the lines of stderr."""
    code = main(["play", *map(str, args), "--device", "cpu"])
    captured = capsys.readouterr()
    return code, captured.out, captured.err.strip().splitlines()


def parse_tables(out: str) -> list[dict]:
    """Each episode's rows (step, reward, return, end) and its closing line, from play's output."""
    episodes = []
    for block in re.split(r"\n--- episode \d+ ---\n", out)[1:]:
        lines = block.strip().splitlines()
        assert lines[0].split() == ["step", "observation", "action", "reward", "return", "end"], lines[0]
        rows = [ROW.match(line) for line in lines[1:-1]]
        assert all(rows), [line for line, row in zip(lines[1:-1], rows) if not row]
        summary = SUMMARY.match(lines[-1])
        assert summary, lines[-1]
        episodes.append(
            {
                "steps": [int(row.group(1)) for row in rows],
                "rewards": [float(row.group(4)) for row in rows],
                "returns": [float(row.group(5)) for row in rows],
                "ends": [row.group(6) for row in rows],
                "return": float(summary.group(1)),
                "length": int(summary.group(2)),
                "end": summary.group(3),
            }
        )
    return episodes


# ----------------------------------------------------------------------------- the per-step table
def test_play_prints_one_table_per_episode_that_adds_up(cartpole_run, capsys):
    code, out, err = play(capsys, cartpole_run, "--episodes", 3, "--seed", 5)
    assert code == 0 and err == []
    assert out.startswith(f"# ppo on {CARTPOLE} after 128 steps (deterministic actions, seed 5)")
    episodes = parse_tables(out)
    assert len(episodes) == 3
    for episode in episodes:
        assert episode["steps"] == list(range(1, episode["length"] + 1))
        assert sum(episode["rewards"]) == pytest.approx(episode["return"])
        assert episode["returns"] == pytest.approx(np.cumsum(episode["rewards"]))
        assert episode["end"] in ("terminated", "truncated")
        assert episode["ends"][-1] == episode["end"] and set(episode["ends"][:-1]) == {None}
    assert episodes[1] != episodes[0], "the episodes follow one another in the stream, they are not replays"


def test_the_table_shows_the_episode_evaluation_plays(cartpole_run, capsys):
    """The first episode is the one ``evaluate_policy`` plays on a fresh one-env copy with the same seed."""
    code, out, _ = play(capsys, cartpole_run, "--episodes", 1, "--seed", 11)
    assert code == 0
    (episode,) = parse_tables(out)
    agent = load_run_agent(cartpole_run, "cpu")
    env = agent.env.spawn(1)
    result = evaluate_policy(env, lambda obs, masks: agent.predict(obs, deterministic=True), seed=11)
    assert sum(episode["rewards"]) == pytest.approx(result["mean_reward"])
    assert episode["length"] == result["mean_length"]


def test_play_is_deterministic_by_default_and_samples_with_stochastic(cartpole_run, capsys):
    first = play(capsys, cartpole_run, "--episodes", 2)[1]
    assert play(capsys, cartpole_run, "--episodes", 2)[1] == first
    assert "seed 0)" in first.splitlines()[0], "the default seed is the run's"
    sampled = play(capsys, cartpole_run, "--episodes", 2, "--stochastic")[1]
    assert sampled.splitlines()[0].endswith("(stochastic actions, seed 0)")
    assert sampled.split("\n", 1)[1] != first.split("\n", 1)[1]


def test_play_a_gymnasium_id(tmp_path, capsys):
    """Any Gymnasium id the run was trained on (through make_vec) plays the same way."""
    run = _train(tmp_path / "gym", "CartPole-v1", 32, 2, n_steps=16, batch_size=32)
    code, out, _ = play(capsys, run, "--episodes", 1)
    assert code == 0 and out.startswith("# ppo on CartPole-v1 after 32 steps")
    (episode,) = parse_tables(out)
    assert sum(episode["rewards"]) == pytest.approx(episode["return"]) and episode["length"] > 0


def test_compact_numbers():
    from rlcourse.app.play import compact

    assert compact(np.array([0.5, -1.25, 3.0])) == "[ 0.500 -1.250  3.000]"
    assert compact(np.int64(1)) == "1"
    assert compact(np.arange(20.0)).count("...") == 1  # long vectors show their ends only
    assert compact(np.eye(16)[5]) == "one-hot 5 of 16"
    assert compact(np.zeros((2, 3))).startswith("(2, 3) [")


# ----------------------------------------------------------------------------- the text env
def test_play_on_the_dialogue_still_prints_transcripts(dialogue_run, capsys):
    code, out, _ = play(capsys, dialogue_run, "--episodes", 2)
    assert code == 0 and out.startswith("# ppo on rlcourse/SlotFilling-v0")
    parts = re.split(r"\n--- dialogue \d+ ---\n", out)
    assert len(parts) == 3 and "--- episode" not in out
    assert all(part.splitlines()[0].startswith("[goal: ") for part in parts[1:])


def test_video_of_the_dialogue_names_its_render_modes(dialogue_run, tmp_path, capsys):
    code, out, err = play(capsys, dialogue_run, "--video", tmp_path / "d.mp4")
    assert code == 2 and out == ""
    assert err == [
        "rlcourse: error: --video needs an env that draws frames (render mode rgb_array); "
        "rlcourse/SlotFilling-v0 has render modes: ansi"
    ]
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------- --video
@pytest.mark.parametrize("episodes", [1, 2])
def test_video_records_the_episodes_of_the_table(cartpole_run, tmp_path, capsys, episodes):
    import imageio_ffmpeg

    target = tmp_path / "cartpole.mp4"
    target.write_bytes(b"an old video")  # replaced
    code, out, err = play(capsys, cartpole_run, "--episodes", episodes, "--seed", 3, "--video", target)
    assert code == 0 and err == []
    assert target.stat().st_size > 1000 and target.read_bytes()[4:8] == b"ftyp"
    assert list(tmp_path.iterdir()) == [target], "RecordVideo's scratch folder is gone"
    table = play(capsys, cartpole_run, "--episodes", episodes, "--seed", 3)[1]
    assert out.startswith(table), "the video's episodes are the table's"
    played = parse_tables(table)
    frames = sum(episode["length"] + 1 for episode in played)  # each reset and each step
    noun = "episode" if episodes == 1 else "episodes"
    assert out.endswith(f"\n# video: {target} ({episodes} {noun}, {frames} frames)\n")
    reader = imageio_ffmpeg.read_frames(str(target))
    meta = next(reader)
    assert tuple(meta["size"]) == (600, 400) and meta["fps"] == 50
    assert sum(1 for _ in reader) == frames


def test_video_without_moviepy_says_how_to_install_it(cartpole_run, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "moviepy", None)  # `import moviepy` now raises ImportError
    code, out, err = play(capsys, cartpole_run, "--video", tmp_path / "x.mp4")
    assert code == 1 and out == ""
    assert err == ['rlcourse: error: --video needs moviepy, which is not installed: pip install "rlcourse[video]"']


def test_video_of_a_gymnasium_env_whose_renderer_is_missing(tmp_path, capsys):
    pytest.importorskip("moviepy")
    if _importable("pygame"):
        pytest.skip("pygame is installed, so Gymnasium's own renderer works")
    run = _train(tmp_path / "gym", "CartPole-v1", 32, 2, n_steps=16, batch_size=32)
    code, out, err = play(capsys, run, "--episodes", 1, "--video", tmp_path / "g.mp4")
    assert code == 1 and out == ""
    assert len(err) == 1 and err[0].startswith("rlcourse: error: CartPole-v1 cannot draw frames here: ")
    assert "pygame" in err[0] and not (tmp_path / "g.mp4").exists()


def _importable(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


# ----------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["{run}", "--video", "{tmp}/clip.avi"], "--video: '{tmp}/clip.avi' must be an .mp4 file"),
        (["{run}", "--video", "{tmp}/missing/clip.mp4"], "--video: the folder '{tmp}/missing' does not exist"),
        (
            ["{run}", "--video", "{tmp}/folder.mp4"],
            "--video: '{tmp}/folder.mp4' is a folder; give the path of an .mp4 file",
        ),
        (["{tmp}/no-such-run"], "no checkpoint at '{tmp}/no-such-run'"),
        (
            ["--expert", "rlcourse/SlotFilling-v0", "--video", "{tmp}/x.mp4"],
            "--video records a run's policy; it does not go with --expert",
        ),
        (["{run}", "--env-opt", "nlu=tcbot"], "--env-opt goes with --expert; a run plays on the env it was trained on"),
        (["{run}", "--episodes", "0"], None),
    ],
)
def test_bad_input_exits_2_with_one_line(cartpole_run, tmp_path, capsys, args, message):
    (tmp_path / "folder.mp4").mkdir()
    code, out, err = play(capsys, *[arg.format(run=cartpole_run, tmp=tmp_path) for arg in args])
    assert code == 2 and out == "" and len(err) == 1, err
    assert err[0].startswith("rlcourse: error: ")
    if message is not None:
        assert err[0] == "rlcourse: error: " + message.format(tmp=tmp_path)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["folder.mp4"], "nothing was written"


def test_play_leaves_the_run_untouched(cartpole_run, capsys):
    before = {path.name: path.read_bytes() for path in cartpole_run.iterdir() if path.is_file()}
    assert play(capsys, cartpole_run, "--episodes", 1)[0] == 0
    assert {path.name: path.read_bytes() for path in cartpole_run.iterdir() if path.is_file()} == before
