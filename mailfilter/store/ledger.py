"""Which messages this user has trained, by content digest.

`learn` of the same message with the same label changes nothing; with the
other label it is a correction. SQLite, in the state directory, beside the
model.

Crash safety: rows are committed with the model generation they belong to
*before* the model file is renamed into place. If we die between the two,
the ledger holds rows newer than the model; open() deletes them, so the
messages are trained again, exactly once.
"""

import os
import sqlite3
import time

SCHEMA = """
CREATE TABLE IF NOT EXISTS trained (
    digest TEXT PRIMARY KEY,
    label TEXT NOT NULL CHECK (label IN ('spam', 'good')),
    trained_at REAL NOT NULL,
    pr_before REAL,
    generation INTEGER NOT NULL,
    whole INTEGER NOT NULL DEFAULT 0
);
"""
# whole: 1 when digest is rawmail.message_digest (the whole message). Rows
# from before issue 14 (and any a mailfilter of then still writes, hence the
# default) hold rawmail.content_digest, which covers only the header and
# 256 KiB of body: a spam sharing that with a good message was taken for it.
# The two agree for every message no longer than that; for a longer one a
# legacy row is still found through its prefix digest (legacy_record_of),
# and only a legacy row, so the prefix can't be abused for new rows.


class Ledger:
    def __init__(self, path: str, model_generation: int):
        from ..state import open_regular
        # A FIFO here would hang SQLite's first read: only a regular file.
        os.close(open_regular(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600))
        self.db = sqlite3.connect(path, timeout=60, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.executescript(SCHEMA)
        columns = [row[1] for row in self.db.execute("PRAGMA table_info(trained)")]
        if "whole" not in columns:
            # A ledger from before: its rows are legacy (whole = 0). Opened
            # under the writer lock, so no other writer migrates at once.
            self.db.execute("ALTER TABLE trained ADD COLUMN whole INTEGER NOT NULL DEFAULT 0")
        self.db.execute("DELETE FROM trained WHERE generation > ?", (model_generation,))

    def label_of(self, digest: str):
        row = self.db.execute("SELECT label FROM trained WHERE digest = ?", (digest,)).fetchone()
        return row[0] if row else None

    def legacy_record_of(self, prefix_digest: str):
        """record_of a row written before whole-message digests, by the
        content_digest it was keyed on; never a row written since."""
        row = self.db.execute("SELECT label, pr_before FROM trained WHERE digest = ? AND whole = 0",
                              (prefix_digest,)).fetchone()
        return (row[0], row[1]) if row else None

    def record_of(self, digest: str):
        row = self.db.execute("SELECT label, pr_before FROM trained WHERE digest = ?", (digest,)).fetchone()
        return (row[0], row[1]) if row else None

    def forget(self, digests) -> None:
        """Drop the rows of digests (an undo), in one transaction."""
        with self.db:
            self.db.execute("BEGIN")
            self.db.executemany("DELETE FROM trained WHERE digest = ?", [(d,) for d in digests])

    def record(self, rows, generation: int, replace_all: bool = False) -> None:
        """rows: (digest, label, pr_before). One transaction. replace_all:
        the rows are the whole ledger from now on (a rebuilt model)."""
        now = time.time()
        with self.db:
            self.db.execute("BEGIN")
            if replace_all:
                self.db.execute("DELETE FROM trained")
            self.db.executemany(
                "INSERT OR REPLACE INTO trained (digest, label, trained_at, pr_before, generation, whole)"
                " VALUES (?, ?, ?, ?, ?, 1)",
                [(d, label, now, pr, generation) for d, label, pr in rows])

    def close(self) -> None:
        self.db.close()
