"""Bytes-level mail handling: find the header block, drop and add header lines.

The filter never re-serialises a message. Everything here works on the raw
bytes and returns raw bytes, so the output is provably the input with some
whole header lines removed (our forged/stale X-CRM114-*) and some added (ours),
and nothing else: line endings, 8-bit bytes and the mbox `From ` line stay.

Line endings follow procmail: if the header region holds a LF, lines end at
LF (a CR before it belongs to the line ending); only a message with no LF at
all is split at bare CR (old Mac mail, charset-cases/cr).
"""

import re

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
    """Where the header block of `data` lies. Offsets index into data."""
    __slots__ = ("start", "end", "body_start", "eol", "fields")

    def __init__(self, start, end, body_start, eol, fields=None):
        self.start = start            # after a leading mbox "From " line, else 0
        self.end = end                # end of the last header line (insertion point)
        self.body_start = body_start  # after the blank separator line, or at the first non-header line
        self.eol = eol                # line ending to use for lines we add
        self.fields = [] if fields is None else fields


def line_ending(data: bytes) -> bytes:
    """The message's line ending, judged on the first line that has one."""
    lf = data.find(b"\n", 0, MAX_HEADER_BYTES)
    if lf >= 0:
        return b"\r\n" if lf > 0 and data[lf - 1] == 0x0D else b"\n"
    return b"\r" if b"\r" in data[:MAX_HEADER_BYTES] else b"\n"


def scan_header(data: bytes) -> HeaderBlock:
    """Locate the header block in data (which may be only a prefix of the message).

    The header fields end at the blank line, or at the first line that is not
    a header field (a message with no separator): that is where we insert and
    where the view's body starts. But procmail takes everything up to the
    first blank line as header, so our X-CRM114-* fields forged *after* such a
    line would still match a recipe. They are collected too (see _stray_ours),
    up to the blank line. The end of data ends the block.
    """
    eol = line_ending(data)
    sep = b"\r" if eol == b"\r" else b"\n"
    size = len(data)
    pos = 0
    if data.startswith(b"From "):
        nl = data.find(sep)
        if nl < 0:
            return HeaderBlock(0, 0, 0, eol)
        pos = nl + 1
    start = pos
    fields = []
    while pos < size:
        line_end, content_end = _line(data, pos, sep)
        if content_end == pos:                          # blank line: the separator
            return HeaderBlock(start, pos, line_end, eol, fields)
        first = data[pos]
        if first in (0x20, 0x09) and fields:            # folded continuation
            fields[-1].end = line_end
        else:
            m = _FIELD_START.match(data, pos, content_end)
            if not m:                                   # not a header: body starts here
                _stray_ours(data, pos, sep, fields)
                return HeaderBlock(start, pos, pos, eol, fields)
            name = data[pos:m.end() - 1].rstrip(b" \t")
            field = HeaderField(name, pos, line_end)
            if len(fields) >= KEEP_FIELDS and not field.is_ours and not fields[-1].is_ours:
                # Past KEEP_FIELDS only our fields (to remove) and the latest
                # one (where an unterminated block ends) are needed: keeping a
                # million objects cost ~500 bytes of memory per header field.
                fields[-1] = field
            else:
                fields.append(field)
        pos = line_end
    return HeaderBlock(start, pos, pos, eol, fields)


def _line(data: bytes, pos: int, sep: bytes):
    """(end of the line at pos, end of its content without the line ending)."""
    nl = data.find(sep, pos)
    line_end = len(data) if nl < 0 else nl + 1
    content_end = line_end
    while content_end > pos and data[content_end - 1] in (0x0A, 0x0D):
        content_end -= 1
    return line_end, content_end


def _stray_ours(data: bytes, pos: int, sep: bytes, fields: list) -> None:
    """Append X-CRM114-* fields between pos and the first blank line to fields.

    Only our own fields are taken; every other line there stays body.
    """
    size = len(data)
    ours = None
    while pos < size:
        line_end, content_end = _line(data, pos, sep)
        if content_end == pos:
            return
        if data[pos] in (0x20, 0x09):
            if ours is not None:
                ours.end = line_end
        else:
            ours = None
            if data[pos:pos + len(OUR_PREFIX)].lower() == OUR_PREFIX:
                m = _FIELD_START.match(data, pos, content_end)
                if m:
                    ours = HeaderField(data[pos:m.end() - 1].rstrip(b" \t"), pos, line_end)
                    fields.append(ours)
        pos = line_end


def strip_our_headers(data: bytes, block: HeaderBlock = None) -> bytes:
    """data without any X-CRM114-* header fields (folded lines included)."""
    if block is None:
        block = scan_header(data)
    return rewrite_header(data, block, [])


def rewrite_header(data: bytes, block: HeaderBlock, new_lines: list) -> bytes:
    """data with our old X-CRM114-* fields removed and new_lines added.

    new_lines are header lines without line endings; each gets the message's
    own. They go at the end of the header block, where mailreaver puts them.
    If the last header line has no line ending (a message that is all header,
    without a final newline), they go before that last field instead, so we
    never have to invent bytes inside someone else's line.
    """
    added = b"".join(line + block.eol for line in new_lines)
    insert_at = block.end
    if block.end > block.start and data[block.end - 1] not in (0x0A, 0x0D):
        insert_at = block.fields[-1].start if block.fields else block.start
    return _assemble(data, block, insert_at, added)


def _assemble(data: bytes, block: HeaderBlock, insert_at: int, added: bytes) -> bytes:
    out = []
    cursor = 0
    inserted = False
    for f in block.fields:
        if not inserted and f.start >= insert_at:
            out.append(data[cursor:insert_at])
            out.append(added)
            cursor = insert_at
            inserted = True
        if f.is_ours:
            out.append(data[cursor:f.start])
            cursor = f.end
    if not inserted:
        out.append(data[cursor:insert_at])
        out.append(added)
        cursor = insert_at
    out.append(data[cursor:])
    return b"".join(out)


def classify_prefix(data: bytes) -> bytes:
    """What the filter reads of a message to classify it (MessageReader):
    the header block and CLASSIFY_BODY_BYTES of body. learn teaches the same."""
    return data[:scan_header(data).body_start + CLASSIFY_BODY_BYTES]


def header_bytes(data: bytes, block: HeaderBlock) -> bytes:
    return data[block.start:block.end]


def normalized(data: bytes) -> bytes:
    """Line endings as LF: the same mail stored as CRLF or LF hashes the same."""
    return data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")


def content_digest(data: bytes) -> str:
    """Identity of a message for the ledger and X-CRM114-CacheID.

    Our own X-CRM114-* headers and a mbox From_ line are left out (they differ
    between the copy we were given and the copy the user later trains from),
    and line endings are normalised. Only the prefix we classify on counts, so
    the filter can compute it without buffering a 200 MB message.
    """
    block = scan_header(data)
    stripped = rewrite_header(data, block, [])[block.start:]
    block2 = scan_header(stripped)
    limit = block2.body_start + CLASSIFY_BODY_BYTES
    return sha256(normalized(stripped[:limit])).hexdigest()


class MessageReader:
    """Reads a message from a file descriptor just far enough to classify it.

    `prefix` ends up holding the whole header block plus up to
    CLASSIFY_BODY_BYTES of body; the rest stays unread in the stream so the
    filter can copy it through in chunks, whatever the message's size.
    """

    def __init__(self, read):
        self._read = read
        self.prefix = b""
        self.at_eof = False

    def read_prefix(self) -> HeaderBlock:
        buf = bytearray()
        self._lf_seen = False
        # Accumulate in a bytearray: += on bytes would be quadratic for a
        # 10 MB header line read in 64 KiB chunks.
        while True:
            chunk = self._read(READ_CHUNK)
            if not chunk:
                self.at_eof = True
                break
            # Look only at the new bytes (and 2 before them, for a blank line
            # split across reads): testing the whole buffer after every read
            # made a 32 MB header quadratic, ~17 s of CPU.
            checked = max(0, len(buf) - 2)
            buf += chunk
            # The header ends, for procmail and so for us, at the first blank
            # line (see scan_header), so that is what we read up to.
            if self._header_done(bytes(buf[checked:])):
                break
            if len(buf) >= MAX_HEADER_BYTES:
                break
        data = bytes(buf)
        block = scan_header(data)
        need = block.body_start + CLASSIFY_BODY_BYTES
        while not self.at_eof and len(buf) < need:
            chunk = self._read(min(READ_CHUNK, need - len(buf)))
            if not chunk:
                self.at_eof = True
                break
            buf += chunk
        self.prefix = bytes(buf)
        return scan_header(self.prefix) if len(buf) != len(data) else block

    def _header_done(self, tail: bytes) -> bool:
        # A blank line in the new bytes. A bare-CR blank line counts only
        # while no LF has been seen at all.
        if not self._lf_seen and b"\n" in tail:
            self._lf_seen = True
        return b"\n\n" in tail or b"\n\r\n" in tail or (not self._lf_seen and b"\r\r" in tail)

    def chunks(self):
        """The unread rest of the stream, in chunks."""
        while not self.at_eof:
            chunk = self._read(READ_CHUNK)
            if not chunk:
                self.at_eof = True
                return
            yield chunk
