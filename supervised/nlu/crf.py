"""A linear-chain CRF over tag sequences: its log-likelihood, and Viterbi decoding. Written here, batched.

The course puts a structured model on top of a (bi-directional) RNN for tagging: the RNN scores
each word's tags, the structured layer scores whole tag sequences and decodes with Viterbi, so tag
dependencies ("I-date" only after "B-date" or "I-date") live in the model (notes:15485-15543).

**The CRF** (notes:15179-15353): a tag sequence y of a sentence x scores

    w·φ(x, y) = start[y_1] + Σ_t emit_t[y_t] + Σ_t trans[y_{t-1}, y_t] + end[y_L]

where ``emit`` comes from the network and ``start``, ``trans``, ``end`` are learned;
P(y|x) = exp(w·φ(x, y)) / Z(x). Training maximises Σ_n log P(ŷ^n|x^n); Z(x) sums over all |S|^L
sequences with the forward recursion α_t[j] = logsumexp_i(α_{t-1}[i] + trans[i, j]) + emit_t[j], in
O(L|S|²).

**Viterbi** (notes:15095-15123): the same recursion with max instead of logsumexp, keeping the
argmax as a back-pointer, then following the pointers from the best last tag.

**Constraints in Viterbi** (notes:15485-15543): a BIO tag set forbids some moves (``O`` -> ``I-date``,
``B-date`` -> ``I-city``, a sentence starting with ``I-``). :func:`bio_constraints` lists them, and the
CRF scores a forbidden move as -10⁴, in training and decoding alike, so it never outputs one.

Sentences in a batch have their own lengths: beyond its length a sentence's α (and δ) carries over
unchanged, and its back-pointers point to the tag itself, so padding never changes a result. Every
loop runs over the padded length, with no host reads, so decoding is safe in a captured CUDA graph.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence

import torch
from torch import nn

FORBIDDEN = -1e4


def bio_constraints(tags: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """Which moves a BIO tag set allows: ``[from, to]`` and ``[first tag]`` bool. ``I-x`` follows only ``B-x`` or ``I-x``."""
    inside = [tag[2:] if tag.startswith("I-") else None for tag in tags]
    label = [tag[2:] if tag[:2] in ("B-", "I-") else None for tag in tags]
    moves = torch.tensor(
        [[inside[j] is None or label[i] == inside[j] for j in range(len(tags))] for i in range(len(tags))]
    )
    return moves, torch.tensor([x is None for x in inside])


class LinearChainCRF(nn.Module):
    """Start, transition and end scores over ``num_tags`` tags (see the module docstring).

    ``allowed``: optional ``(moves [K, K], first [K])`` bool masks (:func:`bio_constraints`); forbidden ones score -10⁴.
    """

    def __init__(self, num_tags: int, allowed: tuple[torch.Tensor, torch.Tensor] | None = None):
        super().__init__()
        if not 0 < num_tags <= 256:  # Viterbi's back-pointers are bytes
            raise ValueError(f"a CRF takes 1 to 256 tags, got {num_tags}")
        self.num_tags = num_tags
        self._start = nn.Parameter(torch.zeros(num_tags))
        self._transitions = nn.Parameter(torch.zeros(num_tags, num_tags))  # [from, to]
        self.end = nn.Parameter(torch.zeros(num_tags))
        moves, first = allowed if allowed is not None else (torch.ones(num_tags, num_tags, dtype=torch.bool),
                                                            torch.ones(num_tags, dtype=torch.bool))  # fmt: skip
        self.register_buffer("move_penalty", torch.where(moves, 0.0, FORBIDDEN))
        self.register_buffer("start_penalty", torch.where(first, 0.0, FORBIDDEN))

    @property
    def transitions(self) -> torch.Tensor:
        return self._transitions + self.move_penalty.to(self._transitions.dtype)

    @property
    def start(self) -> torch.Tensor:
        return self._start + self.start_penalty.to(self._start.dtype)

    def score(self, emissions: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """w·φ(x, y) of the tag sequences ``tags`` ``[B, T]``: ``[B]``. ``mask`` ``[B, T]`` marks real words
        (every sentence has at least one, at position 0)."""
        first = self.start[tags[:, 0]] + emissions[:, 0].gather(1, tags[:, :1]).squeeze(1)
        emitted = emissions.gather(2, tags[..., None]).squeeze(2)  # [B, T]
        moved = self.transitions[tags[:, :-1], tags[:, 1:]]  # [B, T-1]
        steps = ((emitted[:, 1:] + moved) * mask[:, 1:]).sum(1)
        last = tags.gather(1, (mask.sum(1, keepdim=True) - 1).long()).squeeze(1)
        return first + steps + self.end[last]

    def log_partition(self, emissions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """log Z(x) by the forward recursion: ``[B]``."""
        alpha = self.start + emissions[:, 0]  # [B, K]
        for t in range(1, emissions.shape[1]):
            step = torch.logsumexp(alpha[:, :, None] + self.transitions, dim=1) + emissions[:, t]
            alpha = torch.where(mask[:, t, None], step, alpha)
        return torch.logsumexp(alpha + self.end, dim=1)

    def log_likelihood(self, emissions: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """log P(tags | x) per sentence: ``[B]``."""
        return self.score(emissions, tags, mask) - self.log_partition(emissions, mask)

    def viterbi(self, emissions: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The best tag sequences ``[B, T]`` (0 beyond a sentence's length) and their scores ``[B]``."""
        B, T, K = emissions.shape
        delta = self.start + emissions[:, 0]
        own = torch.arange(K, device=emissions.device, dtype=_POINTER).expand(B, K)
        transitions = self.transitions
        step = _fused_viterbi_step() if emissions.is_cuda and _HAS_TRITON else _viterbi_step
        pointers = []
        for t in range(1, T):
            delta, pointer = step(delta, transitions, emissions[:, t], mask[:, t, None], own)
            pointers.append(pointer)
        final = delta + self.end
        score, tag = final.max(dim=1)
        path = [tag]
        for pointer in reversed(pointers):
            tag = pointer.gather(1, tag[:, None]).squeeze(1).long()
            path.append(tag)
        tags = torch.stack(path[::-1], dim=1)
        return torch.where(mask, tags, torch.zeros_like(tags)), score


#: Back-pointers are tag indices (a tag set has far fewer than 256 tags): a byte each, an eighth of int64's traffic.
_POINTER = torch.uint8


def _viterbi_step(
    delta: torch.Tensor, transitions: torch.Tensor, emission: torch.Tensor, live: torch.Tensor, own: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """δ_t[k] = max_j (δ_{t-1}[j] + trans[j, k]) + emit_t[k] and its argmax, where the sentence goes on (``live``)."""
    best, pointer = (delta[:, :, None] + transitions).max(dim=1)
    return torch.where(live, best + emission, delta), torch.where(live, pointer.to(_POINTER), own)


_compiled_step = None
#: torch.compile's GPU kernels are Triton's; without it the eager step runs.
_HAS_TRITON = importlib.util.find_spec("triton") is not None


def _fused_viterbi_step():
    """:func:`_viterbi_step` compiled (once per process) into one kernel, which never writes the ``[B, K, K]`` sums
    the eager step does: on a GPU that tensor's memory traffic is most of the decoding time. It is compiled for
    each batch size it meets (an evaluation env of another size compiles once more; past torch's recompile
    limit the step runs eagerly, with the same results)."""
    global _compiled_step
    if _compiled_step is None:
        _compiled_step = torch.compile(_viterbi_step, dynamic=False, fullgraph=True)
    return _compiled_step
