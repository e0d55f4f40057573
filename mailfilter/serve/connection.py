"""One spamc connection, served in a worker: read, classify or learn, answer.

The message is classified and marked by mailfilter.pipeline, the same calls
the pipe filter makes, so PROCESS gives what `mailfilter` on a pipe gives,
byte for byte. Nothing here can make a message vanish: a classification
failure is `UNSURE ( 0.00 )` with the notice (pipeline.classify), and when
even answering fails, spamc, which still holds the message, passes it on
unchanged.

The whole message is read before anything is written back: spamc writes all
of it before it reads (libspamc.c, message_filter), so answering early could
deadlock on full socket buffers. Past SPOOL_IN_MEMORY it waits in a private
temporary file, so a 200 MB message does not cost 200 MB of memory; only the
header block and 256 KiB of body are ever held to classify it, as in the
pipe filter.
"""

import io

from ..log import report
from ..pipeline import classify, head_with_status
from ..rawmail import MessageReader
from ..verdicts import kind_of, record
from . import protocol
from .protocol import ProtocolError

SPOOL_IN_MEMORY = 4 * 1024 * 1024
MAX_MESSAGE = 256 * 1024 * 1024      # spamc's own limit (SPAMC_MAX_MESSAGE_LEN)
CHUNK = 65536
TIMEOUT = 30.0                       # seconds a client may stall; spamd's default is 300


class Spool:
    """The message as it arrived: in memory while small, then a temp file."""

    def __init__(self):
        self._memory = bytearray()
        self._file = None
        self.size = 0

    def write(self, data) -> None:
        self.size += len(data)
        if self._file is None and len(self._memory) + len(data) <= SPOOL_IN_MEMORY:
            self._memory += data
            return
        if self._file is None:
            import tempfile
            self._file = tempfile.TemporaryFile(prefix="mailfilter-")
            self._file.write(self._memory)
            self._memory = None
        self._file.write(data)

    def reader(self):
        """read(n) over the whole message, from the start."""
        if self._file is None:
            return io.BytesIO(self._memory).read
        self._file.seek(0)
        return self._file.read

    def whole(self) -> bytes:
        if self._file is None:
            return bytes(self._memory)
        self._file.seek(0)
        return self._file.read()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


def _receive(sock, already: bytes, request) -> Spool:
    """The request's message, read to its Content-length (or EOF)."""
    length = request.content_length
    if length is not None and length > MAX_MESSAGE:
        raise ProtocolError(protocol.EX_DATAERR, f"message of {length} bytes is over {MAX_MESSAGE}")
    inflate = None
    if request.compressed:
        import zlib
        inflate = zlib.decompressobj()
    spool = Spool()
    received = 0

    def take(data):
        nonlocal received
        received += len(data)
        if inflate is not None:
            # max_length bounds what one compressed chunk may expand to.
            out = inflate.decompress(data, MAX_MESSAGE + 1 - spool.size)
            if inflate.unconsumed_tail:
                raise ProtocolError(protocol.EX_DATAERR, f"message inflates to over {MAX_MESSAGE} bytes")
            data = out
        spool.write(data)
        if spool.size > MAX_MESSAGE:
            raise ProtocolError(protocol.EX_DATAERR, f"message is over {MAX_MESSAGE} bytes")

    try:
        first = already[request.body_start:]
        if length is not None:
            first = first[:length]
        if first:
            take(first)
        while length is None or received < length:
            want = CHUNK if length is None else min(CHUNK, length - received)
            data = sock.recv(want)
            if not data:
                if length is None:
                    break
                raise ProtocolError(protocol.EX_PROTOCOL,
                                    f"client sent {received} of {length} bytes and hung up")
            take(data)
        if inflate is not None:
            spool.write(inflate.flush())
    except BaseException:
        spool.close()
        raise
    return spool


def serve(sock, already: bytes, at_eof: bool, user_model) -> str:
    """Answer the request that starts with `already` on sock. Returns the
    command, for the log. Raises OSError if the client went away.

    user_model: models.UserModel (its classifier, and learn())."""
    try:
        request = protocol.parse_head(already, at_eof)
    except ProtocolError as err:
        report(f"spamd request refused: {err}")
        sock.sendall(protocol.error(err.code))
        return "?"
    command = request.command
    if command == "PING":
        sock.sendall(protocol.pong())
        return command
    if command == "SKIP":
        return command
    try:
        spool = _receive(sock, already, request)
    except ProtocolError as err:
        report(f"spamd {command} refused: {err}")
        sock.sendall(protocol.error(err.code))
        return command
    outcome = None
    try:
        if command == "TELL":
            sock.sendall(_tell(request, spool, user_model))
        elif command == "HEADERS":
            outcome = _headers(sock, spool, user_model)
        elif command == "PROCESS":
            outcome = _process(sock, spool, user_model)
        else:
            outcome = _check(sock, command, spool, user_model)
    finally:
        spool.close()
    if outcome is not None:
        # For `mailfilter stats`, as the pipe filter counts (verdicts.py):
        # after the answer is out, and never an error.
        record(user_model.state.home, kind_of(outcome))
    return command


def _process(sock, spool, user_model) -> None:
    # pipeline.filter_stream, with the length spamc needs sent first.
    reader = MessageReader(spool.reader())
    block = reader.read_prefix()
    outcome = classify(reader.prefix, block, user_model.classifier)
    head = head_with_status(reader.prefix, block, outcome)
    length = len(head) + spool.size - len(reader.prefix)
    sock.sendall(protocol.answer(protocol.spam_header(outcome.verdict, user_model.config_for(outcome)),
                                 body_length=length) + head)
    for chunk in reader.chunks():
        sock.sendall(chunk)
    return outcome


def _headers(sock, spool, user_model) -> None:
    """HEADERS: our output up to where spamc will append the original body.

    All our changes lie in the header block, before spamc's split point,
    so cutting our output at the split shifted by the change in length
    gives spamc exactly the pipe filter's output once it appends the body."""
    from ..pipeline import filter_bytes
    data = spool.whole()
    out, outcome = filter_bytes(data, user_model.classifier)
    split = protocol.spamc_body_start(data)
    body = out if split is None else out[:split + len(out) - len(data)]
    sock.sendall(protocol.answer(protocol.spam_header(outcome.verdict, user_model.config_for(outcome)), body))
    return outcome


def _check(sock, command, spool, user_model) -> None:
    reader = MessageReader(spool.reader())
    block = reader.read_prefix()
    outcome = classify(reader.prefix, block, user_model.classifier)
    spam = protocol.spam_header(outcome.verdict, user_model.config_for(outcome))
    if command == "CHECK":
        sock.sendall(protocol.answer(spam))
    elif command == "SYMBOLS":
        sock.sendall(protocol.answer(spam, protocol.symbols(outcome)))
    elif command == "REPORT" or outcome.verdict.label == "SPAM":
        sock.sendall(protocol.answer(spam, protocol.report(outcome)))
    else:                               # REPORT_IFSPAM, not spam: nothing to report
        sock.sendall(protocol.answer(spam, b""))
    return outcome


def _tell(request, spool, user_model) -> bytes:
    """TELL: `spamc -L spam|ham` teaches the user's model (learning.Session)."""
    msg_class, to_set, to_remove = request.tell()
    if "local" in to_remove:
        # The model can't subtract a message it was taught (it is not a
        # count table); a correction is teaching the other label.
        report("spamd TELL: forgetting a message is not supported; teach it as the other class instead")
        return protocol.error(protocol.EX_UNAVAILABLE, "forget not supported")
    if "local" not in to_set or msg_class is None:
        return protocol.told(False)
    dedupe = request.headers.get("mailfilter-dedupe", "yes").lower() != "no"
    try:
        action = user_model.learn(spool.whole(), msg_class == "spam", dedupe)
    except LearnRefused as err:
        report(f"spamd TELL: not learned: {err}")
        return protocol.error(err.code)
    return protocol.told(action != "skipped")


class LearnRefused(Exception):
    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code = code


def set_timeout(sock) -> None:
    sock.setblocking(True)
    sock.settimeout(TIMEOUT)


