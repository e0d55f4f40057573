"""A corpus is a directory with an index file: `spam PATH` / `ham PATH` lines, in order.

Messages the index lists but the directory lacks are skipped and counted
(trec07p as distributed on some mirrors lacks 20 of its 75,419 files); the
report says how many.
"""

import os
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Message:
    is_spam: bool
    rel: str        # as written in the index, relative to the index's directory
    path: str       # absolute: the bytes each engine reads
    size: int       # bytes on disk


@dataclass
class Corpus:
    name: str
    directory: str
    index_path: str
    messages: list
    skipped: list = field(default_factory=list)     # index entries whose file is absent (rel paths)
    listed: int = 0                                  # entries read from the index (within --limit)

    @property
    def n_spam(self):
        return sum(m.is_spam for m in self.messages)


def load(directory: str, index_name: str = "index", limit=None) -> Corpus:
    """Read DIR/INDEX_NAME; only the first `limit` messages present when given."""
    directory = os.path.abspath(directory)
    index_path = os.path.join(directory, index_name)
    if not os.path.isfile(index_path):
        raise SystemExit(f"bench: no index file {index_path} (a corpus is a directory with an "
                         f"index of 'spam PATH'/'ham PATH' lines; see bench/get_corpus.sh, or "
                         f"--index full/index for trec07p)")
    from mailfilter.evaluate import read_index     # the same index reader as `mailfilter eval`
    try:
        entries = read_index(index_path)
    except ValueError as err:
        raise SystemExit(f"bench: {err}") from None
    messages, skipped, listed = [], [], 0
    for is_spam, rel, path in entries:
        if limit and len(messages) >= limit:
            break
        listed += 1
        try:
            size = os.path.getsize(path)
        except FileNotFoundError:
            skipped.append(rel)
            continue
        except OSError as err:
            raise SystemExit(f"bench: {index_path}: {path}: {err.strerror}") from None
        messages.append(Message(is_spam, rel, os.path.normpath(path), size))
    if not messages:
        raise SystemExit(f"bench: {index_path} lists no messages that exist")
    name = os.path.basename(directory.rstrip("/")) or "corpus"
    if index_name != "index":
        name = f"{name} ({index_name})"
    return Corpus(name, directory, index_path, messages, skipped, listed)


def write_index(path, messages):
    """An index of absolute paths: what `mailfilter eval` reads for a bench run."""
    with open(path, "w", encoding="utf-8") as fh:
        for m in messages:
            fh.write(f"{'spam' if m.is_spam else 'ham'} {m.path}\n")
