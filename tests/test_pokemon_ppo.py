"""PPO on the battle env: it learns to beat the random opponent, and self-play fills its pool from env options alone."""

from __future__ import annotations

import pytest
import torch

import rlcourse
from rlcourse.agents import PPO
from rlcourse.app.cli import main
from rlcourse.envs.pokemon import self_play
from rlcourse.envs.pokemon.env import PokemonBattleVecEnv
from rlcourse.envs.pokemon.self_play import SelfPlayCallback
from rlcourse.wrappers import NormalizeObservation

ENV_ID = "rlcourse/PokemonBattle-v0"
SMALL = {"num_envs": 16, "device": "cpu", "seed": 0, "n_steps": 16, "batch_size": 128}
ITERATION = 16 * 16


def test_ppo_beats_the_random_opponent_within_a_small_budget():
    torch.manual_seed(0)
    agent = PPO(ENV_ID, num_envs=64, device="cpu", seed=0, batch_size=512)
    before = agent.evaluate(n_episodes=200)["win_rate"]
    agent.learn(total_timesteps=64 * 32 * 30)
    after = agent.evaluate(n_episodes=200)["win_rate"]
    # random play against random play wins about half of the battles
    assert after >= 0.68 and after > before + 0.1, (before, after)


def test_env_options_alone_fill_the_snapshot_pool_through_learn():
    agent = PPO(ENV_ID, **SMALL, env_kwargs={"opponent": "self", "self_play_every": 2, "self_play_pool": 2})
    env = agent.env.unwrapped
    (declared,) = env.training_callbacks()
    assert isinstance(declared, SelfPlayCallback) and env.training_callbacks() == [declared]  # the same object
    pool = env.snapshot_pool
    assert not pool.policies
    agent.learn(total_timesteps=ITERATION * 6)
    # one when training starts on the empty pool, then one after iterations 2, 4 and 6; the latest 2 kept
    assert declared.snapshots == 4 and len(pool.policies) == 2 and pool.size == 2
    masks, obs = env.side_action_masks(1), env.observe_side(1)
    actions = pool(obs, masks, torch.rand(16, 9))
    assert masks.gather(1, actions.unsqueeze(1)).all()
    assert env.options()["opponent"] == "self" and env.options()["self_play_every"] == 2  # JSON-safe options
    agent.learn(total_timesteps=ITERATION * 2, reset_num_timesteps=False)  # a second learn goes on, no fresh start
    assert declared.snapshots == 5


def test_a_self_play_callback_the_caller_passes_replaces_the_envs_own():
    agent = PPO(ENV_ID, **SMALL, env_kwargs={"opponent": "self", "self_play_every": 1, "self_play_pool": 8})
    (declared,) = agent.env.unwrapped.training_callbacks()
    mine = SelfPlayCallback(every=3, pool_size=8)
    agent.learn(total_timesteps=ITERATION * 6, callbacks=[mine])
    assert mine.snapshots == 3 and declared.snapshots == 0  # at the start, after iterations 3 and 6; not 1 + 6 more
    assert len(agent.env.unwrapped.snapshot_pool.policies) == 3


def test_wrappers_pass_the_envs_training_callbacks_through():
    env = rlcourse.make_vec(ENV_ID, 4, opponent="self")
    assert NormalizeObservation(env).training_callbacks() == env.training_callbacks() != []
    assert rlcourse.make_vec(ENV_ID, 4).training_callbacks() == []
    assert rlcourse.make_vec("rlcourse/CartPole-v1", 2).training_callbacks() == []


def test_the_cli_trains_by_self_play_from_env_options(tmp_path, monkeypatch, capsys):
    taken = []
    snapshot = SelfPlayCallback.snapshot
    monkeypatch.setattr(SelfPlayCallback, "snapshot", lambda callback: (taken.append(callback), snapshot(callback)))
    monkeypatch.chdir(tmp_path)
    args = ["train", "ppo", ENV_ID, "--device", "cpu", "--num-envs", "16", "--total-steps", str(ITERATION * 3)]
    args += ["--hp", "n_steps=16", "--hp", "batch_size=128", "--eval-episodes", "8", "--no-progress"]
    code = main([*args, "--env-opt", "opponent=self", "--env-opt", "self_play_every=1"])
    assert code == 0, capsys.readouterr().err
    assert len(taken) == 4 and len(set(map(id, taken))) == 1  # the start and every iteration, by the env's callback
    assert len(taken[0].pool.policies) == 4  # the default pool keeps 4
    config = next(tmp_path.rglob("config.yaml")).read_text()
    assert "self_play_every: 1" in config and "opponent: self" in config


@pytest.mark.parametrize(
    "options, words",
    [
        ({"self_play_every": 3}, ["self_play_every", "opponent='self' only"]),
        ({"opponent": "heuristic", "self_play_pool": 3}, ["self_play_pool", "opponent='self' only"]),
        ({"opponent": "self", "self_play_every": 0}, ["self_play_every", "positive integer"]),
        ({"opponent": "self", "self_play_pool": "many"}, ["self_play_pool", "positive integer"]),
    ],
)
def test_bad_self_play_options_are_clear_value_errors(options, words):
    with pytest.raises(ValueError) as error:
        rlcourse.make_vec(ENV_ID, 2, **options)
    assert all(word in str(error.value) for word in words), error.value


def test_the_cli_turns_a_bad_self_play_option_into_exit_code_2(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code = main(["train", "ppo", ENV_ID, "--device", "cpu", "--total-steps", "64", "--env-opt", "self_play_pool=2"])
    err = capsys.readouterr().err
    assert code == 2 and "self_play_pool" in err and "Traceback" not in err


def test_an_agent_is_an_opponent_as_its_deterministic_predict():
    frozen = PPO(ENV_ID, **SMALL)
    as_object = PokemonBattleVecEnv(16, opponent=frozen)
    as_function = PokemonBattleVecEnv(
        16, opponent=lambda obs, masks: frozen.predict(obs, deterministic=True, action_masks=masks)
    )
    assert not as_object.graph_safe
    generator = torch.Generator().manual_seed(0)
    obs_a, _ = as_object.reset(seed=1)
    obs_b, _ = as_function.reset(seed=1)
    for _ in range(40):
        actions = torch.where(as_object.action_masks(), torch.rand(16, 9, generator=generator), -1.0).argmax(-1)
        obs_a, reward_a, *_ = as_object.step(actions)
        obs_b, reward_b, *_ = as_function.step(actions)
        assert torch.equal(obs_a, obs_b) and torch.equal(reward_a, reward_b)
    with pytest.raises(ValueError, match="predict"):
        PokemonBattleVecEnv(2, opponent=object())


def test_the_self_play_module_refuses_another_env():
    agent = PPO(ENV_ID, **SMALL)
    with pytest.raises(ValueError, match="opponent='self'"):
        agent.learn(total_timesteps=ITERATION, callbacks=[self_play.SelfPlayCallback()])
