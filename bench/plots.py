"""PNG charts for the report: ROC curves, score histograms, learning curves.

Small files on purpose (they are committed): 100 dpi, no embedded data.
"""

import math
import os

import matplotlib

matplotlib.use("Agg")           # no display on servers and in CI
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from mailfilter import metrics  # noqa: E402

COLORS = {"mailfilter": "tab:blue", "bogofilter": "tab:orange", "crm114": "tab:green"}
FLOOR_PCT = 0.01        # log axes cannot show 0%: zero is drawn at this floor


def roc_points(scores, is_spam):
    """(ham misclassified %, spam caught %) for every threshold 'spam if score >= t'."""
    scores = np.asarray(scores, dtype=float)
    spam = np.asarray(is_spam, dtype=bool)
    order = np.argsort(-scores, kind="mergesort")
    s, y = scores[order], spam[order]
    tp = np.cumsum(y)
    fp = np.cumsum(~y)
    # Keep only the last point of each run of tied scores: a threshold takes all or none of them.
    last = np.r_[s[1:] != s[:-1], True]
    fpr = 100.0 * fp[last] / max(int((~spam).sum()), 1)
    tpr = 100.0 * tp[last] / max(int(spam.sum()), 1)
    return np.r_[0.0, fpr], np.r_[0.0, tpr]


def roc(outcomes, path, title):
    fig, ax = plt.subplots(figsize=(7.5, 5))
    lowest = 100.0
    for o in outcomes:
        fpr, tpr = roc_points(o.scores, o.is_spam)
        roca = metrics.one_minus_roca_percent(o.scores, o.is_spam)
        ax.step(np.maximum(fpr, FLOOR_PCT), tpr, where="post", color=COLORS.get(o.engine),
                label=f"{o.label} (1-ROCA)%={roca:.3f}")
        lowest = min(lowest, float(np.interp(0.1, fpr, tpr)))
        # The engine's own default operating point: SPAM verdicts only.
        rates = metrics.verdict_rates(o.verdicts, o.is_spam)
        caught = 100.0 * sum(v == "SPAM" and y for v, y in zip(o.verdicts, o.is_spam)) / max(sum(o.is_spam), 1)
        ax.plot(max(rates["ham_as_spam_pct"], FLOOR_PCT), caught, "o", color=COLORS.get(o.engine), ms=6)
    ax.set_xscale("log")
    ax.set_xlim(FLOOR_PCT, 100)
    ax.set_ylim(max(0.0, math.floor(min(lowest, 99) / 5) * 5 - 5), 100.5)
    ax.set_xlabel(f"ham misclassified as spam (%), log scale; 0 drawn at {FLOOR_PCT}%")
    ax.set_ylabel("spam caught (%)")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower right", fontsize=9, title="dots: default thresholds, SPAM verdicts", title_fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def histograms(outcomes, engines, path, title):
    fig, axes = plt.subplots(len(outcomes), 1, figsize=(7.5, 2.6 * len(outcomes)), squeeze=False)
    for ax, o in zip(axes[:, 0], outcomes):
        engine = engines[o.engine]
        native = np.array([engine.native(s) for s in o.scores])
        spam = np.asarray(o.is_spam, dtype=bool)
        lo, hi = np.percentile(native, [0.5, 99.5]) if native.size else (0, 1)
        if hi <= lo:
            lo, hi = lo - 1, hi + 1
        bins = np.linspace(lo, hi, 61)
        clipped = np.clip(native, lo, hi)   # outliers pile up in the end bins, not off-chart
        ax.hist(clipped[~spam], bins=bins, alpha=0.6, color="tab:blue", label=f"ham ({(~spam).sum()})")
        ax.hist(clipped[spam], bins=bins, alpha=0.6, color="tab:red", label=f"spam ({spam.sum()})")
        thresholds = engine.native_thresholds()
        if thresholds:
            for t, name in zip(thresholds, ("spam threshold", "good threshold")):
                if lo <= t <= hi:
                    ax.axvline(t, color="k", ls="--", lw=1)
                    ax.annotate(f"{name} {t:g}", (t, 0.95), xycoords=("data", "axes fraction"),
                                fontsize=7, rotation=90, va="top", ha="right")
        ax.set_yscale("log")
        ax.set_title(f"{o.label}: {engine.unit} (outermost 0.5% each side drawn in the end bins)", fontsize=10)
        ax.legend(fontsize=8, loc="best")
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def learning_curves(outcomes, path, title, window=1000, step=100):
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    floor = 1e-3
    longest = max((len(o) for o in outcomes), default=0)
    if longest < 2 * window:        # small corpora (the CI smoke run): a window that still makes a curve
        window = max(longest // 4, 20)
        step = max(window // 5, 1)
    for o in outcomes:
        curve = metrics.sliding_roca(o.scores, o.is_spam, window=window, step=step)
        if not curve:
            continue
        x = [end for end, _ in curve]
        y = [max(v, floor) for _, v in curve]
        ax.plot(x, y, color=COLORS.get(o.engine), label=o.label, marker="." if len(x) < 30 else None)
    ax.set_yscale("log")
    ax.set_xlabel("messages seen")
    ax.set_ylabel(f"(1-ROCA)%, last {window} messages")
    ax.set_title(f"{title}\nsliding window of {window} messages, step {step}; log scale, 0 drawn at {floor}",
                 fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def all_plots(outcomes, engines, out_dir, slug, corpus_name):
    """Write the three charts for one corpus; return {kind: file name}."""
    files = {"roc": f"{slug}-roc.png", "histograms": f"{slug}-histograms.png",
             "learning": f"{slug}-learning.png"}
    roc(outcomes, os.path.join(out_dir, files["roc"]), f"ROC, online protocol: {corpus_name}")
    histograms(outcomes, engines, os.path.join(out_dir, files["histograms"]),
               f"Online scores, spam vs ham: {corpus_name}")
    learning_curves(outcomes, os.path.join(out_dir, files["learning"]),
                    f"Learning curves: {corpus_name}")
    return files
