"""The chatbot's three steps in Python: MLE, a learned preference reward, then PPO with a KL penalty (RLHF-style).

1. fit the GRU language model on the corpus by maximum likelihood (behaviour cloning on human replies);
2. fit a Bradley–Terry preference model on (human reply, worse reply) pairs: a dull reply, another
   conversation's reply, or one the language model samples;
3. fine-tune PPO from the language model on the env's rule rewards plus the preference score, with the
   per-token KL penalty to the language model that the preset configures.

A few minutes on a 2-core CPU (the epochs and steps below are small; raise them for better replies).

    python examples/chatbot_rlhf.py
"""

import tempfile
from pathlib import Path

import torch

import rlcourse
from rlcourse.agents import PPO
from rlcourse.envs.chatbot.corpus import observation_layout
from rlcourse.supervised import ModelReward
from rlcourse.supervised.chat.language_model import ChatLanguageModel, fit_mle
from rlcourse.supervised.chat.preference import PreferenceRewardModel, fit_preference, mixed_preference_pairs

torch.manual_seed(0)
env = rlcourse.make_vec("rlcourse/Chatbot-v0", num_envs=64, device="cpu")
corpus = env.corpus

lm = ChatLanguageModel.for_env(env, {"embed_dim": 128, "hidden_dim": 256})  # the PPO preset's GRU; env's tokenizer
train, valid = (observation_layout(*corpus.split(split)) for split in ("train", "valid"))
fit_mle(lm, train, valid, epochs=1)
print(f"MLE: validation perplexity {lm.perplexity(valid):.1f}")

generator = torch.Generator().manual_seed(0)
pairs = {
    split: mixed_preference_pairs(
        *corpus.split(split), generator, env.dull_replies, lambda c: lm.sample(c, corpus.reply_len, generator)
    )
    for split in ("train", "valid")
}
preference = PreferenceRewardModel.for_env(env)
history = fit_preference(preference, pairs["train"], pairs["valid"], epochs=1)
print(f"preference model: held-out pairwise accuracy {max(history['valid_accuracy']):.3f}")

with tempfile.TemporaryDirectory() as folder:
    agent = PPO(ModelReward(env, preference.requires_grad_(False), mode="add"), seed=0, device="cpu")
    agent.init_from(lm.save(Path(folder) / "lm.pt"))  # the initial policy and the KL reference
    agent.learn(total_timesteps=16_384)
print(f"PPO: KL to the language model {agent.last_log['train/ref_kl']:.3f} per token")
print(agent.transcripts(2, deterministic=False)[0])
