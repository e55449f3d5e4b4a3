"""PPO learns to beat the random opponent in a small CPU budget (the shipped preset, fewer steps)."""

from __future__ import annotations

import torch

from rlcourse.agents import PPO

ENV_ID = "rlcourse/PokemonBattle-v0"


def test_ppo_beats_the_random_opponent_within_a_small_budget():
    torch.manual_seed(0)
    agent = PPO(ENV_ID, num_envs=64, device="cpu", seed=0, batch_size=512)
    before = agent.evaluate(n_episodes=200)["win_rate"]
    agent.learn(total_timesteps=64 * 32 * 30)
    after = agent.evaluate(n_episodes=200)["win_rate"]
    # random play against random play wins about half of the battles
    assert after >= 0.68 and after > before + 0.1, (before, after)


def test_self_play_fills_the_snapshot_pool_and_battles_on():
    from rlcourse.envs.pokemon.self_play import SelfPlayCallback

    agent = PPO(ENV_ID, num_envs=16, device="cpu", seed=0, n_steps=16, batch_size=128, env_kwargs={"opponent": "self"})
    pool = agent.env.unwrapped.snapshot_pool
    assert pool is not None and not pool.policies
    agent.learn(total_timesteps=16 * 16 * 6, callbacks=[SelfPlayCallback(every=2, pool_size=2)])
    assert len(pool.policies) == 2, "one at the start and one every 2 iterations, the latest 2 kept"
    masks = agent.env.unwrapped.side_action_masks(1)
    obs = agent.env.unwrapped.observe_side(1)
    actions = pool(obs, masks, torch.rand(16, 9))
    assert masks.gather(1, actions.unsqueeze(1)).all()
    assert agent.env.options()["opponent"] == "self"  # JSON-safe: the pool is not an option
