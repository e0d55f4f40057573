"""spamd's protocol, as Debian's spamc speaks it: requests in, responses out.

No sockets here: bytes are parsed and built, so the format can be tested on
its own. What spamc sends (spamc/libspamc.c, message_filter and
message_tell):

    PROCESS SPAMC/1.5\\r\\n            or CHECK, SYMBOLS, REPORT, REPORT_IFSPAM,
    User: alice\\r\\n                     HEADERS, PING, SKIP, TELL
    Content-length: 1234\\r\\n
    [Compress: zlib\\r\\n]                (spamc -z)
    [Message-class: spam|ham\\r\\n]       (TELL)
    [Set: local\\r\\n | Remove: local\\r\\n]  (TELL)
    \\r\\n
    the message (zlib-compressed with Compress: zlib)

and then it shuts down its side for writing. What it expects back:

    SPAMD/1.5 0 EX_OK\\r\\n
    Content-length: N\\r\\n              (all but CHECK; spamc checks it exactly)
    Spam: True ; 23.45 / 4.00\\r\\n      (score / threshold; spamc -c prints them,
    \\r\\n                                and exits 1 for True)
    the answer (the message with our headers, the header block, symbols...)

An error is the first line alone with a sysexits code, and the socket is
closed: spamc then passes the message through unchanged (PROCESS) or exits
non-zero (TELL), which is what its authors intend.

The score spamc sees is -pR (higher is spammier, as SpamAssassin's), the
threshold -spam_threshold, and "Spam: True" exactly when our verdict is
SPAM. spamc reads the score with sscanf("%20s"), so it is printed short; the
exact pR is in a header of our own, Mailfilter-pR, which spamc ignores (its
parser skips headers it doesn't know) and `mailfilter eval --spamd` reads.
"""

VERSION = b"1.5"
MAX_HEAD_BYTES = 64 * 1024       # spamc's request head is a few lines; more is not spamc

# sysexits.h, as spamd answers them
EX_OK = 0
EX_USAGE = 64
EX_DATAERR = 65
EX_NOUSER = 67
EX_UNAVAILABLE = 69
EX_SOFTWARE = 70
EX_IOERR = 74
EX_TEMPFAIL = 75
EX_PROTOCOL = 76
EX_NOPERM = 77
EX_CONFIG = 78

_NAMES = {EX_OK: "EX_OK", EX_USAGE: "EX_USAGE", EX_DATAERR: "EX_DATAERR", EX_NOUSER: "EX_NOUSER",
          EX_UNAVAILABLE: "EX_UNAVAILABLE", EX_SOFTWARE: "EX_SOFTWARE", EX_IOERR: "EX_IOERR",
          EX_TEMPFAIL: "EX_TEMPFAIL", EX_PROTOCOL: "EX_PROTOCOL", EX_NOPERM: "EX_NOPERM",
          EX_CONFIG: "EX_CONFIG"}

# Commands that carry a message, and the one that doesn't need a body.
CLASSIFYING = frozenset({"PROCESS", "HEADERS", "CHECK", "SYMBOLS", "REPORT", "REPORT_IFSPAM"})
COMMANDS = CLASSIFYING | {"PING", "SKIP", "TELL"}


class ProtocolError(Exception):
    """A request we can't serve; code is the sysexits code spamc gets."""

    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code = code


class Request:
    __slots__ = ("command", "version", "headers", "body_start")

    def __init__(self, command: str, version: str, headers: dict, body_start: int):
        self.command = command          # "PROCESS", "TELL", ...
        self.version = version          # the client's protocol version, "1.5"
        self.headers = headers          # lower-case name -> value (str)
        self.body_start = body_start    # offset of the message in the bytes read

    @property
    def user(self):
        return self.headers.get("user")

    @property
    def content_length(self):
        """The length spamc declared, or None (protocol 1.0/1.1: read to EOF)."""
        value = self.headers.get("content-length")
        if value is None:
            return None
        if not value.isdigit():
            raise ProtocolError(EX_PROTOCOL, f"bad Content-length {value!r}")
        return int(value)

    @property
    def compressed(self) -> bool:
        value = self.headers.get("compress")
        if value is None:
            return False
        if value.strip().lower() != "zlib":
            raise ProtocolError(EX_PROTOCOL, f"unknown Compress {value!r}")
        return True

    def tell(self):
        """(message class 'spam'|'ham' or None, set {'local', 'remote'}, remove {...})."""
        def words(name):
            return {w.strip().lower() for w in self.headers.get(name, "").split(",") if w.strip()}
        msg_class = self.headers.get("message-class")
        if msg_class is not None:
            msg_class = msg_class.strip().lower()
            if msg_class not in ("spam", "ham"):
                raise ProtocolError(EX_PROTOCOL, f"bad Message-class {msg_class!r}")
        return msg_class, words("set"), words("remove")


def head_end(buffer: bytes):
    """Offset just past the blank line ending the request head, or -1.

    spamc ends every line with CRLF; a bare LF is taken too (a hand-typed
    request through netcat)."""
    crlf = buffer.find(b"\r\n\r\n")
    lf = buffer.find(b"\n\n")
    ends = [pos + size for pos, size in ((crlf, 4), (lf, 2)) if pos >= 0]
    return min(ends) if ends else -1


def parse_head(buffer: bytes, at_eof: bool = False) -> Request:
    """The request whose head is at the start of buffer.

    at_eof: the client has shut down its side, so a head without a blank
    line ends there (PING from spamc before protocol 1.5 sends one line)."""
    end = head_end(buffer)
    if end < 0:
        if not at_eof:
            raise ProtocolError(EX_PROTOCOL, "request head not terminated")
        end = len(buffer)
    lines = buffer[:end].decode("latin-1").replace("\r\n", "\n").split("\n")
    first = lines[0].split()
    if len(first) != 2 or not first[1].startswith("SPAMC/"):
        raise ProtocolError(EX_PROTOCOL, f"not a spamc request: {lines[0][:80]!r}")
    command, version = first[0].upper(), first[1][6:]
    if command not in COMMANDS:
        raise ProtocolError(EX_PROTOCOL, f"unknown command {command[:20]!r}")
    headers = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise ProtocolError(EX_PROTOCOL, f"bad header line {line[:80]!r}")
        headers[name.strip().lower()] = value.strip()
    return Request(command, version, headers, end)


def response_line(code: int = EX_OK, text: str = None) -> bytes:
    return b"SPAMD/%s %d %s\r\n" % (VERSION, code, (text or _NAMES.get(code, "EX_UNKNOWN")).encode("ascii", "replace"))


def error(code: int, text: str = None) -> bytes:
    """The whole answer to a request we refuse: one line, then we close."""
    return response_line(code, text)


def pong() -> bytes:
    return b"SPAMD/%s 0 PONG\r\n" % VERSION


def spam_header(verdict, config) -> bytes:
    """`Spam: True ; 23.45 / 4.00` plus our exact pR. The short form stays
    within spamc's %20s field whatever the score."""
    score = -verdict.pr
    return (b"Spam: %s ; %.2f / %.2f\r\nMailfilter-pR: %s\r\n"
            % (b"True" if verdict.label == "SPAM" else b"False", score,
               -config.spam_threshold, repr(float(verdict.pr)).encode()))


def answer(spam: bytes, body: bytes = None, body_length: int = None) -> bytes:
    """The response head (and body, if given whole). body_length: the length
    of a body the caller streams after this head."""
    head = [response_line(EX_OK)]
    if body is not None or body_length is not None:
        head.append(b"Content-length: %d\r\n" % (len(body) if body is not None else body_length))
    if spam:
        head.append(spam)
    head.append(b"\r\n")
    if body is not None:
        head.append(body)
    return b"".join(head)


def told(did_set: bool) -> bytes:
    """The answer to TELL. Without DidSet spamc prints "Message was already
    un/learned": the ledger knew it with that label."""
    return response_line(EX_OK) + (b"DidSet: local\r\n" if did_set else b"") + b"\r\n"


def spamc_body_start(message: bytes):
    """Where spamc --headers splits the original message to append its body
    to our header block (libspamc.c, _append_original_body): just past the
    first CRLFCRLF or LFLF. None if there is none (spamc then passes the
    message through unchanged)."""
    end = head_end(message)
    return None if end < 0 else end


def symbols(outcome) -> bytes:
    """SYMBOLS: what decided the verdict, as SpamAssassin-style rule names."""
    names = [b"MAILFILTER_" + outcome.verdict.label.encode()]
    if outcome.failed:
        names.append(b"MAILFILTER_FAILED")
    elif getattr(outcome.verdict, "rule", None) is not None:
        names.append(b"MAILFILTER_PRIOLIST")
    return b",".join(names)


def report(outcome) -> bytes:
    """REPORT: our header lines, as a short text report."""
    return b"".join(line + b"\r\n" for line in outcome.status_lines())
