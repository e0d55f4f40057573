"""The learner alone: integers in, scores out, no mail. In-process and fast."""

import math

import pytest

from mailfilter.model import LN10, TrainPolicy
from mailfilter.store import empty

BITS = 10
HALF = 1 << (BITS - 1)


def message(*words, grams=()):
    return ({0, *words}, {HALF + g for g in grams})


def test_an_empty_model_has_no_opinion():
    model = empty(BITS)
    assert model.pr(message(3, 4, grams=(1, 2))) == 0.0


def test_learning_moves_the_score_beyond_the_margin_on_the_right_side():
    model, policy = empty(BITS), TrainPolicy()
    spam, good = message(3, 4, 5, grams=(1, 2)), message(6, 7, 8, grams=(3, 4))
    assert model.learn(spam, True, policy) > 0
    assert model.learn(good, False, policy) > 0
    assert model.pr(spam) < 0 < model.pr(good)
    assert model.trained_spam == 1 and model.trained_good == 1
    # Each family alone was trained until beyond the margin (or max rounds).
    for ids in spam:
        z = math.fsum(model.weights[i] for i in ids) / math.sqrt(len(ids))
        assert z >= policy.margin * LN10 or z > 0


def test_a_message_already_beyond_the_margin_is_not_trained_again():
    model, policy = empty(BITS), TrainPolicy()
    spam = message(3, 4, grams=(1,))
    for _ in range(20):                 # a few calls of at most max_rounds each
        if model.learn(spam, True, policy) == 0:
            break
    trained = model.trained_spam
    before = bytes(model.weights.cast("B"))
    assert model.learn(spam, True, policy) == 0
    assert bytes(model.weights.cast("B")) == before and model.trained_spam == trained


def test_length_does_not_outvote_content():
    """Unit-length vectors: repeating neutral words does not dilute a spammy
    word to nothing, nor does a long message's count alone decide."""
    model, policy = empty(BITS), TrainPolicy()
    model.learn(message(3, grams=()), True, policy)
    short = model.pr(message(3))
    long = model.pr(message(3, *range(100, 120)))
    assert short < long < 0


def test_shift_to_puts_the_score_exactly_where_asked_and_leaves_the_bias():
    model = empty(BITS)
    ids = message(3, 4, 5, grams=(1, 2))
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
    assert model.pr(({0}, set())) == pytest.approx(-2.0 / LN10)
