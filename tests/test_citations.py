"""Every course-note citation names its lecture: ``notes:A-B [Lecture]``, with the lecture the lines are in."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: The lectures (level-2 headings) of ml2020_notes.txt: (first line, name), in order.
LECTURES = [
    (3924, "RNN"),
    (4341, None),  # semi-supervised learning and the chapters after it, up to the GAN lectures
    (10428, "Sequence Generation by GAN"),
    (10954, None),
    (12273, "Deep RL"),
    (12607, "PPO"),
    (13001, "Q-Learning"),
    (13642, "Actor-Critic"),
    (13862, "Sparse Reward"),
    (14042, "Imitation Learning"),
    (14261, None),
]
CITATION = re.compile(r"notes:(\d+)(?:-(\d+))?( \[([^\]]+)\])?")
SOURCES = [
    path
    for folder in ("agents", "envs", "supervised", "rlcourse", "docs", "examples")
    for path in sorted((ROOT / folder).rglob("*"))
    if path.suffix in {".py", ".md", ".yml", ".json"} and "bench" not in path.parts
] + [ROOT / "README.md"]


def lecture_of(line: int) -> str | None:
    names = [name for first, name in LECTURES if first <= line]
    return names[-1] if names else None


def test_the_lecture_table_is_ordered():
    assert [first for first, _ in LECTURES] == sorted(first for first, _ in LECTURES)
    assert lecture_of(12965) == "PPO" and lecture_of(13260) == "Q-Learning" and lecture_of(3928) == "RNN"


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_each_citation_names_the_lecture_its_lines_are_in(path):
    for match in CITATION.finditer(path.read_text(errors="replace")):
        first, last = int(match.group(1)), int(match.group(2) or match.group(1))
        start, end = lecture_of(first), lecture_of(last)
        expected = start if start == end else f"{start} to {end}"
        assert match.group(4) == expected, f"{path.name}: {match.group(0)!r} should name [{expected}]"
