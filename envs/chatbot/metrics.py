"""What the chatbot's training logs beyond returns: reply length, distinct-1/2 and the replies' variety.

Li et al. 2016 and the GAN chatbots the notes discuss (notes:10798-10818 [Sequence Generation by GAN]) judge
a chatbot partly by how generic it is: an MLE model answers "I don't know" about one time in ten. Two of the
measures are outcomes of the env (``rollout/dull_rate``, ``rollout/repeat_rate``); the ones here need all the
replies of a rollout at once:

* **distinct-n** (Li et al. 2016a): the number of distinct n-grams over all generated replies divided by the
  number of n-grams, for n = 1, 2; a model that says the same few things scores low;
* **reply length**: words per reply (EOS not counted).
"""

from __future__ import annotations

from typing import Any

import torch

from rlcourse.callbacks import Callback, TrainingRun
from rlcourse.envs.chatbot.tokenizer import WordTokenizer


def reply_words(replies: torch.Tensor) -> list[list[int]]:
    """The word ids of each reply ``[N, R]`` (up to its EOS; PAD and EOS dropped)."""
    words = []
    for row in replies.tolist():
        ids = row[: row.index(WordTokenizer.EOS)] if WordTokenizer.EOS in row else row
        words.append([token for token in ids if token != WordTokenizer.PAD])
    return words


def distinct_n(replies: list[list[int]], n: int) -> float:
    """Distinct n-grams / all n-grams over ``replies`` (0 where no reply has n words)."""
    grams = [tuple(reply[i : i + n]) for reply in replies for i in range(len(reply) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0


def reply_statistics(replies: torch.Tensor) -> dict[str, float]:
    """``distinct_1``, ``distinct_2`` and ``reply_length`` (mean words) of finished replies ``[N, R]``."""
    words = reply_words(replies)
    return {
        "distinct_1": distinct_n(words, 1),
        "distinct_2": distinct_n(words, 2),
        "reply_length": sum(map(len, words)) / max(len(words), 1),
    }


class ReplyStatistics(Callback):
    """Logs ``rollout/distinct_1``, ``rollout/distinct_2`` and ``rollout/reply_length`` at every log interval, over
    the reply each sub-env finished last (the env keeps them; one host read per log, none per step).

    Distinct-n falls as the number of replies grows, so these figures compare runs of the same ``num_envs`` only;
    the bench scores a fixed number of replies instead (:func:`play_replies`)."""

    def __init__(self, env: Any):
        self.env = env
        self.run: TrainingRun | None = None

    def on_training_start(self, run: TrainingRun) -> None:
        self.run = run

    def on_log(self, stats: dict[str, float]) -> None:
        replies = self.env.last_replies.cpu()
        finished = replies[(replies != WordTokenizer.PAD).any(1)]
        if finished.shape[0] and self.run is not None:
            self.run.log_scalars({f"rollout/{name}": value for name, value in reply_statistics(finished).items()})


@torch.no_grad()
def play_replies(env: Any, policy: Any, num_replies: int, seed: int | None = None) -> dict[str, Any]:
    """One reply by ``policy(obs, action_masks) -> tokens`` to each of ``num_replies`` contexts of a fresh copy of ``env``.

    Returns the rates of the env's outcomes (``dull_rate``, ``repeat_rate``), :func:`reply_statistics`, the mean
    reward, and the ``observations`` (each finished reply in the layout, ``[N, L]``) for scoring by a model.
    """
    env = env.spawn(num_replies)
    obs, _ = env.reset(seed=seed)
    finished = torch.zeros(num_replies, dtype=torch.bool, device=env.device)
    final = torch.zeros_like(obs)
    reward = torch.zeros(num_replies, device=env.device)
    outcomes = {key: torch.zeros(num_replies, dtype=torch.bool, device=env.device) for key in env.outcome_keys}
    while not bool(finished.all()):
        obs_next, step_reward, terminated, _, info = env.step(policy(obs, env.action_masks()))
        now = terminated & ~finished
        final = torch.where(now.unsqueeze(1), info["final_obs"], final)
        reward = torch.where(now, step_reward, reward)
        for key in outcomes:
            outcomes[key] |= now & info[key]
        finished |= terminated
        obs = obs_next
    result: dict[str, Any] = {f"{key}_rate": float(flags.float().mean()) for key, flags in outcomes.items()}
    result.update(reply_statistics(final[:, env.context_len + 1 :].cpu()), mean_reward=float(reward.mean()))
    result["observations"] = final
    return result
