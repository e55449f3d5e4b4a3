"""Stable-Baselines3 on rlcourse's dialogue env: PPO through the batched VecEnv adapter, and sb3-contrib's
MaskablePPO with the env's action masks.

`rlcourse.sb3` hands SB3 the batched env itself (one batched step and one numpy transfer per SB3 step), so
SB3 trains at the speed of its own update rather than of eight Python envs. MaskablePPO comes with
sb3-contrib, which `pip install -e ".[dev]"` installs (or `pip install sb3-contrib`).

    python examples/sb3_dialogue.py
"""

import os

import torch
from sb3_contrib import MaskablePPO
from sb3_contrib.common.maskable.evaluation import evaluate_policy as evaluate_masked
from stable_baselines3 import PPO
from stable_baselines3.common.evaluation import evaluate_policy

import rlcourse
from rlcourse.sb3 import SB3VecEnv, make_sb3_vec_env

torch.set_num_threads(1)  # small networks: one thread is as fast, and keeps its speed beside busy processes
# Tests shorten SB3's budget the way they shorten rlcourse's (RLCOURSE_MAX_STEPS); unset, it is 50,000.
steps = min(50_000, int(os.environ.get("RLCOURSE_MAX_STEPS") or 50_000))

vec_env = make_sb3_vec_env("rlcourse/SlotFilling-v0", num_envs=8, seed=0)
model = PPO("MlpPolicy", vec_env, n_steps=256, batch_size=256, seed=0).learn(steps)
mean_return, _ = evaluate_policy(model, vec_env, n_eval_episodes=50)
print(f"SB3 PPO after {model.num_timesteps:,} turns: mean return {mean_return:.1f}")
model.save("runs/examples/sb3-ppo-dialogue")

masked_env = SB3VecEnv(rlcourse.make_vec("rlcourse/SlotFilling-v0", num_envs=8))
masked_env.seed(0)
masked = MaskablePPO("MlpPolicy", masked_env, n_steps=256, batch_size=256, seed=0).learn(steps)
mean_return, _ = evaluate_masked(masked, masked_env, n_eval_episodes=50)
print(f"MaskablePPO after {masked.num_timesteps:,} turns (with the env's action masks): mean return {mean_return:.1f}")
