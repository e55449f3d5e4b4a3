"""``rlcourse fit nlu``: it writes a run folder with the tagger, its scores and TensorBoard events, the tagger loads into
another process's env, and bad inputs are one line and exit code 2, leaving nothing behind."""

from __future__ import annotations

import json

import pytest
import yaml
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from rlcourse.app.cli import main
from rlcourse.envs.dialogue import SlotFillingVecEnv

pytestmark = pytest.mark.usefixtures("one_torch_thread")
TINY = [
    "--hp",
    "train_size=200",
    "--hp",
    "epochs=1",
    "--hp",
    "eval_size=40",
    "--hp",
    "hidden_dim=16",
    "--hp",
    "log_interval=2",
]


def test_fit_nlu_writes_a_run_whose_tagger_an_env_can_hear_through(tmp_path, capsys):
    code = main(
        ["fit", "nlu", "--domain", "train", *TINY, "--runs-root", str(tmp_path), "--name", "tiny", "--no-progress"]
    )
    out, err = capsys.readouterr()
    assert code == 0, err
    run = tmp_path / "nlu_train" / "bilstm_crf" / "tiny"
    assert f"saved {run / 'nlu.pt'}" in out and "nlu=learned:" in out
    scores = json.loads((run / "eval.json").read_text())
    assert {"heldout_values/slot_f1", "heldout_templates/slot_f1", "ambiguous/slot_f1"} <= set(scores)
    assert yaml.safe_load((run / "config.yaml").read_text())["train_size"] == 200
    events = EventAccumulator(str(run))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"train/loss", "eval/heldout_values/slot_f1", "eval/heldout_templates/slot_f1"} <= tags
    env = SlotFillingVecEnv(4, domain="train", nlu=f"learned:{run / 'nlu.pt'}", word_typo=0.02)
    obs, _ = env.reset(seed=0)
    assert obs.shape[0] == 4


@pytest.mark.parametrize(
    ("args", "mentions"),
    [
        (["--domain", "nope"], "unknown dialogue domain 'nope'"),
        (["--hp", "epoch=3"], "did you mean 'epochs'?"),
        (["--hp", "typo=2"], "typo must be below 1"),
        (["--preset", "big"], "unknown preset 'big' for nlu on movie; available: default, word_mlp, env"),
        (["--name", "a/b"], "bad run name"),
        (["--seed", "-1"], "-1"),
    ],
)
def test_bad_inputs_exit_2_with_one_line(tmp_path, capsys, args, mentions):
    code = main(["fit", "nlu", *args, "--runs-root", str(tmp_path / "runs"), "--no-progress"])
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("rlcourse: error: ") and mentions in lines[0], err
    assert "Traceback" not in out + err
    assert not (tmp_path / "runs").exists()


def test_an_unknown_plugin_exits_2(capsys):
    assert main(["fit", "tagger"]) == 2
    assert "No such command 'tagger'" in capsys.readouterr().err
