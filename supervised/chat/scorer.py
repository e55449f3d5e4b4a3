"""One score per (context, reply) sequence: the network behind the chatbot's learned reward models.

:class:`SequenceScorer` reads the chatbot env's observation layout (``L = C + 1 + R`` token ids: the
context left-padded with PAD, BOS, the reply right-padded with PAD) as one sequence, as the notes
suggest for a discriminator of (c, x): "an RNN over c and x joined into one long sequence, which reads
it and outputs a number" (notes:10620-10664 [Sequence Generation by GAN]).

Token embedding → a bidirectional GRU → masked mean and max pooling → an MLP → one score. PAD positions
take no part: before the GRU the non-PAD tokens are moved together (a stable sort on "is PAD", which
keeps their order and needs no host read), so the forward direction reads ``[t₁ .. t_k]`` and the
backward one ``[t_k .. t₁]`` from a zero state, with the PADs after them and out of the pooling. That is
exactly a bidirectional GRU over packed sequences of lengths k, without ``pack_padded_sequence``'s
lengths on the host, so a reward that calls it can be captured in a CUDA graph. BOS stays in, and marks
where the reply begins.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from torch import nn

from rlcourse.config import config_to_dict
from rlcourse.envs.chatbot.tokenizer import WordTokenizer
from rlcourse.supervised.networks import check_layers, mlp

__all__ = [
    "PAD",
    "SequenceScorer",
    "TokenizerBound",
    "attach_scorer",
    "check_scorer_sizes",
    "check_tokenizer",
    "token_vocabulary",
]

PAD = WordTokenizer.PAD


def check_scorer_sizes(embed_dim: int, hidden_dim: int, net_arch: tuple[int, ...]) -> None:
    """The sizes of a :class:`SequenceScorer`: ``embed_dim`` and ``hidden_dim`` positive ints, ``net_arch`` positive."""
    for name, value in (("embed_dim", embed_dim), ("hidden_dim", hidden_dim)):
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    check_layers(net_arch)


def token_vocabulary(observation_space: spaces.Space, action_space: spaces.Space, owner: str) -> int:
    """The vocabulary size of a chatbot plug-in: ``action_space.n``, the tokens the observation may hold.

    The observation must be a 1-D integer Box whose values lie in ``[0, n)`` and the action space a
    ``Discrete(n)`` starting at 0 (an action is a token id); anything else is a ValueError naming ``owner``.
    """
    if not isinstance(action_space, spaces.Discrete) or int(action_space.start) != 0:
        raise ValueError(f"{owner} needs a Discrete(vocab) action space starting at 0 (a token id), got {action_space}")
    if (
        not isinstance(observation_space, spaces.Box)
        or len(observation_space.shape) != 1
        or not np.issubdtype(observation_space.dtype, np.integer)
    ):
        raise ValueError(f"{owner} needs a 1-D integer Box observation of token ids, got {observation_space}")
    vocab = int(action_space.n)
    if int(observation_space.low.min()) < 0 or int(observation_space.high.max()) >= vocab:
        raise ValueError(
            f"{owner}: the observation's token ids must lie in [0, {vocab}) (the action space's vocabulary), "
            f"got [{int(observation_space.low.min())}, {int(observation_space.high.max())}]"
        )
    return vocab


def _describe(signature: str) -> str:
    """``"bpe/2000/1a2b…"`` as ``"'bpe' (2000 tokens, digest 1a2b…)"``."""
    name, _, rest = signature.partition("/")
    size, _, digest = rest.partition("/")
    return f"{name!r} ({size} tokens, digest {digest})" if digest else repr(signature)


def check_tokenizer(recorded: str, env: Any, owner: str) -> None:
    """Refuse ``env`` unless its chatbot tokenizer is the one whose signature ``recorded`` is.

    ``recorded`` is a chat plug-in's ``config.tokenizer`` (``""``: nothing recorded, so nothing to check); the
    env's tokenizer is its innermost env's ``tokenizer`` (an env without one is not checked here: its spaces are).
    A mismatch is a ValueError naming both tokenizers and ``owner``.
    """
    tokenizer = getattr(getattr(env, "unwrapped", env), "tokenizer", None)  # an env's data, read as a plug-in may
    if not recorded or tokenizer is None or tokenizer.signature == recorded:
        return
    raise ValueError(
        f"{owner} was fitted on the tokenizer {_describe(recorded)}, but the env reads {_describe(tokenizer.signature)}; "
        "make the env with the options the model was fitted with (tokenizer, bpe_vocab_size, min_count, corpus, "
        "corpus_seed)"
    )


class TokenizerBound:
    """What the chat plug-ins share about tokenizers: built for an env with :meth:`for_env`, their ``config.tokenizer``
    records that env's tokenizer (its signature, saved with the plug-in), and :meth:`check_env` refuses another one."""

    @classmethod
    def for_env(cls, env: Any, config: Any = None) -> Any:
        """A new plug-in for ``env``'s spaces with ``config`` (a dataclass, dict or None) and the env's tokenizer."""
        settings = dict(config or {}) if config is None or isinstance(config, dict) else config_to_dict(config)
        settings["tokenizer"] = env.unwrapped.tokenizer.signature
        return cls(env.single_observation_space, env.single_action_space, settings)

    def check_env(self, env: Any) -> None:
        """A ValueError if this plug-in was fitted on another tokenizer than ``env``'s (:func:`check_tokenizer`)."""
        check_tokenizer(self.config.tokenizer, env, type(self).__name__)


class SequenceScorer(nn.Module):
    """``forward(tokens [N, L]) -> [N]``: a score of each whole sequence, PAD positions ignored wherever they are."""

    def __init__(self, vocab_size: int, embed_dim: int, hidden_dim: int, net_arch: tuple[int, ...] = (64,)):
        super().__init__()
        check_scorer_sizes(embed_dim, hidden_dim, net_arch)
        if isinstance(vocab_size, bool) or not isinstance(vocab_size, int) or vocab_size <= PAD + 1:
            raise ValueError(f"vocab_size must be an integer above {PAD + 1}, got {vocab_size!r}")
        self.embedding = nn.Embedding(vocab_size, embed_dim, padding_idx=PAD)
        self.forward_gru = nn.GRU(embed_dim, hidden_dim, batch_first=True)
        self.backward_gru = nn.GRU(embed_dim, hidden_dim, batch_first=True)
        self.head = mlp(4 * hidden_dim, tuple(net_arch), 1)  # [mean, max] of the [forward, backward] states

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        tokens = tokens.long()
        is_pad = tokens == PAD
        # Stable sorts move the real tokens together and keep their order: first in one, last in the other.
        leading = tokens.gather(1, torch.sort(is_pad.to(torch.uint8), dim=1, stable=True).indices)
        trailing = tokens.gather(1, torch.sort((~is_pad).to(torch.uint8), dim=1, stable=True).indices)
        forward_states, _ = self.forward_gru(self.embedding(leading))
        backward_states, _ = self.backward_gru(self.embedding(trailing.flip(1)))
        # Both read the k real tokens first, so their states at positions < k are the packed GRU's.
        states = torch.cat((forward_states, backward_states), -1)
        real = (leading != PAD).unsqueeze(-1)
        count = real.sum(1)
        mean = (states * real).sum(1) / count.clamp_min(1)
        peak = states.masked_fill(~real, torch.finfo(states.dtype).min).amax(1)
        peak = torch.where(count > 0, peak, torch.zeros_like(peak))  # (a row of PADs alone has no maximum)
        return self.head(torch.cat((mean, peak), -1)).squeeze(-1)


def attach_scorer(model: nn.Module) -> None:
    """Give a chat plug-in (a reward model whose settings have embed_dim, hidden_dim, net_arch and learning_rate)
    its :class:`SequenceScorer` ``model.scorer`` and an Adam ``model.optimizer`` over its parameters."""
    model.vocab_size = token_vocabulary(model.observation_space, model.action_space, type(model).__name__)
    c = model.config
    model.scorer = SequenceScorer(model.vocab_size, c.embed_dim, c.hidden_dim, c.net_arch)
    model.optimizer = torch.optim.Adam(model.parameters(), lr=c.learning_rate)
