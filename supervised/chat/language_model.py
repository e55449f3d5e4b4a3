"""The chatbot's language model: a GRU over the env's token layout, pre-trained by maximum likelihood.

The course trains a chatbot in steps, and this is the first: **maximum likelihood is behaviour cloning**
(notes:14242-14260 [Imitation Learning]): every word is an action, a reply is an episode, and the human
replies of the corpus are the expert's demonstrations. Teacher forcing maximises

    Σ_(c, x) Σ_t log P_θ(x_t | c, x_<t)

over the corpus pairs (context c, reply x), which is the same as classifying each next word of a human
reply. The same network then serves three more roles: the RL agent's initial policy
(``rlcourse train ppo rlcourse/Chatbot-v0 --init-from``), the frozen reference of the KL penalty, and
the scorer of Li et al. 2016's model-based rewards (:mod:`~rlcourse.supervised.chat.rules`).

The layout (the chatbot env's observation, ``L = C + 1 + R`` token ids): the context left-padded with
PAD, then BOS, then the reply so far right-padded with PAD. One GRU reads it left to right as a single
conversation; the state after the last non-PAD token predicts the next reply token. Leading PADs are read
too (the same way in training and in acting), so no layout length needs to be known, and while a reply
grows by one token the state grows by one GRU step: generation costs O(L) per reply, never the O(L²) of
re-reading the prefix (:class:`TokenGRU` ``step``).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from gymnasium import spaces
from torch import nn

from rlcourse.config import check_fields, hp
from rlcourse.envs.chatbot.env import allowed_tokens
from rlcourse.envs.chatbot.tokenizer import WordTokenizer
from rlcourse.supervised.chat.scorer import TokenizerBound, token_vocabulary
from rlcourse.supervised.protocol import RewardModel, Transitions

__all__ = ["BOS", "EOS", "PAD", "ChatLanguageModel", "ChatLMConfig", "TokenGRU", "fit_mle", "last_token_index"]

PAD, BOS, EOS, UNK = WordTokenizer.PAD, WordTokenizer.BOS, WordTokenizer.EOS, WordTokenizer.UNK


def last_token_index(tokens: torch.Tensor) -> torch.Tensor:
    """``[N]``: the position of each row's last non-PAD token (the state that predicts what comes next)."""
    positions = torch.arange(tokens.shape[1], device=tokens.device)
    return (positions * (tokens != PAD)).amax(1)


class TokenGRU(nn.Module):
    """Token embedding → one GRU layer → next-token logits. ``encode`` reads whole sequences, ``step`` one token."""

    def __init__(self, vocab_size: int, embed_dim: int, hidden_dim: int):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embed_dim, padding_idx=PAD)
        self.gru = nn.GRU(embed_dim, hidden_dim, batch_first=True)
        self.head = nn.Linear(hidden_dim, vocab_size)

    def encode(self, tokens: torch.Tensor) -> torch.Tensor:
        """``[N, T, H]``: the GRU state after each token of ``tokens`` ``[N, T]``."""
        outputs, _ = self.gru(self.embedding(tokens.long()))
        return outputs

    def features(self, tokens: torch.Tensor) -> torch.Tensor:
        """``[N, H]``: the state after each row's last non-PAD token."""
        outputs = self.encode(tokens)
        index = last_token_index(tokens).view(-1, 1, 1).expand(-1, 1, outputs.shape[-1])
        return outputs.gather(1, index).squeeze(1)

    def step(self, state: torch.Tensor, token: torch.Tensor) -> torch.Tensor:
        """``[N, H]``: the state after reading one more token ``[N]`` from ``state`` ``[N, H]``."""
        output, _ = self.gru(self.embedding(token.long()).unsqueeze(1), state.unsqueeze(0).contiguous())
        return output.squeeze(1)


@dataclass
class ChatLMConfig:
    """Settings of the chatbot's GRU language model and of its MLE training."""

    embed_dim: int = hp(128, "size of the token embeddings")
    hidden_dim: int = hp(256, "size of the GRU state")
    learning_rate: float = hp(2e-3, "Adam step size of the MLE training")
    max_grad_norm: float = hp(1.0, "clip the global gradient norm to this")
    tokenizer: str = hp("", "the env tokenizer's signature, set by for_env and checked on other envs ('': unchecked)")

    def __post_init__(self):
        check_fields(self, positive=("embed_dim", "hidden_dim", "learning_rate", "max_grad_norm"), net_arch=None)


class ChatLanguageModel(TokenizerBound, RewardModel):
    """P_θ(x | c) over the chatbot's layout, a plug-in; as a reward model it scores a finished reply's likelihood.

    ``reward(batch)`` is the mean log-probability per token of the reply in ``batch.next_obs`` given its
    context, at the step the reply ends (0 elsewhere): Li et al. 2016's semantic coherence (forward part).
    ``ChatLanguageModel.for_env(env, config)`` records the env's tokenizer, and an env of another is refused.
    """

    config_class = ChatLMConfig
    config: ChatLMConfig

    def __init__(self, observation_space: spaces.Space, action_space: spaces.Space, config: Any = None):
        super().__init__(observation_space, action_space, config)
        self.vocab_size = token_vocabulary(observation_space, action_space, "ChatLanguageModel")
        self.lm = TokenGRU(self.vocab_size, self.config.embed_dim, self.config.hidden_dim)

    # ------------------------------------------------------------------ likelihoods
    def token_log_probs(self, tokens: torch.Tensor, env_masks: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """log P(token t+1 | tokens ≤ t) for t = 0..L-2, ``[N, L-1]``, and the mask of the reply's tokens in it.

        The reply's tokens are the non-PAD ones after BOS (its words and its EOS); the context is given, not scored.
        With ``env_masks`` P is the distribution the env lets a policy sample from: renormalised over
        :func:`~rlcourse.envs.chatbot.env.allowed_tokens` (no PAD, BOS or UNK; no EOS first).
        """
        tokens = tokens.long()
        logits = self.lm.head(self.lm.encode(tokens[:, :-1]))
        if env_masks:
            logits = logits.masked_fill(~allowed_tokens(tokens[:, :-1] == BOS, logits.shape[-1]), float("-inf"))
        log_probs = logits.log_softmax(-1)
        targets = tokens[:, 1:]
        picked = log_probs.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
        after_bos = (tokens == BOS).long().cumsum(1)[:, :-1] > 0
        mask = after_bos & (targets != PAD)
        return picked.masked_fill(~mask, 0.0), mask  # 0, not a masked −inf, outside the reply (−inf · 0 is NaN)

    def reply_log_likelihood(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(Σ_t log P(x_t | c, x_<t), number of reply tokens)`` per row of finished replies ``[N, L]``."""
        picked, mask = self.token_log_probs(tokens)
        return (picked * mask).sum(1), mask.sum(1)

    def mle_loss(self, tokens: torch.Tensor) -> torch.Tensor:
        """The teacher-forcing loss: mean negative log-likelihood per reply token of ``tokens`` ``[N, L]``."""
        picked, mask = self.token_log_probs(tokens)
        return -(picked * mask).sum() / mask.sum().clamp_min(1)

    @torch.no_grad()
    def perplexity(self, tokens: torch.Tensor, batch_size: int = 1024) -> float:
        """exp(mean NLL per reply token) over ``tokens`` (a whole held-out split)."""
        total, count = 0.0, 0
        for start in range(0, tokens.shape[0], batch_size):
            log_likelihood, n = self.reply_log_likelihood(tokens[start : start + batch_size])
            total, count = total - float(log_likelihood.sum()), count + int(n.sum())
        return math.exp(total / max(count, 1))

    def reward(self, batch: Transitions) -> torch.Tensor:
        log_likelihood, n = self.reply_log_likelihood(batch.next_obs)
        return log_likelihood / n.clamp_min(1) * batch.terminated

    # ------------------------------------------------------------------ generation
    @torch.no_grad()
    def act(
        self,
        obs: torch.Tensor,
        action_masks: torch.Tensor,
        generator: torch.Generator | None = None,
        greedy: bool = False,
    ) -> torch.Tensor:
        """The next token of each observation (the env's policy interface), drawn from P_θ among the valid ones."""
        logits = self.lm.head(self.lm.features(obs)).masked_fill(~action_masks, -torch.inf)
        if greedy:
            return logits.argmax(-1)
        return torch.multinomial(logits.softmax(-1), 1, generator=generator).squeeze(1)

    @torch.no_grad()
    def sample(
        self,
        contexts: torch.Tensor,
        reply_len: int,
        generator: torch.Generator | None = None,
        greedy: bool = False,
        temperature: float = 1.0,
    ) -> torch.Tensor:
        """Replies ``[N, reply_len]`` to ``contexts`` ``[N, C]`` (left-padded), one GRU step per token; PAD after EOS.

        Draws only :func:`~rlcourse.envs.chatbot.env.allowed_tokens` (the env's masks: no PAD, BOS or UNK, no EOS first).
        """
        n = contexts.shape[0]
        prefix = torch.cat((contexts.long(), torch.full((n, 1), BOS, device=contexts.device)), 1)
        state = self.lm.encode(prefix)[:, -1]
        replies = torch.full((n, reply_len), PAD, dtype=torch.long, device=contexts.device)
        ended = torch.zeros(n, dtype=torch.bool, device=contexts.device)
        for t in range(reply_len):
            first = torch.full((n,), t == 0, device=contexts.device)
            logits = self.lm.head(state).masked_fill(~allowed_tokens(first, self.vocab_size), -torch.inf)
            token = (
                logits.argmax(-1)
                if greedy
                else torch.multinomial((logits / temperature).softmax(-1), 1, generator=generator).squeeze(1)
            )
            token = torch.where(ended, PAD, token)
            replies[:, t] = token
            ended = ended | (token == EOS)
            state = self.lm.step(state, token)
        return replies


def fit_mle(
    model: ChatLanguageModel,
    train: torch.Tensor,
    valid: torch.Tensor,
    epochs: int = 20,
    batch_size: int = 64,
    seed: int = 0,
    log: Callable[[str, float, int], None] | None = None,
) -> dict[str, list[float]]:
    """Teacher forcing on ``train`` (finished sequences in the layout, ``[N, L]``), early-stopped on ``valid``'s perplexity.

    Returns ``{"train_loss": [...], "valid_perplexity": [...]}`` per epoch; the model ends with the weights of
    its best validation epoch. ``log(tag, value, epoch)`` receives ``train/loss`` and ``valid/perplexity``.
    """
    if epochs <= 0 or batch_size <= 0:
        raise ValueError(f"epochs and batch_size must be positive, got {epochs} and {batch_size}")
    if train.shape[0] == 0 or valid.shape[0] == 0:
        raise ValueError("fit_mle needs a non-empty train and validation split")
    device = model.device
    train, valid = train.to(device), valid.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=model.config.learning_rate)
    generator = torch.Generator(device="cpu").manual_seed(seed)
    history: dict[str, list[float]] = {"train_loss": [], "valid_perplexity": []}
    best, best_state = math.inf, copy.deepcopy(model.state_dict())
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(train.shape[0], generator=generator).to(device)
        losses = []
        for start in range(0, train.shape[0], batch_size):
            loss = model.mle_loss(train[order[start : start + batch_size]])
            optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), model.config.max_grad_norm)
            optimizer.step()
            losses.append(loss.detach())
        model.eval()
        history["train_loss"].append(float(torch.stack(losses).mean()))
        history["valid_perplexity"].append(model.perplexity(valid))
        if log is not None:
            log("train/loss", history["train_loss"][-1], epoch)
            log("valid/perplexity", history["valid_perplexity"][-1], epoch)
        if history["valid_perplexity"][-1] < best:
            best, best_state = history["valid_perplexity"][-1], copy.deepcopy(model.state_dict())
    model.load_state_dict(best_state)
    return history
