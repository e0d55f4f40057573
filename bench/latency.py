"""Per-message latency and peak RSS: a new process per message, as procmail runs a filter.

All engines classify the same sample of messages with their trained state.
For each message the engines run back to back, in an order that rotates
from message to message (A B C, B C A, C A B, ...), so a burst of load on a
shared machine hits every engine alike and the ratios hold even when the
absolute times drift. Ratios are reported two ways: ratio of the medians,
and the median of the per-message paired ratios.

Peak RSS is a separate pass under GNU time (see proc.py for why), so the
timing runs carry no wrapper process.
"""

import os
import random
import statistics
import sys
from dataclasses import dataclass, field

from . import proc

# Exit codes that mean "worked": bogofilter -T exits 0 spam, 1 ham, 2 unsure.
_OK_CODES = {"bogofilter": {0, 1, 2}}


@dataclass
class Series:
    engine: str
    mode: str
    argv: list
    seconds: list = field(default_factory=list)
    rss_kb: list = field(default_factory=list)
    errors: int = 0
    first_error: str = ""

    def median_ms(self):
        return 1000 * statistics.median(self.seconds) if self.seconds else float("nan")

    def p95_ms(self):
        return 1000 * percentile(self.seconds, 95) if self.seconds else float("nan")

    def peak_rss_mb(self):
        return max(self.rss_kb) / 1024 if self.rss_kb else float("nan")

    def median_rss_mb(self):
        return statistics.median(self.rss_kb) / 1024 if self.rss_kb else float("nan")


def percentile(values, pct):
    """Linear-interpolated percentile (numpy's default), without needing numpy here."""
    data = sorted(values)
    if not data:
        return float("nan")
    pos = (len(data) - 1) * pct / 100
    lo = int(pos)
    hi = min(lo + 1, len(data) - 1)
    return data[lo] + (data[hi] - data[lo]) * (pos - lo)


def pick_sample(messages, n, min_size=5000, max_size=20000, seed=1):
    """n messages of typical size (bytes on disk), chosen reproducibly."""
    typical = [m for m in messages if min_size <= m.size <= max_size]
    pool = typical if len(typical) >= min(n, len(messages)) else messages   # tiny corpora: take what there is
    return random.Random(seed).sample(pool, min(n, len(pool)))


def measure(engines, sample, mode="classify", warmup=3, extra=None, progress=True, rss_runs=30):
    """{name: Series} for each engine's classify_argv() (mode 'classify') or filter_argv() ('filter').

    extra: optional {name: argv} of reference commands (e.g. the bare
    interpreter start-up) measured in the same rotation.
    rss_runs: how many of the sample messages get the peak-RSS pass.
    """
    commands = {e.name: (e.classify_argv() if mode == "classify" else e.filter_argv()) for e in engines}
    commands.update(extra or {})
    series = {name: Series(name, mode, argv) for name, argv in commands.items()}
    names = list(commands)
    for msg in sample[:warmup]:             # page cache, model files, shared libraries
        for name in names:
            proc.run(commands[name], msg.path, capture=False)
    for i, msg in enumerate(sample):
        for k in range(len(names)):
            name = names[(i + k) % len(names)]
            run = proc.run(commands[name], msg.path, capture=False)
            s = series[name]
            if run.returncode not in _OK_CODES.get(name, {0}):
                s.errors += 1
                s.first_error = s.first_error or f"exit {run.returncode}: {run.stderr.decode(errors='replace').strip()[:300]}"
                continue
            s.seconds.append(run.seconds)
        if progress and (i + 1) % max(len(sample) // 4, 1) == 0:
            print(f"  latency ({mode}): {i + 1}/{len(sample)}", file=sys.stderr, flush=True)
    if os.access(proc.TIME, os.X_OK):
        for msg in sample[:rss_runs]:
            for name in names:
                kb, code = proc.peak_rss_kb(commands[name], msg.path)
                if kb is not None and code in _OK_CODES.get(name, {0}):
                    series[name].rss_kb.append(kb)
    return series


def paired_ratio(a: Series, b: Series):
    """Median over messages of a's time / b's time on the same message."""
    if a.errors or b.errors or len(a.seconds) != len(b.seconds) or not a.seconds:
        return float("nan")
    return statistics.median(x / y for x, y in zip(a.seconds, b.seconds))
