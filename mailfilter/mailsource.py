"""Messages from the places admins keep them: Maildirs, mbox files, directories.

Two steps, so that bulk training can stream: `locate` lists where each
message is (a file, or a byte range of an mbox) without keeping any message,
and `read` fetches one when it is needed. Training 75,000 messages then holds
one message at a time, not the corpus (1.26 GB of RSS for 43 MB of mail when
everything was read first). Never writes. The classifier and the trainer
never need to know where a message came from.
"""

import os


class Location:
    __slots__ = ("path", "start", "end", "number")

    def __init__(self, path: str, start: int = 0, end: int = -1, number: int = 0):
        self.path = path
        self.start = start        # byte range inside an mbox file; whole file: 0, -1
        self.end = end
        self.number = number      # 1-based message number in an mbox, else 0

    @property
    def name(self) -> str:
        return f"{self.path}#{self.number}" if self.number else self.path


def _is_maildir(path: str) -> bool:
    return os.path.isdir(os.path.join(path, "cur")) and os.path.isdir(os.path.join(path, "new"))


def _maildir_files(directory: str):
    for sub in ("new", "cur"):
        folder = os.path.join(directory, sub)
        for name in sorted(os.listdir(folder)):
            yield os.path.join(folder, name)


def _is_mbox(path: str) -> bool:
    with open(path, "rb") as fh:
        return fh.read(5) == b"From "


def mbox_ranges(fh):
    """(start, end) of each message in an mbox file, read line by line.

    A message starts at a line "From " at the start of the file or after a
    blank line (mboxrd/mboxo writers escape body lines as ">From ").
    """
    starts = []
    offset = 0
    blank_before = True
    for line in fh:
        if blank_before and line.startswith(b"From "):
            starts.append(offset)
        blank_before = line in (b"\n", b"\r\n")
        offset += len(line)
    return list(zip(starts, starts[1:] + [offset]))


def _file_locations(path: str):
    if _is_mbox(path):
        with open(path, "rb") as fh:
            for number, (start, end) in enumerate(mbox_ranges(fh), 1):
                yield Location(path, start, end, number)
    else:
        yield Location(path)


def locate(path: str):
    """Location of every message under path, in a stable order."""
    if os.path.isdir(path):
        if _is_maildir(path):
            for name in _maildir_files(path):
                if os.path.isfile(name):
                    yield Location(name)
            return
        for root, dirs, files in os.walk(path):
            dirs.sort()
            if os.path.basename(root) == "tmp" and _is_maildir(os.path.dirname(root)):
                continue        # Maildir tmp/: half-delivered, not a message yet
            for name in sorted(files):
                full = os.path.join(root, name)
                if os.path.isfile(full):
                    yield from _file_locations(full)
        return
    yield from _file_locations(path)


def read(location: Location) -> bytes:
    with open(location.path, "rb") as fh:
        if location.end < 0:
            return fh.read()
        fh.seek(location.start)
        return fh.read(location.end - location.start)


def messages(path: str):
    """(name, raw) for every message under path, one at a time."""
    for location in locate(path):
        yield location.name, read(location)
