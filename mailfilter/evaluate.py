"""TREC spam-track online protocol in one process: classify, then train, in order.

Shared by `mailfilter eval` and the benchmark. The score of each message is
what `mailfilter classify` would print for the model state at that moment
(the same Classifier.verdict), negated so that higher means spammier, and
training is learning.teach, the update `mailfilter learn` makes.
"""

import os
import time
from dataclasses import dataclass, field

from .learning import teach
from .rawmail import MessageReader


@dataclass
class EvalResult:
    paths: list = field(default_factory=list)
    is_spam: list = field(default_factory=list)
    scores: list = field(default_factory=list)       # -pR: higher is spammier
    verdicts: list = field(default_factory=list)
    seconds: float = 0.0


def read_index(index_path: str, limit=None):
    """[(is_spam, path relative to the index, absolute path)] from `spam|ham PATH` lines."""
    base = os.path.dirname(os.path.abspath(index_path))
    entries = []
    with open(index_path, encoding="utf-8", errors="replace") as fh:
        for number, line in enumerate(fh, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            judge, _, path = line.partition(" ")
            judge = judge.lower()
            if judge not in ("spam", "ham") or not path.strip():
                raise ValueError(f"{index_path}:{number}: expected 'spam PATH' or 'ham PATH', got {line!r}")
            path = path.strip()
            entries.append((judge == "spam", path, os.path.join(base, path)))
            if limit and len(entries) >= limit:
                break
    return entries


def _read_prefix(path: str):
    # What the filter classifies on, read the way it reads stdin, so eval
    # scores equal the filter's also for a header with no blank line or one
    # beyond 4 MiB (a hand-rolled copy of this read differed on both).
    with open(path, "rb") as fh:
        reader = MessageReader(fh.read)
        block = reader.read_prefix()
    return reader.prefix, block


def run(classifier, policy, entries, on_result=None) -> EvalResult:
    result = EvalResult()
    model = classifier.model
    started = time.perf_counter()
    for is_spam, rel, path in entries:
        data, block = _read_prefix(path)
        message_view, ids = classifier.features(data, block)
        verdict = classifier.verdict(data, block, message_view, ids)
        # The very update `mailfilter learn` makes (without its ledger).
        teach(model, ids, is_spam, classifier.config, policy)
        result.paths.append(rel)
        result.is_spam.append(is_spam)
        result.scores.append(verdict.spamminess)
        result.verdicts.append(verdict.label)
        if on_result:
            on_result(rel, is_spam, verdict)
    result.seconds = time.perf_counter() - started
    return result
