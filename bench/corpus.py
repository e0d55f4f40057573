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

    @property
    def n_ham(self):
        return len(self.messages) - self.n_spam


def load(directory: str, index_name: str = "index", limit=None) -> Corpus:
    """Read DIR/INDEX_NAME; only the first `limit` messages when given."""
    directory = os.path.abspath(directory)
    index_path = os.path.join(directory, index_name)
    if not os.path.isfile(index_path):
        raise SystemExit(f"bench: no index file {index_path} (a corpus is a directory with an "
                         f"'index' of 'spam PATH'/'ham PATH' lines; see bench/get_corpus.sh)")
    messages = []
    with open(index_path, encoding="utf-8", errors="replace") as fh:
        for number, line in enumerate(fh, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            judge, _, rel = line.partition(" ")
            judge, rel = judge.lower(), rel.strip()
            if judge not in ("spam", "ham") or not rel:
                raise SystemExit(f"bench: {index_path}:{number}: expected 'spam PATH' or 'ham PATH', got {line!r}")
            path = os.path.join(directory, rel)
            try:
                size = os.path.getsize(path)
            except OSError as err:
                raise SystemExit(f"bench: {index_path}:{number}: {path}: {err.strerror}") from None
            messages.append(Message(judge == "spam", rel, path, size))
            if limit and len(messages) >= limit:
                break
    if not messages:
        raise SystemExit(f"bench: {index_path} lists no messages")
    name = os.path.basename(directory.rstrip("/")) or "corpus"
    if index_name != "index":
        name = f"{name} ({index_name})"
    return Corpus(name, directory, index_path, messages)


def write_index(corpus: Corpus, path: str, limit=None):
    """An index with absolute paths, so engines can run from any directory."""
    with open(path, "w", encoding="utf-8") as fh:
        for m in corpus.messages[:limit]:
            fh.write(f"{'spam' if m.is_spam else 'ham'} {m.path}\n")
