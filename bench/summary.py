"""The figures of one engine on one corpus, as a plain dict (for the report and results.json)."""

import math

from mailfilter import metrics


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
        "lam_pct": lam,
        **rates,
        "seconds": outcome.seconds,
        "msgs_per_s": n / outcome.seconds if outcome.seconds else math.nan,
        "errors": outcome.errors,
    }


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
