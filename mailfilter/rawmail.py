"""Bytes-level mail handling: find the header block, drop and add header lines.

The filter never re-serialises a message. Everything here works on the raw
bytes and returns raw bytes, so the output is provably the input with some
whole header lines removed (our forged/stale X-CRM114-*) and some added (ours),
and nothing else: line endings, 8-bit bytes and the mbox `From ` line stay.

Line endings follow procmail: if the header region holds a LF, lines end at
LF (a CR before it belongs to the line ending); only a message with no LF at
all is split at bare CR (old Mac mail, charset-cases/cr).

Two ends of the header. Ours (HeaderBlock.end, body_start) is the first
blank line, a line holding only line-end characters (so `\\r\\n` too, as
maildrop reads it), or the first line that is not a header field; that is
where our lines go and where the view's body starts. procmail's is the first
line that is empty, nothing before its LF: a line of only a CR does not end
it, nor does a line that is no field, and in a CRLF message no line does. A
forged X-CRM114-* field anywhere before procmail's end would match a recipe,
so every one there is removed (HeaderBlock.removals), as far as we read.
"""

import io
import re
from array import array

try:
    # CPython's built-in SHA-256 (_sha2 from 3.12, _sha256 before): hashlib
    # would load OpenSSL's libcrypto, ~2 ms of every filter start-up.
    from _sha2 import sha256
except ImportError:
    try:
        from _sha256 import sha256
    except ImportError:                 # pragma: no cover - other interpreters
        from hashlib import sha256

# A header field line starts with a field name (printable ASCII but ':'),
# optional blanks (obsolete syntax, still seen in spam), then ':'. The class
# excludes ':', so the match can't backtrack more than once per byte.
_FIELD_START = re.compile(rb"[!-9;-~]+[ \t]*:")
# One of our fields at a line start, past our header's end (LF lines). The
# name class excludes ':' and blanks, so each candidate line costs its name.
_OURS_AT_LINE_START = re.compile(rb"^x-crm114-[!-9;-~]*[ \t]*:", re.IGNORECASE | re.MULTILINE)
OUR_PREFIX = b"x-crm114-"

# How far we read to find the end of the header block before giving up on it:
# larger than any real header block (a 10 MB header line must still be found),
# small enough to bound memory for a message that is all "header".
MAX_HEADER_BYTES = 32 * 1024 * 1024
# Raw body bytes kept for classification. Base64 inflates by 4/3 and HTML is
# mostly markup, so this comfortably yields the 64 KiB of text we classify on.
CLASSIFY_BODY_BYTES = 256 * 1024
# Header fields scan_header keeps in full; the view looks at the first 1000.
KEEP_FIELDS = 10000
READ_CHUNK = 65536
# Output pieces shorter than this are gathered before they are written: a
# hostile header alternating forged and plain fields leaves millions of them.
WRITE_GATHER = 65536
# Line endings are normalised for the digest this many bytes at a time.
_DIGEST_SLICE = 1 << 20


# Plain classes, not dataclasses, on the per-message path: importing
# dataclasses pulls in inspect, ~5 ms of every filter run.
class HeaderField:
    __slots__ = ("name", "start", "end")

    def __init__(self, name: bytes, start: int, end: int):
        self.name = name      # as written, without the colon
        self.start = start    # offset of the first line
        self.end = end        # offset just past the last continuation line's EOL

    @property
    def is_ours(self) -> bool:
        return self.name.lower().startswith(OUR_PREFIX)


class HeaderBlock:
    """Where the header block of `data` lies. Offsets index into data.

    fields holds the first KEEP_FIELDS header fields (ours among them) and
    then only the latest one. removals holds every X-CRM114-* field to drop,
    up to procmail's end of the header, as flat (start, end) pairs, sorted,
    adjacent ones merged: 4 or 8 bytes an offset, not an object per field (a
    10 MB message of forged fields once took 341 MB as objects).
    """
    __slots__ = ("start", "end", "body_start", "eol", "fields", "removals")

    def __init__(self, start, end, body_start, eol, fields=None, removals=None):
        self.start = start            # after a leading mbox "From " line, else 0
        self.end = end                # end of the last header line (insertion point)
        self.body_start = body_start  # after the blank separator line, or at the first non-header line
        self.eol = eol                # line ending to use for lines we add
        self.fields = [] if fields is None else fields
        self.removals = array("I") if removals is None else removals


def line_ending(data: bytes) -> bytes:
    """The message's line ending, judged on the first line that has one."""
    lf = data.find(b"\n", 0, MAX_HEADER_BYTES)
    if lf >= 0:
        return b"\r\n" if lf > 0 and data[lf - 1] == 0x0D else b"\n"
    return b"\r" if b"\r" in data[:MAX_HEADER_BYTES] else b"\n"


def _remove(removals, start: int, end: int) -> None:
    if removals and removals[-1] == start:
        removals[-1] = end
    else:
        removals.append(start)
        removals.append(end)


def scan_header(data: bytes) -> HeaderBlock:
    """Locate the header block in data (which may be only a prefix of the message).

    The header fields end at the blank line, or at the first line that is not
    a header field (a message with no separator): that is where we insert and
    where the view's body starts. But procmail reads on to its own end of the
    header (see the module's text), so our X-CRM114-* fields forged after that
    point are collected for removal too. The end of data ends the block.
    """
    eol = line_ending(data)
    sep = b"\r" if eol == b"\r" else b"\n"
    size = len(data)
    removals = array("I" if size < 1 << 32 else "Q")
    pos = 0
    if data.startswith(b"From "):
        nl = data.find(sep)
        if nl < 0:
            return HeaderBlock(0, 0, 0, eol, None, removals)
        pos = nl + 1
    start = pos
    fields = []
    last_ours = False
    while pos < size:
        line_end, content_end = _line(data, pos, sep)
        if content_end == pos:                          # blank line: the separator
            if line_end - pos > 1:                      # "\r\n": procmail reads on
                _stray_ours(data, line_end, sep, removals)
            return HeaderBlock(start, pos, line_end, eol, fields, removals)
        first = data[pos]
        if first in (0x20, 0x09) and fields:            # folded continuation
            fields[-1].end = line_end
            if last_ours:
                removals[-1] = line_end
        else:
            m = _FIELD_START.match(data, pos, content_end)
            if not m:                                   # not a header: body starts here
                _stray_ours(data, pos, sep, removals)
                return HeaderBlock(start, pos, pos, eol, fields, removals)
            field = HeaderField(data[pos:m.end() - 1].rstrip(b" \t"), pos, line_end)
            last_ours = field.is_ours
            if last_ours:
                _remove(removals, pos, line_end)
            if len(fields) < KEEP_FIELDS:
                fields.append(field)
            else:
                # Past KEEP_FIELDS only the latest field is needed (where an
                # unterminated block ends): a million kept fields cost ~500
                # bytes each.
                fields[-1] = field
        pos = line_end
    return HeaderBlock(start, pos, pos, eol, fields, removals)


def _line(data: bytes, pos: int, sep: bytes):
    """(end of the line at pos, end of its content without the line ending)."""
    nl = data.find(sep, pos)
    line_end = len(data) if nl < 0 else nl + 1
    content_end = line_end
    while content_end > pos and data[content_end - 1] in (0x0A, 0x0D):
        content_end -= 1
    return line_end, content_end


def procmail_end(data: bytes, pos: int) -> int:
    """Where procmail's header ends, for LF lines, looking from the line start
    pos: at the first empty line (nothing before its LF), else the end of data."""
    if data[pos:pos + 1] == b"\n":
        return pos
    found = data.find(b"\n\n", pos)
    return len(data) if found < 0 else found + 1


def _stray_ours(data: bytes, pos: int, sep: bytes, removals) -> None:
    """Add our fields between the line start pos and procmail's end of the
    header to removals. Only our own fields are taken; every other line
    there stays body."""
    if sep == b"\r":
        _stray_ours_cr(data, pos, removals)
        return
    end = procmail_end(data, pos)
    removed_to = pos
    for m in _OURS_AT_LINE_START.finditer(data, pos, end):
        field_start = m.start()
        if field_start < removed_to:        # inside a field just removed
            continue
        line_end = _line(data, field_start, sep)[0]
        while line_end < end and data[line_end] in (0x20, 0x09):   # folded lines
            line_end = _line(data, line_end, sep)[0]
        _remove(removals, field_start, line_end)
        removed_to = line_end


def _stray_ours_cr(data: bytes, pos: int, removals) -> None:
    """_stray_ours for a message whose lines end at a bare CR (no LF at all)."""
    size = len(data)
    ours = False
    while pos < size:
        line_end, content_end = _line(data, pos, b"\r")
        if content_end == pos:
            return
        if data[pos] in (0x20, 0x09):
            if ours:
                removals[-1] = line_end
        else:
            ours = (data[pos:pos + len(OUR_PREFIX)].lower() == OUR_PREFIX
                    and _FIELD_START.match(data, pos, content_end) is not None)
            if ours:
                _remove(removals, pos, line_end)
        pos = line_end


def _insertion(data: bytes, block: HeaderBlock, new_lines: list):
    """(our lines as bytes, where they go).

    They go at the end of the header block, where mailreaver puts them. If
    the last header line has no line ending (a message that is all header,
    without a final newline), they go before that last field instead, so we
    never have to invent bytes inside someone else's line.
    """
    added = b"".join(line + block.eol for line in new_lines)
    insert_at = block.end
    if block.end > block.start and data[block.end - 1] not in (0x0A, 0x0D):
        insert_at = block.fields[-1].start if block.fields else block.start
    return added, insert_at


def _kept(block: HeaderBlock, start: int, size: int):
    """(begin, end) of each run of data from start that is not removed."""
    cursor = start
    removals = block.removals
    for i in range(0, len(removals), 2):
        cut, resume = removals[i], removals[i + 1]
        if cut > cursor:
            yield cursor, cut
        if resume > cursor:
            cursor = resume
    if cursor < size:
        yield cursor, size


def _pieces(data, block: HeaderBlock, added: bytes = b"", insert_at: int = -1):
    """The output in pieces (memoryviews of data, and added): data without
    block.removals, added at insert_at (-1: nowhere). An insert_at inside a
    removed run is the same place in the output as the run's start."""
    view = memoryview(data)
    pending = insert_at >= 0
    for begin, end in _kept(block, 0, len(data)):
        if pending and insert_at < end:
            at = max(begin, insert_at)
            if at > begin:
                yield view[begin:at]
            if added:
                yield added
            pending, begin = False, at
        if end > begin:
            yield view[begin:end]
    if pending and added:
        yield added


def write_header(data: bytes, block: HeaderBlock, new_lines: list, write) -> None:
    """write(bytes-like) the rewritten data in pieces: our old X-CRM114-*
    fields gone, new_lines added (see _insertion). Nothing is copied whole:
    a 32 MB header is written from data itself, small pieces gathered."""
    added, insert_at = _insertion(data, block, new_lines)
    gathered = bytearray()
    for piece in _pieces(data, block, added, insert_at):
        if len(piece) >= WRITE_GATHER:
            if gathered:
                write(bytes(gathered))
                gathered.clear()
            write(piece)
            continue
        gathered += piece
        if len(gathered) >= WRITE_GATHER:
            write(bytes(gathered))
            gathered.clear()
    if gathered:
        write(bytes(gathered))


def rewrite_header(data: bytes, block: HeaderBlock, new_lines: list) -> bytes:
    """data with our old X-CRM114-* fields removed and new_lines added."""
    added, insert_at = _insertion(data, block, new_lines)
    return _joined(_pieces(data, block, added, insert_at))


def strip_our_headers(data: bytes, block: HeaderBlock = None) -> bytes:
    """data without any X-CRM114-* header fields (folded lines included)."""
    if block is None:
        block = scan_header(data)
    if not block.removals:
        return data
    return _joined(_pieces(data, block))


def _joined(pieces) -> bytes:
    # Not b"".join(pieces): it makes a list of the generator first, and a
    # million memoryviews took 140 MB. BytesIO hands its buffer over whole.
    out = io.BytesIO()
    for piece in pieces:
        out.write(piece)
    return out.getvalue()


def classify_prefix(data: bytes) -> bytes:
    """What the filter reads of a message to classify it (MessageReader):
    the header block and CLASSIFY_BODY_BYTES of body. learn teaches the same."""
    return data[:scan_header(data).body_start + CLASSIFY_BODY_BYTES]


def header_bytes(data: bytes, block: HeaderBlock) -> bytes:
    return data[block.start:block.end]


def normalized(data: bytes) -> bytes:
    """Line endings as LF: the same mail stored as CRLF or LF hashes the same."""
    return data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")


class MessageDigest:
    """SHA-256 of a message as it streams: our X-CRM114-* fields and a mbox
    From_ line left out (they differ between the copy we were given and the
    copy the user later trains from), line endings normalised to LF.

    Start it with the prefix MessageReader read and its block, then update()
    it with each later chunk as is.
    """

    def __init__(self, prefix: bytes = b"", block: HeaderBlock = None, body_limit: int = None):
        """body_limit: take only this many bytes from the start of the body on."""
        self._hash = sha256()
        self._cr = False              # the last byte fed was a CR: it may pair with a LF
        if block is None:
            block = scan_header(prefix)
        view = memoryview(prefix)
        stop = len(prefix) if body_limit is None else None
        budget = body_limit
        for begin, end in _kept(block, block.start, len(prefix)):
            if stop is None and end > block.body_start:
                # Count the budget in kept bytes from the body's start on.
                begin_body = max(begin, block.body_start)
                take = min(end - begin_body, budget)
                budget -= take
                end = begin_body + take
                if budget == 0:
                    stop = end
            if end > begin:
                self.update(view[begin:end])
            if stop is not None and end >= stop:
                break

    def update(self, data) -> None:
        view = memoryview(data)
        for at in range(0, len(view), _DIGEST_SLICE):
            chunk = bytes(view[at:at + _DIGEST_SLICE])
            if self._cr:
                chunk = b"\r" + chunk
            self._cr = chunk.endswith(b"\r")
            if self._cr:
                chunk = chunk[:-1]
            self._hash.update(normalized(chunk))

    def hexdigest(self) -> str:
        final = self._hash.copy()
        if self._cr:
            final.update(b"\n")
        return final.hexdigest()


def content_digest(data: bytes, block: HeaderBlock = None) -> str:
    """The identity of what we classify of a message (X-CRM114-CacheID):
    the MessageDigest of the header block and CLASSIFY_BODY_BYTES of body,
    so the filter has it before it reads on. For a message no longer than
    that, it equals message_digest. Ledgers written before issue 14 are
    keyed by it (learning.py: legacy rows)."""
    return MessageDigest(data, block, CLASSIFY_BODY_BYTES).hexdigest()


def message_digest(data: bytes) -> str:
    """The identity of a whole message, for the ledger: the MessageDigest
    of all of it, read as the filter and the trainer read it (so a header
    beyond MAX_HEADER_BYTES counts the same way)."""
    pos = 0

    def read(n):
        nonlocal pos
        pos += n
        return data[pos - n:pos]

    return read_digested(read)[1]


def read_digested(read):
    """(MessageReader with the prefix read, message_digest of the whole
    message): the rest is read and hashed as it streams, never held."""
    reader = MessageReader(read)
    block = reader.read_prefix()
    digest = MessageDigest(reader.prefix, block)
    for chunk in reader.chunks():
        digest.update(chunk)
    return reader, digest.hexdigest()


class MessageReader:
    """Reads a message from a file descriptor just far enough to classify it.

    `prefix` ends up holding the whole header block, up to procmail's end of
    it, plus up to CLASSIFY_BODY_BYTES of body; the rest stays unread in the
    stream so the filter can copy it through in chunks, whatever the
    message's size. `classified` is the part classification and learning
    look at (rawmail.classify_prefix of the message).
    """

    def __init__(self, read):
        self._read = read
        self.prefix = b""
        self.at_eof = False

    def read_prefix(self) -> HeaderBlock:
        # A BytesIO, not bytes +=: that was quadratic for a 10 MB header line
        # read in 64 KiB chunks. And not a bytearray: bytes(bytearray) copies,
        # while BytesIO.getvalue() hands over its buffer, so a 32 MB header
        # is held once, not twice (the 32 MB header case peaked at 117 MB).
        buf = io.BytesIO()
        lf_seen = False
        previous = b""
        need = None
        while True:
            chunk = self._read(READ_CHUNK)
            if not chunk:
                self.at_eof = True
                break
            # Look only at the new bytes and the one before them (a blank
            # line split across reads): testing the whole buffer after every
            # read made a 32 MB header quadratic, ~17 s of CPU.
            offset = buf.tell()
            buf.write(chunk)
            tail = previous + chunk
            previous = chunk[-1:]
            if not lf_seen and b"\n" in chunk:
                lf_seen = True
            # procmail's end of the header (see the module's text) is what we
            # read up to: an empty line; a bare-CR blank line only while no
            # LF has been seen at all.
            found = tail.find(b"\n\n")
            if found >= 0:
                need = offset - len(tail) + len(chunk) + found + 2 + CLASSIFY_BODY_BYTES
                break
            if offset == 0 and chunk.startswith(b"\n"):
                need = 1 + CLASSIFY_BODY_BYTES
                break
            if not lf_seen and b"\r\r" in tail:
                need = offset + len(chunk) + CLASSIFY_BODY_BYTES
                break
            if buf.tell() >= MAX_HEADER_BYTES:
                need = buf.tell() + CLASSIFY_BODY_BYTES
                break
        while not self.at_eof and buf.tell() < need:
            chunk = self._read(min(READ_CHUNK, need - buf.tell()))
            if not chunk:
                self.at_eof = True
                break
            buf.write(chunk)
        self.prefix = buf.getvalue()
        del buf
        self.block = scan_header(self.prefix)
        return self.block

    @property
    def classified(self) -> bytes:
        """The header block and CLASSIFY_BODY_BYTES of body: what is
        classified and learned (the same bytes object when that is all)."""
        return self.prefix[:self.block.body_start + CLASSIFY_BODY_BYTES]

    def chunks(self):
        """The unread rest of the stream, in chunks."""
        while not self.at_eof:
            chunk = self._read(READ_CHUNK)
            if not chunk:
                self.at_eof = True
                return
            yield chunk
