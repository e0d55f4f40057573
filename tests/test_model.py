"""The learner alone: integers in, scores out, no mail. In-process and fast."""

import math

import pytest

from mailfilter.features import family_ranges
from mailfilter.model import FAMILY_WEIGHTS, LN10, TrainPolicy
from mailfilter.store import empty

BITS = 10
(WORDS, _), (IDENTITY, _), (BYTES, _) = family_ranges(BITS)


def message(*words, senders=(), grams=()):
    """Three families; word ids include the bias (id 0)."""
    return ({0, *words}, {IDENTITY + s for s in senders}, {BYTES + g for g in grams})


def family_z(model, ids):
    return math.fsum(model.weights[i] for i in ids) / math.sqrt(len(ids))


def test_the_families_own_disjoint_ranges_that_fill_the_table():
    ranges = family_ranges(BITS)
    assert ranges[0][0] == 0 and ranges[-1][1] == 1 << BITS
    assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:]))
    assert len(ranges) == len(FAMILY_WEIGHTS) == len(TrainPolicy().margins)


def test_an_empty_model_has_no_opinion():
    model = empty(BITS)
    assert model.pr(message(3, 4, senders=(1,), grams=(1, 2))) == 0.0


def test_learning_moves_each_family_beyond_its_margin_on_the_right_side():
    # A small margin, reached in the rounds allowed: AdaGrad's steps shrink
    # as the gradient does, so a 3 pR margin takes more than 8 rounds on a
    # message this small.
    model, policy = empty(BITS), TrainPolicy(margin=0.5, byte_margin_extra=0.5, max_rounds=50)
    spam = message(3, 4, 5, senders=(7,), grams=(1, 2))
    good = message(6, 8, 9, senders=(8,), grams=(3, 4))
    assert model.learn(spam, True, policy) > 0
    for ids, margin in zip(spam, policy.margins):
        assert family_z(model, ids) >= margin * LN10
    assert model.learn(good, False, policy) > 0
    for ids, margin in zip(good, policy.margins):
        assert family_z(model, ids) <= -margin * LN10
    assert model.pr(spam) < 0 < model.pr(good)       # the shared bias moved, not enough to flip
    assert model.trained_spam == 1 and model.trained_good == 1


def test_a_message_already_beyond_the_margin_is_not_trained_again():
    model, policy = empty(BITS), TrainPolicy(margin=0.5, byte_margin_extra=0.5)
    spam = message(3, 4, senders=(2,), grams=(1,))
    for _ in range(20):                 # a few calls of at most max_rounds each
        if model.learn(spam, True, policy) == 0:
            break
    trained = model.trained_spam
    before = bytes(model.weights.cast("B"))
    assert model.learn(spam, True, policy) == 0
    assert bytes(model.weights.cast("B")) == before and model.trained_spam == trained


def test_a_rehearsal_updates_but_does_not_count_a_message():
    model, policy = empty(BITS), TrainPolicy()
    assert model.learn(message(3, grams=(1,)), True, policy, count=False) > 0
    assert model.trained == 0 and model.pr(message(3, grams=(1,))) < 0


def test_a_saturated_message_stops_instead_of_dividing_by_zero():
    """exp(-50) is below float precision next to 1: the gradient is exactly 0."""
    model, policy = empty(BITS), TrainPolicy(margin=1000.0, max_rounds=3)
    spam = message(3)
    for i in spam[0]:
        model.weights[i] = 1e6
    assert model.learn(spam, True, policy) == 0
    assert all(math.isfinite(model.weights[i]) for i in range(1 << BITS))


def test_length_does_not_outvote_content():
    """Unit-length vectors: repeating neutral words does not dilute a spammy
    word to nothing, nor does a long message's count alone decide."""
    model, policy = empty(BITS), TrainPolicy()
    model.learn(message(3), True, policy)
    short = model.pr(message(3))
    long = model.pr(message(3, *range(100, 120)))
    assert short < long < 0


def test_shift_to_puts_the_score_exactly_where_asked_and_leaves_the_bias():
    model = empty(BITS)
    ids = message(3, 4, 5, senders=(1,), grams=(1, 2))
    model.shift_to(ids, -2.5)
    assert model.pr(ids) == pytest.approx(-2.5, abs=1e-5)
    assert model.weights[0] == 0.0


def test_copy_is_independent():
    model = empty(BITS)
    twin = model.copy()
    twin.weights[7] = 1.0
    twin.trained_spam = 3
    assert model.weights[7] == 0.0 and model.trained_spam == 0


def test_pr_is_log10_odds_good_over_spam():
    model = empty(BITS)
    model.weights[0] = 2.0          # bias alone: z = 2 (spam log-odds), one word family id
    assert model.pr(({0}, set(), set())) == pytest.approx(-2.0 / LN10)
