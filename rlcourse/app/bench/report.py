"""Writing a bench report: number formatting, markdown tables, and the ``.md``/``.json`` file pair.

Every suite renders its own markdown from these pieces and writes it with :func:`write_report`, so the
reports of all suites read alike: ``mean [min–max]`` over seeds, ``—`` for a missing value, ratios as ``2.50×``.
"""

from __future__ import annotations

import json
import re
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def num(value: float | None, digits: int = 0) -> str:
    """A number with thousands separators and ``digits`` decimals; ``—`` for None."""
    if value is None:
        return "—"
    return f"{value:,.{digits}f}"


def spread(values: list[float | None], digits: int = 0) -> str:
    """``mean`` for one seed; ``mean [min–max]`` for several; notes how many seeds had no value."""
    present = [v for v in values if v is not None]
    if not present:
        return "never" if values else "—"
    text = num(statistics.fmean(present), digits)
    if len(present) > 1:
        text += f" [{num(min(present), digits)}–{num(max(present), digits)}]"
    if len(present) < len(values):
        text += f" ({len(present)}/{len(values)} seeds)"
    return text


def ratio_cell(value: float | None) -> str:
    """A ratio such as ``2.50×`` (``—`` when there is nothing to compare with)."""
    return "—" if value is None else f"{value:.2f}×"


def table(header: Sequence[str], lines: Sequence[Sequence[str]]) -> list[str]:
    """A markdown table: the header row, the separator, then one row per line of cells."""
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + [
        "| " + " | ".join(line) + " |" for line in lines
    ]


def device_slug(device_name: str) -> str:
    """The short file-name form of a device description (``AMD EPYC 7B13, 2 CPUs, ...`` -> ``amd-epyc-7b13``)."""
    return re.sub(r"[^A-Za-z0-9]+", "-", device_name.split(",")[0].split(" (")[0]).strip("-").lower()


def write_report(
    markdown: str, payload: dict[str, Any], meta: dict[str, Any], out_dir: str | Path, suite: str | None = None
) -> tuple[Path, Path]:
    """Write ``<out_dir>/bench-[<suite>-]<device>-<name>-<date>.md`` and a ``.json`` of ``{"meta": ..., **payload}``.

    Returns both paths. The cartpole suite, the first one, writes its files without a suite name.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    prefix = "bench" if suite is None else f"bench-{suite}"
    stem = out_dir / f"{prefix}-{meta['device']}-{device_slug(meta['device_name'])}-{meta['date']}"
    md_path, json_path = stem.with_suffix(".md"), stem.with_suffix(".json")
    md_path.write_text(markdown)
    json_path.write_text(json.dumps({"meta": meta, **payload}, indent=2))
    return md_path, json_path
