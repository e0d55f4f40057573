"""The storage seam: where a user's model and ledger live.

A store offers exactly this (rspamd's libstat puts every backend behind one
such interface; SpamBayes runs one test class over every storage class):

    store.open_for_reading()  the model to score with. Never locks, and
                              never sees half a commit. No model yet: an
                              empty one.
    store.generation()        the committed generation: cheap, so a resident
                              process can tell when to reload.
    store.writer()            the writer lock, as a context manager; inside,
      w.load_copy()             a private, writable copy of the model
                                (fresh=True: an empty one, for a rebuild),
      w.label_of(digest)        what the ledger says this message was taught,
      w.record_of(digest)       that label and the score before the teaching,
      w.commit(model, rows)     generation + 1, the ledger rows and the model
                                saved together, or nothing at all;
                                forget=digests also drops those rows (undo).

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

    def generation(self) -> int:
        raise NotImplementedError

    def writer(self) -> "StoreWriter":
        raise NotImplementedError


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

    def commit(self, model, rows, replace_ledger: bool = False, forget=()) -> None:
        """rows: (digest, label, pr_before) of each message this commit taught.
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
