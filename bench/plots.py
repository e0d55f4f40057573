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
STYLES = {"plain": "-", "site-headers": "--", "feedback": ":"}


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


def _floor(n):
    """The lowest power of ten at or below one message of n, in percent: where 0 is drawn on a log axis."""
    return 10.0 ** math.floor(math.log10(100.0 / max(n, 1)))


def _roc_axes(ax, outcomes, title):
    n_ham = max((len(o) - sum(o.is_spam) for o in outcomes), default=1)
    n_spam = max((sum(o.is_spam) for o in outcomes), default=1)
    x_floor, y_floor = _floor(n_ham), _floor(n_spam)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(x_floor, 100)
    ax.set_ylim(y_floor, 100)
    # TREC's h=.1% and the ham tail at 0.01%: the points the goals name.
    for h in (0.1, 0.01):
        if h > x_floor:
            ax.axvline(h, color="grey", lw=0.8, ls="-.")
            ax.annotate(f"{h:g}% of ham", (h, 0.98), xycoords=("data", "axes fraction"), fontsize=7,
                        rotation=90, va="top", ha="right", color="grey")
    ax.set_xlabel(f"ham misclassified as spam (%), log scale; 0 drawn at {x_floor:g}%")
    ax.set_ylabel(f"spam missed (%), log scale; 0 drawn at {y_floor:g}%")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    return x_floor, y_floor


def _curve(ax, o, x_floor, y_floor, label, **style):
    # Drawn as the step function of the thresholds: lower left is better.
    fpr, tpr = roc_points(o.scores, o.is_spam)
    ax.step(np.maximum(fpr, x_floor), np.maximum(100.0 - tpr, y_floor), where="post", label=label, **style)


def roc(outcomes, path, title):
    """ROC curves on log scales: ham misclassified against spam missed, the
    way TREC draws them (it uses logit scales). Lower left is better; the ham
    tail, where users lose good mail, is the left edge."""
    fig, ax = plt.subplots(figsize=(7.5, 5.5))
    x_floor, y_floor = _roc_axes(ax, outcomes, title)
    for o in outcomes:
        roca = metrics.one_minus_roca_percent(o.scores, o.is_spam)
        _curve(ax, o, x_floor, y_floor, f"{o.label} (1-ROCA)%={roca:.4f}", color=COLORS.get(o.engine))
        # The engine's own default operating point: SPAM verdicts only.
        rates = metrics.verdict_rates(o.verdicts, o.is_spam)
        missed = 100.0 * sum(v != "SPAM" and y for v, y in zip(o.verdicts, o.is_spam)) / max(sum(o.is_spam), 1)
        ax.plot(max(rates["ham_as_spam_pct"], x_floor), max(missed, y_floor), "o", color=COLORS.get(o.engine), ms=6)
    ax.legend(loc="upper right", fontsize=8, title="dots: default thresholds, SPAM verdicts", title_fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def scenario_roc_chart(by_scenario, path, title):
    """by_scenario: {scenario: {engine: Outcome}}; colour = engine, line style = scenario."""
    outcomes = [o for group in by_scenario.values() for o in group.values()]
    fig, ax = plt.subplots(figsize=(7.5, 5.5))
    x_floor, y_floor = _roc_axes(ax, outcomes, title)
    for sname, group in by_scenario.items():
        for o in group.values():
            roca = metrics.one_minus_roca_percent(o.scores, o.is_spam)
            _curve(ax, o, x_floor, y_floor, f"{o.label}, {sname} ({roca:.4f})",
                   color=COLORS.get(o.engine), ls=STYLES.get(sname, "-."), lw=1.2)
    ax.legend(loc="upper right", fontsize=7, title="(1-ROCA)% in brackets", title_fontsize=7)
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


def learning_curves(outcomes, path, title):
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    floor = 1e-4
    longest = max((len(o) for o in outcomes), default=0)
    # 1,000 messages a window on SpamAssassin-sized corpora; on trec07p's 75k
    # so short a window is mostly 0 or one stray message, so 5,000.
    window = 1000 if longest < 20000 else 5000
    step = window // 10
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
    """Write the three charts of one corpus's first scenario; return {kind: file name}."""
    files = {"roc": f"{slug}-roc.png", "histograms": f"{slug}-histograms.png",
             "learning": f"{slug}-learning.png"}
    roc(outcomes, os.path.join(out_dir, files["roc"]), f"ROC, online protocol: {corpus_name}")
    histograms(outcomes, engines, os.path.join(out_dir, files["histograms"]),
               f"Online scores, spam vs ham: {corpus_name}")
    learning_curves(outcomes, os.path.join(out_dir, files["learning"]),
                    f"Learning curves: {corpus_name}")
    return files


def scenario_roc(by_scenario, out_dir, slug, corpus_name):
    """The ROC chart of every engine in every scenario; returns its file name."""
    name = f"{slug}-scenarios-roc.png"
    scenario_roc_chart(by_scenario, os.path.join(out_dir, name), f"ROC per scenario: {corpus_name}")
    return name
