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
from .rawmail import CLASSIFY_BODY_BYTES, scan_header


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


def _read_prefix(path: str) -> bytes:
    # The filter classifies on the header block plus CLASSIFY_BODY_BYTES of
    # body; read the same so eval scores equal the filter's.
    with open(path, "rb") as fh:
        data = fh.read(4 * 1024 * 1024)
        block = scan_header(data, at_eof=True)
        return data[: block.body_start + CLASSIFY_BODY_BYTES]


def run(classifier, policy, entries, on_result=None) -> EvalResult:
    result = EvalResult()
    model = classifier.model
    started = time.perf_counter()
    for is_spam, rel, path in entries:
        data = _read_prefix(path)
        block = scan_header(data)
        message_view, ids = classifier.features(data)
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
