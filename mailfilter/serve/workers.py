"""Per-user worker processes, and the pool the server hands connections to.

A worker serves one state directory (one user's model) and nothing else.
The server forks it, and before the worker opens a single file it drops to
that user's uid, gid and groups (mailfilter.privileges.become) when the
server runs as root: the kernel, not our code, then keeps it out of
everyone else's files.
The server sends it connections over a SOCK_SEQPACKET socketpair, each
message being the request head the server already read, with the client's
socket attached (SCM_RIGHTS); the worker answers one connection at a time
and sends back one byte when it is done, so the server knows its load.

Workers are forked from the server, which has imported the classifier
beforehand, so their code pages are shared (copy-on-write) and a new worker
is ready in a few milliseconds. A worker exits when the server closes its
end of the socketpair, after answering every connection already queued.
"""

import os
import signal
import socket
import syslog
import time
import traceback

from .. import log
from ..log import report
from ..state import default_home
from . import connection
from .models import UserModel

# One message: a flag byte (b"E": the client had already shut down its side)
# and the request head with whatever of the message came with it.
MAX_FORWARD = 2 * 64 * 1024 + 1
_CHANNEL_BUFFER = 1 << 20
DONE = b"d"


def run(channel: socket.socket, home: str) -> int:
    """The worker's loop, in the child process."""
    user_model = UserModel(home)
    while True:
        try:
            message, fds, _, _ = socket.recv_fds(channel, MAX_FORWARD, 2)
        except OSError as err:
            report(f"worker: lost the server: {err}")
            return 1
        if not message and not fds:
            return 0                        # the server closed our channel
        for extra in fds[1:]:
            os.close(extra)
        if not fds:
            continue
        conn = socket.socket(fileno=fds[0])

        def answer():
            connection.set_timeout(conn)
            connection.serve(conn, message[1:], message[:1] == b"E", user_model)
        _answer_safely(conn, answer)
        try:
            channel.send(DONE)
        except OSError:
            return 0


def _answer_safely(conn: socket.socket, answer) -> None:
    """answer() one client on conn, then close it. A client that went away
    or stalled is logged (spamc still holds the message and passes it on
    unchanged), and so is any failure inside: one bad request must not end
    the worker."""
    try:
        answer()
    except OSError as err:
        report(f"spamd connection dropped: {err.strerror or err}")
    except Exception as err:  # noqa: BLE001 - one bad request must not end the worker
        report(f"spamd request failed: {type(err).__name__}: {err}")
        syslog.syslog(syslog.LOG_DEBUG, traceback.format_exc())
    finally:
        conn.close()


def run_accepting(channel: socket.socket, listeners, home: str, policy) -> int:
    """The worker's loop when it accepts for itself: one state directory
    (--home, or a daemon that isn't root), so there is nothing to route and
    the server's hop is saved (one process wake-up per message: ~0.3 ms of
    CPU, and more under load). policy: server.Policy, checked here as the
    server would."""
    import select
    from .protocol import MAX_HEAD_BYTES, ProtocolError, error, head_end
    from . import peers
    user_model = UserModel(home)
    for sock in listeners:
        sock.setblocking(False)
    watched = list(listeners) + [channel]
    while True:
        try:
            ready, _, _ = select.select(watched, [], [])
        except InterruptedError:
            continue
        if channel in ready:
            return 0                        # the server closed our channel: stop
        for listener in ready:
            try:
                conn, _ = listener.accept()
            except (BlockingIOError, InterruptedError):
                continue                    # another worker took it
            except OSError as err:
                report(f"cannot accept: {err.strerror or err}")
                continue

            def answer():
                if conn.family == socket.AF_UNIX:
                    uid = peers.unix_peer_uid(conn)
                else:
                    uid = peers.tcp_peer_uid(conn)
                    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                connection.set_timeout(conn)
                try:
                    policy.target(None, uid)
                except ProtocolError as err:
                    report(f"spamd request refused: {err}")
                    conn.sendall(error(err.code))
                    return
                head = bytearray()
                at_eof = False
                while head_end(head) < 0 and len(head) <= MAX_HEAD_BYTES:
                    data = conn.recv(65536)
                    if not data:
                        at_eof = True
                        break
                    head += data
                connection.serve(conn, bytes(head), at_eof, user_model)
            _answer_safely(conn, answer)


class Worker:
    __slots__ = ("pid", "channel", "key", "outstanding", "last_used")

    def __init__(self, pid, channel, key):
        self.pid = pid
        self.channel = channel          # our end of the socketpair
        self.key = key
        self.outstanding = 0            # connections handed over, not yet done
        self.last_used = time.monotonic()

    def hand_over(self, head: bytes, at_eof: bool, fd: int) -> None:
        socket.send_fds(self.channel, [(b"E" if at_eof else b"-") + head], [fd])
        self.outstanding += 1
        self.last_used = time.monotonic()


def spawn(target, listeners=(), policy=None) -> Worker:
    """Fork a worker for target (server.Target: key, home, pw). With
    listeners, it accepts on them itself (run_accepting)."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    for end in (ours, theirs):
        end.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, _CHANNEL_BUFFER)
    pid = os.fork()
    if pid:
        theirs.close()
        # A stuck worker must not stall the server: a hand-over that can't
        # be queued in 10 s fails, and the server gives up on that worker.
        ours.settimeout(10.0)
        return Worker(pid, ours, target.key)
    code = 70
    try:
        _child_setup([theirs.fileno()] + [sock.fileno() for sock in listeners])
        if target.pw is not None:
            from ..privileges import Account, become
            pw = target.pw
            become(Account(pw.pw_name, pw.pw_uid, pw.pw_gid, pw.pw_dir))
        os.umask(0o077)
        # The state directory U's own pipe filter uses, looked up as U.
        home = target.home or default_home(target.pw.pw_dir)
        if listeners:
            code = run_accepting(theirs, listeners, home, policy)
        else:
            code = run(theirs, home)
    except BaseException as err:  # noqa: BLE001 - report, then exit: never return into the server loop
        try:
            report(f"worker for {target.key or target.home}: {type(err).__name__}: {err}")
        except BaseException:  # noqa: BLE001
            pass
    finally:
        os._exit(code)


def _child_setup(keep) -> None:
    """Leave the server's state behind: its other listeners, other
    workers' channels and clients are not this worker's business."""
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        # The server stops workers by closing their channel, after they
        # have answered what is queued; a signal to the whole group (^C,
        # a service manager) must not cut a message short.
        signal.signal(sig, signal.SIG_IGN)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    signal.set_wakeup_fd(-1)
    log.reopen()                        # its socket fd goes with the others
    low = 3
    for fd in sorted(keep):
        os.closerange(low, fd)
        low = fd + 1
    os.closerange(low, _max_fd())


def _max_fd() -> int:
    try:
        return os.sysconf("SC_OPEN_MAX")
    except (ValueError, OSError):
        return 65536
