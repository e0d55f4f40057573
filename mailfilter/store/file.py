"""The file store: one user's model file, its writer lock and its ledger.

    model.mfm      the model (modelfile.py), replaced whole by rename
    model.lock     flock'd by the one writer at a time
    ledger.sqlite  what was taught, by content digest (ledger.py)

Commit order is what makes a crash harmless: the ledger rows are committed
with the new generation first, then the model is renamed into place. Dying
in between leaves ledger rows newer than the model; the next writer deletes
them (Ledger.__init__), so those messages are simply taught again.
"""

import fcntl
import os

from . import Store, StoreWriter, modelfile


class FileStore(Store):
    def __init__(self, model_path: str, lock_path: str, ledger_path: str, bits: int, features):
        self.model_path = model_path
        self.lock_path = lock_path
        self.ledger_path = ledger_path
        self.bits = bits                  # for a model that doesn't exist yet
        self.features = features          # modelfile.FeatureIdentity

    def open_for_reading(self):
        return modelfile.map_readonly(self.model_path, self.bits, self.features)

    def generation(self) -> int:
        return modelfile.read_generation(self.model_path)

    def writer(self) -> "FileWriter":
        return FileWriter(self)

    def learned(self, recent: int = 10) -> dict:
        from .ledger import learned
        return learned(self.ledger_path, recent)

    def describe(self) -> dict:
        """The model file's header and where it is, without the feature
        check: `stats` shows a model other features wrote (and says so)."""
        info = {"kind": "file", "path": self.model_path, "generation": 0}
        try:
            st = os.stat(self.model_path)
        except FileNotFoundError:
            info["exists"] = False
            return info
        info.update(exists=True, size=st.st_size, mtime=st.st_mtime)
        header = modelfile.read_header(self.model_path)
        info.update(header)
        info["features_current"] = (header.get("feature_version") == self.features.version and
                                    header.get("feature_crc") in (None, self.features.crc))
        return info


class FileWriter(StoreWriter):
    """flock(model.lock) for read-modify-write of the model.

    A plain class, not @contextmanager: contextlib costs ~1 ms of start-up.
    """

    def __init__(self, store: FileStore):
        self.store = store
        self.fd = None
        self.generation = None        # of the model load_copy gave
        self._ledger = None

    def __enter__(self) -> "FileWriter":
        from ..state import open_regular
        self.fd = open_regular(self.store.lock_path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX)
        except BaseException:
            os.close(self.fd)
            raise
        return self

    def __exit__(self, *exc) -> bool:
        if self._ledger is not None:
            self._ledger.close()
        os.close(self.fd)
        return False

    def load_copy(self, fresh: bool = False):
        if fresh:
            model = modelfile.empty(self.store.bits)
            model.generation = self.store.generation()
        else:
            model = modelfile.read_copy(self.store.model_path, self.store.bits, self.store.features)
        self.generation = model.generation
        return model

    @property
    def ledger(self):
        # Opened on first use, not with the lock: a run that only commits at
        # the end (eval --save) then does its work, and reports it, even
        # when the disk is too full for SQLite to open a journal.
        if self._ledger is None:
            from .ledger import Ledger
            self._ledger = Ledger(self.store.ledger_path, self.generation)
        return self._ledger

    def label_of(self, digest: str):
        return self.ledger.label_of(digest)

    def record_of(self, digest: str):
        return self.ledger.record_of(digest)

    def legacy_record_of(self, prefix_digest: str):
        return self.ledger.legacy_record_of(prefix_digest)

    def commit(self, model, rows, replace_ledger: bool = False, forget=()) -> None:
        model.generation += 1
        self.ledger.record(rows, model.generation, replace_all=replace_ledger)
        from ..atomicfile import replace
        replace(self.store.model_path, modelfile.chunks(model, self.store.features), 0o600)
        if forget:
            # After the model: rows are dropped only once the undone model stands.
            self.ledger.forget(forget)
