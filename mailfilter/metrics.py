"""Spam-filter accuracy figures, TREC spam-track style.

Pure Python (no numpy): `mailfilter eval` imports this, and the benchmark
(bench/) uses the same functions so both report the same numbers.

Conventions:
  * scores: higher means spammier (TREC), i.e. score = -pR for mailfilter.
  * is_spam: a parallel sequence of booleans (the gold standard).
  * rates are fractions in [0, 1]; functions ending in _pct/_percent return
    percentages.
"""

import math

__all__ = ["one_minus_roca_percent", "spam_missed_at_ham_percent", "lam_percent", "verdict_rates",
           "sliding_roca", "window_roca"]


def one_minus_roca_percent(scores, is_spam) -> float:
    """(1 - area under the ROC curve) in percent, exactly.

    The area is the Mann-Whitney statistic: the fraction of (spam, ham) pairs
    in which the spam scores higher, a tie counting half. Computed from
    tie-averaged ranks after one sort, so O(n log n). Ranks are kept doubled
    so the arithmetic stays in integers until the final division.

    Returns NaN when there is no spam or no ham: the area is undefined then.
    """
    scores = list(scores)
    labels = [bool(s) for s in is_spam]
    if len(scores) != len(labels):
        raise ValueError("scores and is_spam differ in length")
    n_spam = sum(labels)
    n_ham = len(labels) - n_spam
    if n_spam == 0 or n_ham == 0:
        return float("nan")
    order = sorted(range(len(scores)), key=scores.__getitem__)
    doubled_rank_sum = 0        # sum over spam of 2 * (1-based, tie-averaged) rank
    i = 0
    n = len(order)
    while i < n:
        j = i
        value = scores[order[i]]
        while j + 1 < n and scores[order[j + 1]] == value:
            j += 1
        # Positions i..j (0-based) share the average rank ((i+1)+(j+1))/2.
        spam_in_group = sum(1 for k in range(i, j + 1) if labels[order[k]])
        doubled_rank_sum += spam_in_group * (i + j + 2)
        i = j + 1
    # Doubled U statistic: pairs where spam outranks ham, ties counted half.
    doubled_u = doubled_rank_sum - n_spam * (n_spam + 1)
    auc = doubled_u / (2 * n_spam * n_ham)
    return 100.0 * (1.0 - auc)


def spam_missed_at_ham_percent(scores, is_spam, ham_pct) -> float:
    """Spam misclassified (%) at a given ham misclassification (%), from the scores.

    TREC's "h=.1%" figure: the ROC curve read at one point. The curve is
    the empirical one, as (1-ROCA)% above measures it: each distinct score
    is a threshold "spam if score >= t", giving a vertex (ham misclassified,
    spam misclassified); tied scores join their vertices with a straight
    segment (the "ties count half" of the area). The curve is linear
    between vertices, so at 0.1% of 25,220 ham (25.22 messages) it lies
    between the thresholds that lose 25 and 26 ham. Where the curve drops
    straight down at ham_pct (spam-only scores), the lowest point counts:
    that many lost ham buy it.

    Returns NaN when there is no spam or no ham.
    """
    scores = list(scores)
    labels = [bool(s) for s in is_spam]
    if len(scores) != len(labels):
        raise ValueError("scores and is_spam differ in length")
    if not 0.0 <= ham_pct <= 100.0:
        raise ValueError(f"ham misclassification {ham_pct}% is not a percentage")
    n_spam = sum(labels)
    n_ham = len(labels) - n_spam
    if n_spam == 0 or n_ham == 0:
        return float("nan")
    # In ham counts: target ham lost, exactly as a fraction of a message.
    target = ham_pct / 100.0 * n_ham
    order = sorted(range(len(scores)), key=scores.__getitem__, reverse=True)
    ham_lost, spam_caught = 0, 0        # at the vertex before this group of tied scores
    i, n = 0, len(order)
    while i < n:
        j = i
        value = scores[order[i]]
        while j + 1 < n and scores[order[j + 1]] == value:
            j += 1
        group_ham = sum(1 for k in range(i, j + 1) if not labels[order[k]])
        group_spam = (j - i + 1) - group_ham
        if ham_lost + group_ham > target:
            # The point lies on this group's segment (or at its start).
            share = (target - ham_lost) / group_ham
            caught = spam_caught + share * group_spam
            return 100.0 * (n_spam - caught) / n_spam
        ham_lost += group_ham
        spam_caught += group_spam
        i = j + 1
    return 100.0 * (n_spam - spam_caught) / n_spam


def _logit(p: float) -> float:
    return math.log(p / (1.0 - p))


def lam_percent(ham_misclassification_rate, spam_misclassification_rate,
                n_ham=None, n_spam=None) -> float:
    """TREC's logistic average misclassification, in percent.

    lam = logit^-1((logit(hm) + logit(sm)) / 2), rates as fractions.

    logit is infinite at 0 and 1, so rates there need smoothing:
      * With the counts (n_ham, n_spam) given, each rate gets TREC's half-a-
        message smoothing: (errors + 0.5) / (n + 1). This is what the bench
        and `mailfilter eval` use; it keeps a perfect run finite and slightly
        above zero, and barely moves rates far from 0 and 1.
      * Without counts, a rate of exactly 0 or 1 is clamped to 1e-6 from
        the edge; if both rates are exactly 0 the result is 0.0.
    """
    hm = float(ham_misclassification_rate)
    sm = float(spam_misclassification_rate)
    for rate in (hm, sm):
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"misclassification rate {rate} is not a fraction in [0, 1]")
    if n_ham is not None and n_spam is not None:
        if n_ham <= 0 or n_spam <= 0:
            return float("nan")
        hm = (hm * n_ham + 0.5) / (n_ham + 1)
        sm = (sm * n_spam + 0.5) / (n_spam + 1)
    else:
        if hm == 0.0 and sm == 0.0:
            return 0.0
        eps = 1e-6
        hm = min(max(hm, eps), 1.0 - eps)
        sm = min(max(sm, eps), 1.0 - eps)
    mean = (_logit(hm) + _logit(sm)) / 2.0
    return 100.0 / (1.0 + math.exp(-mean))


def verdict_rates(verdicts, is_spam) -> dict:
    """Error and UNSURE rates, in percent, from 'SPAM'/'GOOD'/'UNSURE' verdicts.

    ham_as_spam_pct: ham given SPAM, of all ham (the lost good mail).
    spam_as_ham_pct: spam given GOOD, of all spam (UNSURE is not counted
    here but in spam_unsure_pct). unsure_pct is of all messages. A class
    with no messages gives 0.0 for its rates.
    """
    verdicts = list(verdicts)
    labels = [bool(s) for s in is_spam]
    if len(verdicts) != len(labels):
        raise ValueError("verdicts and is_spam differ in length")
    counts = {(spam, v): 0 for spam in (True, False) for v in ("SPAM", "GOOD", "UNSURE")}
    for verdict, spam in zip(verdicts, labels):
        verdict = str(verdict).upper()
        if verdict not in ("SPAM", "GOOD", "UNSURE"):
            raise ValueError(f"unknown verdict {verdict!r}")
        counts[(spam, verdict)] += 1
    n_spam = sum(labels)
    n_ham = len(labels) - n_spam

    def pct(count, total):
        return 100.0 * count / total if total else 0.0

    return {
        "ham_as_spam_pct": pct(counts[(False, "SPAM")], n_ham),
        "spam_as_ham_pct": pct(counts[(True, "GOOD")], n_spam),
        "ham_unsure_pct": pct(counts[(False, "UNSURE")], n_ham),
        "spam_unsure_pct": pct(counts[(True, "UNSURE")], n_spam),
        "unsure_pct": pct(counts[(False, "UNSURE")] + counts[(True, "UNSURE")], len(labels)),
    }


def sliding_roca(scores, is_spam, window=1000, step=100):
    """Learning curve: [(end_index, (1-ROCA)%)] over a sliding window.

    Each point covers messages [end_index - window, end_index), so end_index
    is the number of messages seen when the window closes. Windows without
    both spam and ham are skipped. A stream shorter than the window gives
    one point over all of it.
    """
    scores = list(scores)
    labels = list(is_spam)
    n = len(scores)
    if window <= 0 or step <= 0:
        raise ValueError("window and step must be positive")
    if n == 0:
        return []
    if n < window:
        ends = [n]
    else:
        ends = list(range(window, n + 1, step))
        if ends[-1] != n:
            ends.append(n)          # the curve always reaches the last message
    curve = []
    for end in ends:
        start = max(0, end - window)
        value = one_minus_roca_percent(scores[start:end], labels[start:end])
        if not math.isnan(value):
            curve.append((end, value))
    return curve


def window_roca(scores, is_spam, size=10000):
    """[(start index, (1-ROCA)%)] for consecutive windows of `size` messages.

    Each window [start, start + size) is scored on its own, as if the run
    began there; the last one may be shorter. Windows without both spam
    and ham give NaN. Shows where in a stream an engine loses ground.
    """
    scores = list(scores)
    labels = list(is_spam)
    if size <= 0:
        raise ValueError("window size must be positive")
    return [(start, one_minus_roca_percent(scores[start:start + size], labels[start:start + size]))
            for start in range(0, len(scores), size)]
