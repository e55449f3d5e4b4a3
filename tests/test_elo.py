"""The bench's Elo fit (rlcourse/app/bench/elo.py) against ratings worked out by hand."""

from __future__ import annotations

import math

import pytest

from rlcourse.app.bench.elo import Pairing, expected_score, fit_elo

THREE_TO_ONE = 400 * math.log10(3)  # 190.85 points: a 0.75 expected score


def test_a_three_to_one_record_is_191_points_above_the_anchor():
    ratings = fit_elo(["a", "b"], [Pairing("a", "b", wins_a=3, wins_b=1)], anchor="b", prior_draws=0)
    assert ratings["b"] == pytest.approx(1000.0)
    assert ratings["a"] == pytest.approx(1000.0 + THREE_TO_ONE, abs=1e-6)
    assert expected_score(ratings["a"], ratings["b"]) == pytest.approx(0.75)


def test_draws_count_half_a_win_each():
    ratings = fit_elo(["a", "b"], [Pairing("a", "b", wins_a=2, wins_b=0, draws=2)], anchor="b", prior_draws=0)
    assert ratings["a"] - ratings["b"] == pytest.approx(THREE_TO_ONE, abs=1e-6)


def test_a_consistent_round_robin_is_fitted_exactly():
    # a beats b 3:1 and b beats c 3:1, so Bradley-Terry odds of a over c are 9:1, a 0.9 score
    pairings = [Pairing("a", "b", 75, 25), Pairing("b", "c", 75, 25), Pairing("c", "a", 10, 90)]
    ratings = fit_elo(["c", "b", "a"], pairings, anchor="c", anchor_rating=1500, prior_draws=0)
    assert ratings["c"] == pytest.approx(1500.0)
    assert ratings["b"] == pytest.approx(1500.0 + THREE_TO_ONE, abs=1e-6)
    assert ratings["a"] == pytest.approx(1500.0 + 2 * THREE_TO_ONE, abs=1e-6)
    assert expected_score(1400, 1000) == pytest.approx(1 / (1 + 10**-1))


def test_the_prior_keeps_a_perfect_record_finite():
    # 10 wins and one virtual draw: 10.5 points of 11, odds of 21 to 1
    ratings = fit_elo(["a", "b"], [Pairing("a", "b", 10, 0)], anchor="b")
    assert ratings["a"] - ratings["b"] == pytest.approx(400 * math.log10(21), abs=1e-6)
    with pytest.raises(ValueError, match="prior_draws > 0"):
        fit_elo(["a", "b"], [Pairing("a", "b", 10, 0)], anchor="b", prior_draws=0)


@pytest.mark.parametrize(
    "players, pairings, anchor, words",
    [
        (["a", "b"], [Pairing("a", "b", 1, 1)], "c", ["anchor", "'c'"]),
        (["a", "b", "c", "d"], [Pairing("a", "b", 1, 1), Pairing("c", "d", 1, 1)], "a", ["'c'", "no common scale"]),
        (["a", "b"], [Pairing("a", "x", 1, 1)], "a", ["'x'"]),
        (["a", "b"], [Pairing("a", "b", -1, 1)], "a", ["negative"]),
        (["a"], [], "a", ["two distinct"]),
    ],
)
def test_bad_input_is_a_clear_value_error(players, pairings, anchor, words):
    with pytest.raises(ValueError) as error:
        fit_elo(players, pairings, anchor=anchor)
    assert all(word in str(error.value) for word in words), error.value
