"""Three mail hosts, each in a network namespace of its own, share one Redis
over TCP (issue 13's multi-host test, with the network in the way).

Redis (Debian's redis-server, with a password) listens on this side of
three veth pairs; each host is a `mailfilter serve` started inside its
namespace (`ip netns exec`), whose only way to Redis is its veth link and a
`redis://ADDRESS:PORT/0` URL with a root-only credentials file, as an admin
writes it. Debian's spamc reaches each daemon through its Unix socket (a
path in the file system, which network namespaces do not separate). The
other Redis tests use a Unix socket; this one is the TCP path, AUTH
included, and a host whose link goes down.
"""

import os
import subprocess
import time

import pytest

from conftest import MAILFILTER, SAMPLES, env_for, free_port, need, status_of
from serve_daemon import Daemon, spamc

pytestmark = pytest.mark.root

PASSWORD = "netns-s3cret"
SPAM = sorted(os.path.join(SAMPLES, "train", "spam", n) for n in os.listdir(os.path.join(SAMPLES, "train", "spam")))
GOOD = sorted(os.path.join(SAMPLES, "train", "good", n) for n in os.listdir(os.path.join(SAMPLES, "train", "good")))


def _read(path):
    with open(path, "rb") as fh:
        return fh.read()


def sh(*args, ns=None):
    argv = (["ip", "netns", "exec", ns] if ns else []) + list(args)
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"{' '.join(argv)}: {done.stderr}"


class Hosts:
    """Namespaces TAGh0..2, each with eth0 = 10.B.N.2/30; this side of link
    N (TAGvN) is 10.B.N.1, where Redis listens. B comes from the pid, so a
    link a killed run left behind does not hold this run's addresses."""

    def __init__(self, count=3):
        assert os.geteuid() == 0, "needs root (network namespaces); CI runs the suite as root"
        need("ip")
        self.tag = f"mfr{os.getpid() % 100000}"
        self.names = [f"{self.tag}h{n}" for n in range(count)]
        self.links = [f"{self.tag}v{n}" for n in range(count)]
        self.net = f"10.{64 + os.getpid() % 128}"
        self.made = []

    def here(self, n):
        return f"{self.net}.{n}.1"

    def __enter__(self):
        try:
            for n, (ns, link) in enumerate(zip(self.names, self.links)):
                sh("ip", "netns", "add", ns)
                self.made.append(ns)
                sh("ip", "link", "set", "lo", "up", ns=ns)
                sh("ip", "link", "add", link, "type", "veth", "peer", "name", "eth0", "netns", ns)
                sh("ip", "addr", "add", f"{self.here(n)}/30", "dev", link)
                sh("ip", "link", "set", link, "up")
                sh("ip", "addr", "add", f"{self.net}.{n}.2/30", "dev", "eth0", ns=ns)
                sh("ip", "link", "set", "eth0", "up", ns=ns)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc):
        # This side's end first: it takes the pair with it at once, while a
        # namespace lives on (and its link keeps its address here) as long
        # as a socket in it waits out a connection cut by a link down.
        for link in self.links:
            subprocess.run(["ip", "link", "del", link], capture_output=True, timeout=60)
        for ns in self.made:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=60)


def start_redis(directory, addresses, port):
    binary = need("redis-server")
    proc = subprocess.Popen([binary, "--bind", *addresses, "--port", str(port), "--requirepass", PASSWORD,
                             "--dir", str(directory), "--save", "", "--appendonly", "no", "--daemonize", "no",
                             "--logfile", str(directory / "redis.log")],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    import socket
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        assert proc.poll() is None, (directory / "redis.log").read_text()[-2000:]
        try:
            with socket.create_connection((addresses[0], port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                if s.recv(100).startswith(b"-NOAUTH"):
                    return proc
        except OSError:
            pass
        time.sleep(0.05)
    proc.kill()
    raise AssertionError("redis-server did not start in 20 s")


def status(daemon, data):
    done = spamc(daemon.socket, data=data)
    assert done.returncode == 0, done.stderr
    return status_of(done.stdout)


LEARNED = b"Message successfully un/learned\n"


def tell(daemon, label, data):
    """spamc -L: what spamc printed (it exits 0 either way)."""
    done = spamc(daemon.socket, ["-L", label], data)
    assert done.returncode == 0, (done.stdout, done.stderr, daemon.log()[-2000:])
    return done.stdout


def pr_of(text):
    return float(text.split("(")[1].split(")")[0])


def test_three_hosts_in_their_own_namespaces_share_one_redis_over_tcp(tmp_path):
    need("spamc")
    port = free_port()
    auth = tmp_path / "redis.auth"
    auth.write_text(f"default {PASSWORD}\n")
    os.chmod(auth, 0o600)
    (tmp_path / "redis").mkdir()
    with Hosts() as hosts:
        redis = start_redis(tmp_path / "redis", [hosts.here(n) for n in range(3)], port)
        daemons = []
        try:
            for n, ns in enumerate(hosts.names):
                home = tmp_path / f"host-{n}"
                home.mkdir(mode=0o700)
                (home / "mailfilter.conf").write_text(
                    f"store = redis://{hosts.here(n)}:{port}/0?prefix=netns:&credentials={auth}\n")
                argv = ["ip", "netns", "exec", ns] + MAILFILTER
                daemon = Daemon(tmp_path, home, name=f"host-{n}.sock")
                daemon.argv = argv + daemon.argv[len(MAILFILTER):]
                daemons.append(daemon.start())
            a, b, c = daemons

            # Taught through host A (spamc's TELL), over A's link.
            for path in GOOD[:3]:
                assert tell(a, "ham", _read(path)) == LEARNED
            message = _read(SPAM[1])
            before = [status(d, message) for d in (b, c)]
            assert tell(a, "spam", message) == LEARNED
            # B and C see it through their own links: their next verdict
            # moves toward SPAM (their copies of the global table refresh
            # when Redis's generation moves; a few seconds at the most).
            deadline = time.monotonic() + 10
            while True:
                after = [status(d, message) for d in (b, c)]
                if all(pr_of(x) < pr_of(y) and x.startswith("SPAM") for x, y in zip(after, before)):
                    break
                assert time.monotonic() < deadline, (before, after)
                time.sleep(0.1)

            # C's copy of the global table, what it falls back on, catches
            # up with the next messages it classifies (one refresh at most
            # every `refresh` seconds, 0.5 by default): until then C's SPAM
            # came from its own ids, read from Redis per message. A's copy
            # was written by A's learn.
            from mailfilter.store.modelfile import read_generation
            wanted = read_generation(str(tmp_path / "host-0" / "shared-copy.mfm"))
            deadline = time.monotonic() + 10
            while read_generation(str(tmp_path / "host-2" / "shared-copy.mfm")) != wanted:
                assert time.monotonic() < deadline, c.log()[-2000:]
                status(c, message)
                time.sleep(0.2)
            # C's link goes down: C still classifies, from its local copy,
            # and a learn through C is queued, not lost ...
            sh("ip", "link", "set", "eth0", "down", ns=hosts.names[2])
            offline = status(c, message)
            assert offline.startswith("SPAM"), (offline, c.log()[-2000:])
            queued = _read(GOOD[3])
            assert tell(c, "ham", queued) == LEARNED
            assert any(name.endswith(".learn") for name in os.listdir(tmp_path / "host-2" / "shared-queue"))
            # ... and lands once the link is back (any learn replays the queue first).
            sh("ip", "link", "set", "eth0", "up", ns=hosts.names[2])
            done = subprocess.run(["ip", "netns", "exec", hosts.names[2]] + MAILFILTER +
                                  ["shared", "replay", "--home", str(tmp_path / "host-2")],
                                  capture_output=True, text=True, env=env_for(None), timeout=120)
            assert done.returncode == 0 and '"queued": 0' in done.stdout, (done.stdout, done.stderr)
            # Host A's ledger (the same user's, on Redis) has it: learned once.
            assert tell(a, "ham", queued) == b"Message was already un/learned\n"
        finally:
            for daemon in daemons:
                daemon.stop()
            redis.terminate()
            redis.wait(10)
