"""Is an address this machine's, and a throw-away network namespace to test
this machine from outside.

A relay test run on the mail server itself connects from an address the
server trusts (Postfix's mynetworks always holds the host's own addresses,
127.0.0.0/8 in the stock main.cf), so "refused" would prove nothing and
"RELAYED" might only mean "you trust yourself". The namespace gives the test
a client address nobody trusts: a veth pair, this side 198.51.100.1 and
2001:db8:ffff::1, the namespace side one address in 203.0.113.0/24 and
2001:db8:fffe::/48 (documentation ranges, RFC 5737 and RFC 3849), each a
single address with a peer route. Two reasons for that shape:
- Postfix works out mynetworks_style=subnet or =class from the interface
  addresses when a process starts, so an smtpd started after our veth
  appears sees it too. A /32 (/128) with a peer route gives it no subnet to
  trust, and the two sides sit in different /24s so the class-C rule of
  =class misses as well.
- Nothing is forwarded or routed beyond the pair: the namespace reaches only
  this machine's own addresses, never the network.

Sockets are made inside the namespace with setns(2) (Python 3.11 has no
os.setns) and used from here, so DNS, output and everything else stay in the
caller's namespace, and no second process is needed.
"""

import ctypes
import ipaddress
import os
import shutil
import signal
import socket
import subprocess
import sys

from .. import exitcodes
from ..errors import MailfilterError

CLONE_NEWNET = 0x40000000
HOST_SIDE = {socket.AF_INET: "198.51.100.1", socket.AF_INET6: "2001:db8:ffff::1"}


def family_of(address):
    return socket.AF_INET6 if ":" in address else socket.AF_INET


def is_local(address):
    """True when `address` is one of this machine's (this namespace's) own.

    Binding to it succeeds only if it is (without IP_FREEBIND, which we do
    not set), which also covers 127.0.0.0/8 and addresses on any interface."""
    try:
        if ipaddress.ip_address(address.split("%")[0]).is_loopback:
            return True
    except ValueError:
        return False
    with socket.socket(family_of(address), socket.SOCK_STREAM) as s:
        try:
            s.bind((address, 0))
        except OSError:
            return False
    return True


class NetnsError(MailfilterError):
    code = exitcodes.UNAVAILABLE


def _setns(fd):
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


class Throwaway:
    """`with Throwaway(families) as ns:` a namespace joined to this one by a
    veth pair; ns.socket(family) makes a TCP socket that lives in it, and
    ns.target(address) is where a connection to `address` must go from there
    (this machine's loopback is not reachable from outside it, so a loopback
    target becomes this side of the pair). Deleted on exit, also on SIGTERM."""

    def __init__(self, families=(socket.AF_INET,)):
        tag = os.getpid()
        self.name = f"mfrelay{tag}"
        self.host_if = f"mfrt{tag}"[:15]
        self.families = set(families)
        self.client = {socket.AF_INET: f"203.0.113.{2 + tag % 250}",
                       socket.AF_INET6: f"2001:db8:fffe::{2 + tag % 65000:x}"}
        self._fd = None
        self._made = False
        self._old_term = None

    def _ip(self, *args, ns=False):
        cmd = [self._ipbin] + (["-n", self.name] if ns else []) + [str(a) for a in args]
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
        if res.returncode != 0:
            raise NetnsError(f"--netns: {' '.join(cmd)} failed: {res.stderr.strip() or res.returncode}")

    def __enter__(self):
        if os.geteuid() != 0:
            raise MailfilterError("--netns needs root: it creates a network namespace and a veth pair",
                                  exitcodes.NOPERM)
        self._ipbin = shutil.which("ip") or "/sbin/ip"
        if not os.path.exists(self._ipbin):
            raise NetnsError("--netns needs the ip command: apt-get install iproute2")
        self._old_term = signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
        try:
            self._setup()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc):
        self.close()

    def _setup(self):
        self._ip("netns", "add", self.name)
        self._made = True
        self._fd = os.open(f"/run/netns/{self.name}", os.O_RDONLY)
        self._ip("link", "set", "lo", "up", ns=True)
        self._ip("link", "add", self.host_if, "type", "veth", "peer", "name", "eth0", "netns", self.name)
        for ns in (False, True):
            # No link-local address: neighbour discovery then uses the nodad
            # global ones, usable at once, instead of waiting out DAD.
            self._ip("link", "set", "dev", self.host_if if not ns else "eth0", "addrgenmode", "none", ns=ns)
        for family in sorted(self.families):
            here, there = HOST_SIDE[family], self.client[family]
            if family == socket.AF_INET:
                self._ip("addr", "add", here, "peer", there, "dev", self.host_if)
                self._ip("addr", "add", there, "peer", here, "dev", "eth0", ns=True)
            else:
                self._ip("-6", "addr", "add", f"{here}/128", "dev", self.host_if, "nodad")
                self._ip("-6", "addr", "add", f"{there}/128", "dev", "eth0", "nodad", ns=True)
        self._ip("link", "set", self.host_if, "up")
        self._ip("link", "set", "eth0", "up", ns=True)
        for family in sorted(self.families):
            here, there = HOST_SIDE[family], self.client[family]
            if family == socket.AF_INET6:
                self._ip("-6", "route", "add", f"{there}/128", "dev", self.host_if)
                self._ip("-6", "route", "add", f"{here}/128", "dev", "eth0", ns=True)
            v = "-6" if family == socket.AF_INET6 else "-4"
            self._ip(v, "route", "add", "default", "via", here, "dev", "eth0", ns=True)

    def target(self, address):
        try:
            loopback = ipaddress.ip_address(address).is_loopback
        except ValueError:
            loopback = False
        return HOST_SIDE[family_of(address)] if loopback else address

    def socket(self, family):
        own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        try:
            _setns(self._fd)
            try:
                return socket.socket(family, socket.SOCK_STREAM)
            finally:
                # Failing to come back would leave every later socket in the
                # namespace: better to stop right here.
                _setns(own)
        finally:
            os.close(own)

    def close(self):
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self._made:
            # The veth pair and its routes go with the namespace.
            subprocess.run([self._ipbin, "netns", "del", self.name], capture_output=True, timeout=30)
            self._made = False
        if self._old_term is not None:
            signal.signal(signal.SIGTERM, self._old_term)
            self._old_term = None
