"""A population's statistics per member: episode sums, one TensorBoard event file per member, and the aggregate.

The aggregate over members is what a reader of N seeds wants: the mean, the interquartile mean (IQM, the mean of
the middle half, robust to a few outliers; Agarwal et al. 2021), the minimum and the maximum.
"""

from __future__ import annotations

import io
import math
import os
import socket
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from rlcourse.episode_stats import EpisodeStats

__all__ = ["MemberEpisodeStats", "MemberEventFiles", "interquartile_mean", "summarise_members"]

#: Seconds between two writes of the members' buffered event files.
MEMBER_LOG_FLUSH_S = 30.0


def interquartile_mean(values: Sequence[float]) -> float:
    """The mean of the middle half of ``values`` (a quarter cut from each end; Agarwal et al. 2021's IQM)."""
    ordered = sorted(values)
    cut = len(ordered) // 4
    middle = ordered[cut : len(ordered) - cut] or ordered
    return sum(middle) / len(middle)


def summarise_members(values: Sequence[float], name: str) -> dict[str, float]:
    """``name`` (the mean over members), ``name_iqm``, ``name_min`` and ``name_max``."""
    return {
        name: sum(values) / len(values),
        f"{name}_iqm": interquartile_mean(values),
        f"{name}_min": min(values),
        f"{name}_max": max(values),
    }


class MemberEpisodeStats(EpisodeStats):
    """:class:`~rlcourse.episode_stats.EpisodeStats` kept per member: ``sums`` is ``[N, 3 + outcomes]``."""

    def __init__(self, outcome_keys: tuple[str, ...], device: torch.device, members: int):
        super().__init__(outcome_keys, device)
        self.members = members
        self.sums = torch.zeros(members, self.sums.numel(), dtype=torch.float64, device=device)

    def record(self, info: dict[str, Any]) -> None:
        def by_member(values: torch.Tensor) -> torch.Tensor:
            return values.view(self.members, -1)

        done = by_member(info["_episode"])
        parts = [done.sum(1), by_member(info["episode"]["r"]).sum(1), by_member(info["episode"]["l"]).sum(1)]
        parts += [(by_member(info["final_info"][key]) & done).sum(1) for key in self.outcome_keys]
        self.sums += torch.stack(parts, 1).to(self.sums.dtype)


class MemberEventFiles:
    """One TensorBoard event file per member (``<run>/seed_<k>/``), buffered in memory and written in bursts:
    a thousand members need neither a thousand writer threads nor a thousand open files."""

    def __init__(self, run_dir: Path, seeds: Sequence[int]):
        from tensorboard.compat.proto import event_pb2, summary_pb2

        self._event, self._summary = event_pb2.Event, summary_pb2.Summary
        self.folders = [Path(run_dir) / f"seed_{seed}" for seed in seeds]
        self.files: list[Path | None] = [None] * len(seeds)
        self.pending = [bytearray() for _ in seeds]
        self._last_flush = time.monotonic()

    def add(self, k: int, scalars: dict[str, float], step: int) -> None:
        values = [
            self._summary.Value(tag=tag, simple_value=value) for tag, value in scalars.items() if math.isfinite(value)
        ]
        event = self._event(wall_time=time.time(), step=int(step), summary=self._summary(value=values))
        self.pending[k] += _record(event.SerializeToString())

    def flush(self, force: bool = True) -> None:
        if not force and time.monotonic() - self._last_flush < MEMBER_LOG_FLUSH_S:
            return
        for k, data in enumerate(self.pending):
            if self.files[k] is None:
                self.folders[k].mkdir(parents=True, exist_ok=True)
                name = f"events.out.tfevents.{time.time():.0f}.{socket.gethostname()}.{os.getpid()}.{k}"
                self.files[k] = self.folders[k] / name
                version = self._event(wall_time=time.time(), file_version="brain.Event:2")
                data[:0] = _record(version.SerializeToString())
            if data:
                with open(self.files[k], "ab") as stream:
                    stream.write(data)
                data.clear()
        self._last_flush = time.monotonic()


def _record(data: bytes) -> bytes:
    """One TFRecord (length, CRCs, payload), as TensorBoard's event files hold them."""
    from tensorboard.summary.writer.record_writer import RecordWriter

    buffer = io.BytesIO()
    RecordWriter(buffer).write(data)
    return buffer.getvalue()
