"""The Python API in one page: train with the preset, evaluate, save and load, then act in a single
Gymnasium env and in a batch of 4,096 envs.

    python examples/cartpole_tour.py
"""

import gymnasium as gym

import rlcourse
from rlcourse.agents import PPO
from rlcourse.callbacks import EvalCallback

agent = PPO("rlcourse/CartPole-v1", device="cpu", seed=0)  # RL Zoo's settings: rlcourse/presets/ppo.yml
agent.learn(total_timesteps=30_000, callbacks=[EvalCallback(eval_freq=10_000, n_eval_episodes=10)])
print(agent.evaluate(n_episodes=20))
agent.save("runs/examples/cartpole.pt")
agent = PPO.load("runs/examples/cartpole.pt", device="cpu")

env = gym.make("rlcourse/CartPole-v1")  # one env, numpy in and out (registered by `import rlcourse`)
obs, info = env.reset(seed=0)
episode_return, done = 0.0, False
while not done:
    obs, reward, terminated, truncated, info = env.step(agent.predict(obs, deterministic=True))
    episode_return, done = episode_return + reward, terminated or truncated
print(f"one Gymnasium episode: return {episode_return:.0f}")

vec = rlcourse.make_vec("rlcourse/CartPole-v1", num_envs=4096, device="cpu")  # batched torch tensors
obs, info = vec.reset(seed=0)
for _ in range(100):
    obs, reward, terminated, truncated, info = vec.step(agent.predict(obs))
print(f"4,096 envs x 100 steps: {int(terminated.sum())} envs ended on the last step")
