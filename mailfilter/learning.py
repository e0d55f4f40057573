"""Teaching the model: the one write path.

Every change to a model goes through a Session: `learn`, `train`,
`eval --save`, `rebuild` and the Maildir trainer alike. A session holds the
store's writer lock from start to end, teaches a private copy of the model,
and commits it once, with the ledger rows and the new generation together.
A learn that runs beside a long `train` or `eval --save` waits for the lock
and then builds on their result, so nothing one writer taught is lost to
another (two separate read-modify-write paths once lost a learn for good:
tests/test_learning.py).

A message is identified by rawmail.content_digest (our X-CRM114-* headers
stripped, line endings normalised), so the delivered copy of a message trains
exactly like the original. The same message with the same label again is
skipped; with the other label it is a correction.
"""

from .classifier import Classifier, label_for
from .ledgerfields import from_view
from .model import TrainPolicy
from .rawmail import classify_prefix, content_digest, strip_our_headers
from .store.rows import LedgerRow


class LearnResult:
    __slots__ = ("digest", "label", "action", "pr_before", "pr_after")

    def __init__(self, digest, label, action, pr_before, pr_after):
        self.digest = digest
        self.label = label            # "spam" or "good"
        self.action = action          # "learned", "corrected", "skipped"; "undone", "unknown"
        self.pr_before = pr_before
        self.pr_after = pr_after


def policy_for(config) -> TrainPolicy:
    return TrainPolicy(margin=config.learn_margin)


# How far past the threshold a message the user taught must land (pR).
INSIST_BEYOND = 0.25


def teach(model, ids, is_spam: bool, config, policy: TrainPolicy) -> bool:
    """The one model update: the online step (what eval measures), then make
    sure of the verdict.

    When a user says "this is spam", afterwards it must classify as spam. The
    update usually gets there; when it doesn't (a young model, or a correction
    against earlier training), the score is moved just past the threshold.
    True if the model changed.
    """
    changed = model.learn(ids, is_spam, policy) > 0
    if label_for(model.pr(ids), config) != ("SPAM" if is_spam else "GOOD"):
        model.shift_to(ids, config.spam_threshold - INSIST_BEYOND if is_spam
                       else config.good_threshold + INSIST_BEYOND)
        changed = True
    return changed


class Session:
    """One writer's turn at a model: the lock held, a private copy, the ledger.

        with Session(store, config) as session:
            result = session.learn(raw, is_spam)

    The copy is committed when the block ends normally and something was
    taught; on an exception nothing is committed, and model and ledger stay
    as they were. fresh=True starts from an empty model (rebuild), keeping
    the generation count going.
    """

    def __init__(self, store, config, fresh: bool = False, cache=None):
        """cache: a trainingcache.TrainingCache the session writes what it
        teaches to (and closes at the end), or None."""
        self.store = store
        self.config = config
        self.policy = policy_for(config)
        self.fresh = fresh
        self.cache = cache            # trainingcache.TrainingCache, or None
        self.rows = []                # store.LedgerRow of each message taught, to record
        self.forgotten = []           # digests undone: their rows and cache entries go
        self._pending = {}            # digest -> label taught in this session
        self._writer = None

    def __enter__(self) -> "Session":
        self._writer = self.store.writer()
        self._writer.__enter__()
        try:
            self.model = self._writer.load_copy(fresh=self.fresh)
            self.classifier = Classifier(self.config, self.model)
        except BaseException:
            self._writer.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        try:
            if exc_type is None and (self.rows or self.fresh or self.forgotten):
                if self.cache is not None:
                    self.cache.flush()
                    self.cache.forget(self.forgotten)
                # forget= only when there is something to forget: a store
                # that predates undo still commits every other session.
                extra = {"forget": self.forgotten} if self.forgotten else {}
                self._writer.commit(self.model, self.rows, replace_ledger=self.fresh, **extra)
        finally:
            try:
                self._writer.__exit__(exc_type, exc, tb)
            finally:
                if self.cache is not None:
                    self.cache.close()
        return False

    def known_label(self, digest: str):
        if self.fresh or digest in self.forgotten:      # a new model, or undone here:
            return self._pending.get(digest)            # only what this session taught
        return self._pending.get(digest) or self._writer.label_of(digest)

    def learn(self, raw: bytes, is_spam: bool, dedupe: bool = True) -> LearnResult:
        """Teach one raw message, as `mailfilter learn` does. dedupe=False
        teaches it even when the ledger knows it with this label (the TREC
        protocol, for `eval --spamd` through the daemon's TELL)."""
        raw = strip_our_headers(raw)
        digest = content_digest(raw)
        # The features of what the filter read of it, so the message is
        # taught as it was classified, and a rebuild from the cache (which
        # keeps that much) teaches it the same way again.
        raw = classify_prefix(raw)
        message_view, ids = self.classifier.features(raw)
        return self.teach(digest, ids, is_spam, raw, dedupe=dedupe, about=from_view(message_view))

    def teach(self, digest: str, ids, is_spam: bool, raw: bytes = None, dedupe: bool = True,
              about=(None, None)) -> LearnResult:
        """Teach a message whose features are already computed (eval, train).

        raw, our headers stripped, goes to the training cache if there is one.
        dedupe=False teaches even a message the ledger knows with this label:
        the TREC protocol (eval) trains every message it is given.
        about: (subject, sender domain) for the ledger (ledgerfields.from_view).
        """
        label = "spam" if is_spam else "good"
        # Without dedupe the ledger is not asked: eval --save then needs no
        # ledger until its commit.
        previous = self.known_label(digest) if dedupe else None
        before = self.model.pr(ids)
        if previous == label:
            return LearnResult(digest, label, "skipped", before, before)
        teach(self.model, ids, is_spam, self.config, self.policy)
        self.rows.append(LedgerRow(digest, label, before, *about))
        if digest in self.forgotten:          # undone earlier in this session, taught again
            self.forgotten.remove(digest)
        self._pending[digest] = label
        if self.cache is not None and raw is not None:
            self.cache.add(digest, label, raw)
        return LearnResult(digest, label, "corrected" if previous else "learned", before, self.model.pr(ids))

    def undo(self, raw: bytes) -> LearnResult:
        """Take back what the user taught about one message (command mail's
        `undo`): its score goes back to the pR it had just before its latest
        teaching, as the ledger recorded it, and the ledger and the training
        cache forget it, so a later rebuild leaves it out.

        Not a replay backwards: the per-feature step sizes depend on all that
        was taught since, so no update can be subtracted exactly. Moving this
        message's own score (Model.shift_to, as corrections do) is exact for
        the message, touches only its word features, and lands the same when
        repeated. The exact undo is `mailfilter rebuild`, which no longer
        sees the message. action "unknown": the ledger never heard of it.
        """
        raw = classify_prefix(strip_our_headers(raw))
        digest = content_digest(raw)
        _, ids = self.classifier.features(raw)
        before = self.model.pr(ids)
        record = None
        for row in reversed(self.rows):
            if row[0] == digest:
                record = (row[1], row[2])
                break
        if record is None and digest not in self.forgotten:
            record = self._writer.record_of(digest)
        if record is None:
            return LearnResult(digest, None, "unknown", before, before)
        label, pr_before = record
        if pr_before is None:       # a row without its old score: back to undecided
            pr_before = (self.config.spam_threshold + self.config.good_threshold) / 2
        self.model.shift_to(ids, pr_before)
        self.rows = [row for row in self.rows if row[0] != digest]
        self._pending.pop(digest, None)
        self.forgotten.append(digest)
        return LearnResult(digest, label, "undone", before, self.model.pr(ids))

    def reinforce(self, ids, is_spam: bool) -> bool:
        """Another pass over a message already taught in this session (train
        --passes): the same update again, recorded nowhere new. True if the
        model changed."""
        return teach(self.model, ids, is_spam, self.config, self.policy)


def session_for(state, config, fresh: bool = False) -> Session:
    """A session on a user's state directory: its store and training cache."""
    from .store import open_store
    from .trainingcache import open_cache
    return Session(open_store(state, config), config, fresh=fresh, cache=open_cache(state, config))


def learn_messages(state, config, messages, progress=None):
    """Teach (raw bytes, is_spam) pairs in one session; one commit.

    Returns a LearnResult per message, in order. The model and the ledger
    change together or not at all.
    """
    results = []
    with session_for(state, config) as session:
        for raw, is_spam in messages:
            results.append(session.learn(raw, is_spam))
            if progress:
                progress(results[-1])
    return results


class PassReport:
    __slots__ = ("number", "messages", "mistakes", "taught")

    def __init__(self, number):
        self.number = number
        self.messages = 0
        self.mistakes = 0          # not classified right before this pass taught them
        self.taught = 0            # learned or corrected (pass 1), retaught (later passes)


def train(session: Session, locations, read, passes: int = 1, on_message=None, on_pass=None):
    """Bulk training: teach every message at each location, pass after pass,
    until a pass finds nothing misclassified (at most `passes`).

    Messages are read one at a time with read(location) (None: gone, skip
    it), so memory does not grow with the corpus; a later pass reads them
    again. Pass 1 is `learn`
    for each (the ledger skips what it already knows with the same label);
    later passes teach each again (a no-op for one well beyond the margin).
    """
    reports = []
    for number in range(1, passes + 1):
        report = PassReport(number)
        for location, is_spam in locations:
            raw = read(location)
            if raw is None:
                continue
            raw = classify_prefix(strip_our_headers(raw))
            message_view, ids = session.classifier.features(raw)
            wrong = label_for(session.model.pr(ids), session.config) != ("SPAM" if is_spam else "GOOD")
            report.messages += 1
            report.mistakes += wrong
            if number == 1:
                result = session.teach(content_digest(raw), ids, is_spam, raw, about=from_view(message_view))
                report.taught += result.action != "skipped"
            else:
                report.taught += session.reinforce(ids, is_spam)
            if on_message:
                on_message()
        reports.append(report)
        if on_pass:
            on_pass(report)
        if report.mistakes == 0:
            break
    return reports


def rebuild(state, config, progress: bool = False):
    """A new model taught from the training cache, oldest first; the ledger
    rewritten to match. The number of messages taught, or None when the
    cache is empty (and nothing changed)."""
    session = session_for(state, config, fresh=True)
    if session.cache is None or len(session.cache) == 0:
        if session.cache is not None:
            session.cache.close()
        return None
    cache, session.cache = session.cache, None      # read from it, don't re-add to it
    try:
        total = len(cache)
        bar = None
        if progress:
            from tqdm import tqdm
            bar = tqdm(total=total, desc="rebuild", unit="msg")
        with session:
            for digest, label, raw in cache.entries():
                message_view, ids = session.classifier.features(raw)
                session.teach(digest, ids, label == "spam", about=from_view(message_view))
                if bar:
                    bar.update(1)
        if bar:
            bar.close()
    finally:
        cache.close()
    return total
