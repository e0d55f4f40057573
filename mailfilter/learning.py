"""Teaching the model: the one write path.

Every change to a model goes through a Session: `learn`, `train`,
`eval --save`, `rebuild` and the Maildir trainer alike. A session holds the
store's writer lock from start to end, teaches a private copy of the model,
and commits it once, with the ledger rows and the new generation together.
A learn that runs beside a long `train` or `eval --save` waits for the lock
and then builds on their result, so nothing one writer taught is lost to
another (two separate read-modify-write paths once lost a learn for good:
tests/test_learning.py).

A message is identified by rawmail.message_digest: the whole message, our
X-CRM114-* headers stripped, line endings normalised, so the delivered copy
of a message trains exactly like the original. The same message with the
same label again is skipped; with the other label it is a correction.
(Before issue 14 the ledger keyed on rawmail.content_digest, the header and
256 KiB of body: a spam sharing that with a good message "corrected" it.
The two digests agree for any message no longer than that; a longer one
is still found in an old ledger by its content_digest, in old rows only.)
"""

import random
import sqlite3
from collections import OrderedDict
from math import isfinite

from .classifier import Classifier, label_for
from .ledgerfields import from_view
from .model import TrainPolicy
from .rawmail import classify_prefix, content_digest, message_digest, scan_header, strip_our_headers
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


def teach(model, ids, is_spam: bool, config, policy: TrainPolicy, arrays=None, rehearse=None) -> bool:
    """The one model update: the online step (what eval measures), then make
    sure of the verdict.

    When a user says "this is spam", afterwards it must classify as spam. The
    update usually gets there; when it doesn't (a young model, or a correction
    against earlier training), the score is moved just past the threshold.
    arrays: the same families as numpy arrays, if the caller has them.
    rehearse: called between the update and that last check (Teacher), so
    that nothing it re-teaches can undo what the user just said.
    True if the model changed.
    """
    changed = model.learn(ids if arrays is None else arrays, is_spam, policy) > 0
    if rehearse is not None and rehearse():
        changed = True
    if label_for(model.pr(ids), config) != ("SPAM" if is_spam else "GOOD"):
        model.shift_to(ids, config.spam_threshold - INSIST_BEYOND if is_spam
                       else config.good_threshold + INSIST_BEYOND)
        changed = True
    _check_finite(model, ids)
    return changed


# Rehearsal. After each message it teaches, the filter re-teaches a few
# messages drawn at random from the last REHEARSE_WINDOW it taught (each
# family to its margin again: a no-op for one still beyond it). An online
# learner forgets: what later messages pushed the other way is lost, most
# of all while the model is young. Rehearsing the recent past is
# "experience replay", a sliding-window second pass; CRM114's mailtrainer
# repeats its whole corpus for the same reason. Measured with the three
# families, (1-ROCA)% trec07p / SpamAssassin: none 0.0062 / 0.0537; the 5
# newest 0.0055 / 0.0498; 5 drawn from the last 1000 0.0057 / 0.0465; 20
# while young (the first 2000 taught) and 5 after, drawn from the last
# 1000: 0.0056 / 0.0440 (two seeds: 0.0055-0.0057 / 0.0425-0.0444). Most of
# SpamAssassin's gain is its first 500 messages, which had held a third of
# its error. Cost: ~8 updates per taught message on trec07p (2.6 without).
REHEARSE_WINDOW = 1000
REHEARSE_YOUNG = 2000
REHEARSE_WHILE_YOUNG = 20
REHEARSE = 5


class Teacher:
    """teach() plus rehearsal: what learn, train, eval and rebuild all do.

    The pool to rehearse from is the last REHEARSE_WINDOW distinct messages
    taught, newest first: what this Teacher taught (recent: their families
    as numpy arrays, ~14 KB a message), then, if a history is given, what
    earlier sessions taught (the training cache: `learn` and the daemon's
    TELL teach one message per session). A message taught again replaces
    its older copy (as the cache does), and the message being taught is
    never drawn for itself: after a correction its old label is gone.

    The draws are seeded with the model's own counters, so they depend on
    nothing but what was taught: `eval` in one process and the same
    messages taught one session each (through the daemon) rehearse the
    same messages in the same order, and every run repeats.
    """

    def __init__(self, model, config, history=None):
        self.model = model
        self.config = config
        self.policy = policy_for(config)
        self.recent = OrderedDict()         # digest (or a stand-in) -> (arrays, is_spam), oldest first
        self.history = history

    def teach(self, ids, is_spam: bool, digest: str = None) -> bool:
        """digest: the message's content digest; None for one never to be
        recognised again."""
        key = digest if digest is not None else object()
        k = REHEARSE_WHILE_YOUNG if self.model.trained < REHEARSE_YOUNG else REHEARSE
        rng = random.Random(self.model.trained_spam * 1_000_003 + self.model.trained_good)
        arrays = _arrays(ids)

        def rehearse():
            changed = False
            for families, spam in self._draw(k, key, rng):
                if self.model.learn(families, spam, self.policy, count=False):
                    changed = True
            return changed

        changed = teach(self.model, ids, is_spam, self.config, self.policy, arrays, rehearse)
        self.recent.pop(key, None)
        self.recent[key] = (arrays, is_spam)
        if len(self.recent) > REHEARSE_WINDOW:
            self.recent.popitem(last=False)
        return changed

    def _draw(self, k: int, key, rng):
        if not k:
            return
        mine = [item for other, item in reversed(self.recent.items()) if other != key]
        older = self.history.before(self.recent, key) if self.history is not None else []
        pool = min(REHEARSE_WINDOW, len(mine) + len(older))
        for _ in range(k if pool else 0):
            i = rng.randrange(pool)
            item = mine[i] if i < len(mine) else self.history.get(older[i - len(mine)])
            if item is not None:
                yield item


class CachedHistory:
    """Older taught messages for rehearsal, from the training cache: the
    newest REHEARSE_WINDOW entries as they were before this session, each
    parsed once, when first drawn."""

    def __init__(self, cache, classifier):
        self.cache = cache
        self.classifier = classifier
        self._entries = None                # [(seq, digest)], newest first
        self._parsed = {}

    def before(self, taught_here, key) -> list:
        """The seqs of the cache's newest entries, newest first, but for the
        messages this session taught since (they are in its own pool) and
        the one being taught."""
        if self._entries is None:
            try:
                self._entries = self.cache.newest(REHEARSE_WINDOW)
            except (OSError, sqlite3.Error):
                # Rehearsal is a help, not a duty: an unreadable cache (a
                # full disk can't even open its journal) leaves it to what
                # this session taught; the commit will report the disk.
                self._entries = []
        return [seq for seq, digest in self._entries if digest != key and digest not in taught_here]

    def get(self, seq: int):
        if seq not in self._parsed:
            try:
                entry = self.cache.entry(seq)
            except (OSError, sqlite3.Error):
                entry = None
            if entry is None:
                self._parsed[seq] = None
            else:
                _, label, raw = entry
                self._parsed[seq] = (_arrays(self.classifier.features(raw)[1]), label == "spam")
        return self._parsed[seq]


def _arrays(ids):
    from .model import _numpy
    np = _numpy()
    return tuple(np.fromiter(f, np.int32, len(f)) for f in ids)


def _check_finite(model, ids) -> None:
    """Refuse an update that left a weight this message touches infinite or
    NaN, whatever the settings (issue 14: `spam_threshold = -inf` once
    wrote -inf into the model, and every later message scored -inf). The
    caller's session then commits nothing: the stored model stays as it
    was. The message's score is the exact fsum of those weights, so it is
    finite exactly when they all are: one sum, no second pass. (The step
    sizes are checked whole when the model is written: modelfile.chunks.)"""
    try:
        if isfinite(model.logit(ids)):
            return
    except (ValueError, OverflowError):     # fsum of +inf and -inf
        pass
    from .store import ModelError
    raise ModelError("learning this message would make the model's weights infinite or NaN; nothing "
                     "was saved (check spam_threshold, good_threshold and learn_margin)")


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
            # A rebuild replays the cache oldest first: its "recent" is
            # only what it taught itself, never the cache's newest.
            history = None if self.cache is None or self.fresh else CachedHistory(self.cache, self.classifier)
            self.teacher = Teacher(self.model, self.config, history)
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

    def known_label(self, digest: str, prefix_digest: str = None):
        """What digest was taught as, in this session or before. prefix_digest:
        the message's content_digest, looked up in rows older than
        whole-message digests when it differs from digest."""
        if self.fresh or digest in self.forgotten:      # a new model, or undone here:
            return self._pending.get(digest)            # only what this session taught
        label = self._pending.get(digest)
        if label is None:
            _, record = self._stored(digest, prefix_digest)
            label = record[0] if record else None
        return label

    def _stored(self, digest: str, prefix_digest: str = None):
        """(the ledger's key, (label, pr_before)) of what the stored ledger
        holds for a message, or (digest, None): its row by digest, else a
        row from before whole-message digests by prefix_digest (its
        content_digest). A row this session forgot counts as gone."""
        if digest in self.forgotten:
            return digest, None
        record = self._writer.record_of(digest)
        if record is None and prefix_digest and prefix_digest != digest and prefix_digest not in self.forgotten:
            return prefix_digest, self._writer.legacy_record_of(prefix_digest)
        return digest, record

    def _read(self, raw: bytes, digest: str = None):
        """(digest, prefix_digest, raw as taught, its view, its ids) of a
        raw message, or of the prefix of one with the whole one's digest.
        raw as taught: our headers stripped, cut to what the filter reads
        of it, so the message is taught as it was classified, and a rebuild
        from the cache (which keeps that much) teaches it the same way."""
        if digest is None:
            digest = message_digest(raw)
        block = scan_header(raw)
        prefix_digest = content_digest(raw, block)
        raw = classify_prefix(strip_our_headers(raw, block))
        message_view, ids = self.classifier.features(raw)
        return digest, prefix_digest, raw, message_view, ids

    def learn(self, raw: bytes, is_spam: bool, dedupe: bool = True, digest: str = None) -> LearnResult:
        """Teach one raw message, as `mailfilter learn` does. dedupe=False
        teaches it even when the ledger knows it with this label (the TREC
        protocol, for `eval --spamd` through the daemon's TELL).

        raw may be only the prefix of the message (rawmail.MessageReader's,
        as the trainer reads it); digest is then the whole message's
        rawmail.message_digest, computed as it streamed.
        """
        digest, prefix_digest, raw, message_view, ids = self._read(raw, digest)
        return self.teach(digest, ids, is_spam, raw, dedupe=dedupe, prefix_digest=prefix_digest,
                          about=from_view(message_view))

    def teach(self, digest: str, ids, is_spam: bool, raw: bytes = None, dedupe: bool = True,
              prefix_digest: str = None, about=(None, None)) -> LearnResult:
        """Teach a message whose features are already computed (eval, train).

        digest: rawmail.message_digest of the whole message; prefix_digest
        its content_digest, for ledgers from before (known_label).
        raw, our headers stripped, goes to the training cache if there is one.
        dedupe=False teaches even a message the ledger knows with this label:
        the TREC protocol (eval) trains every message it is given.
        about: (subject, sender domain) for the ledger (ledgerfields.from_view).
        """
        label = "spam" if is_spam else "good"
        # Without dedupe the ledger is not asked: eval --save then needs no
        # ledger until its commit.
        previous = self.known_label(digest, prefix_digest) if dedupe else None
        before = self.model.pr(ids)
        if previous == label:
            return LearnResult(digest, label, "skipped", before, before)
        self.teacher.teach(ids, is_spam, digest)
        self.rows.append(LedgerRow(digest, label, before, *about))
        if digest in self.forgotten:          # undone earlier in this session, taught again
            self.forgotten.remove(digest)
        self._pending[digest] = label
        if self.cache is not None and raw is not None:
            self.cache.add(digest, label, raw)
        return LearnResult(digest, label, "corrected" if previous else "learned", before, self.model.pr(ids))

    def undo(self, raw: bytes, digest: str = None) -> LearnResult:
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
        digest, prefix_digest, _, _, ids = self._read(raw, digest)
        before = self.model.pr(ids)
        for row in reversed(self.rows):             # taught in this session
            if row.digest == digest:
                key, record = digest, (row.label, row.pr_before)
                break
        else:
            key, record = self._stored(digest, prefix_digest)       # key: the row to forget
        if record is None:
            return LearnResult(digest, None, "unknown", before, before)
        label, pr_before = record
        if pr_before is None:       # a row without its old score: back to undecided
            pr_before = (self.config.spam_threshold + self.config.good_threshold) / 2
        self.model.shift_to(ids, pr_before)
        self.rows = [row for row in self.rows if row[0] != digest]
        self._pending.pop(digest, None)
        self.forgotten.append(key)
        return LearnResult(digest, label, "undone", before, self.model.pr(ids))

    def reinforce(self, raw: bytes, is_spam: bool):
        """Another pass over a message already taught in this session (train
        --passes): the same update again, recorded nowhere new, so it needs
        no digest. (its pR before, True if the model changed)."""
        _, ids = self.classifier.features(classify_prefix(strip_our_headers(raw)))
        before = self.model.pr(ids)
        return before, teach(self.model, ids, is_spam, self.config, self.policy)


def session_for(state, config, fresh: bool = False) -> Session:
    """A session on a user's state directory: its store and training cache."""
    from .store import open_store
    from .trainingcache import open_cache
    return Session(open_store(state, config), config, fresh=fresh, cache=open_cache(state, config))


def learn_messages(state, config, messages, progress=None):
    """Teach (raw bytes, is_spam) pairs in one session; one commit. A third
    item, the whole message's rawmail.message_digest, lets raw be a prefix.

    Returns a LearnResult per message, in order. The model and the ledger
    change together or not at all.
    """
    results = []
    with session_for(state, config) as session:
        for raw, is_spam, *digest in messages:      # (raw, is_spam[, message_digest])
            results.append(session.learn(raw, is_spam, digest=digest[0] if digest else None))
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
    again. Pass 1 is Session.learn for each (the ledger skips what it
    already knows with the same label); later passes teach each again
    (Session.reinforce: a no-op for one well beyond the margin).
    """
    reports = []
    for number in range(1, passes + 1):
        report = PassReport(number)
        for location, is_spam in locations:
            raw = read(location)
            if raw is None:
                continue
            if number == 1:
                result = session.learn(raw, is_spam)
                before, taught = result.pr_before, result.action != "skipped"
            else:
                before, taught = session.reinforce(raw, is_spam)
            report.messages += 1
            report.mistakes += label_for(before, session.config) != ("SPAM" if is_spam else "GOOD")
            report.taught += taught
            if on_message:
                on_message()
        reports.append(report)
        if on_pass:
            on_pass(report)
        if report.mistakes == 0:
            break
    return reports


class Rebuilt:
    __slots__ = ("cached", "taught", "shared", "where")

    def __init__(self, cached, taught, shared, where):
        self.cached = cached          # messages in the training cache
        self.taught = taught          # of those, taught (a shared model skips what it holds)
        self.shared = shared          # taught into a model shared on Redis, not a new one
        self.where = where            # the model file, or the shared store's redacted URL


def rebuild(state, config, progress: bool = False):
    """The training cache taught to the model, oldest first: a Rebuilt, or
    None when the cache is empty (and nothing changed).

    A state directory's own model is started empty and its ledger rewritten
    to match. A shared model (Redis) is not: it holds every host's and every
    user's learning, and starting it empty from this one cache dropped all
    of that (a rebuild on one host turned another host's taught good mail
    UNSURE and SPAM). There the cache is taught into the model as learns,
    skipping what its ledger holds with the same label; after `mailfilter
    shared reset` (a feature change), each host's rebuild adds its users'
    mail back."""
    from .store import open_store
    from .trainingcache import open_cache
    store = open_store(state, config)
    shared = bool(getattr(store, "shared", False))
    session = Session(store, config, fresh=not shared, cache=open_cache(state, config))
    if session.cache is None or len(session.cache) == 0:
        if session.cache is not None:
            session.cache.close()
        return None
    cache, session.cache = session.cache, None      # read from it, don't re-add to it
    taught = 0
    try:
        total = len(cache)
        bar = None
        if progress:
            from tqdm import tqdm
            bar = tqdm(total=total, desc="rebuild", unit="msg")
        with session:
            for digest, label, raw in cache.entries():
                message_view, ids = session.classifier.features(raw)
                result = session.teach(digest, ids, label == "spam", about=from_view(message_view))
                taught += result.action != "skipped"
                if bar:
                    bar.update(1)
        if bar:
            bar.close()
    finally:
        cache.close()
    return Rebuilt(total, taught, shared, store.where if shared else state.model_path)
