"""A learned preference reward model for the chatbot: RLHF's reward model, trained on pairs of replies.

The course replaces the human who judges a reply by a function R(c, x)
(notes:10464-10480 [Sequence Generation by GAN]: "How are you" → "bye-bye" scores low, "Hello" → "Hi" high), and the chatbot then
maximises E[R(c, x)] by the policy gradient (notes:10482-10576 [Sequence Generation by GAN]). Here R is
learned from comparisons, as in RLHF: a :class:`~rlcourse.supervised.chat.scorer.SequenceScorer` s(c, x)
is fitted so that, of two replies to one context, the preferred one scores higher, under the
Bradley–Terry model

    P(x_chosen ≻ x_rejected | c) = σ(s(c, x_chosen) − s(c, x_rejected)),    loss = −log σ(s_chosen − s_rejected).

The preferences come without a human (:func:`preference_pairs`): the corpus reply is preferred to a dull
one ("I don't know", notes:10798-10818 [Sequence Generation by GAN]), to another context's reply (it must
fit its own context), or to a model's sample (the MLE language model's, which is what the RL agent
starts from). Only differences of scores are learned, so the scale and offset of s are arbitrary; the
scores come out signed, as the notes advise for a reward (notes:10578-10602 [Sequence Generation by GAN]).

As a plug-in, :meth:`PreferenceRewardModel.reward` pays s(c, x) of the finished reply at the step it
ends, and 0 at every other step (no host reads, so the env's step stays capturable in a CUDA graph).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import torch
from gymnasium import spaces

from rlcourse.config import check_fields, hp
from rlcourse.envs.chatbot.corpus import observation_layout
from rlcourse.supervised.chat.scorer import TokenizerBound, attach_scorer, check_scorer_sizes
from rlcourse.supervised.protocol import RewardModel, Transitions

__all__ = [
    "PAIR_KINDS",
    "PreferenceConfig",
    "PreferenceRewardModel",
    "bradley_terry_loss",
    "fit_preference",
    "mixed_preference_pairs",
    "preference_pairs",
    "without_ties",
]

#: What a corpus reply is preferred to: a dull reply, another context's reply, a model's sample.
PAIR_KINDS = ("dull", "shuffled", "sampled")
PairKind = Literal["dull", "shuffled", "sampled"]
Sampler = Callable[[torch.Tensor], torch.Tensor]


def bradley_terry_loss(chosen: torch.Tensor, rejected: torch.Tensor) -> torch.Tensor:
    """The mean of −log σ(s_chosen − s_rejected) over pairs of scores ``[N]`` (logsigmoid, stable for any gap)."""
    if chosen.shape != rejected.shape:
        raise ValueError(
            f"chosen and rejected scores must have one shape, got {tuple(chosen.shape)} and {tuple(rejected.shape)}"
        )
    return -torch.nn.functional.logsigmoid(chosen - rejected).mean()


@dataclass
class PreferenceConfig:
    """Settings of the preference reward model and of its Bradley–Terry training."""

    embed_dim: int = hp(64, "size of the token embeddings")
    hidden_dim: int = hp(64, "GRU state size of each direction")
    net_arch: tuple[int, ...] = hp((64,), "hidden layers of the MLP on the pooled GRU states")
    learning_rate: float = hp(1e-3, "Adam step size of the Bradley-Terry training")
    max_grad_norm: float = hp(1.0, "clip the global gradient norm to this (the notes' advice for RNNs)")
    tokenizer: str = hp("", "the env tokenizer's signature, set by for_env and checked on other envs ('': unchecked)")

    def __post_init__(self):
        check_scorer_sizes(self.embed_dim, self.hidden_dim, self.net_arch)
        check_fields(self, positive=("learning_rate", "max_grad_norm"), net_arch=None)


class PreferenceRewardModel(TokenizerBound, RewardModel):
    """s(c, x) of a whole observation; ``reward`` pays it where a reply ended (``batch.terminated``), else 0.

    ``PreferenceRewardModel.for_env(env, config)`` records the env's tokenizer, and an env of another is refused."""

    config_class = PreferenceConfig
    config: PreferenceConfig

    def __init__(self, observation_space: spaces.Space, action_space: spaces.Space, config: Any = None):
        super().__init__(observation_space, action_space, config)
        attach_scorer(self)

    def score(self, obs: torch.Tensor) -> torch.Tensor:
        """``[N]``: s(c, x) of observations ``[N, L]`` in the chatbot's layout."""
        return self.scorer(obs)

    def reward(self, batch: Transitions) -> torch.Tensor:
        return self.score(batch.next_obs) * batch.terminated


# ----------------------------------------------------------------------------------------- preference pairs
def preference_pairs(
    contexts: torch.Tensor,
    replies: torch.Tensor,
    kind: PairKind,
    generator: torch.Generator,
    dull_replies: torch.Tensor | None = None,
    sampler: Sampler | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(chosen, rejected)`` observations ``[N, L]``: each corpus reply, and a worse reply to the same context.

    ``contexts`` ``[N, C]`` and ``replies`` ``[N, R]`` are int64 in the env's layout (left-padded contexts,
    replies ending in EOS then PAD). The rejected reply is, by ``kind``:

    * ``"dull"``: one of ``dull_replies`` ``[K, R]``, drawn uniformly with ``generator``;
    * ``"shuffled"``: the reply of another pair, by a random derangement (row i gets the reply of the row
      after it in a random cyclic order, so never its own; needs N >= 2);
    * ``"sampled"``: ``sampler(contexts)`` ``[N, R]``, a model's replies (e.g. the MLE language model's
      ``lambda c: lm.sample(c, R, generator)``).

    A kind whose argument is missing, or replies of another length, is a ValueError. A rejected reply may
    happen to equal the chosen one (a corpus repeats short replies); :func:`without_ties` drops those pairs.
    """
    if kind not in PAIR_KINDS:
        raise ValueError(f"unknown preference-pair kind {kind!r}; choose one of {', '.join(PAIR_KINDS)}")
    chosen = observation_layout(contexts, replies)  # checks [N, C], [N, R] and int64
    n, reply_len = replies.shape
    if kind == "dull":
        if dull_replies is None:
            raise ValueError("preference pairs of kind 'dull' need dull_replies, a [K, R] tensor of dull replies")
        if dull_replies.dim() != 2 or dull_replies.shape[0] == 0 or dull_replies.shape[1] != reply_len:
            raise ValueError(f"dull_replies must be [K >= 1, R = {reply_len}], got {tuple(dull_replies.shape)}")
        index = torch.randint(dull_replies.shape[0], (n,), generator=generator, device=generator.device)
        rejected = dull_replies.to(replies.device, torch.int64)[index.to(replies.device)]
    elif kind == "shuffled":
        if n < 2:
            raise ValueError(f"preference pairs of kind 'shuffled' need at least 2 pairs to swap replies, got {n}")
        order = torch.randperm(n, generator=generator, device=generator.device).to(replies.device)
        partner = torch.empty_like(order)
        partner[order] = order.roll(-1)  # one cycle through all rows: a derangement
        rejected = replies[partner]
    else:
        if sampler is None:
            raise ValueError("preference pairs of kind 'sampled' need a sampler: contexts [N, C] -> replies [N, R]")
        rejected = sampler(contexts)
        if not isinstance(rejected, torch.Tensor) or tuple(rejected.shape) != (n, reply_len):
            got = tuple(rejected.shape) if isinstance(rejected, torch.Tensor) else type(rejected).__name__
            raise ValueError(f"the sampler must return replies [N = {n}, R = {reply_len}], got {got}")
        rejected = rejected.to(replies.device, torch.int64)
    return chosen, observation_layout(contexts, rejected)


def mixed_preference_pairs(
    contexts: torch.Tensor,
    replies: torch.Tensor,
    generator: torch.Generator,
    dull_replies: torch.Tensor | None = None,
    sampler: Sampler | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The pairs of every kind the arguments allow (shuffled when N >= 2, dull with ``dull_replies``,
    sampled with ``sampler``), each corpus reply once per kind, in a random order: ``[N * kinds, L]`` each."""
    kinds: list[PairKind] = [kind for kind, available in (
        ("dull", dull_replies is not None), ("shuffled", replies.shape[0] >= 2), ("sampled", sampler is not None)
    ) if available]  # fmt: skip
    if not kinds:
        raise ValueError("no kind of preference pair is possible: give dull_replies, a sampler, or at least 2 pairs")
    parts = [preference_pairs(contexts, replies, kind, generator, dull_replies, sampler) for kind in kinds]
    chosen, rejected = torch.cat([c for c, _ in parts]), torch.cat([r for _, r in parts])
    order = torch.randperm(chosen.shape[0], generator=generator, device=generator.device).to(chosen.device)
    return chosen[order], rejected[order]


def without_ties(chosen: torch.Tensor, rejected: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The pairs whose two observations differ (a tie teaches nothing and can never be ranked right)."""
    differ = (chosen != rejected).any(1)
    return chosen[differ], rejected[differ]


# ----------------------------------------------------------------------------------------- training
def _check_pairs(pairs: Any, name: str, length: int) -> tuple[torch.Tensor, torch.Tensor]:
    if not (isinstance(pairs, (tuple, list)) and len(pairs) == 2 and all(isinstance(p, torch.Tensor) for p in pairs)):
        raise ValueError(f"{name} must be a (chosen, rejected) pair of tensors, got {type(pairs).__name__}")
    chosen, rejected = pairs
    if chosen.dim() != 2 or chosen.shape != rejected.shape or chosen.shape[0] == 0 or chosen.shape[1] != length:
        raise ValueError(
            f"{name} must be two [N >= 1, L = {length}] observations, got {tuple(chosen.shape)} and {tuple(rejected.shape)}"
        )
    return chosen, rejected


@torch.no_grad()
def _evaluate(model: PreferenceRewardModel, chosen: torch.Tensor, rejected: torch.Tensor, batch_size: int):
    """(mean Bradley–Terry loss, pairwise accuracy: the fraction with s_chosen > s_rejected) over all pairs."""
    loss, right = 0.0, 0
    for start in range(0, chosen.shape[0], batch_size):
        rows = slice(start, start + batch_size)
        s_chosen, s_rejected = model.score(chosen[rows]), model.score(rejected[rows])
        loss += float(bradley_terry_loss(s_chosen, s_rejected)) * s_chosen.shape[0]
        right += int((s_chosen > s_rejected).sum())
    return loss / chosen.shape[0], right / chosen.shape[0]


def fit_preference(
    model: PreferenceRewardModel,
    train_pairs: tuple[torch.Tensor, torch.Tensor],
    valid_pairs: tuple[torch.Tensor, torch.Tensor],
    epochs: int = 10,
    batch_size: int = 64,
    seed: int = 0,
    log: Callable[[str, float, int], None] | None = None,
) -> dict[str, list[float]]:
    """Adam on the Bradley–Terry loss of ``train_pairs`` (chosen, rejected ``[N, L]``), scored on ``valid_pairs``.

    Runs on the model's device with its optimizer, minibatches shuffled by a generator seeded with ``seed``.
    Returns ``{"train_loss", "valid_loss", "valid_accuracy"}``, one value per epoch, where the accuracy is
    the fraction of held-out pairs with s_chosen > s_rejected; the model ends with the weights of its most
    accurate epoch (the first, on a tie). ``log(tag, value, epoch)`` receives ``train/loss``, ``valid/loss``
    and ``valid/pairwise_accuracy``.
    """
    for name, value in (("epochs", epochs), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    device = model.device
    chosen, rejected = (t.to(device) for t in _check_pairs(train_pairs, "train_pairs", model.obs_dim))
    valid_chosen, valid_rejected = (t.to(device) for t in _check_pairs(valid_pairs, "valid_pairs", model.obs_dim))
    generator = torch.Generator().manual_seed(seed)
    history: dict[str, list[float]] = {"train_loss": [], "valid_loss": [], "valid_accuracy": []}
    best_accuracy, best_state = -1.0, None
    for epoch in range(1, epochs + 1):
        model.train()
        order = torch.randperm(chosen.shape[0], generator=generator).to(device)
        total = torch.zeros((), device=device)
        for start in range(0, chosen.shape[0], batch_size):
            index = order[start : start + batch_size]
            loss = bradley_terry_loss(model.score(chosen[index]), model.score(rejected[index]))
            model.optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), model.config.max_grad_norm)
            model.optimizer.step()
            total += loss.detach() * index.shape[0]
        model.eval()
        valid_loss, accuracy = _evaluate(model, valid_chosen, valid_rejected, batch_size)
        scores = {
            "train/loss": float(total) / chosen.shape[0],
            "valid/loss": valid_loss,
            "valid/pairwise_accuracy": accuracy,
        }
        for key, value in zip(history, scores.values()):
            history[key].append(value)
        if log is not None:
            for tag, value in scores.items():
                log(tag, value, epoch)
        if accuracy > best_accuracy:
            best_accuracy, best_state = accuracy, copy.deepcopy(model.state_dict())
    model.load_state_dict(best_state)
    return history
