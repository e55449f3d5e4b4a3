"""The three networks of the SeqGAN synthetic benchmark: an LSTM language model (oracle and generator) and a CNN critic.

* :class:`LanguageModel`: ``start -> y_1 -> ... -> y_T`` with an embedding, one LSTM layer and a linear
  read-out to the vocabulary. Teacher-forced scoring (:meth:`LanguageModel.log_probs`) runs the fused
  ``nn.LSTM``; sampling and roll-outs step the same weights one token at a time (:meth:`LanguageModel.step`).
  :func:`make_oracle` draws every parameter from N(0, 1) (the paper's oracle), :func:`make_generator` from
  N(0, 0.1) (the paper's generator initialisation).
* :class:`Discriminator`: embedding, 1-D convolutions of several widths max-pooled over time, one highway
  layer, dropout, and one logit of "real" (Kim's sentence CNN as SeqGAN uses it, with sizes set by
  :class:`DiscriminatorShape`).

All parameters are drawn from a ``torch.Generator`` on the model's device, so a seed fixes a model exactly;
dropout masks come from a generator too, never from torch's global stream.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "Discriminator",
    "DiscriminatorShape",
    "LanguageModel",
    "LanguageModelShape",
    "make_generator",
    "make_oracle",
    "vocab_rows",
]


def vocab_rows(device: torch.device, vocab_size: int) -> int:
    """Rows of a [rows, vocab] float block to work on at once: on the CPU about 4 MB, which stays in the
    cache and in malloc's reused memory (fresh blocks of hundreds of MB per step cost several times as
    long, most of it in page faults); on a GPU, everything at once."""
    return max(1, (1 << 20) // vocab_size) if device.type == "cpu" else 1 << 30


@dataclass(frozen=True)
class LanguageModelShape:
    """Sizes of an LSTM language model (the paper's synthetic set-up by default)."""

    vocab_size: int = 5000  #: tokens 0..V-1
    embed_dim: int = 32  #: token embedding size
    hidden_dim: int = 32  #: LSTM hidden (and cell) size
    seq_len: int = 20  #: every sequence has exactly this many tokens
    start_token: int = 0  #: the token whose embedding is the first input (as in the paper's code, a real token)

    def __post_init__(self) -> None:
        for name in ("vocab_size", "embed_dim", "hidden_dim", "seq_len"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.seq_len < 2:
            raise ValueError(f"seq_len must be at least 2 (roll-outs complete a proper prefix), got {self.seq_len}")
        if not 0 <= self.start_token < self.vocab_size:
            raise ValueError(f"start_token must be in [0, {self.vocab_size}), got {self.start_token}")


class LanguageModel(nn.Module):
    """p(y_1..y_T) = Π_t softmax(W h_t + b)[y_t], h_t = LSTM(embed(y_{t-1}), h_{t-1}), y_0 = the start token."""

    def __init__(self, shape: LanguageModelShape, device: torch.device | str = "cpu"):
        super().__init__()
        self.shape = shape
        self.embedding = nn.Embedding(shape.vocab_size, shape.embed_dim, device=device)
        self.lstm = nn.LSTM(shape.embed_dim, shape.hidden_dim, batch_first=True, device=device)
        self.readout = nn.Linear(shape.hidden_dim, shape.vocab_size, device=device)

    @property
    def device(self) -> torch.device:
        return self.readout.weight.device

    def init_normal(self, std: float, generator: torch.Generator) -> LanguageModel:
        """Every parameter ~ N(0, std²), one bias per LSTM gate (PyTorch's second gate bias is zeroed)."""
        with torch.no_grad():
            for parameter in self.parameters():
                parameter.normal_(0.0, std, generator=generator)
            self.lstm.bias_hh_l0.zero_()
        return self

    # ------------------------------------------------------------------ teacher forcing
    def inputs_of(self, tokens: torch.Tensor) -> torch.Tensor:
        """The input tokens that predict ``tokens`` [B, T]: the start token, then ``tokens[:, :-1]``."""
        start = torch.full_like(tokens[:, :1], self.shape.start_token)
        return torch.cat([start, tokens[:, :-1]], dim=1)

    def logits(self, tokens: torch.Tensor) -> torch.Tensor:
        """Next-token logits [B, T, V] for every position of ``tokens`` [B, T] (teacher forcing)."""
        hidden, _ = self.lstm(self.embedding(self.inputs_of(tokens)))
        return self.readout(hidden)

    def log_probs(self, tokens: torch.Tensor) -> torch.Tensor:
        """log p(y_t | y_<t) [B, T] of each token of ``tokens`` [B, T]."""
        nll = F.cross_entropy(self.logits(tokens).flatten(0, 1), tokens.flatten(), reduction="none")
        return -nll.view(tokens.shape)

    # ------------------------------------------------------------------ one token at a time
    def initial_state(self, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
        zeros = torch.zeros(batch, self.shape.hidden_dim, device=self.device)
        return zeros, zeros.clone()

    def step(self, token: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """The LSTM state after reading ``token`` [B] in ``state`` (the same weights and gate order as ``nn.LSTM``)."""
        h, c = state
        gates = F.linear(self.embedding(token), self.lstm.weight_ih_l0, self.lstm.bias_ih_l0) + F.linear(
            h, self.lstm.weight_hh_l0, self.lstm.bias_hh_l0
        )
        i, f, g, o = gates.chunk(4, dim=-1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(c), c

    def draw(self, h: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """One token [B] per row of hidden states ``h`` [B, H], sampled from the model's next-token distribution.

        Inverse-CDF sampling on the unnormalised weights (``torch.multinomial`` is several times slower on
        the CPU at a 5,000-token vocabulary): the first token whose cumulative weight exceeds u·total;
        :func:`vocab_rows` rows at a time.
        """
        u = torch.rand(len(h), 1, generator=generator, device=h.device)
        rows = vocab_rows(h.device, self.shape.vocab_size)
        drawn = []
        for part, v in zip(h.split(rows), u.split(rows)):
            logits = self.readout(part)
            cdf = (logits - logits.amax(dim=-1, keepdim=True)).exp_().cumsum_(dim=-1)
            drawn.append(torch.searchsorted(cdf, v * cdf[:, -1:], right=True).squeeze(-1))
        return torch.cat(drawn).clamp_(max=self.shape.vocab_size - 1)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """``n`` sequences [n, T] (int64) drawn from the model by ancestral sampling."""
        if isinstance(n, bool) or not isinstance(n, int) or n <= 0:
            raise ValueError(f"n must be a positive integer, got {n!r}")
        tokens = torch.empty(n, self.shape.seq_len, dtype=torch.long, device=self.device)
        token = torch.full((n,), self.shape.start_token, dtype=torch.long, device=self.device)
        state = self.initial_state(n)
        for t in range(self.shape.seq_len):
            state = self.step(token, state)
            token = self.draw(state[0], generator)
            tokens[:, t] = token
        return tokens

    @torch.no_grad()
    def prefix_states(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(h, c), each [T, B, H]: entry ``t`` is the state after reading the start token and ``tokens[:, :t+1]``
        (the state that predicts token ``t + 1``)."""
        state = self.step(torch.full_like(tokens[:, 0], self.shape.start_token), self.initial_state(len(tokens)))
        hs, cs = [], []
        for t in range(tokens.shape[1]):
            state = self.step(tokens[:, t], state)
            hs.append(state[0])
            cs.append(state[1])
        return torch.stack(hs), torch.stack(cs)


def make_oracle(shape: LanguageModelShape, generator: torch.Generator, std: float = 1.0) -> LanguageModel:
    """The target distribution: a random LSTM with every parameter ~ N(0, std²) (the paper: N(0, 1)), frozen."""
    oracle = LanguageModel(shape, generator.device).init_normal(std, generator)
    return oracle.requires_grad_(False).eval()


def make_generator(shape: LanguageModelShape, generator: torch.Generator, std: float = 0.1) -> LanguageModel:
    """A fresh generator G_θ with the oracle's sizes, parameters ~ N(0, std²) (the paper's code: 0.1)."""
    return LanguageModel(shape, generator.device).init_normal(std, generator)


@dataclass(frozen=True)
class DiscriminatorShape:
    """Sizes of the CNN critic. The paper's: embedding 64, widths 1-10, 15, 20 with
    100/200/200/200/200/100×5/160/160 filters, keep probability 0.75."""

    embed_dim: int = 64  #: token embedding size
    filter_sizes: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 15, 20)  #: convolution widths (tokens)
    num_filters: tuple[int, ...] = (100, 200, 200, 200, 200, 100, 100, 100, 100, 100, 160, 160)  #: filters per width
    dropout: float = 0.25  #: drop probability before the output layer (the paper keeps 0.75)

    def __post_init__(self) -> None:
        if self.embed_dim <= 0:
            raise ValueError(f"embed_dim must be positive, got {self.embed_dim}")
        if not self.filter_sizes or len(self.filter_sizes) != len(self.num_filters):
            raise ValueError(
                f"filter_sizes and num_filters must be non-empty and as long as each other, got "
                f"{list(self.filter_sizes)} and {list(self.num_filters)}"
            )
        if any(k <= 0 for k in self.filter_sizes) or any(n <= 0 for n in self.num_filters):
            raise ValueError("filter_sizes and num_filters must be positive")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")


class Discriminator(nn.Module):
    """D_φ(Y) = σ(logit(Y)): the probability that a token sequence [B, T] comes from the data, not from G_θ."""

    def __init__(self, vocab_size: int, seq_len: int, shape: DiscriminatorShape, generator: torch.Generator):
        super().__init__()
        if max(shape.filter_sizes) > seq_len:
            raise ValueError(f"filter widths must be at most seq_len={seq_len}, got {list(shape.filter_sizes)}")
        device = generator.device
        self.shape = shape
        self.embedding = nn.Embedding(vocab_size, shape.embed_dim, device=device)
        self.convs = nn.ModuleList(
            nn.Conv1d(shape.embed_dim, n, k, device=device) for k, n in zip(shape.filter_sizes, shape.num_filters)
        )
        width = sum(shape.num_filters)
        self.highway_transform = nn.Linear(width, width, device=device)
        self.highway_gate = nn.Linear(width, width, device=device)
        self.out = nn.Linear(width, 1, device=device)
        with torch.no_grad():  # the paper's initialisation: U(-1, 1) embeddings, N(0, 0.1) filters, 0.1 biases
            self.embedding.weight.uniform_(-1.0, 1.0, generator=generator)
            for layer in [*self.convs, self.highway_transform, self.highway_gate, self.out]:
                layer.weight.normal_(0.0, 0.1, generator=generator)
                layer.bias.fill_(0.1)

    def features(self, tokens: torch.Tensor, dropout: torch.Generator | None = None) -> torch.Tensor:
        """The pooled, highway-mixed features [B, F]; with a ``dropout`` generator, dropped out (training)."""
        x = self.embedding(tokens).transpose(1, 2).contiguous()  # [B, E, T]; contiguous: CPU conv1d is 1.4× faster
        pooled = torch.cat([F.relu(conv(x)).amax(dim=-1) for conv in self.convs], dim=-1)
        gate = torch.sigmoid(self.highway_gate(pooled))
        mixed = gate * F.relu(self.highway_transform(pooled)) + (1.0 - gate) * pooled
        if dropout is not None and self.shape.dropout > 0.0:
            keep = 1.0 - self.shape.dropout
            mask = torch.rand(mixed.shape, generator=dropout, device=mixed.device) < keep
            mixed = mixed * mask / keep
        return mixed

    def logit(self, tokens: torch.Tensor, dropout: torch.Generator | None = None) -> torch.Tensor:
        """The "real" logit [B] of each sequence of ``tokens`` [B, T]."""
        return self.out(self.features(tokens, dropout)).squeeze(-1)

    @torch.no_grad()
    def prob_real(self, tokens: torch.Tensor) -> torch.Tensor:
        """D(Y) [B] in (0, 1), without dropout (on the CPU 1,024 sequences at a time, which keeps them in cache)."""
        chunk = 1024 if tokens.device.type == "cpu" else 1 << 30
        return torch.cat([torch.sigmoid(self.logit(part)) for part in tokens.split(chunk)])
