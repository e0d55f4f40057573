"""Which messages this user has trained, by content digest.

`learn` of the same message with the same label changes nothing; with the
other label it is a correction. SQLite, in the state directory, beside the
model.

Crash safety: rows are committed with the model generation they belong to
*before* the model file is renamed into place. If we die between the two,
the ledger holds rows newer than the model; open() deletes them, so the
messages are trained again, exactly once.

Each row also keeps the message's subject and sender's domain, for
`mailfilter stats` (the row shape: store/__init__.py). Ledgers written
before those columns existed get them on first open by a writer (ALTER
TABLE ADD COLUMN: no rewrite of the table); their old rows show none.
"""

import os
import sqlite3
import time

from .rows import LedgerEntry, ledger_row

SCHEMA = """
CREATE TABLE IF NOT EXISTS trained (
    digest TEXT PRIMARY KEY,
    label TEXT NOT NULL CHECK (label IN ('spam', 'good')),
    trained_at REAL NOT NULL,
    pr_before REAL,
    generation INTEGER NOT NULL,
    whole INTEGER NOT NULL DEFAULT 0,
    subject TEXT,
    sender_domain TEXT
);
"""
# whole: 1 when digest is rawmail.message_digest (the whole message). Rows
# from before issue 14 (and any a mailfilter of then still writes, hence the
# default) hold rawmail.content_digest, which covers only the header and
# 256 KiB of body: a spam sharing that with a good message was taken for it.
# The two agree for every message no longer than that; for a longer one a
# legacy row is still found through its prefix digest (legacy_record_of),
# and only a legacy row, so the prefix can't be abused for new rows.
#
# Columns shown by `mailfilter stats` that older ledgers lack: (name, type).
ADDED_COLUMNS = (("subject", "TEXT"), ("sender_domain", "TEXT"))
# Every column added since the first release, for _migrate (an old row is
# a legacy one: whole = 0).
MIGRATIONS = (("whole", "INTEGER NOT NULL DEFAULT 0"),) + ADDED_COLUMNS
INDEXES = "CREATE INDEX IF NOT EXISTS trained_by_time ON trained (trained_at);"


def _migrate(db) -> None:
    """Bring an older ledger's table up to SCHEMA (one transaction; the
    writer lock is held, so no other process migrates at the same time)."""
    have = {row[1] for row in db.execute("PRAGMA table_info(trained)")}
    missing = [(name, kind) for name, kind in MIGRATIONS if name not in have]
    if not missing and db.execute("SELECT 1 FROM sqlite_master WHERE name = 'trained_by_time'").fetchone():
        return
    with db:
        db.execute("BEGIN")
        for name, kind in missing:
            db.execute(f"ALTER TABLE trained ADD COLUMN {name} {kind}")
        db.execute(INDEXES)


class Ledger:
    def __init__(self, path: str, model_generation: int):
        from ..state import open_regular
        # A FIFO here would hang SQLite's first read: only a regular file.
        os.close(open_regular(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600))
        self.db = sqlite3.connect(path, timeout=60, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.executescript(SCHEMA)
        _migrate(self.db)
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
        """rows: LedgerRow or (digest, label, pr_before). One transaction.
        replace_all: the rows are the whole ledger from now on (a rebuilt
        model); a message the old ledger knew keeps the time it was taught."""
        now = time.time()
        rows = [ledger_row(row) for row in rows]
        with self.db:
            self.db.execute("BEGIN")
            taught_at = {}
            if replace_all:
                taught_at = dict(self.db.execute("SELECT digest, trained_at FROM trained"))
                self.db.execute("DELETE FROM trained")
            self.db.executemany(
                "INSERT OR REPLACE INTO trained"
                " (digest, label, trained_at, pr_before, generation, whole, subject, sender_domain)"
                " VALUES (?, ?, ?, ?, ?, 1, ?, ?)",
                [(r.digest, r.label, taught_at.get(r.digest, now), r.pr_before, generation,
                  r.subject, r.sender_domain) for r in rows])

    def close(self) -> None:
        self.db.close()


def learned(path: str, recent: int = 10) -> dict:
    """What the ledger at path says, read only: {"spam": N, "good": N,
    "recent": [LedgerEntry, newest first]}. No ledger: zeros.

    Opened read-only, so nothing is migrated. SQLite may still leave the
    -wal and -shm files beside it; made by root, it gives them to the
    ledger's owner (tests/test_stats.py pins that), so root's read never
    locks the user's next learn out. An old ledger without the newer
    columns reads as rows without a subject and domain.
    """
    result = {"spam": 0, "good": 0, "recent": []}
    if not os.path.exists(path):
        return result
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=60)
    try:
        have = {row[1] for row in db.execute("PRAGMA table_info(trained)")}
        if not have:
            return result
        for label, count in db.execute("SELECT label, COUNT(*) FROM trained GROUP BY label"):
            result[label] = count
        extra = ", ".join(name if name in have else "NULL" for name, _ in ADDED_COLUMNS)
        rows = db.execute(f"SELECT digest, label, trained_at, pr_before, {extra} FROM trained"
                          " ORDER BY trained_at DESC, rowid DESC LIMIT ?", (max(0, recent),))
        result["recent"] = [LedgerEntry(*row) for row in rows]
    finally:
        db.close()
    return result
