"""A corpus is a directory with an index file: `spam PATH` / `ham PATH` lines, in order."""

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Message:
    is_spam: bool
    rel: str        # as written in the index, relative to the corpus directory
    path: str       # absolute
    size: int       # bytes on disk


@dataclass
class Corpus:
    name: str
    directory: str
    index_path: str
    messages: list

    @property
    def n_spam(self):
        return sum(m.is_spam for m in self.messages)


def load(directory: str, index_name: str = "index", limit=None) -> Corpus:
    """Read DIR/INDEX_NAME; only the first `limit` messages when given."""
    directory = os.path.abspath(directory)
    index_path = os.path.join(directory, index_name)
    if not os.path.isfile(index_path):
        raise SystemExit(f"bench: no index file {index_path} (a corpus is a directory with an "
                         f"'index' of 'spam PATH'/'ham PATH' lines; see bench/get_corpus.sh)")
    from mailfilter.evaluate import read_index     # the same index reader as `mailfilter eval`
    try:
        entries = read_index(index_path, limit)
    except ValueError as err:
        raise SystemExit(f"bench: {err}") from None
    messages = []
    for is_spam, rel, path in entries:
        try:
            size = os.path.getsize(path)
        except OSError as err:
            raise SystemExit(f"bench: {index_path}: {path}: {err.strerror}") from None
        messages.append(Message(is_spam, rel, path, size))
    if not messages:
        raise SystemExit(f"bench: {index_path} lists no messages")
    name = os.path.basename(directory.rstrip("/")) or "corpus"
    if index_name != "index":
        name = f"{name} ({index_name})"
    return Corpus(name, directory, index_path, messages)

