"""Train PPO on the flagship slot-filling dialogue with its shipped preset, then show what it learned.

The preset (rlcourse/presets/ppo.yml) applies by default, as it does for `rlcourse train`: 64 dialogues
at a time for 600,000 turns, about a minute or two on a 2-core CPU. The run's TensorBoard events and
checkpoint go to runs/examples/.

    python examples/train_dialogue.py
"""

import sys
import time

from rlcourse.agents import PPO

run_dir = f"runs/examples/dialogue-ppo-{time.strftime('%Y%m%d-%H%M%S')}"
agent = PPO("rlcourse/SlotFilling-v0", device="cpu", seed=0, run_dir=run_dir)
agent.learn(progress_bar=True)  # the preset's budget

result = agent.evaluate(n_episodes=200)
print(f"success rate {result['success_rate']:.3f} in {result['mean_length']:.1f} system turns on average")
print(agent.transcripts(1)[0])
agent.save(f"{run_dir}/final.pt")
print(f"TensorBoard: {sys.executable} -m tensorboard.main --logdir {run_dir}")  # works with or without the venv active
