"""Which SPAM/GOOD thresholds would the online scores have wanted?

Verdicts on pR (positive = good), as mailfilter and crm114 use it:
    pR <= spam_threshold -> SPAM;  pR >= good_threshold -> GOOD;  else UNSURE.

We search all threshold pairs on a grid for the pair that lets the least spam
through as GOOD while losing at most `max_ham_as_spam_pct` of ham to SPAM
and marking at most `max_unsure_pct` of all mail UNSURE: the issue's targets.
For each spam threshold the best good threshold is the highest one the
UNSURE budget allows, so the search is one pass over the grid.
"""

import math
from dataclasses import dataclass

import numpy as np


@dataclass
class Choice:
    spam_threshold: float
    good_threshold: float
    ham_as_spam_pct: float
    spam_as_ham_pct: float      # spam given GOOD
    unsure_pct: float
    ham_unsure_pct: float
    spam_unsure_pct: float
    n: int


def rates_at(pr, is_spam, spam_threshold, good_threshold) -> Choice:
    pr = np.asarray(pr, dtype=float)
    spam = np.asarray(is_spam, dtype=bool)
    ham = ~spam
    said_spam = pr <= spam_threshold
    said_good = pr >= good_threshold
    unsure = ~said_spam & ~said_good

    def pct(mask, of):
        return 100.0 * int(np.count_nonzero(mask & of)) / max(int(np.count_nonzero(of)), 1)

    everything = np.ones_like(spam)
    return Choice(float(spam_threshold), float(good_threshold), pct(said_spam, ham), pct(said_good, spam),
                  pct(unsure, everything), pct(unsure, ham), pct(unsure, spam), len(pr))


def recommend(pr, is_spam, max_ham_as_spam_pct=0.2, max_unsure_pct=5.0, step=None):
    """The best Choice under the two limits, or None if no pair meets them."""
    pr = np.asarray(pr, dtype=float)
    spam = np.asarray(is_spam, dtype=bool)
    if pr.size == 0 or spam.all() or not spam.any():
        return None
    lo, hi = math.floor(pr.min()), math.ceil(pr.max())
    if step is None:                # round numbers an admin can type: 0.1 pR, coarser for wide scales
        step = max(0.1, 10 ** math.ceil(math.log10(max(hi - lo, 1) / 2000)))
    grid = np.round(np.arange(lo - step, hi + 2 * step, step), 6)
    all_sorted = np.sort(pr)
    ham_sorted = np.sort(pr[~spam])
    spam_sorted = np.sort(pr[spam])
    n, n_ham, n_spam = pr.size, ham_sorted.size, spam_sorted.size
    unsure_budget = int(math.floor(max_unsure_pct / 100 * n + 1e-9))
    best = None
    for s in grid:
        ham_lost = np.searchsorted(ham_sorted, s, side="right")          # ham with pR <= s
        if 100.0 * ham_lost / n_ham > max_ham_as_spam_pct + 1e-12:
            break                   # only gets worse as s rises
        said_spam = np.searchsorted(all_sorted, s, side="right")
        k = said_spam + unsure_budget       # at most k messages may have pR < g
        g_max = all_sorted[k] if k < n else grid[-1]
        g = max(s, math.floor(g_max / step + 1e-9) * step)
        g = float(np.round(g, 6))
        spam_good = n_spam - np.searchsorted(spam_sorted, g, side="left")  # spam with pR >= g
        unsure = np.searchsorted(all_sorted, g, side="left") - said_spam
        key = (spam_good, unsure, ham_lost)     # then: less UNSURE, less ham lost
        if best is None or key < best[0]:
            best = (key, float(s), g)
    if best is None:
        return None
    return rates_at(pr, spam, best[1], best[2])
