"""The storage seam: where a user's model and ledger live.

A store offers exactly this (rspamd's libstat puts every backend behind one
such interface; SpamBayes runs one test class over every storage class):

    store.open_for_reading()  the model to score with. Never locks, and
                              never sees half a commit. No model yet: an
                              empty one.
    store.generation()        the committed generation: cheap, so a resident
                              process can tell when to reload.
    store.open_resident()     the model for a process that scores many
                              messages (the daemon's workers): by default
                              open_for_reading(). A model whose
                              `follows_store` is true keeps itself current,
                              so the process need not reload it per commit.
    store.writer()            the writer lock, as a context manager; inside,
      w.load_copy()             a private, writable copy of the model
                                (fresh=True: an empty one, for a rebuild),
      w.label_of(digest)        what the ledger says this message was taught
                                (digest: rawmail.message_digest, the whole message),
      w.record_of(digest)       that label and the score before the teaching,
      w.commit(model, rows)     generation + 1, the ledger rows and the model
                                saved together, or nothing at all;
                                forget=digests also drops those rows (undo).
    store.learned(recent)     what the ledger says, for `mailfilter stats`: the
                              number of messages per label now, and the newest
                              `recent` rows (LedgerEntry), newest first.
    store.describe()          a dict about the stored model for `mailfilter
                              stats` (at least "generation"; the file store
                              adds its path, size, mtime, counters, features).

The ledger row, what commit() records per message taught (LedgerRow below):

    digest          rawmail.content_digest of the message (hex)
    label           "spam" or "good"
    pr_before       the model's pR of the message just before this teaching
                    (None: not known), for undo
    subject         its Subject, decoded, control characters removed, at most
                    SUBJECT_CHARS characters (None: it has none)
    sender_domain   the domain of its From: address, lower case (None: none)

Every store keeps all five, plus the time of the teaching and the
generation it belongs to. commit() accepts plain 3-tuples too (digest,
label, pr_before): subject and sender_domain are then None. The types are
in store/rows.py (LedgerRow, LedgerEntry for what learned() returns,
ledger_row(row) to read either shape, SUBJECT_CHARS), apart so that the
filter, which imports this package on every message, doesn't build them
(~0.1 ms).

Only mailfilter.learning calls writer(): that is the one write path. The
classifier and the model know nothing of files, locks or Redis.

Implementations: file.FileStore (an mmap'd model file, flock, SQLite
ledger); redisstore.RedisStore (one model shared by several hosts and all
their users, with per-user weights), chosen by `store =` in mailfilter.conf.
"""

from . import modelfile
from .modelfile import ModelError, empty


class Store:
    """The interface (documentation and a base for isinstance checks)."""

    def open_for_reading(self):
        raise NotImplementedError

    def open_resident(self):
        return self.open_for_reading()

    def generation(self) -> int:
        raise NotImplementedError

    def writer(self) -> "StoreWriter":
        raise NotImplementedError

    def learned(self, recent: int = 10) -> dict:
        """{"spam": N, "good": N, "recent": [LedgerEntry, newest first]}.
        Reads only; never creates the store."""
        raise NotImplementedError

    def describe(self) -> dict:
        """What `mailfilter stats` shows of the stored model."""
        return {"generation": self.generation()}


class StoreWriter:
    """Holds the writer lock from __enter__ to __exit__."""

    def __enter__(self) -> "StoreWriter":
        raise NotImplementedError

    def __exit__(self, *exc) -> bool:
        raise NotImplementedError

    def load_copy(self, fresh: bool = False):
        """The model, private and writable. fresh: an empty model instead
        (for a rebuild), carrying the stored generation on."""
        raise NotImplementedError

    def label_of(self, digest: str):
        raise NotImplementedError

    def record_of(self, digest: str):
        """(label, pr_before) the ledger holds for digest, or None. pr_before
        is the model's pR just before its latest teaching (None if unknown)."""
        raise NotImplementedError

    def legacy_record_of(self, prefix_digest: str):
        """record_of a row written before whole-message digests (issue 14),
        keyed by this rawmail.content_digest. A store born after that has
        none: this default."""
        return None

    def commit(self, model, rows, replace_ledger: bool = False, forget=()) -> None:
        """rows: a LedgerRow (or a plain (digest, label, pr_before) tuple) for
        each message this commit taught.
        replace_ledger: the rows are the whole ledger from now on (rebuild).
        forget: digests whose rows go, after the model is saved (an undo: a
        crash in between leaves the row, and a repeated undo lands the same)."""
        raise NotImplementedError


def open_store(state, config) -> Store:
    """The store a user's state directory names: the file store, or a Redis
    store shared by several hosts (`store = redis://...`, redisstore.py)."""
    from .. import features
    identity = modelfile.FeatureIdentity(features.VERSION, features.SPEC)
    if getattr(config, "store", ""):
        from .redisconfig import parse
        from .redisstore import RedisStore
        return RedisStore(parse(config.store, state.config_path), state.home, config.model_bits, identity,
                          lock_path=state.lock_path)
    from .file import FileStore
    return FileStore(state.model_path, state.lock_path, state.ledger_path, config.model_bits, identity)


__all__ = ["ModelError", "Store", "StoreWriter", "empty", "open_store"]
