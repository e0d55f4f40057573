"""A small spamd client: how the milter and `eval --spamd` reach the daemon.

It speaks exactly what spamc speaks (protocol.py), so the daemon can't tell
it from spamc, and tests of one hold for the other.
"""

import socket

from . import protocol


class DaemonError(Exception):
    """The daemon could not be reached or refused the request."""


class Reply:
    __slots__ = ("code", "headers", "body")

    def __init__(self, code, headers, body):
        self.code = code
        self.headers = headers          # lower-case name -> value
        self.body = body

    @property
    def pr(self) -> float:
        return float(self.headers["mailfilter-pr"])

    @property
    def is_spam(self) -> bool:
        return self.headers.get("spam", "").split(";")[0].strip().lower() == "true"


def address(spec: str):
    """'/path/to.sock' or 'HOST:PORT' -> (family, address)."""
    if spec.startswith("/") or spec.startswith("."):
        return socket.AF_UNIX, spec
    host, _, port = spec.rpartition(":")
    host = host.strip("[]")
    return (socket.AF_INET6 if ":" in host else socket.AF_INET), (host, int(port))


def request(where: str, command: str, message: bytes = b"", user: str = None, extra=(),
            timeout: float = 30.0) -> Reply:
    """One request; raises DaemonError when there is no answer to use."""
    family, addr = address(where)
    head = [b"%s SPAMC/%s\r\n" % (command.encode(), protocol.VERSION)]
    if user:
        head.append(b"User: %s\r\n" % user.encode())
    for name, value in extra:
        head.append(b"%s: %s\r\n" % (name.encode(), value.encode()))
    head.append(b"Content-length: %d\r\n\r\n" % len(message))
    try:
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(addr)
            sock.sendall(b"".join(head) + message)
            sock.shutdown(socket.SHUT_WR)
            chunks = []
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
    except OSError as err:
        raise DaemonError(f"spamd at {where}: {err.strerror or err}") from None
    return _parse(b"".join(chunks), where)


def _parse(data: bytes, where: str) -> Reply:
    head, sep, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    first = lines[0].split(None, 2)
    if len(first) < 2 or not first[0].startswith("SPAMD/") or not first[1].isdigit():
        raise DaemonError(f"spamd at {where}: unexpected answer {lines[0][:80]!r}")
    code = int(first[1])
    if code != protocol.EX_OK:
        raise DaemonError(f"spamd at {where}: {lines[0]}")
    if not sep:
        raise DaemonError(f"spamd at {where}: answer cut short")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = headers.get("content-length")
    if length is not None and int(length) != len(body):
        raise DaemonError(f"spamd at {where}: answer cut short ({len(body)} of {length} bytes)")
    return Reply(code, headers, body)
