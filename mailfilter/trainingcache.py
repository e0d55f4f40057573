"""What each user taught, kept so a model can be rebuilt: the training cache.

A model is hashed feature ids, so a new tokenizer can't reuse an old model:
it has to learn again from the messages. CRM114's mailreaver keeps a
"reaver cache" of the mail it saw for the same reason. Ours keeps only what
was taught, in the state directory:

    cache.sqlite   digest, label, when, the message (zlib), newest last

Each entry is the message as it was learned (our X-CRM114-* headers gone),
cut to what the classifier reads of it (rawmail.classify_prefix): the
header block and 256 KiB of body. That bounds one entry, and it is all a
rebuild can use anyway. The whole cache is bounded by the newer-first rule:
past cache_max_messages entries or cache_max_mb of compressed data, the
oldest go. A relabelled message moves to the end with its new label.

Written by the learning session just before the model commit (and in
batches before that, for a long one): a cached message whose commit then
failed was still something the user asked to teach, so a rebuild teaching
it is right.
"""

import os
import sqlite3
import time
import zlib

from .rawmail import classify_prefix

NAME = "cache.sqlite"
SCHEMA = """
CREATE TABLE IF NOT EXISTS taught (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    digest TEXT NOT NULL UNIQUE,
    label TEXT NOT NULL CHECK (label IN ('spam', 'good')),
    taught_at REAL NOT NULL,
    size INTEGER NOT NULL,
    message BLOB NOT NULL
);
"""
# zlib level 6 (the default): mail compresses ~3-4x; level 9 gained ~2% at
# twice the CPU on the SpamAssassin corpus.
LEVEL = 6
FLUSH_BYTES = 4 << 20


class TrainingCache:
    def __init__(self, path: str, max_messages: int, max_bytes: int):
        self.path = path
        self.max_messages = max_messages
        self.max_bytes = max_bytes
        self._buffer = []             # rows not yet written
        self._buffered = 0
        self._db = None

    @property
    def db(self):
        # Opened on first use: a session that teaches nothing never touches it.
        if self._db is None:
            from .state import open_regular
            os.close(open_regular(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600))
            db = sqlite3.connect(self.path, timeout=60, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(SCHEMA)
            self._db = db
        return self._db

    def add(self, digest: str, label: str, raw: bytes) -> None:
        """Keep raw as taught. Written in batches (one transaction per
        FLUSH_BYTES, and at flush()), so a bulk train costs one SQLite commit
        per few MB rather than per message, and holds at most that much."""
        data = zlib.compress(classify_prefix(raw), LEVEL)
        self._buffer.append((digest, label, time.time(), len(data), data))
        self._buffered += len(data)
        if self._buffered >= FLUSH_BYTES:
            self.flush()

    def flush(self) -> None:
        if not self._buffer:
            return
        with self.db:
            self.db.execute("BEGIN")
            # REPLACE deletes an older row of the same digest: a relabelled
            # message moves to the end, with a new seq.
            self.db.executemany("INSERT OR REPLACE INTO taught (digest, label, taught_at, size, message) "
                                "VALUES (?, ?, ?, ?, ?)", self._buffer)
        self._buffer, self._buffered = [], 0
        self.trim()

    def trim(self) -> None:
        """Drop the oldest entries beyond either bound."""
        with self.db:
            self.db.execute("BEGIN")
            self.db.execute("DELETE FROM taught WHERE seq <= (SELECT seq FROM taught ORDER BY seq DESC "
                            "LIMIT 1 OFFSET ?)", (self.max_messages,))
            total = 0
            for seq, size in self.db.execute("SELECT seq, size FROM taught ORDER BY seq DESC"):
                total += size
                if total > self.max_bytes:
                    self.db.execute("DELETE FROM taught WHERE seq <= ?", (seq,))
                    break

    def lookup(self, cache_id: str):
        """(digest, label, raw) of the entry an X-CRM114-CacheID names, or None.

        cache_id is the hex after `sfid-`: the first 16 hex digits of the
        digest (pipeline.Outcome.status_lines). A range on the unique digest
        index, so one lookup costs the same in a cache of 20,000 as of 20.
        Two digests sharing 64 bits are taken as no match rather than a guess.
        """
        cache_id = cache_id.lower()
        if not 8 <= len(cache_id) <= 64 or cache_id.strip("0123456789abcdef"):
            return None
        rows = self.db.execute("SELECT digest, label, message FROM taught WHERE digest >= ? AND digest < ? "
                               "LIMIT 2", (cache_id, cache_id + "g")).fetchall()
        if len(rows) != 1:
            return None
        digest, label, data = rows[0]
        return digest, label, zlib.decompress(data)

    def forget(self, digests) -> None:
        """Drop these entries (an undo: a rebuild must not teach them again)."""
        if not digests:
            return
        self._buffer = [row for row in self._buffer if row[0] not in digests]
        with self.db:
            self.db.execute("BEGIN")
            self.db.executemany("DELETE FROM taught WHERE digest = ?", [(d,) for d in digests])

    def __len__(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM taught").fetchone()[0]

    def newest(self, n: int) -> list:
        """(seq, digest) of the newest n entries written so far, newest first."""
        if self._db is None and not os.path.exists(self.path):
            return []                       # no cache yet: don't create one to read it
        return self.db.execute("SELECT seq, digest FROM taught ORDER BY seq DESC LIMIT ?", (n,)).fetchall()

    def entry(self, seq: int):
        """(digest, label, raw) of one entry, or None if it is gone (trimmed, forgotten)."""
        row = self.db.execute("SELECT digest, label, message FROM taught WHERE seq = ?", (seq,)).fetchone()
        return None if row is None else (row[0], row[1], zlib.decompress(row[2]))

    def entries(self):
        """(digest, label, raw) oldest first, one at a time (bounded memory)."""
        last = 0
        while True:
            row = self.db.execute("SELECT seq, digest, label, message FROM taught WHERE seq > ? "
                                  "ORDER BY seq LIMIT 1", (last,)).fetchone()
            if row is None:
                return
            last = row[0]
            yield row[1], row[2], zlib.decompress(row[3])

    def close(self) -> None:
        """Forget what was not flushed (the session failed) and close."""
        self._buffer, self._buffered = [], 0
        if self._db is not None:
            self._db.close()
            self._db = None


def open_cache(state, config):
    if config.cache_max_messages <= 0 or config.cache_max_mb <= 0:
        return None
    return TrainingCache(os.path.join(state.home, NAME), config.cache_max_messages,
                         int(config.cache_max_mb * 1024 * 1024))
