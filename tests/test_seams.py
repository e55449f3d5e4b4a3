"""The seams every new env and plug-in uses: declared outcomes, core callbacks and their batches, run folders,
and several agents in one process."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pytest
import torch
from agent_checks import scalar_tags as event_tags
from gymnasium import spaces

import rlcourse
from rlcourse.agents import A2C, DQN, PPO
from rlcourse.callbacks import Callback, CallbackList, EvalCallback, RolloutBatch
from rlcourse.evaluation import evaluate_policy
from rlcourse.run_dir import RunDir, RunDirError
from rlcourse.vec_env import TensorVecEnv


class WinDrawEnv(TensorVecEnv):
    """A one-step game declaring the outcomes ``win`` and ``draw``: action 0 wins (+1), 1 draws (0), 2 loses (-1)."""

    single_observation_space = spaces.Box(0.0, 1.0, (1,), dtype=np.float32)
    single_action_space = spaces.Discrete(3)
    outcome_keys: ClassVar[tuple[str, ...]] = ("win", "draw")

    def _reset_where(self, mask):
        pass

    def _transition(self, actions):
        win, draw = actions == 0, actions == 1
        reward = win.float() - (actions == 2).float()
        terminated = torch.ones(self.num_envs, dtype=torch.bool, device=self.device)
        return reward, terminated, torch.zeros_like(terminated), {"win": win, "draw": draw}

    def _observe(self):
        return torch.ones(self.num_envs, 1, device=self.device)


def test_evaluation_returns_every_declared_outcome_rate():
    env = WinDrawEnv(4)
    by_env = torch.tensor([0, 1, 0, 2])  # two wins, a draw and a loss
    result = evaluate_policy(env, lambda obs, masks: by_env, seed=0)
    assert result == {
        "mean_reward": 0.25,
        "std_reward": pytest.approx(np.std([1, 0, 1, -1])),
        "mean_length": 1.0,
        "n_episodes": 4,
        "win_rate": 0.5,
        "draw_rate": 0.25,
    }


def test_a_new_outcome_is_logged_and_evaluated_with_no_agent_change(tmp_path):
    agent = PPO(
        WinDrawEnv(8),
        device="cpu",
        seed=0,
        run_dir=tmp_path / "run",
        n_steps=8,
        batch_size=32,
        n_epochs=4,
        learning_rate=3e-3,
    )
    agent.learn(4096)
    assert {"rollout/win_rate", "rollout/draw_rate"} <= set(agent.last_log)
    assert agent.last_log["rollout/win_rate"] > 0.8, "PPO learns to win a one-step game"
    result = agent.evaluate(n_episodes=10)
    assert result["win_rate"] == 1.0 and result["draw_rate"] == 0.0
    tags = event_tags(tmp_path / "run")
    assert {"rollout/win_rate", "rollout/draw_rate"} <= tags
    # The HPARAMS tab's metrics: the final return, length and every outcome rate.
    assert {
        "hparam/rollout/ep_rew_mean",
        "hparam/rollout/ep_len_mean",
        "hparam/rollout/win_rate",
        "hparam/rollout/draw_rate",
    } <= tags


def test_the_dialogue_env_reports_success_through_its_declaration():
    agent = PPO("rlcourse/SlotFilling-v0", num_envs=4, device="cpu", seed=0, n_steps=32, batch_size=64)
    agent.learn(256)
    assert "rollout/success_rate" in agent.last_log
    assert "success_rate" in agent.evaluate(n_episodes=4)


# ----------------------------------------------------------------------------- the rollout batch
class CountingEnv(TensorVecEnv):
    """obs = [step in episode]; episodes last 3 steps (the third truncates on odd envs, terminates on even ones);
    reward = 10·step + action. Every step it records what it saw and did, for the batch to be checked against."""

    single_observation_space = spaces.Box(0.0, 10.0, (1,), dtype=np.float32)
    single_action_space = spaces.Discrete(2)
    state_names = ("t",)

    def __init__(self, num_envs, device="cpu"):
        super().__init__(num_envs, device)
        self.t = torch.zeros(num_envs, device=self.device)
        self.log: list[tuple[torch.Tensor, ...]] = []

    def _reset_where(self, mask):
        self.t.masked_fill_(mask, 0.0)

    def _transition(self, actions):
        obs = self._observe().clone()
        reward = 10.0 * self.t + actions.float()
        self.t += 1
        ends = self.t >= 3
        even = torch.arange(self.num_envs, device=self.device) % 2 == 0
        terminated, truncated = ends & even, ends & ~even
        self.log.append((obs, actions.clone(), reward, self._observe().clone(), terminated))
        return reward, terminated, truncated, {}

    def _observe(self):
        return self.t[:, None].clone()


class KeepBatches(Callback):
    needs_batch = True

    def __init__(self):
        self.batches: list[RolloutBatch] = []

    def on_rollout_end(self, batch):
        self.batches.append(RolloutBatch(**{k: None if v is None else v.clone() for k, v in vars(batch).items()}))


@pytest.mark.parametrize(
    "make",
    [
        lambda env: PPO(env, device="cpu", seed=0, n_steps=4, batch_size=4, n_epochs=1),
        lambda env: DQN(env, device="cpu", seed=0, train_freq=4, learning_starts=0, batch_size=4, gradient_steps=1),
    ],
    ids=["on-policy", "off-policy"],
)
def test_the_callback_batch_carries_the_exact_transitions(make):
    env = CountingEnv(2)
    agent = make(env)
    keep = KeepBatches()
    agent.learn(16, callbacks=[keep])  # two iterations of 4 steps in 2 envs
    assert len(keep.batches) == 2
    steps = [torch.stack(column) for column in zip(*env.log)]  # [8, 2, ...] in the order the env saw them
    obs, actions, rewards, next_obs, terminated = steps
    batch = {
        k: torch.cat([getattr(b, k) for b in keep.batches])
        for k in ("obs", "actions", "rewards", "next_obs", "terminated", "dones")
    }
    assert torch.equal(batch["obs"], obs) and torch.equal(batch["actions"], actions)
    assert torch.equal(batch["rewards"], rewards), "the env's own rewards, not the bootstrapped ones"
    assert torch.equal(batch["next_obs"], next_obs), "the true next state: the final observation where an episode ends"
    assert torch.equal(batch["terminated"], terminated)
    expected_dones = torch.tensor([[False, False], [False, False], [True, True]] * 3)[:8]
    assert torch.equal(batch["dones"], expected_dones)
    assert batch["next_obs"][2].tolist() == [[3.0], [3.0]], "hand-checked: the third step ends at t = 3"


def test_without_a_batch_callback_no_batch_is_kept():
    agent = PPO("rlcourse/CartPole-v1", num_envs=2, device="cpu", seed=0, n_steps=8, batch_size=16)
    seen = []
    agent.learn(32, callbacks=[lambda a: seen.append(a.batch) and None])
    assert seen == [None, None] and agent.batch is None


def test_a_callback_returning_false_stops_training_and_every_event_runs():
    events = []

    class Recorder(Callback):
        def on_training_start(self, run):
            super().on_training_start(run)
            events.append("start")

        def on_rollout_end(self, batch):
            events.append("rollout")
            return self.run.num_timesteps < 48

        def on_log(self, stats):
            events.append("log" if "time/fps" in stats else "bad log")

        def on_training_end(self):
            events.append("end")

    agent = PPO("rlcourse/CartPole-v1", num_envs=2, device="cpu", seed=0, n_steps=8, batch_size=16)
    agent.learn(1000, callbacks=[Recorder()])
    assert agent.num_timesteps == 48
    assert events == ["start"] + ["log", "rollout"] * 3 + ["end"]


def test_a_bad_callback_is_a_type_error():
    with pytest.raises(TypeError, match="a callback must be"):
        CallbackList([42])


# ----------------------------------------------------------------------------- EvalCallback
class ScriptedRun:
    """A stand-in agent whose evaluations return the scripted mean rewards, recording what is saved."""

    algo = "scripted"
    total_timesteps = 10_000

    def __init__(self, tmp_path, rewards):
        self.run_dir, self.num_timesteps, self.rewards = RunDir.claim(tmp_path / "run"), 0, list(rewards)
        self.saved, self.logged = [], []

    def evaluate(self, n_episodes=10, deterministic=True, seed=None):
        return {
            "mean_reward": self.rewards.pop(0),
            "std_reward": 0.0,
            "mean_length": 5.0,
            "n_episodes": n_episodes,
            "win_rate": 0.5,
        }

    def save(self, path):
        self.saved.append((self.num_timesteps, path))
        return path

    def save_checkpoint(self):
        return self.save(self.run_dir.checkpoint)

    def log_scalars(self, values):
        self.logged.append(dict(values))


def test_eval_callback_writes_best_when_and_only_when_the_evaluation_improves(tmp_path):
    run = ScriptedRun(tmp_path, [1.0, 3.0, 3.0, 2.0, 5.0])
    callback = EvalCallback(eval_freq=100, n_eval_episodes=4)
    callback.on_training_start(run)
    for step in range(50, 551, 50):  # evaluations at 100, 200, 300, 400, 500
        run.num_timesteps = step
        callback.on_rollout_end(None)
    assert run.saved == [(100, run.run_dir.best), (200, run.run_dir.best), (500, run.run_dir.best)]
    assert [entry["eval/mean_reward"] for entry in run.logged] == [1.0, 3.0, 3.0, 2.0, 5.0]
    assert run.logged[0] == {"eval/mean_reward": 1.0, "eval/mean_ep_length": 5.0, "eval/win_rate": 0.5}
    assert callback.state_dict() == {"best_mean_reward": 5.0, "last_eval_step": 500}


def test_eval_callback_bad_frequency():
    with pytest.raises(ValueError, match="eval_freq must be a positive integer"):
        EvalCallback(eval_freq=0)


def test_eval_callback_in_training_keeps_best_and_logs_eval(tmp_path):
    agent = PPO(
        "rlcourse/CartPole-v1", num_envs=4, device="cpu", seed=0, run_dir=tmp_path / "run", n_steps=32, batch_size=64
    )
    callback = EvalCallback(eval_freq=256, n_eval_episodes=3)
    agent.learn(1024, callbacks=[callback])
    assert agent.run_dir.best.is_file() and agent.run_dir.checkpoint.is_file()
    best = PPO.load(agent.run_dir.best, device="cpu")
    assert best.num_timesteps in range(256, 1025, 256) and best.num_timesteps % 256 == 0
    assert {"eval/mean_reward", "eval/mean_ep_length"} <= event_tags(tmp_path / "run")
    # The best so far is part of the checkpoint, so a resumed run only writes best.pt for a better policy.
    resumed = PPO.load(agent.run_dir.checkpoint, device="cpu", run_dir=agent.run_dir)
    again = EvalCallback(eval_freq=256, n_eval_episodes=3)
    best_bytes = agent.run_dir.best.read_bytes()
    resumed.learn(1, reset_num_timesteps=False, callbacks=[again])
    assert again.state_dict() == callback.state_dict(), "the best reward and the last evaluation step carry over"
    assert agent.run_dir.best.read_bytes() == best_bytes, "no evaluation was due, so best.pt is untouched"
    # A fresh count (reset_num_timesteps=True) starts its callbacks afresh: nothing leaks from the loaded run.
    fresh = EvalCallback(eval_freq=128, n_eval_episodes=2)
    resumed.learn(256, callbacks=[fresh])
    assert fresh.last_eval_step == 256 and fresh.last_result is not None


# ----------------------------------------------------------------------------- run folders
def test_the_python_api_refuses_a_non_empty_run_folder(tmp_path):
    run = tmp_path / "run"
    PPO("rlcourse/CartPole-v1", num_envs=2, device="cpu", run_dir=run, n_steps=8, batch_size=16, n_epochs=1).learn(16)
    with pytest.raises(RunDirError, match="already exists and is not empty"):
        PPO("rlcourse/CartPole-v1", num_envs=2, device="cpu", run_dir=run, preset=None)
    (tmp_path / "empty").mkdir()
    assert (
        PPO("rlcourse/CartPole-v1", num_envs=2, device="cpu", run_dir=tmp_path / "empty", preset=None).run_dir.path
        == tmp_path / "empty"
    )
    assert issubclass(RunDirError, ValueError)


def test_run_dir_names_and_claims(tmp_path):
    first = RunDir.create(tmp_path, "rlcourse/CartPole-v1", "ppo", seed=3)
    assert first.path.parent == tmp_path / "rlcourse_CartPole-v1" / "ppo" and first.path.name.startswith("seed3-")
    (first / "x").write_text("taken")
    second = RunDir.create(tmp_path, "rlcourse/CartPole-v1", "ppo", seed=3)
    assert second.path != first.path  # same second: a -1 suffix; later: another time stamp
    named = RunDir.create(tmp_path, "rlcourse/CartPole-v1", "ppo", name="mine")
    (named / "events.out.tfevents.1").write_text("")
    with pytest.raises(RunDirError, match="not empty"):
        RunDir.create(tmp_path, "rlcourse/CartPole-v1", "ppo", name="mine")
    with pytest.raises(RunDirError, match="one folder name"):
        RunDir.create(tmp_path, "rlcourse/CartPole-v1", "ppo", name="a/b")
    assert named.runs_root("rlcourse/CartPole-v1", "ppo") == tmp_path
    assert [p.name for p in named.event_files()] == ["events.out.tfevents.1"]
    with pytest.raises(RunDirError, match="not an rlcourse run folder"):
        RunDir.open(named.path)


# ----------------------------------------------------------------------------- several agents in one process
def _weights(agent):
    return torch.cat([p.detach().flatten() for p in agent._modules()["policy"].parameters()])


def test_agents_trained_one_after_another_in_one_process_match_fresh_ones():
    def ppo():
        agent = PPO("rlcourse/CartPole-v1", num_envs=4, device="cpu", seed=1, n_steps=16, batch_size=32)
        return agent.learn(256)

    alone = _weights(ppo())
    A2C("rlcourse/CartPole-v1", num_envs=4, device="cpu", seed=2).learn(200)
    DQN("rlcourse/CartPole-v1", num_envs=2, device="cpu", seed=3, learning_starts=32, train_freq=4).learn(128)
    assert torch.equal(_weights(ppo()), alone), "an earlier agent must not change a later one's run"


def test_rlcourse_exposes_the_seams():
    assert rlcourse.TensorVecEnv is TensorVecEnv
    assert rlcourse.make_vec("rlcourse/SlotFilling-v0", 2).outcome_keys == ("success",)
    assert rlcourse.make_vec("rlcourse/CartPole-v1", 2).outcome_keys == ()


# ----------------------------------------------------------------------------- checkpoints from before the seams
@pytest.mark.parametrize(
    "name,expected",
    [
        ("ppo-cartpole-before-seams.pt", {"mean_reward": 77.25, "mean_length": 77.25, "n_episodes": 4}),
        (
            "ppo-slotfilling-before-seams.pt",
            {"mean_reward": -39.0, "mean_length": 20.0, "n_episodes": 4, "success_rate": 0.0},
        ),
    ],
)
def test_a_checkpoint_written_before_the_seams_loads_and_plays_the_same(name, expected):
    """Written by rlcourse 0.1.0 before outcome keys, callbacks and run folders (tests/data); its evaluation then."""
    from pathlib import Path

    agent = PPO.load(Path(__file__).parent / "data" / name, device="cpu")
    assert agent.num_timesteps == 64
    result = agent.evaluate(4)
    assert {key: result[key] for key in expected} == expected
    agent.learn(32, reset_num_timesteps=False)  # and it trains on
    assert agent.num_timesteps == 96


# ----------------------------------------------------------------------------- wrapper statistics in checkpoints
@pytest.mark.parametrize("env_id", ["rlcourse/CartPole-v1", "CartPole-v1"])
def test_normalisation_statistics_load_with_another_num_envs(tmp_path, env_id):
    """Learned statistics hold for any batch size (and device); Gymnasium envs, which cannot be restored, keep them too."""
    from rlcourse.wrappers import NormalizeObservation

    agent = PPO(NormalizeObservation(rlcourse.make_vec(env_id, 4)), device="cpu", n_steps=16, batch_size=32)
    agent.learn(128)
    agent.save(tmp_path / "c.pt")
    loaded = PPO.load(
        tmp_path / "c.pt",
        device="cpu",
        env=NormalizeObservation(rlcourse.make_vec(env_id, 1)),
        num_envs=1,
        batch_size=16,
    )
    assert float(loaded.env.rms.count) == float(agent.env.rms.count) > 100
    assert torch.equal(loaded.env.rms.mean, agent.env.rms.mean) and torch.equal(loaded.env.rms.var, agent.env.rms.var)
    obs = torch.ones(3, 4)
    assert torch.equal(loaded.predict(obs), agent.predict(obs))
    with pytest.raises(rlcourse.checkpoint.CheckpointError, match="statistics"):
        PPO.load(tmp_path / "c.pt", device="cpu", env=rlcourse.make_vec(env_id, 4))


def test_no_garbage_is_collected_inside_a_capture_block():
    import gc

    from rlcourse.agents.graphs import no_garbage_collection

    assert gc.isenabled()
    with no_garbage_collection():
        assert not gc.isenabled()
    assert gc.isenabled()
    gc.disable()
    try:
        with no_garbage_collection():
            pass
        assert not gc.isenabled(), "a collector that was off stays off"
    finally:
        gc.enable()


# ----------------------------------------------------------------------------- bad input at the seams
def test_an_undeclared_or_non_bool_outcome_is_a_clear_error():
    class Broken(WinDrawEnv):
        def _transition(self, actions):
            reward, terminated, truncated, info = super()._transition(actions)
            return reward, terminated, truncated, {"win": info["win"].float(), "draw": info["draw"]}

    env = Broken(2)
    env.reset(seed=0)
    with pytest.raises(ValueError, match="declares the outcome 'win'"):
        env.step(torch.zeros(2, dtype=torch.int64))


def test_an_evaluation_that_never_ends_gives_up_with_a_clear_error():
    class Endless(CountingEnv):
        def _transition(self, actions):
            reward, *_ = super()._transition(actions)
            self.t.zero_()
            never = torch.zeros(self.num_envs, dtype=torch.bool)
            return reward, never, never, {}

    with pytest.raises(ValueError, match="had not ended after 64 steps"):
        evaluate_policy(Endless(2), lambda obs, masks: torch.zeros(2, dtype=torch.int64), max_steps=64)


def test_env_options_reach_gymnasium_and_bad_ones_are_value_errors():
    env = rlcourse.make_vec("Pendulum-v1", 2, g=9.0)
    assert env.options() == {"env_kwargs": {"g": 9.0}} and env.spawn(1).options() == env.options()
    with pytest.raises(ValueError, match="does not take the options"):
        rlcourse.make_vec("Pendulum-v1", 2, gravity=9.0)
    with pytest.raises(ValueError, match="bad option value for rlcourse/CartPole-v1"):
        rlcourse.make_vec("rlcourse/CartPole-v1", 2, dtype="float16")


def test_a3c_refuses_a_wrapped_env_and_takes_its_preset():
    from rlcourse.agents import A3C
    from rlcourse.config import load_preset
    from rlcourse.wrappers import NormalizeObservation

    with pytest.raises(ValueError, match="would train unwrapped"):
        A3C(NormalizeObservation(rlcourse.make_vec("rlcourse/CartPole-v1", 2)), device="cpu")
    assert A3C("rlcourse/CartPole-v1", device="cpu", preset=None).num_envs == 1
    preset = load_preset("a3c", "rlcourse/CartPole-v1")
    assert A3C("rlcourse/CartPole-v1", device="cpu").num_envs == preset["num_envs"]  # the default preset applies


def test_a_broken_env_plugin_warns_and_rlcourse_still_works(monkeypatch):
    from importlib import metadata

    from rlcourse import registry

    class BrokenEntryPoint:
        name, value = "broken", "broken_pkg:register"

        def load(self):
            raise ImportError("no module named broken_pkg")

    monkeypatch.setattr(metadata, "entry_points", lambda group: [BrokenEntryPoint()])
    with pytest.warns(RuntimeWarning, match="'broken' .* failed to register: no module named broken_pkg"):
        registry.load_env_plugins()
    assert "rlcourse/CartPole-v1" in rlcourse.list_envs()


def test_a_path_run_dir_is_claimed_only_once_the_agent_is_built(tmp_path):
    with pytest.raises(ValueError, match="batch_size"):
        PPO("rlcourse/CartPole-v1", num_envs=2, device="cpu", run_dir=tmp_path / "run", n_steps=8, batch_size=5)
    assert not (tmp_path / "run").exists()


def test_a_preset_with_env_options_applies_them_through_the_api(monkeypatch):
    import rlcourse.agents.base

    preset = {"num_envs": 2, "total_timesteps": 64, "env_kwargs": {"nlu": "tcbot"}, "n_steps": 16, "batch_size": 32}
    monkeypatch.setattr(rlcourse.agents.base, "load_preset", lambda algo, env_id, name="default": dict(preset))
    agent = PPO("rlcourse/SlotFilling-v0", device="cpu", preset="default")
    assert agent.env.options()["nlu"] == "tcbot" and agent.num_envs == 2 and agent.preset_timesteps == 64
    explicit = PPO("rlcourse/SlotFilling-v0", device="cpu", preset="default", env_kwargs={"nlu": "clean"})
    assert explicit.env.options()["nlu"] == "clean", "an explicit option overrides the preset's"
