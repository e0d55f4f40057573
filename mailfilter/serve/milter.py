"""`mailfilter milter`: the X-CRM114-* headers at SMTP time, for Postfix.

Why our own implementation of the milter protocol and not pymilter:
* correctness: the part of the protocol a header-adding milter needs is
  small (option negotiation, RCPT, headers, body, end of message; add and
  delete headers; a reply code) and is tested here against the real
  Postfix (tests/test_milter_postfix.py), which is the MTA we support;
* maintenance: pymilter is a C extension built against libmilter at install
  time (Debian's python3-milter serves only /usr/bin/python3, not a
  virtualenv), and its last release is from 2021; a C build in every
  install and CI run buys nothing we use;
* speed: libmilter runs a thread per connection that takes the GIL for
  every callback; here each connection is one thread that blocks on its
  socket, and the work per message is the round trip to the daemon, which
  classifies (bench/serve.py measures the milter through Postfix).

The milter classifies nothing itself: it asks `mailfilter serve` (REPORT,
as spamc would) with the recipient's account when there is exactly one
recipient and --recipient-map maps it, else with --site-user. The daemon
answers with the very lines the pipe filter writes; the milter deletes
every X-CRM114-* header the message came with and adds ours. If the daemon
can't be asked, the lines say `UNSURE ( 0.00 )` with the notice, and the
cause is logged: the mail flows either way. It never rejects unless
--reject-above is given (a 5xx at SMTP time is not a bounce: the sender's
server keeps the message and tells its sender).

Protocol reference: libmilter's mfdef.h (version 6), as Postfix speaks it.
"""

import socket
import socketserver
import struct

from ..errors import ConfigError
from ..log import report
from ..pipeline import classify
from ..rawmail import CLASSIFY_BODY_BYTES, OUR_PREFIX, scan_header
from . import client

VERSION = 6
# actions we may take
SMFIF_ADDHDRS = 0x01
SMFIF_CHGHDRS = 0x10
# protocol steps: the NO* ones we don't need, the NR* ones needing no reply
SMFIP_NOCONNECT, SMFIP_NOHELO, SMFIP_NOMAIL, SMFIP_NORCPT = 0x1, 0x2, 0x4, 0x8
SMFIP_NOBODY, SMFIP_NOHDRS, SMFIP_NOEOH, SMFIP_NR_HDR = 0x10, 0x20, 0x40, 0x80
SMFIP_NOUNKNOWN, SMFIP_NODATA, SMFIP_SKIP, SMFIP_RCPT_REJ = 0x100, 0x200, 0x400, 0x800
SMFIP_NR_CONN, SMFIP_NR_HELO, SMFIP_NR_MAIL, SMFIP_NR_RCPT = 0x1000, 0x2000, 0x4000, 0x8000
SMFIP_NR_DATA, SMFIP_NR_UNKN, SMFIP_NR_EOH, SMFIP_NR_BODY = 0x10000, 0x20000, 0x40000, 0x80000
SMFIP_HDR_LEADSPC = 0x100000

WANTED = (SMFIP_NOCONNECT | SMFIP_NOHELO | SMFIP_NOUNKNOWN | SMFIP_NODATA | SMFIP_SKIP
          | SMFIP_NR_CONN | SMFIP_NR_HELO | SMFIP_NR_MAIL | SMFIP_NR_RCPT | SMFIP_NR_DATA
          | SMFIP_NR_UNKN | SMFIP_NR_HDR | SMFIP_NR_EOH | SMFIP_HDR_LEADSPC)
# Which "no reply" bit covers which command.
NO_REPLY = {b"C": SMFIP_NR_CONN, b"H": SMFIP_NR_HELO, b"M": SMFIP_NR_MAIL, b"R": SMFIP_NR_RCPT,
            b"T": SMFIP_NR_DATA, b"U": SMFIP_NR_UNKN, b"L": SMFIP_NR_HDR, b"N": SMFIP_NR_EOH,
            b"B": SMFIP_NR_BODY}

CONTINUE, ACCEPT, SKIP, REPLYCODE = b"c", b"a", b"s", b"y"
ADDHEADER, CHGHEADER = b"h", b"m"
MAX_PACKET = 1 << 24                 # Postfix sends body chunks of 64 KiB


class RecipientMap:
    """Which account's model a recipient address gets.

    One entry a line: `alice@example.org alice` (that address, that account),
    or `@example.org *` (every address of the domain: its local part is the
    account name), or `@example.org bob`. `#` starts a comment. Unmapped
    addresses get the site-wide model.
    """

    def __init__(self, path=None):
        self.addresses = {}
        self.domains = {}
        if path:
            self._read(path)

    def _read(self, path):
        try:
            with open(path, encoding="utf-8", errors="replace") as fh:
                lines = fh.read().splitlines()
        except OSError as err:
            raise ConfigError(f"{path}: cannot read: {err.strerror}", 66) from None
        for number, line in enumerate(lines, 1):
            fields = line.split("#", 1)[0].split()
            if not fields:
                continue
            if len(fields) != 2 or "@" not in fields[0]:
                raise ConfigError(f"{path}:{number}: expected 'address account' or '@domain account', got {line.strip()!r}")
            key, user = fields[0].lower(), fields[1]
            if key.startswith("@"):
                self.domains[key[1:]] = user
            elif user == "*":
                raise ConfigError(f"{path}:{number}: '*' is for a whole domain ('@domain *')")
            else:
                self.addresses[key] = user

    def user_for(self, address: str):
        address = address.strip().strip("<>").lower()
        if address in self.addresses:
            return self.addresses[address]
        local, _, domain = address.rpartition("@")
        user = self.domains.get(domain)
        if user == "*":
            local = local.split("+", 1)[0]              # alice+lists@ is alice
            return local or None
        return user


class Settings:
    def __init__(self, spamd, site_user=None, recipients=None, reject_above=None, timeout=30.0):
        self.spamd = spamd                      # the daemon's socket path or HOST:PORT
        self.site_user = site_user
        self.recipients = recipients or RecipientMap()
        self.reject_above = reject_above        # score (-pR) at or above which SPAM is refused
        self.timeout = timeout


class Message:
    """What the milter keeps of one message: enough to classify, no more."""

    def __init__(self):
        self.recipients = []
        self.head = bytearray()
        self.ours = []              # (name, index among headers of that name)
        self.counts = {}
        self.body = bytearray()

    def header(self, name: bytes, value: bytes, leading_space: bool) -> None:
        key = name.lower()
        self.counts[key] = self.counts.get(key, 0) + 1
        if key.startswith(OUR_PREFIX):
            self.ours.append((name, self.counts[key]))
        # Postfix hands a folded value with bare LF; the message on the wire had CRLF.
        value = value.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        self.head += name + (b":" if leading_space else b": ") + value + b"\r\n"

    def add_body(self, chunk: bytes) -> bool:
        """Keep what the classifier reads; False once that is complete."""
        room = CLASSIFY_BODY_BYTES - len(self.body)
        if room > 0:
            self.body += chunk[:room]
        return len(self.body) < CLASSIFY_BODY_BYTES

    def data(self) -> bytes:
        return bytes(self.head) + b"\r\n" + bytes(self.body)


def verdict_lines(settings: Settings, message: Message):
    """(our header lines, label, score) for the message, never raising."""
    data = message.data()
    user = settings.site_user
    if len(message.recipients) == 1:
        user = settings.recipients.user_for(message.recipients[0]) or user
    try:
        reply = client.request(settings.spamd, "REPORT", data, user, timeout=settings.timeout)
        lines = [line for line in reply.body.split(b"\r\n") if line]
        if not lines or not all(line.lower().startswith(OUR_PREFIX) for line in lines):
            raise client.DaemonError(f"spamd at {settings.spamd}: unexpected report {reply.body[:200]!r}")
        status = next(line for line in lines if line.lower().startswith(b"x-crm114-status:"))
        label = status.split(b":", 1)[1].split()[0].decode()
        return lines, label, -reply.pr
    except (client.DaemonError, StopIteration, KeyError, ValueError) as err:
        reason = str(err) or type(err).__name__

        def unavailable():
            raise client.DaemonError(reason)
        outcome = classify(data, scan_header(data), unavailable)      # logs, UNSURE ( 0.00 )
        return outcome.status_lines(), "UNSURE", 0.0


class MilterHandler(socketserver.BaseRequestHandler):
    """One connection from Postfix: any number of messages, until QUIT."""

    settings = None         # set on the subclass the server makes

    def handle(self):
        self.protocol = 0
        self.message = Message()
        self.replies = []
        sock = self.request
        sock.settimeout(3600.0)
        if sock.family != socket.AF_UNIX:
            # Replies are small packets answered at once: with Nagle's
            # algorithm and the MTA's delayed ACKs each message waited
            # ~40 ms (78 msg/s through Postfix instead of the CPU's 335).
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            while True:
                packet = _read_packet(sock)
                if packet is None:
                    return
                command, data = packet[:1], packet[1:]
                if not self._dispatch(command, data):
                    return
        except (OSError, ValueError, struct.error) as err:
            report(f"milter: connection dropped: {err}")

    def _send(self, command: bytes, data: bytes = b"", last: bool = True) -> None:
        """Send a reply; last=False holds it to go out with the next one
        (the modifications at end of message leave in one write)."""
        self.replies.append(struct.pack("!I", len(data) + 1) + command + data)
        if last:
            self.request.sendall(b"".join(self.replies))
            self.replies.clear()

    def _continue(self, command: bytes) -> None:
        if not self.protocol & NO_REPLY.get(command, 0):
            self._send(CONTINUE)

    def _dispatch(self, command: bytes, data: bytes) -> bool:
        if command == b"O":
            version, actions, offered = struct.unpack("!III", data[:12])
            self.protocol = offered & WANTED
            self._send(b"O", struct.pack("!III", VERSION, actions & (SMFIF_ADDHDRS | SMFIF_CHGHDRS),
                                         self.protocol))
        elif command == b"D":
            pass                                    # macros: no reply
        elif command == b"M":
            self.message = Message()
            self._continue(command)
        elif command == b"R":
            self.message.recipients.append(data.split(b"\0", 1)[0].decode("utf-8", "replace"))
            self._continue(command)
        elif command == b"L":
            name, value = data.split(b"\0")[:2]
            self.message.header(name, value, bool(self.protocol & SMFIP_HDR_LEADSPC))
            self._continue(command)
        elif command == b"B":
            more = self.message.add_body(data)
            if not self.protocol & SMFIP_NR_BODY:
                self._send(CONTINUE if more or not self.protocol & SMFIP_SKIP else SKIP)
        elif command == b"E":
            self.message.add_body(data)
            self._end_of_message()
            self.message = Message()
        elif command == b"A":
            self.message = Message()                # abort: no reply
        elif command in (b"Q", b"K"):
            if command == b"K":
                self.message = Message()
                return True
            return False
        else:                                       # C, H, T, U, N
            self._continue(command)
        return True

    def _end_of_message(self) -> None:
        settings = self.settings
        lines, label, score = verdict_lines(settings, self.message)
        if settings.reject_above is not None and label == "SPAM" and score >= settings.reject_above:
            self._send(REPLYCODE, b"550 5.7.1 Message refused as spam\0")
            return
        # Highest index first, so the lower ones still name the same headers.
        for name, index in sorted(self.message.ours, key=lambda item: -item[1]):
            self._send(CHGHEADER, struct.pack("!I", index) + name + b"\0\0", last=False)
        lead = b" " if self.protocol & SMFIP_HDR_LEADSPC else b""
        for line in lines:
            name, _, value = line.partition(b": ")
            self._send(ADDHEADER, name + b"\0" + lead + value + b"\0", last=False)
        self._send(CONTINUE)


def _read_exactly(sock, n: int):
    chunks = []
    while n:
        chunk = sock.recv(min(n, 65536))
        if not chunk:
            return None
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def _read_packet(sock):
    size = _read_exactly(sock, 4)
    if size is None:
        return None
    (length,) = struct.unpack("!I", size)
    if not 0 < length <= MAX_PACKET:
        raise ValueError(f"milter packet of {length} bytes")
    return _read_exactly(sock, length)


def parse_listen(spec: str):
    """Postfix's notation: inet:HOST:PORT or unix:PATH (a bare path is unix)."""
    if spec.startswith("inet:"):
        host, _, port = spec[5:].rpartition(":")
        if not port.isdigit():
            raise ConfigError(f"--listen {spec}: expected inet:HOST:PORT or unix:PATH", 64)
        return socket.AF_INET6 if ":" in host else socket.AF_INET, (host.strip("[]") or "127.0.0.1", int(port))
    if spec.startswith("unix:"):
        spec = spec[5:]
    return socket.AF_UNIX, spec


def make_server(listen: str, settings: Settings):
    family, address = parse_listen(listen)
    handler = type("Handler", (MilterHandler,), {"settings": settings})
    if family == socket.AF_UNIX:
        import os
        try:
            os.unlink(address)
        except FileNotFoundError:
            pass
        server = socketserver.ThreadingUnixStreamServer(address, handler, bind_and_activate=False)
    else:
        server_class = type("Server", (socketserver.ThreadingTCPServer,), {"address_family": family})
        server = server_class(address, handler, bind_and_activate=False)
        server.allow_reuse_address = True
    server.daemon_threads = True
    server.request_queue_size = 256
    try:
        server.server_bind()
        server.server_activate()
    except OSError as err:
        server.server_close()
        raise ConfigError(f"--listen {listen}: cannot listen: {err.strerror}", 69) from None
    if family == socket.AF_UNIX:
        import os
        os.chmod(address, 0o666)
    return server


def run(listen: str, settings: Settings) -> int:
    """Serve Postfix until SIGTERM."""
    import signal
    import threading

    from ..log import info
    server = make_server(listen, settings)

    def stop(*_):
        threading.Thread(target=server.shutdown, daemon=True).start()
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    info(f"milter listening on {listen}, asking {settings.spamd}")
    try:
        server.serve_forever(poll_interval=0.5)
    finally:
        server.server_close()
    info("milter stopped")
    return 0
