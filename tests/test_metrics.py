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
