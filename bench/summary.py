"""The figures of one engine on one corpus, as a plain dict (for the report and results.json)."""

import math

from mailfilter import metrics

# The points of the ROC curve the goals name: TREC's h=.1%, and the
# ham tail, where one lost good message in 10,000 is what users notice.
HAM_POINTS_PCT = (0.1, 0.01)


def accuracy(outcome) -> dict:
    n = len(outcome)
    n_spam = sum(outcome.is_spam)
    n_ham = n - n_spam
    rates = metrics.verdict_rates(outcome.verdicts, outcome.is_spam)
    # lam% needs a binary judgement: where the mail ends up with the usual
    # recipe (only SPAM goes to the junk folder; UNSURE is delivered).
    ham_filed = sum(v == "SPAM" and not y for v, y in zip(outcome.verdicts, outcome.is_spam))
    spam_delivered = sum(v != "SPAM" and y for v, y in zip(outcome.verdicts, outcome.is_spam))
    lam = metrics.lam_percent(ham_filed / n_ham if n_ham else 0.0, spam_delivered / n_spam if n_spam else 0.0,
                              n_ham=n_ham, n_spam=n_spam)
    return {
        "engine": outcome.engine,
        "label": outcome.label,
        "messages": n, "spam": n_spam, "ham": n_ham,
        "one_minus_roca_pct": metrics.one_minus_roca_percent(outcome.scores, outcome.is_spam),
        **{spam_missed_key(h): metrics.spam_missed_at_ham_percent(outcome.scores, outcome.is_spam, h)
           for h in HAM_POINTS_PCT},
        "lam_pct": lam,
        **rates,
        "seconds": outcome.seconds,
        "msgs_per_s": n / outcome.seconds if outcome.seconds else math.nan,
        "errors": outcome.errors,
        "trained": sum(outcome.trained),
        "trained_pct": 100.0 * sum(outcome.trained) / n if n else math.nan,
        "ham_as_spam": sum(v == "SPAM" and not y for v, y in zip(outcome.verdicts, outcome.is_spam)),
    }


def spam_missed_key(ham_pct):
    return f"spam_missed_at_{ham_pct:g}_pct_ham"


def halves(outcome) -> list:
    """accuracy() of the first and the second half of the stream: is it getting better or worse?"""
    half = len(outcome) // 2
    return [accuracy(outcome.part(0, half)), accuracy(outcome.part(half, len(outcome)))]


def windows(outcome, size) -> list:
    """[(start, (1-ROCA)%)] per window of `size` messages, each scored on its own."""
    return metrics.window_roca(outcome.scores, outcome.is_spam, size)


def latency(series) -> dict:
    return {
        "argv": " ".join(series.argv),
        "runs": len(series.seconds),
        "errors": series.errors,
        "first_error": series.first_error,
        "median_ms": series.median_ms(),
        "p95_ms": series.p95_ms(),
        "peak_rss_mb": series.peak_rss_mb(),
        "median_rss_mb": series.median_rss_mb(),
    }


def hardest(outcome, native, k=5) -> dict:
    """The k ham the engine found spammiest and the k spam it found hammiest.

    These are the messages that cost (1-ROCA)%; worth reading when tuning.
    """
    items = list(enumerate(zip(outcome.paths, outcome.is_spam, outcome.scores, outcome.verdicts), 1))
    ham = sorted((x for x in items if not x[1][1]), key=lambda x: -x[1][2])[:k]
    spam = sorted((x for x in items if x[1][1]), key=lambda x: x[1][2])[:k]

    def rows(chosen):
        return [{"position": pos, "path": path, "score": native(score), "verdict": verdict}
                for pos, (path, _, score, verdict) in chosen]

    return {"ham": rows(ham), "spam": rows(spam)}
