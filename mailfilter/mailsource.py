"""Messages from the places admins keep them: Maildirs, mbox files, directories.

Yields (name, raw bytes). Never writes. Used by `train`; the classifier and
the trainer never need to know where a message came from.
"""

import os
import re

# An mbox message starts at a line "From " at the start of the file or after
# a blank line (mboxrd/mboxo writers escape body lines as ">From ").
_MBOX_SPLIT = re.compile(rb"(?:\A|(?<=\n\n)|(?<=\r\n\r\n))From [^\n]*\n")


def _is_maildir(path: str) -> bool:
    return os.path.isdir(os.path.join(path, "cur")) and os.path.isdir(os.path.join(path, "new"))


def _files(directory: str):
    for sub in ("new", "cur"):
        folder = os.path.join(directory, sub)
        for name in sorted(os.listdir(folder)):
            yield os.path.join(folder, name)


def _read(path: str) -> bytes:
    with open(path, "rb") as fh:
        return fh.read()


def mbox_messages(data: bytes):
    starts = [m.start() for m in _MBOX_SPLIT.finditer(data)]
    for begin, end in zip(starts, starts[1:] + [len(data)]):
        yield data[begin:end]


def messages(path: str):
    """(name, raw) for every message under path."""
    if os.path.isdir(path):
        if _is_maildir(path):
            for name in _files(path):
                if os.path.isfile(name):
                    yield name, _read(name)
            return
        for root, dirs, files in os.walk(path):
            dirs.sort()
            if os.path.basename(root) == "tmp" and _is_maildir(os.path.dirname(root)):
                continue        # Maildir tmp/: half-delivered, not a message yet
            for name in sorted(files):
                full = os.path.join(root, name)
                if os.path.isfile(full):
                    yield from _file_messages(full)
        return
    yield from _file_messages(path)


def _file_messages(path: str):
    data = _read(path)
    if data.startswith(b"From "):
        for number, raw in enumerate(mbox_messages(data), 1):
            yield f"{path}#{number}", raw
    else:
        yield path, data
