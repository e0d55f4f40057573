"""Figures measured before, outside this run: the yardsticks the report sets beside its own.

They are anchors, not results: other harnesses, other code, other days. The
report labels them so. Source: the measurements behind issue 10 (2026-11-30,
mailfilter main at 1966a5a; online protocol, corpus order, each engine from
an empty state), and issue 10's goals.
"""

import os
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Anchor:
    label: str
    one_minus_roca_pct: float = None
    spam_missed_at_01_pct: float = None      # at 0.1% of ham misclassified
    spam_missed_at_001_pct: float = None     # at 0.01%
    ham_as_spam_pct: float = None
    note: str = ""


@dataclass(frozen=True)
class CorpusAnchors:
    source: str
    messages: int               # how many messages the anchors were measured on
    rows: list
    goal: Anchor = None
    windows: dict = field(default_factory=dict)     # label -> [(start, (1-ROCA)%)]
    window_size: int = 10000


_TREC = CorpusAnchors(
    source="issue 10's measurements, 2026-11-30 (mailfilter main at 1966a5a), all 75,399 messages present",
    messages=75399,
    rows=[
        Anchor("mailfilter before issue 10 (main at 1966a5a)", 0.0161, 0.16, 42.0, 0.07),
        Anchor("bogofilter 1.2.5, every message trained", 0.0198, 0.98, 10.5, 0.004),
        Anchor("textbook online LR, binary hashed byte 4-grams of the first 3,000 bytes, rate 0.002",
               0.0057, 0.39, 3.4, None),
        Anchor("best TREC 2007 immediate-feedback runs (issue 10's notes, not checked here)", 0.0055),
    ],
    goal=Anchor("issue 10's goal for mailfilter", 0.0060, 0.10, 5.0, 0.01),
    windows={
        "mailfilter before": [(0, 0.0191), (10000, 0.0183), (20000, 0.0607), (30000, 0.0272),
                              (40000, 0.0036), (50000, 0.0015), (60000, 0.0004), (70000, 0.0073)],
        "byte 4-gram LR": [(0, 0.0266), (10000, 0.0007), (20000, 0.0326), (30000, 0.0018),
                           (40000, 0.0015), (50000, 0.0004), (60000, 0.0001), (70000, 0.0010)],
        "bogofilter": [(0, 0.0395), (10000, 0.0088), (20000, 0.0444), (30000, 0.0112),
                       (40000, 0.0038), (50000, 0.0275), (60000, 0.0031), (70000, 0.0277)],
    },
)

_SPAMASSASSIN = CorpusAnchors(
    source="issue 10's measurements, 2026-11-30 (mailfilter main at 1966a5a), 6,046 messages, index.shuffled",
    messages=6046,
    rows=[
        Anchor("mailfilter before issue 10 (main at 1966a5a)", 0.0560, ham_as_spam_pct=0.05),
        Anchor("bogofilter 1.2.5 (two harnesses)", note="0.109–0.121"),
        Anchor("textbook online LR, byte 4-grams, rate 0.002", 0.2861, note="rate 0.01: 0.2354"),
    ],
    goal=Anchor("issue 10's goal for mailfilter", 0.045, ham_as_spam_pct=0.05, note="UNSURE ≤ 3%"),
)


def for_corpus(directory, index_name):
    """The anchors for this corpus and order, or None when there are none."""
    name = os.path.basename(os.path.abspath(directory).rstrip("/"))
    index = os.path.normpath(index_name)
    if name == "trec07p" and index == os.path.join("full", "index"):
        return _TREC
    if name == "spamassassin" and index == "index.shuffled":
        return _SPAMASSASSIN
    return None
