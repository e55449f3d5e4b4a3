"""Li et al. 2016's three rewards for a reply, computed with the MLE language model (plug-in ``li_rewards``).

The notes' chatbot learns from a hand-written R(c, x) that punishes "I don't know" and loops
(notes:10604-10618 [Sequence Generation by GAN]). "Deep Reinforcement Learning for Dialogue Generation" (Li et al.
2016) writes such rules with a language model p_MLE:

* **ease of answering** r₁ = −(1/N_S) Σ_{s∈S} (1/|s|) log p_MLE(s | x): a reply x that makes a dull answer s (the
  env's list S) likely is one the conversation cannot go on from;
* **information flow** r₂ = −log cos(h_c, h_x): a reply whose encoding is close to the context's repeats it
  (h: the GRU state after reading an utterance; the cosine is floored at 1e-4, where the log would blow up).
  Li et al. compare one speaker's two consecutive turns; a single reply has only its context to compare with,
  so this compares the reply with what it answers;
* **semantic coherence** r₃ = (1/|x|) log p_MLE(x | c) + (1/|c|) log p_back(c | x): the reply fits its context
  (p_back, a model of contexts given replies, is optional; without it r₃ is the forward term).

``reward(batch)`` = λ₁r₁ + λ₂r₂ + λ₃r₃ where a reply ended, 0 elsewhere, with the paper's λ = (0.25, 0.25, 0.5).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from gymnasium import spaces

from rlcourse.config import check_fields, hp
from rlcourse.envs.chatbot.corpus import context_as_reply, observation_layout, reply_as_context
from rlcourse.supervised.chat.language_model import BOS, ChatLanguageModel
from rlcourse.supervised.protocol import RewardModel, Transitions

__all__ = ["LiRewards", "LiRewardsConfig"]


@dataclass
class LiRewardsConfig:
    """The weights of the three rewards and the layout's context length."""

    context_len: int = hp(16, "C of the env's observation layout (its context_len)")
    ease_weight: float = hp(0.25, "λ₁, ease of answering")
    flow_weight: float = hp(0.25, "λ₂, information flow")
    coherence_weight: float = hp(0.5, "λ₃, semantic coherence")

    def __post_init__(self):
        weights = ("ease_weight", "flow_weight", "coherence_weight")
        check_fields(self, positive=("context_len",), nonnegative=weights, net_arch=None)


class LiRewards(RewardModel):
    """λ₁·ease of answering + λ₂·information flow + λ₃·semantic coherence of each finished reply (module docstring).

    ``forward`` is the MLE model; ``dull_replies`` ``[K, R]`` the env's list (``env.dull_replies``); ``backward``
    an optional model of contexts given replies (built for the swapped layout: R context tokens, C reply tokens).
    It is built in code from those models (not from a file, as the registered plug-ins are).
    """

    config_class = LiRewardsConfig
    config: LiRewardsConfig

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        config: Any = None,
        forward: ChatLanguageModel | None = None,
        dull_replies: torch.Tensor | None = None,
        backward: ChatLanguageModel | None = None,
    ):
        super().__init__(observation_space, action_space, config)
        if forward is None or dull_replies is None:
            raise ValueError("LiRewards needs the MLE language model (forward) and the env's dull_replies")
        self.context_len = self.config.context_len
        self.reply_len = int(observation_space.shape[0]) - self.context_len - 1
        if self.reply_len < 2:
            raise ValueError(
                f"context_len {self.context_len} does not fit the observation of {observation_space.shape[0]} tokens"
            )
        if dull_replies.dim() != 2 or dull_replies.shape[1] != self.reply_len or dull_replies.shape[0] == 0:
            raise ValueError(f"dull_replies must be [K >= 1, R = {self.reply_len}], got {tuple(dull_replies.shape)}")
        self.forward_lm, self.backward_lm = forward.requires_grad_(False), backward
        if backward is not None:
            backward.requires_grad_(False)
        self.register_buffer("dull_replies", dull_replies.long().clone())

    def _split(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return obs[:, : self.context_len].long(), obs[:, self.context_len + 1 :].long()

    def ease_of_answering(self, obs: torch.Tensor) -> torch.Tensor:
        """r₁: minus the mean per-token log-likelihood of the dull replies as answers to each reply."""
        _, replies = self._split(obs)
        as_context = reply_as_context(replies, self.context_len)
        k = self.dull_replies.shape[0]
        pairs = observation_layout(as_context.repeat_interleave(k, 0), self.dull_replies.repeat(obs.shape[0], 1))
        log_likelihood, n = self.forward_lm.reply_log_likelihood(pairs)
        return -(log_likelihood / n.clamp_min(1)).view(-1, k).mean(1)

    def information_flow(self, obs: torch.Tensor) -> torch.Tensor:
        """r₂: −log cos between the GRU's encodings of the context and of the reply (each read as a context)."""
        contexts, replies = self._split(obs)
        bos = torch.full_like(contexts[:, :1], BOS)
        h_context = self.forward_lm.lm.features(torch.cat((contexts, bos), 1))
        h_reply = self.forward_lm.lm.features(torch.cat((reply_as_context(replies, self.context_len), bos), 1))
        return -torch.nn.functional.cosine_similarity(h_context, h_reply, dim=-1).clamp_min(1e-4).log()

    def semantic_coherence(self, obs: torch.Tensor) -> torch.Tensor:
        """r₃: the reply's mean log-likelihood given the context (plus the context's given the reply, with ``backward``)."""
        log_likelihood, n = self.forward_lm.reply_log_likelihood(obs.long())
        coherence = log_likelihood / n.clamp_min(1)
        if self.backward_lm is not None:
            contexts, replies = self._split(obs)
            swapped = observation_layout(
                reply_as_context(replies, self.reply_len), context_as_reply(contexts, self.context_len)
            )
            back_log_likelihood, back_n = self.backward_lm.reply_log_likelihood(swapped)
            coherence = coherence + back_log_likelihood / back_n.clamp_min(1)
        return coherence

    def reward(self, batch: Transitions) -> torch.Tensor:
        c, obs = self.config, batch.next_obs
        total = (
            c.ease_weight * self.ease_of_answering(obs)
            + c.flow_weight * self.information_flow(obs)
            + c.coherence_weight * self.semantic_coherence(obs)
        )
        return total * batch.terminated
