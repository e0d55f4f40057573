"""TREC spam-track online protocol in one process: classify, then train, in order.

Shared by `mailfilter eval` and the benchmark. Each message is read as the
filter reads stdin (pipeline.read_file) and scored with the very
Classifier.classify that `mailfilter classify` runs, so the score of each
message is what `classify` would print for the model state at that moment,
negated so that higher means spammier. Training is learning.teach, the
update `mailfilter learn` makes; with a session (`eval --save`) it goes
through the session, so the ledger records it and the one write path holds.

With a Feedback (`eval --feedback`), only what a user would report is
trained: the messages the filter got wrong or left UNSURE, each reported
with a probability per class. The benchmark makes the same decisions for
its peer filters with this same class.
"""

import os
import random
import time

from . import exitcodes
from .errors import InputError
from .learning import Teacher
from .ledgerfields import from_view
from .pipeline import read_file
from .rawmail import content_digest, read_digested


class EvalResult:
    def __init__(self):
        self.paths = []
        self.is_spam = []
        self.scores = []          # -pR: higher is spammier
        self.verdicts = []
        self.trained = []         # per message: was it taught
        self.seconds = 0.0


class Feedback:
    """Which messages a user reports: those whose verdict was not their true
    label (ham marked SPAM or UNSURE, spam marked GOOD or UNSURE), each with
    the probability of its class (users report most spam that got through and
    rarely dig good mail out of Junk).

    One random draw per message, reported or not, from a seeded generator:
    message N always gets the same draw, so every engine that gave the same
    verdicts is taught the same messages.
    """

    def __init__(self, spam: float = 0.8, good: float = 0.2, seed: int = 1):
        for rate in (spam, good):
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"feedback probability {rate} is not in [0, 1]")
        self.spam = spam
        self.good = good
        self.seed = seed
        self._rng = random.Random(seed)

    @classmethod
    def parse(cls, text: str, seed: int = 1) -> "Feedback":
        """From 'spam=0.8,good=0.2' (either part may be left out: 0 then)."""
        rates = {"spam": 0.0, "good": 0.0}
        for part in text.split(","):
            name, sep, value = part.strip().partition("=")
            if not sep or name.strip() not in rates:
                raise ValueError(f"expected spam=P,good=P, got {part.strip()!r}")
            try:
                rates[name.strip()] = float(value)
            except ValueError:
                raise ValueError(f"{value.strip()!r} is not a number") from None
        return cls(rates["spam"], rates["good"], seed)

    def __str__(self):
        return f"spam={self.spam:g},good={self.good:g}"

    def reports(self, is_spam: bool, label: str) -> bool:
        draw = self._rng.random()
        if label == ("SPAM" if is_spam else "GOOD"):
            return False
        return draw < (self.spam if is_spam else self.good)


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


def file_digest(path: str) -> str:
    """rawmail.message_digest of the message in a file, streamed."""
    with open(path, "rb") as fh:
        return read_digested(fh.read)[1]


def run(classifier, entries, on_result=None, session=None, feedback=None, teacher=None) -> EvalResult:
    """The protocol over entries. session: a learning.Session whose model is
    classifier.model, to record what is taught (eval --save). feedback: a
    Feedback choosing which messages are taught; None teaches every one.
    teacher: a learning.Teacher to go on with (its rehearsal pool), for a
    caller that runs the protocol a message at a time.
    on_result(rel, is_spam, verdict, trained) follows each message."""
    result = EvalResult()
    if session is None and teacher is None:
        teacher = Teacher(classifier.model, classifier.config)
    started = time.perf_counter()
    for is_spam, rel, path in entries:
        try:
            data, block = read_file(path)
        except OSError as err:
            raise InputError(f"{path}: cannot read: {err.strerror or err}", exitcodes.NOINPUT) from None
        message_view, ids = classifier.features(data, block)
        verdict = classifier.verdict(data, block, message_view, ids)
        trained = feedback is None or feedback.reports(is_spam, verdict.label)
        if not trained:
            pass                # the user never reported it
        elif session is None:
            # The digest lets a message taught twice replace its first copy
            # among those rehearsed, as the training cache does for a
            # session per message (the daemon): the same draws either way.
            # (The ledger's digest covers the whole message; this one the
            # prefix read, which is the same for all but messages with
            # more than 256 KiB of body, and costs no second read.)
            teacher.teach(ids, is_spam, content_digest(data))
        else:
            # The ledger keys on the whole message: read on through it.
            session.teach(file_digest(path), ids, is_spam, raw=data, dedupe=False,
                          about=from_view(message_view))
        result.paths.append(rel)
        result.is_spam.append(is_spam)
        result.scores.append(verdict.spamminess)
        result.verdicts.append(verdict.label)
        result.trained.append(trained)
        if on_result:
            on_result(rel, is_spam, verdict, trained)
    result.seconds = time.perf_counter() - started
    return result
