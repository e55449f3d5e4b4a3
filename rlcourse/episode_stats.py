"""Training-time episode statistics, summed on the device and read once per log interval.

The env reports each finished episode's return and length (``info["episode"]``) and its declared
outcomes (``env.outcome_keys``, bool tensors in ``info["final_info"]``). :class:`EpisodeStats` adds
them up without a host read; :meth:`EpisodeStats.summarise` turns the sums into SB3's
``rollout/ep_rew_mean``, ``rollout/ep_len_mean`` and one ``rollout/<key>_rate`` per outcome.
"""

from __future__ import annotations

from typing import Any

import torch


class EpisodeStats:
    """Sums over finished episodes: count, return, length, and one count per outcome key."""

    def __init__(self, outcome_keys: tuple[str, ...], device: torch.device):
        self.outcome_keys = tuple(outcome_keys)
        # float64: exact counts over long intervals
        self.sums = torch.zeros(3 + len(self.outcome_keys), dtype=torch.float64, device=device)

    def record(self, info: dict[str, Any]) -> None:
        """Add the episodes that ended in one step (graph safe: tensor ops only)."""
        done = info["_episode"]
        final_info = info["final_info"]
        parts = [done.sum(), info["episode"]["r"].sum(), info["episode"]["l"].sum()]
        parts += [(final_info[key] & done).sum() for key in self.outcome_keys]
        self.sums += torch.stack(parts).to(self.sums.dtype)

    def add(self, sums: list[float]) -> None:
        """Add sums read elsewhere (A3C's workers send theirs)."""
        self.sums += torch.tensor(sums, dtype=self.sums.dtype, device=self.sums.device)

    def summarise(self, sums: list[float]) -> dict[str, float]:
        """Turn sums read from :attr:`sums` into SB3's rollout statistics, and start counting afresh."""
        count, ret, length, *outcomes = sums
        self.sums.zero_()
        if count == 0:
            return {}
        stats = {"rollout/ep_rew_mean": ret / count, "rollout/ep_len_mean": length / count}
        stats.update({f"rollout/{key}_rate": value / count for key, value in zip(self.outcome_keys, outcomes)})
        return stats

    def check(self, sums: torch.Tensor) -> torch.Tensor:
        """``sums`` in this layout, or ``ValueError``; a checkpoint from before outcome keys fits too."""
        if sums.numel() == 4 and self.sums.numel() == 3:
            sums = sums[:3]  # an env without outcomes: the old layout's success count was always 0
        if sums.shape != self.sums.shape:
            raise ValueError(
                f"episode statistics have {sums.numel()} entries in the checkpoint, {self.sums.numel()} here "
                f"(outcome keys {self.outcome_keys})"
            )
        return sums

    def load(self, sums: torch.Tensor) -> None:
        """Restore saved sums (see :meth:`check`)."""
        self.sums.copy_(self.check(sums))
