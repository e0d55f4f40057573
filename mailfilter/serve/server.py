"""`mailfilter serve`: listeners, who may ask for whose model, dispatch.

One process (the server) accepts every connection, reads the request head,
finds out who the client is (peers.py) and which model it asks for (spamc's
`-u USER`, the `User:` header), decides whether that is allowed, and hands
the socket to a worker running as that user (workers.py). PING is answered
here; nothing else of a message is ever read by the server.

Who may use a model (the README's "Who can read whose model"):

* As root, without --home (a whole server): the model of account U is in
  U's state directory, where U's pipe filter finds it (state.default_home:
  `~U/.local/share/mailfilter`, or an older release's `~U/.mailfilter`
  directory), and a request for U is served only to a client whose
  uid is U's, root's, or a --trusted-user's (the milter's account, say).
  A client that asks for another user's model is refused (EX_NOPERM), and
  spamc passes the message through unchanged. The worker that opens U's
  files runs as U.
* Otherwise (--home DIR, or not root): one state directory, that of the
  account the server runs as; only that account, root and --trusted-users
  may connect, whatever `User:` they send.
"""

import errno
import os
import pwd
import selectors
import signal
import socket
import stat
import time

from ..errors import ConfigError, InputError
from ..log import info, report
from ..state import resolve_home
from . import peers, protocol, workers
from .protocol import ProtocolError

DEFAULT_SOCKET = "/run/mailfilter/spamd.sock"
HEAD_TIMEOUT = 30.0
MAX_PENDING_READ = 64 * 1024


class Target:
    """Whose model a request gets: pool key, state directory, account to run as."""
    __slots__ = ("key", "home", "pw")

    def __init__(self, key, home, pw=None):
        self.key = key
        # None: pw's default state directory, which the worker looks up once
        # it is pw (workers.spawn): the server may not even be able to see
        # into a 0700 home (it keeps no CAP_DAC_* under systemd).
        self.home = home
        self.pw = pw            # None: the worker stays the server's own user


class Policy:
    def __init__(self, home=None, trusted=()):
        self.uid = os.geteuid()
        self.trusted = {0, self.uid} | {pwd.getpwnam(name).pw_uid for name in trusted}
        self.multi_user = self.uid == 0 and home is None
        self.single = None if self.multi_user else Target("", resolve_home(home))

    def target(self, user, peer_uid) -> Target:
        """The model this client may use, or ProtocolError(EX_NOPERM/EX_NOUSER)."""
        if peer_uid is None:
            raise ProtocolError(protocol.EX_NOPERM, "the client's uid is unknown")
        if not self.multi_user:
            if peer_uid not in self.trusted:
                raise ProtocolError(protocol.EX_NOPERM, f"uid {peer_uid} may not use this daemon's model")
            return self.single
        try:
            pw = pwd.getpwnam(user) if user else pwd.getpwuid(peer_uid)
        except (KeyError, ValueError):          # ValueError: a NUL in the name
            raise ProtocolError(protocol.EX_NOUSER, f"no such user {user!r}") from None
        if peer_uid != pw.pw_uid and peer_uid not in self.trusted:
            raise ProtocolError(protocol.EX_NOPERM, f"uid {peer_uid} asked for {pw.pw_name}'s model")
        return Target(pw.pw_name, None, pw)


class Pending:
    __slots__ = ("sock", "buffer", "peer_uid", "deadline")

    def __init__(self, sock, peer_uid):
        self.sock = sock
        self.buffer = bytearray()
        self.peer_uid = peer_uid
        self.deadline = time.monotonic() + HEAD_TIMEOUT


class Pool:
    """Workers by pool key: up to per_key each, max_total in all."""

    def __init__(self, per_key: int, max_total: int, idle_timeout: float):
        self.per_key = per_key
        self.max_total = max_total
        self.idle_timeout = idle_timeout
        self.by_key = {}
        self.by_channel = {}            # channel fileno -> Worker
        self.on_spawn = None            # the server registers new channels

    def pick(self, target: Target):
        mine = self.by_key.get(target.key, [])
        idle = [w for w in mine if w.outstanding == 0]
        if idle:
            return idle[0]
        if len(mine) < self.per_key:
            if len(self.by_channel) >= self.max_total:
                self._evict_one()
            return self._spawn(target)
        return min(mine, key=lambda w: w.outstanding)

    def _spawn(self, target):
        worker = workers.spawn(target)
        self.by_key.setdefault(target.key, []).append(worker)
        self.by_channel[worker.channel.fileno()] = worker
        self.on_spawn(worker)
        return worker

    def _evict_one(self):
        idle = [w for w in self.by_channel.values() if w.outstanding == 0]
        if idle:
            self.retire(min(idle, key=lambda w: w.last_used))

    def retire(self, worker) -> None:
        """Stop handing it work; it exits once its queue is answered."""
        self.by_channel.pop(worker.channel.fileno(), None)
        mine = self.by_key.get(worker.key, [])
        if worker in mine:
            mine.remove(worker)
            if not mine:
                del self.by_key[worker.key]
        worker.channel.close()

    def idle_ones(self, now):
        return [w for w in self.by_channel.values()
                if w.outstanding == 0 and now - w.last_used > self.idle_timeout]


def parse_listen(value: str):
    """'127.0.0.1:783' or '[::1]:783' -> (family, host, port); loopback only."""
    host, sep, port = value.rpartition(":")
    host = host.strip("[]")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise InputError(f"--listen {value}: expected HOST:PORT, e.g. 127.0.0.1:783", 64)
    if not peers.is_loopback(host):
        raise InputError(f"--listen {value}: only loopback addresses (127.0.0.0/8, ::1): "
                         f"a remote client's uid can't be known", 64)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return family, host, int(port)


def systemd_sockets():
    """Sockets passed by systemd socket activation (sd_listen_fds), if any."""
    if os.environ.get("LISTEN_PID") != str(os.getpid()):
        return []
    count = int(os.environ.get("LISTEN_FDS", "0") or 0)
    for name in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
        os.environ.pop(name, None)
    return [socket.socket(fileno=3 + i) for i in range(count)]


def unix_listener(path: str, mode: int) -> socket.socket:
    directory = os.path.dirname(path) or "."
    try:
        os.makedirs(directory, mode=0o755, exist_ok=True)
    except OSError as err:
        raise InputError(f"{directory}: cannot create: {err.strerror}", 73) from None
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        pass
    else:
        if not stat.S_ISSOCK(st.st_mode):
            raise InputError(f"{path}: exists and is not a socket", 73)
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(path)
        except OSError:
            os.unlink(path)                 # left by a daemon that died
        else:
            raise InputError(f"{path}: another daemon is listening there", 69)
        finally:
            probe.close()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(path)
        # Any local user may connect (procmail runs spamc as the recipient);
        # who gets which model is decided by the client's uid, not by this.
        os.chmod(path, mode)
    except OSError as err:
        sock.close()
        raise InputError(f"{path}: cannot listen: {err.strerror}", 73) from None
    sock.listen(512)
    return sock


def tcp_listener(family, host, port) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as err:
        sock.close()
        raise InputError(f"{host}:{port}: cannot listen: {err.strerror}", 69) from None
    sock.listen(512)
    return sock


class Server:
    def __init__(self, listeners, policy: Policy, pool: Pool, owned_paths=()):
        self.listeners = listeners
        self.policy = policy
        self.pool = pool
        self.owned_paths = list(owned_paths)    # unix socket files to remove at exit
        self.pending = {}
        self.selector = selectors.DefaultSelector()
        self.stopping = False
        self.hup = False
        pool.on_spawn = self._watch_worker
        # One state directory: nothing to route, so workers accept for
        # themselves (workers.run_accepting) and this process only keeps
        # pool.per_key of them running.
        self.acceptors = {} if not policy.multi_user else None
        self.respawn_at = 0.0

    # ---- the loop
    def run(self) -> int:
        wake_r, wake_w = socket.socketpair()
        wake_r.setblocking(False)
        wake_w.setblocking(False)
        signal.set_wakeup_fd(wake_w.fileno())
        self.selector.register(wake_r, selectors.EVENT_READ, ("wake", wake_r))
        for sock in self.listeners:
            sock.setblocking(False)
            if self.acceptors is None:
                self.selector.register(sock, selectors.EVENT_READ, ("listen", sock))
        signal.signal(signal.SIGTERM, self._on_stop)
        signal.signal(signal.SIGINT, self._on_stop)
        signal.signal(signal.SIGHUP, self._on_hup)
        signal.signal(signal.SIGCHLD, lambda *_: None)       # wakes the loop to reap
        info(f"serving on {', '.join(_describe(s) for s in self.listeners)} "
             f"({'one user per worker' if self.policy.multi_user else self.policy.single.home})")
        try:
            self._keep_acceptors()
            while not self.stopping:
                for key, _ in self.selector.select(timeout=1.0):
                    kind, obj = key.data
                    try:
                        if kind == "listen":
                            self._accept(obj)
                        elif kind == "client":
                            self._read_head(obj)
                        elif kind == "worker":
                            self._worker_says(obj)
                        else:
                            _drain(obj)
                    except Exception as err:  # noqa: BLE001 - one request must not stop the server
                        report(f"server: {type(err).__name__}: {err}")
                        if kind == "client":
                            self._drop(obj)
                self._housekeeping()
        finally:
            self._shutdown()
        return 0

    def _on_stop(self, *_):
        self.stopping = True

    def _on_hup(self, *_):
        self.hup = True

    def _watch_worker(self, worker):
        self.selector.register(worker.channel, selectors.EVENT_READ, ("worker", worker))

    # ---- clients
    def _accept(self, listener):
        while True:
            try:
                sock, _ = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as err:
                if err.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    report(f"cannot accept: {err.strerror}")
                    return
                raise
            sock.setblocking(False)
            if sock.family == socket.AF_UNIX:
                uid = peers.unix_peer_uid(sock)
            else:
                uid = peers.tcp_peer_uid(sock)
                # The answer leaves in a few writes; Nagle would hold the last.
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            pending = Pending(sock, uid)
            self.pending[sock.fileno()] = pending
            self.selector.register(sock, selectors.EVENT_READ, ("client", pending))
            # spamc writes its request as soon as it is connected: often it
            # is already here, and a trip through the selector is saved.
            self._read_head(pending)

    def _read_head(self, pending):
        try:
            data = pending.sock.recv(MAX_PENDING_READ)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._drop(pending)
            return
        if data:
            pending.buffer += data
            if protocol.head_end(pending.buffer) < 0:
                if len(pending.buffer) > protocol.MAX_HEAD_BYTES:
                    self._refuse(pending, ProtocolError(protocol.EX_PROTOCOL, "request head too long"))
                return
        self._route(pending, at_eof=not data)

    def _route(self, pending, at_eof):
        self._forget(pending)
        head = bytes(pending.buffer)
        try:
            request = protocol.parse_head(head, at_eof)
            if request.command == "PING":
                _send_quietly(pending.sock, protocol.pong())
                pending.sock.close()
                return
            if request.command == "SKIP":
                pending.sock.close()
                return
            target = self.policy.target(request.user, pending.peer_uid)
        except ProtocolError as err:
            self._refuse(pending, err)
            return
        worker = self.pool.pick(target)
        try:
            worker.hand_over(head, at_eof, pending.sock.fileno())
        except OSError as err:
            report(f"worker {worker.pid} ({target.key or 'the model'}) did not take a connection: {err}")
            self._lost_worker(worker)
        pending.sock.close()

    def _refuse(self, pending, err):
        report(f"spamd request refused: {err}")
        self._forget(pending)
        _send_quietly(pending.sock, protocol.error(err.code))
        pending.sock.close()

    def _drop(self, pending):
        self._forget(pending)
        pending.sock.close()

    def _forget(self, pending):
        if self.pending.pop(pending.sock.fileno(), None) is not None:
            self.selector.unregister(pending.sock)

    # ---- workers
    def _worker_says(self, worker):
        try:
            data = worker.channel.recv(4096)
        except (BlockingIOError, InterruptedError, TimeoutError):
            return
        except OSError:
            data = b""
        if not data:
            self._lost_worker(worker)
            return
        worker.outstanding = max(0, worker.outstanding - len(data))

    def _keep_acceptors(self):
        if self.acceptors is None or self.stopping or time.monotonic() < self.respawn_at:
            return
        while len(self.acceptors) < self.pool.per_key:
            worker = workers.spawn(self.policy.single, self.listeners, self.policy)
            self.acceptors[worker.channel.fileno()] = worker
            self._watch_worker(worker)

    def _lost_worker(self, worker):
        if self.acceptors is not None and self.acceptors.get(worker.channel.fileno()) is worker:
            report(f"worker {worker.pid} ended; starting another")
            self.acceptors.pop(worker.channel.fileno())
            self.selector.unregister(worker.channel)
            worker.channel.close()
            self.respawn_at = time.monotonic() + 1.0      # a worker that dies at once must not spin
            return
        if worker.channel.fileno() >= 0:
            try:
                self.selector.unregister(worker.channel)
            except (KeyError, ValueError):
                pass
        if worker.outstanding:
            report(f"worker {worker.pid} ({worker.key or 'the model'}) ended with {worker.outstanding} "
                   f"connection(s) unanswered; spamc passes those messages on unchanged")
        self.pool.retire(worker)

    def _housekeeping(self):
        now = time.monotonic()
        for pending in [p for p in self.pending.values() if p.deadline < now]:
            self._drop(pending)
        for worker in self.pool.idle_ones(now):
            self._retire(worker)
        if self.hup:
            self.hup = False
            info("SIGHUP: retiring all workers; new ones start on demand")
            for worker in list(self.pool.by_channel.values()):
                self._retire(worker)
            for worker in list((self.acceptors or {}).values()):
                self._retire_acceptor(worker)
        self._keep_acceptors()
        _reap()

    def _retire_acceptor(self, worker):
        self.acceptors.pop(worker.channel.fileno(), None)
        try:
            self.selector.unregister(worker.channel)
        except (KeyError, ValueError):
            pass
        worker.channel.close()

    def _retire(self, worker):
        try:
            self.selector.unregister(worker.channel)
        except (KeyError, ValueError):
            pass
        self.pool.retire(worker)

    def _shutdown(self):
        for sock in self.listeners:
            try:
                self.selector.unregister(sock)
            except (KeyError, ValueError):
                pass
            sock.close()
        for path in self.owned_paths:
            try:
                os.unlink(path)
            except OSError:
                pass
        for pending in list(self.pending.values()):
            self._drop(pending)
        children = [w.pid for w in self.pool.by_channel.values()]
        for worker in list(self.pool.by_channel.values()):
            self._retire(worker)
        for worker in list((self.acceptors or {}).values()):
            children.append(worker.pid)
            self._retire_acceptor(worker)
        _wait_for(children, timeout=30.0)
        info("stopped")


def _describe(sock) -> str:
    name = sock.getsockname()
    if sock.family == socket.AF_UNIX:
        return name if isinstance(name, str) else name.decode(errors="replace")
    return f"{name[0]}:{name[1]}"


def _drain(sock):
    try:
        while sock.recv(4096):
            pass
    except OSError:
        pass


def _send_quietly(sock, data):
    try:
        sock.setblocking(True)
        sock.settimeout(1.0)
        sock.sendall(data)
    except OSError:
        pass


def _reap():
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        if os.WIFSIGNALED(status):
            report(f"worker {pid} was killed by signal {os.WTERMSIG(status)}")


def _wait_for(pids, timeout):
    deadline = time.monotonic() + timeout
    left = set(pids)
    while left and time.monotonic() < deadline:
        for pid in list(left):
            try:
                done, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                done = pid
            if done:
                left.discard(pid)
        if left:
            time.sleep(0.05)
    for pid in left:
        report(f"worker {pid} did not finish in {timeout:.0f} s; killing it")
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except OSError:
            pass


def serve(socket_paths=(), listen=(), home=None, trusted=(), per_user=None, max_workers=64,
          idle_timeout=600.0, socket_mode=0o666) -> int:
    """Run the daemon until SIGTERM. Raises InputError/ConfigError for a bad
    set-up (the command turns it into one line and an exit code)."""
    try:
        policy = Policy(home, trusted)
    except KeyError as err:
        raise ConfigError(f"--trusted-user: no such user {err.args[0]!r}") from None
    listeners = systemd_sockets()
    owned = []
    if not listeners:
        for path in socket_paths or [DEFAULT_SOCKET]:
            listeners.append(unix_listener(path, socket_mode))
            owned.append(path)
        for value in listen:
            listeners.append(tcp_listener(*parse_listen(value)))
    warm_up()
    pool = Pool(per_user or os.cpu_count() or 2, max_workers, idle_timeout)
    return Server(listeners, policy, pool, owned).run()


def warm_up() -> None:
    """Import, before the first fork, everything a worker will use.

    Workers then share these pages (copy-on-write) and start in
    milliseconds, and a worker that has dropped to a user needs no file
    of the Python installation that user may be unable to read (a
    virtualenv under root's 0700 home). privileges.preload is the one
    place that knows what that is (every codec, every module of ours, and
    a whole learn, which loads numpy and SQLite); a classification of a
    small message then runs the filter's own lazy imports.
    """
    from ..classifier import Classifier
    from ..pipeline import filter_bytes
    from ..privileges import preload
    from ..state import Config
    from ..store import empty
    preload()
    sample = (b"From: a@example.org\nSubject: =?iso-2022-jp?B?GyRCJDMkcyRLJEEkTxsoQg==?=\n"
              b"Content-Type: multipart/alternative; boundary=b\n\n--b\nContent-Type: text/html\n\n"
              b"<p>hello <a href=\"http://example.org/x\">x</a></p>\n--b--\n")
    filter_bytes(sample, lambda: Classifier(Config(), empty(10)))
