"""The `imitation` library's GAIL on CartPole-v1, run by the plugins suite in a Python of its own.

imitation 1.0.1 needs gymnasium 0.29 and Stable-Baselines3 2.2.1, which rlcourse's own environment does
not have, so ``rlcourse bench --suite plugins --imitation-python PY`` runs this file as a script with that
interpreter. It imports nothing from rlcourse. Usage::

    PY imitation_reference.py DEMOS.npz SEED MAX_STEPS TARGET

``DEMOS.npz`` holds the same expert episodes rlcourse's GAIL gets (``obs_<k>`` [T+1, 4] and ``acts_<k>`` [T]
per episode k). Settings: imitation's documented CartPole example (PPO learner with batch 64, lr 4e-4,
γ 0.95, 5 epochs; ``BasicRewardNet`` with ``RunningNorm``; 1024 demo transitions per discriminator batch,
a generator replay buffer of 512, 8 discriminator updates per round; 8 envs). After every round the learner
is evaluated deterministically on 10 episodes; the script prints one JSON line: the env steps and the
training seconds (evaluation excluded) when the mean first reached TARGET, and the last evaluation.
"""

from __future__ import annotations

import json
import sys
import time

import gymnasium as gym
import numpy as np
import torch
from imitation.algorithms.adversarial.gail import GAIL
from imitation.data.types import Trajectory
from imitation.data.wrappers import RolloutInfoWrapper
from imitation.rewards.reward_nets import BasicRewardNet
from imitation.util.networks import RunningNorm
from imitation.util.util import make_vec_env
from stable_baselines3 import PPO
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.ppo import MlpPolicy


def main(demos_path: str, seed: int, max_steps: int, target: float) -> None:
    torch.set_num_threads(1)
    data = np.load(demos_path)
    episodes = sorted(int(key.split("_")[1]) for key in data.files if key.startswith("obs_"))
    trajectories = [
        Trajectory(obs=data[f"obs_{k}"], acts=data[f"acts_{k}"], infos=None, terminal=True) for k in episodes
    ]
    env = make_vec_env(
        "CartPole-v1",
        rng=np.random.default_rng(seed),
        n_envs=8,
        post_wrappers=[lambda env, _: RolloutInfoWrapper(env)],
    )
    learner = PPO(
        env=env, policy=MlpPolicy, batch_size=64, ent_coef=0.0, learning_rate=0.0004, gamma=0.95, n_epochs=5, seed=seed
    )
    reward_net = BasicRewardNet(env.observation_space, env.action_space, normalize_input_layer=RunningNorm)
    trainer = GAIL(
        demonstrations=trajectories,
        demo_batch_size=1024,
        gen_replay_buffer_capacity=512,
        n_disc_updates_per_round=8,
        venv=env,
        gen_algo=learner,
        reward_net=reward_net,
        allow_variable_horizon=True,  # CartPole-v1's episodes end when the pole falls
    )
    eval_env = gym.make("CartPole-v1")
    steps, seconds, hit = 0, 0.0, None
    round_steps = learner.n_steps * env.num_envs
    mean_reward = 0.0
    while steps < max_steps:
        start = time.perf_counter()
        trainer.train(round_steps)
        seconds += time.perf_counter() - start
        steps += round_steps
        mean_reward, _ = evaluate_policy(learner, eval_env, n_eval_episodes=10, deterministic=True)
        if hit is None and mean_reward >= target:
            hit = {"steps": steps, "seconds": seconds}
            break
    print(json.dumps({"hit": hit, "steps": steps, "seconds": seconds, "final_mean_reward": float(mean_reward)}))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]))
