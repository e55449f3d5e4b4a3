"""Elo ratings from a round robin: a Bradley–Terry maximum-likelihood fit on Elo's scale.

**Model.** Player ``i`` has rating ``R_i``; it beats ``j`` with probability

    P(i beats j) = 1 / (1 + 10^((R_j − R_i) / 400)),

Elo's logistic curve, which is the Bradley–Terry model P = γ_i / (γ_i + γ_j) with strengths
γ_i = 10^(R_i / 400). A draw counts as half a win for each side (Elo's convention).

**Fit.** With ``s_ij`` the score of ``i`` against ``j`` (wins + draws / 2) out of ``n_ij`` games, the
log-likelihood Σ s_ij log P(i beats j) is concave in the ratings, and its maximum is where every player's
expected score equals its actual one: Σ_j n_ij P(i beats j) = Σ_j s_ij. :func:`fit_elo` reaches it with
Hunter's MM iteration (Hunter 2004, "MM algorithms for generalized Bradley–Terry models"),

    γ_i ← (Σ_j s_ij) / Σ_j n_ij / (γ_i + γ_j),

which raises the likelihood at every step, then shifts all ratings so that the ``anchor`` player has
``anchor_rating`` (ratings are defined up to a common shift; ``random = 1000`` here). A gap of 400
points means odds of 10 to 1; 191 points, 3 to 1 (a 0.75 expected score).

**Perfect records.** A player that won (or lost) every game has no finite maximum-likelihood rating, so
each pairing gets ``prior_draws`` virtual drawn games (default 1: half a point each way), a weak prior
that pulls ratings towards each other by a few points at a thousand games a pairing. ``prior_draws=0``
gives the plain maximum-likelihood fit.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

ELO_SCALE = 400.0


@dataclass(frozen=True)
class Pairing:
    """The games of one pairing: ``a`` won ``wins_a``, ``b`` won ``wins_b``, and ``draws`` were drawn."""

    a: str
    b: str
    wins_a: float
    wins_b: float
    draws: float = 0.0

    @property
    def games(self) -> float:
        return self.wins_a + self.wins_b + self.draws


def expected_score(rating: float, other: float) -> float:
    """The expected score (win probability, a draw counting half) of a player rated ``rating`` against ``other``."""
    return 1.0 / (1.0 + 10.0 ** ((other - rating) / ELO_SCALE))


def fit_elo(
    players: Sequence[str],
    pairings: Iterable[Pairing],
    anchor: str,
    anchor_rating: float = 1000.0,
    prior_draws: float = 1.0,
    tolerance: float = 1e-9,
    max_iterations: int = 100_000,
) -> dict[str, float]:
    """Elo ratings of ``players`` from their ``pairings`` (see the module docstring), ``anchor`` at ``anchor_rating``.

    Raises ``ValueError`` for an unknown player, a negative count, an anchor that is not a player, or players
    that are not all connected by games (their ratings against each other would be undefined).
    """
    names = list(players)
    index = {name: i for i, name in enumerate(names)}
    if len(index) != len(names) or len(names) < 2:
        raise ValueError(f"players must be at least two distinct names, got {names!r}")
    if anchor not in index:
        raise ValueError(f"anchor {anchor!r} is not one of the players {names}")
    if not prior_draws >= 0:
        raise ValueError(f"prior_draws must be >= 0, got {prior_draws!r}")
    count = len(names)
    games = [[0.0] * count for _ in range(count)]
    score = [0.0] * count
    for pairing in pairings:
        for name in (pairing.a, pairing.b):
            if name not in index:
                raise ValueError(f"pairing {pairing} names {name!r}, which is not one of the players {names}")
        if pairing.a == pairing.b:
            raise ValueError(f"pairing {pairing} has a player against itself")
        if min(pairing.wins_a, pairing.wins_b, pairing.draws) < 0:
            raise ValueError(f"pairing {pairing} has a negative count")
        i, j = index[pairing.a], index[pairing.b]
        n = pairing.games + prior_draws
        games[i][j] += n
        games[j][i] += n
        score[i] += pairing.wins_a + (pairing.draws + prior_draws) / 2
        score[j] += pairing.wins_b + (pairing.draws + prior_draws) / 2
    _check_connected(names, games)
    if any(s <= 0 or s >= sum(row) for s, row in zip(score, games)):
        raise ValueError(
            "a player won or lost every game, so its rating is unbounded; fit with prior_draws > 0 "
            f"(scores {dict(zip(names, score))})"
        )
    strength = [1.0] * count
    for _ in range(max_iterations):
        updated = [
            score[i] / sum(games[i][j] / (strength[i] + strength[j]) for j in range(count) if games[i][j])
            for i in range(count)
        ]
        scale = math.exp(sum(math.log(g) for g in updated) / count)  # a common factor changes nothing: keep γ ~ 1
        updated = [g / scale for g in updated]
        change = max(abs(math.log(u / s)) for u, s in zip(updated, strength))
        strength = updated
        if change < tolerance:
            break
    ratings = [ELO_SCALE * math.log10(g) for g in strength]
    shift = anchor_rating - ratings[index[anchor]]
    return {name: rating + shift for name, rating in zip(names, ratings)}


def _check_connected(names: list[str], games: list[list[float]]) -> None:
    seen, frontier = {0}, [0]
    while frontier:
        i = frontier.pop()
        for j, n in enumerate(games[i]):
            if n > 0 and j not in seen:
                seen.add(j)
                frontier.append(j)
    if len(seen) != len(names):
        apart = [names[i] for i in range(len(names)) if i not in seen]
        raise ValueError(f"the players {apart} played no games linking them to {names[0]!r}: no common scale")
