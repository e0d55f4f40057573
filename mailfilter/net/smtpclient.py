"""A small SMTP client that sends exactly what it is told, for `relaytest`.

Raw sockets, not smtplib, for three reasons:
- smtplib's mail()/rcpt() pass the address through email.utils.parseaddr
  (quoteaddr), which rewrites a source route or a quoted local part into a
  different address; the relay tricks are exactly such addresses.
- smtplib reads a line that is not an SMTP reply as code -1 and carries on;
  a tool that judges a server must stop with one clear line instead.
- smtplib's timeout is per recv(), so a server that drips a byte every few
  seconds never times out; here each whole reply has one deadline.
The part of SMTP a relay test needs is small: replies, commands, STARTTLS and
AUTH PLAIN/LOGIN.
"""

import base64
import re
import socket
import ssl
import time

# RFC 5321 4.5.3.1.5 allows 512 octets per reply line; real servers stay far
# below 4096, so anything longer is not a mail server talking.
MAX_LINE = 4096
MAX_LINES = 200
_REPLY_LINE = re.compile(rb"([2-5][0-9][0-9])([ -]|$)(.*)", re.S)


class SmtpTrouble(Exception):
    """The conversation cannot go on; the message is phrased for the admin."""
    kind = "protocol"


class Timeout(SmtpTrouble):
    kind = "timeout"


class Closed(SmtpTrouble):
    kind = "temporary"


class NotSmtp(SmtpTrouble):
    kind = "protocol"


class TlsFailed(SmtpTrouble):
    kind = "protocol"


class Untrusted(TlsFailed):
    """The certificate failed verification (only checked before sending a password)."""
    kind = "auth"


class Reply:
    __slots__ = ("code", "lines")

    def __init__(self, code, lines):
        self.code = code
        self.lines = lines

    @property
    def text(self):
        return " / ".join(f"{self.code} {line}".rstrip() for line in self.lines)

    @property
    def ok(self):
        return 200 <= self.code < 400

    def __repr__(self):
        return f"Reply({self.text!r})"


def _shown(data: bytes) -> str:
    """Bytes as the admin should see them: quoted, escapes for anything odd."""
    return repr(data[:60])[1:] + ("..." if len(data) > 60 else "")


class Connection:
    """One SMTP session over a connected socket.

    `timeout` bounds each whole reply (greeting included), not each recv."""

    def __init__(self, sock, timeout):
        self.sock = sock
        self.timeout = timeout
        self.extensions = {}         # EHLO keyword -> its parameters
        self.tls = False
        self._buf = b""

    def _readline(self, deadline, after):
        while True:
            end = self._buf.find(b"\n")
            if end >= 0:
                line, self._buf = self._buf[:end], self._buf[end + 1:]
                return line.rstrip(b"\r")
            if len(self._buf) > MAX_LINE:
                raise NotSmtp(f"not an SMTP server: a reply line of more than {MAX_LINE} bytes "
                              f"{after}, starting {_shown(self._buf)}")
            left = deadline - time.monotonic()
            if left <= 0:
                raise Timeout(f"no complete reply within {self.timeout:g} s {after}"
                              + (f" (got {_shown(self._buf)} so far)" if self._buf else ""))
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(4096)
            except socket.timeout:
                continue
            except ssl.SSLError as err:
                raise TlsFailed(f"TLS error {after}: {err.reason or err}") from None
            except OSError as err:
                raise Closed(f"connection lost {after}: {err.strerror or err}") from None
            if not data:
                if self._buf:
                    raise NotSmtp(f"not an SMTP server: it closed the connection {after} "
                                  f"after {_shown(self._buf)}")
                raise Closed(f"the server closed the connection {after}")
            self._buf += data

    def read_reply(self, after):
        """One (possibly multi-line) reply; `after` names what it answers, for messages."""
        deadline = time.monotonic() + self.timeout
        code, lines = None, []
        while True:
            raw = self._readline(deadline, after)
            m = _REPLY_LINE.fullmatch(raw)
            if not m or (code is not None and int(m.group(1)) != code):
                raise NotSmtp(f"not an SMTP server: it sent {_shown(raw)} {after}, not an SMTP reply")
            code = int(m.group(1))
            lines.append(m.group(3).decode("utf-8", "replace"))
            if len(lines) > MAX_LINES:
                raise NotSmtp(f"not an SMTP server: a reply of more than {MAX_LINES} lines {after}")
            if m.group(2) != b"-":
                return Reply(code, lines)

    def send(self, line):
        try:
            self.sock.sendall(line.encode("utf-8") + b"\r\n")
        except OSError as err:
            raise Closed(f"connection lost while sending: {err.strerror or err}") from None

    def command(self, line, verb=None):
        self.send(line)
        return self.read_reply(f"after {verb or line.split(':')[0].split()[0]}")

    def greeting(self):
        return self.read_reply("as greeting")

    def hello(self, name):
        """EHLO, falling back to HELO for a server that refuses EHLO."""
        reply = self.command(f"EHLO {name}")
        self.extensions = {}
        if reply.ok:
            for line in reply.lines[1:]:
                keyword, _, params = line.partition(" ")
                self.extensions[keyword.upper()] = params
            return reply
        if reply.code == 421:
            return reply
        return self.command(f"HELO {name}")

    def starttls(self, context, server_hostname=None):
        """STARTTLS: the reply; on 220 the socket is TLS afterwards."""
        reply = self.command("STARTTLS")
        if reply.code != 220:
            return reply
        if self._buf:
            # Anything the server sent after 220 was read before TLS and would
            # be taken as if it came over TLS (CVE-2011-0411, the other side).
            raise NotSmtp(f"not an SMTP server: it sent {_shown(self._buf)} after its STARTTLS reply")
        self.sock.settimeout(self.timeout)
        try:
            self.sock = context.wrap_socket(self.sock, server_hostname=server_hostname)
        except ssl.SSLCertVerificationError as err:
            raise Untrusted(f"certificate not trusted: {err.verify_message or err.reason}") from None
        except socket.timeout:
            raise Timeout(f"no TLS handshake within {self.timeout:g} s after STARTTLS") from None
        except (ssl.SSLError, OSError) as err:
            raise TlsFailed(f"TLS handshake failed after STARTTLS: "
                            f"{getattr(err, 'reason', None) or err}") from None
        self.tls = True
        self.extensions = {}
        return reply

    def auth(self, user, password):
        """AUTH PLAIN (or LOGIN if that is all the server offers); the final reply."""
        mechanisms = self.extensions.get("AUTH", "").upper().split()
        if "PLAIN" in mechanisms or "LOGIN" not in mechanisms:
            token = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
            return self.command(f"AUTH PLAIN {token}")
        reply = self.command("AUTH LOGIN")
        for secret in (user, password):
            if reply.code != 334:
                return reply
            reply = self.command(base64.b64encode(secret.encode()).decode(), verb="AUTH")
        return reply

    def quit(self):
        """QUIT and close, whatever state the session is in."""
        try:
            self.send("QUIT")
            self.read_reply("after QUIT")
        except SmtpTrouble:
            pass
        finally:
            self.close()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def wrap_implicit(sock, context, server_hostname, timeout):
    """TLS from the first byte (port 465, RFC 8314)."""
    sock.settimeout(timeout)
    try:
        return context.wrap_socket(sock, server_hostname=server_hostname)
    except ssl.SSLCertVerificationError as err:
        sock.close()
        raise Untrusted(f"certificate not trusted: {err.verify_message or err.reason}") from None
    except socket.timeout:
        sock.close()
        raise Timeout(f"no TLS handshake within {timeout:g} s (implicit TLS)") from None
    except (ssl.SSLError, OSError) as err:
        sock.close()
        raise TlsFailed(f"TLS handshake failed (implicit TLS; is it a STARTTLS port?): "
                        f"{getattr(err, 'reason', None) or err}") from None
