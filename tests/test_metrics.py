"""mailfilter.metrics against brute force and hand-worked examples."""

import math
import random

import pytest

from mailfilter import metrics


def brute_one_minus_roca(scores, is_spam):
    spam = [s for s, y in zip(scores, is_spam) if y]
    ham = [s for s, y in zip(scores, is_spam) if not y]
    wins = 0.0
    for s in spam:
        for h in ham:
            wins += 1.0 if s > h else 0.5 if s == h else 0.0
    return 100.0 * (1.0 - wins / (len(spam) * len(ham)))


@pytest.mark.parametrize("seed", range(200))
def test_roca_matches_brute_force_with_ties(seed):
    rng = random.Random(seed)
    n = rng.randint(2, 40)
    # Few distinct values so ties are common, sometimes all tied.
    levels = rng.choice([1, 2, 3, 5, 50])
    scores = [rng.randint(0, levels) / 2 - 3 for _ in range(n)]
    is_spam = [rng.random() < 0.4 for _ in range(n)]
    is_spam[0], is_spam[1] = True, False        # both classes present
    assert metrics.one_minus_roca_percent(scores, is_spam) == pytest.approx(
        brute_one_minus_roca(scores, is_spam), abs=1e-9)


def test_roca_hand_examples():
    # Perfect separation, perfectly wrong, all tied.
    assert metrics.one_minus_roca_percent([3, 2, 1, 0], [1, 1, 0, 0]) == 0.0
    assert metrics.one_minus_roca_percent([0, 1, 2, 3], [1, 1, 0, 0]) == 100.0
    assert metrics.one_minus_roca_percent([5, 5, 5], [1, 0, 0]) == 50.0
    # One spam below one of two ham: 1 of 4 pairs wrong -> 25%.
    assert metrics.one_minus_roca_percent([0.9, 0.2, 0.5, 0.1], [1, 1, 0, 0]) == 25.0
    # One spam tied with one ham out of 2 pairs: half a pair wrong -> 25%.
    assert metrics.one_minus_roca_percent([0.7, 0.7, 0.1], [1, 0, 0]) == 25.0


def test_roca_one_class_is_nan():
    assert math.isnan(metrics.one_minus_roca_percent([1, 2], [1, 1]))
    assert math.isnan(metrics.one_minus_roca_percent([], []))


def test_roca_length_mismatch():
    with pytest.raises(ValueError):
        metrics.one_minus_roca_percent([1, 2], [1])


def test_lam_hand_examples():
    # Equal rates: the logit average is that rate.
    assert metrics.lam_percent(0.1, 0.1) == pytest.approx(10.0)
    # logit(0.5) = 0 and logit(0.1) = -ln 9: lam = 1 / (1 + 3) = 25%.
    assert metrics.lam_percent(0.5, 0.1) == pytest.approx(25.0)
    # Symmetric in its arguments.
    assert metrics.lam_percent(0.01, 0.2) == pytest.approx(metrics.lam_percent(0.2, 0.01))
    # logit(0.01) + logit(0.2) = ln(1/99) + ln(1/4) -> lam = 1/(1+sqrt(396)).
    assert metrics.lam_percent(0.01, 0.2) == pytest.approx(100 / (1 + math.sqrt(396)))
    assert metrics.lam_percent(0.0, 0.0) == 0.0


def test_lam_smoothing_with_counts():
    # Zero errors of 99 ham and 99 spam: both rates become 0.5/100.
    assert metrics.lam_percent(0.0, 0.0, n_ham=99, n_spam=99) == pytest.approx(0.5)
    # All wrong: 99.5/100 each.
    assert metrics.lam_percent(1.0, 1.0, n_ham=99, n_spam=99) == pytest.approx(99.5)
    # 1 of 9 ham wrong -> 1.5/10; 0 of 9 spam -> 0.5/10.
    expected = 100 / (1 + math.exp(-(math.log(0.15 / 0.85) + math.log(0.05 / 0.95)) / 2))
    assert metrics.lam_percent(1 / 9, 0.0, n_ham=9, n_spam=9) == pytest.approx(expected)


def test_lam_without_counts_stays_finite_at_edges():
    value = metrics.lam_percent(0.0, 0.3)
    assert 0.0 < value < 1.0
    assert metrics.lam_percent(1.0, 1.0) == pytest.approx(100.0, abs=1e-3)


def test_lam_rejects_non_fractions():
    with pytest.raises(ValueError):
        metrics.lam_percent(5.0, 0.1)


def test_verdict_rates_hand_example():
    # 4 ham: 1 SPAM, 1 UNSURE, 2 GOOD; 5 spam: 3 SPAM, 1 GOOD, 1 UNSURE.
    verdicts = ["SPAM", "UNSURE", "GOOD", "GOOD", "SPAM", "SPAM", "SPAM", "GOOD", "UNSURE"]
    is_spam = [False] * 4 + [True] * 5
    rates = metrics.verdict_rates(verdicts, is_spam)
    assert rates == {
        "ham_as_spam_pct": 25.0,
        "spam_as_ham_pct": 20.0,
        "ham_unsure_pct": 25.0,
        "spam_unsure_pct": 20.0,
        "unsure_pct": pytest.approx(200 / 9),
    }


def test_verdict_rates_empty_class_and_bad_verdict():
    rates = metrics.verdict_rates(["GOOD", "UNSURE"], [False, False])
    assert rates["spam_as_ham_pct"] == 0.0 and rates["spam_unsure_pct"] == 0.0
    assert rates["ham_unsure_pct"] == 50.0
    with pytest.raises(ValueError):
        metrics.verdict_rates(["MAYBE"], [True])


def test_sliding_roca_windows():
    rng = random.Random(1)
    n = 2500
    is_spam = [rng.random() < 0.3 for _ in range(n)]
    scores = [rng.random() + (0.5 if y else 0.0) for y in is_spam]
    curve = metrics.sliding_roca(scores, is_spam, window=1000, step=500)
    assert [end for end, _ in curve] == [1000, 1500, 2000, 2500]
    for end, value in curve:
        assert value == pytest.approx(
            metrics.one_minus_roca_percent(scores[end - 1000:end], is_spam[end - 1000:end]))
    # Uneven length: the last point reaches the end of the stream.
    assert metrics.sliding_roca(scores[:2100], is_spam[:2100], 1000, 500)[-1][0] == 2100


def test_sliding_roca_short_stream_and_one_class_windows():
    assert metrics.sliding_roca([0.1, 0.9], [False, True], window=1000) == [(2, 0.0)]
    # The first window is all ham: skipped.
    scores = [0.0] * 10 + [1.0, 0.0] * 5
    labels = [False] * 10 + [True, False] * 5
    curve = metrics.sliding_roca(scores, labels, window=10, step=10)
    assert curve == [(20, 0.0)]


def test_spam_missed_at_ham_hand_examples():
    # Scores high to low: H .9, S .8, S .7, H .6, S .5, H .4, S .3, H .2 (4 ham, 4 spam).
    scores = [0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2]
    is_spam = [0, 1, 1, 0, 1, 0, 1, 0]
    at = lambda h: metrics.spam_missed_at_ham_percent(scores, is_spam, h)  # noqa: E731
    # No ham may be lost: the threshold sits above the top ham, catching no spam.
    assert at(0.0) == 100.0
    # Half a ham: halfway along the flat segment past the top ham: still no spam caught.
    assert at(12.5) == 100.0
    # One ham lost (25%): the threshold goes down to .7, catching 2 of 4 spam.
    assert at(25.0) == 50.0
    # Two ham lost: down to .5, 3 spam caught.
    assert at(50.0) == 25.0
    # 1.5 ham lost lies between the vertices at 1 and 2 ham; the segment between
    # them is flat (H .6 alone), so still 2 spam caught.
    assert at(37.5) == 50.0
    assert at(100.0) == 0.0


def test_spam_missed_at_ham_ties_interpolate_along_the_segment():
    # S .9, then a tie of one ham and one spam at .5, then H .1.
    scores = [0.9, 0.5, 0.5, 0.1]
    is_spam = [1, 0, 1, 0]
    # 2 ham: 25% is half a ham, half way along the tied segment: 1.5 of 2 spam caught.
    assert metrics.spam_missed_at_ham_percent(scores, is_spam, 25.0) == pytest.approx(25.0)
    # At 0% the tie cannot be taken at all: only the spam at .9 is caught.
    assert metrics.spam_missed_at_ham_percent(scores, is_spam, 0.0) == pytest.approx(50.0)


def test_spam_missed_at_ham_vertical_drop_takes_the_lowest_point():
    # Perfect separation: at 0% ham lost, every spam is caught.
    assert metrics.spam_missed_at_ham_percent([3, 2, 1, 0], [1, 1, 0, 0], 0.0) == 0.0
    # TREC's h=.1% on 2000 ham is exactly 2 ham: the spam below them is caught too,
    # those below the third ham are not.
    scores = [10, 9, 8, 7, 6, 5] + [0] * 1997
    is_spam = [0, 0, 1, 1, 0, 1] + [0] * 1997
    assert metrics.spam_missed_at_ham_percent(scores, is_spam, 0.1) == pytest.approx(100 / 3)
    # h=.01% of 2000 is a fifth of a ham: on the first (flat) segment, no spam caught.
    assert metrics.spam_missed_at_ham_percent(scores, is_spam, 0.01) == 100.0


def brute_spam_missed(scores, is_spam, ham_pct):
    """The lowest point of the piecewise-linear ROC curve with ham lost <= ham_pct."""
    n_spam = sum(1 for y in is_spam if y)
    n_ham = len(is_spam) - n_spam
    vertices = [(0.0, 100.0)]
    for t in sorted(set(scores), reverse=True):
        ham = sum(1 for s, y in zip(scores, is_spam) if s >= t and not y)
        spam = sum(1 for s, y in zip(scores, is_spam) if s >= t and y)
        vertices.append((100.0 * ham / n_ham, 100.0 * (n_spam - spam) / n_spam))
    best = 100.0
    for (x0, y0), (x1, y1) in zip(vertices, vertices[1:]):
        if x0 > ham_pct + 1e-12:
            break
        best = min(best, y1 if x1 <= ham_pct else y0 + (ham_pct - x0) / (x1 - x0) * (y1 - y0))
    return best


@pytest.mark.parametrize("seed", range(100))
def test_spam_missed_at_ham_matches_brute_force(seed):
    rng = random.Random(seed)
    n = rng.randint(2, 60)
    levels = rng.choice([2, 4, 10, 1000])
    scores = [rng.randint(0, levels) for _ in range(n)]
    is_spam = [rng.random() < 0.6 for _ in range(n)]
    is_spam[0], is_spam[1] = True, False
    for h in (0.0, 0.1, 1.0, 10.0, rng.uniform(0, 100), 100.0):
        assert metrics.spam_missed_at_ham_percent(scores, is_spam, h) == pytest.approx(
            brute_spam_missed(scores, is_spam, h), abs=1e-9)


def test_spam_missed_at_ham_edge_cases():
    assert math.isnan(metrics.spam_missed_at_ham_percent([1, 2], [1, 1], 0.1))
    with pytest.raises(ValueError):
        metrics.spam_missed_at_ham_percent([1, 2], [1], 0.1)
    with pytest.raises(ValueError):
        metrics.spam_missed_at_ham_percent([1, 2], [1, 0], 101)


def test_window_roca():
    scores = [0.1, 0.9, 0.2, 0.8] + [0.9, 0.1, 0.8, 0.2] + [0.5, 0.5]
    labels = [0, 1, 0, 1] * 2 + [0, 1]
    # Window 0: perfect; window 4: perfectly wrong; the short last one: all tied.
    assert metrics.window_roca(scores, labels, size=4) == [(0, 0.0), (4, 100.0), (8, 50.0)]
    # A window with one class only has no area: both of these.
    result = metrics.window_roca([1, 2, 3], [1, 1, 0], size=2)
    assert [start for start, _ in result] == [0, 2] and all(math.isnan(v) for _, v in result)
    with pytest.raises(ValueError):
        metrics.window_roca([1], [1], size=0)
