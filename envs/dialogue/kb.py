"""A dialogue domain's knowledge base on the device, and the query behind the system's ``book`` act.

The query asks which KB entities agree with the system's belief (a value, or none, per informable
slot). It runs on bitsets: for each (slot, value) the set of entities with that value, 8 entities per
byte (entity ``e`` is bit ``e % 8`` of byte ``e // 8``). The last value row of every slot is the
wildcard (every entity), which stands for a slot the system has not heard, a "don't care", and a
booking parameter the entity does not have. The entities consistent with a belief are the AND of one
bitset per slot; their number is the sum of the popcounts of its bytes (read from a table), and the
first of them, the one a booking takes, is the lowest set bit of its first non-empty byte.

Everything is batched tensor code without host reads, so a captured CUDA graph can run it.
"""

from __future__ import annotations

import functools

import torch

from rlcourse.envs.dialogue.domain import Domain

#: The popcount and the lowest set bit (0 for an empty byte) of every byte value.
_POPCOUNT = [bin(byte).count("1") for byte in range(256)]
_LOWEST_BIT = [(byte & -byte).bit_length() - 1 if byte else 0 for byte in range(256)]


class KnowledgeBase:
    """The KB of ``domain`` as tensors on ``device``, with slots in the domain's informable order.

    Attributes:
        size: the number of entities.
        slot_values: ``[size, S]`` each entity's value index per informable slot (0 for a booking parameter).
        request_values: ``[size, R]`` each entity's value index per requestable slot.
        value_fraction: ``[S, max values]`` the fraction of the KB with each value (0 for a booking parameter).
    """

    def __init__(self, domain: Domain, device: torch.device):
        slots, requests = domain.informable, domain.requestable
        S = len(slots)
        kb = torch.as_tensor(domain.kb, device=device)
        self.size = kb.shape[0]
        self.slot_values = torch.stack(
            [kb[:, domain.kb_column(s)] if domain.in_kb[s] else torch.zeros_like(kb[:, 0]) for s in slots], 1
        )
        self.request_values = torch.stack([kb[:, domain.kb_column(r)] for r in requests], 1)
        most_values = max(len(domain.values[s]) for s in slots)
        counts = torch.zeros(S, most_values, device=device)
        for i, s in enumerate(slots):
            if domain.in_kb[s]:
                counts[i, : len(domain.values[s])] = torch.bincount(
                    self.slot_values[:, i], minlength=len(domain.values[s])
                ).float()
        self.value_fraction = counts / self.size
        # the bitsets [S, values + wildcard, bytes]
        n_bytes = -(-self.size // 8)
        self.wildcard = most_values
        member = torch.zeros(S, most_values + 1, n_bytes * 8, dtype=torch.bool)
        member[:, self.wildcard, : self.size] = True
        for i, s in enumerate(slots):
            if domain.in_kb[s]:
                member[i, self.slot_values[:, i].cpu(), torch.arange(self.size)] = True
            else:
                member[i, :, : self.size] = True
        weights = torch.tensor([1 << b for b in range(8)])
        bytes_ = (member.view(S, most_values + 1, n_bytes, 8).long() * weights).sum(-1)
        self.value_bits = bytes_.to(torch.uint8).to(device)
        self._popcount = torch.tensor(_POPCOUNT, device=device)
        self._lowest_bit = torch.tensor(_LOWEST_BIT, device=device)
        self._slot_index = torch.arange(S, device=device)
        self._zero = torch.zeros((), dtype=torch.int64, device=device)
        self._wildcard = torch.tensor(self.wildcard, device=device)
        self._byte_bits = torch.tensor(8, device=device)

    def match(self, belief_value: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """For a belief ``[B, S]`` (a value index per slot, negative for none): how many entities agree with it
        ``[B]``, and the first of them ``[B]`` (0 where none does)."""
        value = torch.where(belief_value >= self._zero, belief_value, self._wildcard)
        bitsets = self.value_bits[self._slot_index, value].unbind(1)  # S of [B, bytes]
        agree = functools.reduce(torch.bitwise_and, bitsets).long()
        count = torch.take(self._popcount, agree).sum(1)
        first_byte = (agree > self._zero).int().argmax(1)  # 0 where nothing agrees
        lowest_bit = torch.take(self._lowest_bit, agree.gather(1, first_byte[:, None])).squeeze(1)
        return count, first_byte * self._byte_bits + lowest_bit
