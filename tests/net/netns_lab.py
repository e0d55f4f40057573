"""Two network namespaces joined by one veth pair, named after this process
so that runs side by side don't meet: `Pair` (a server and a client with the
addresses a test asks for, tests/postfix_lab.py's Postfix in the server)
and `Lab`, the firewall tests' plan on it: `srv` is the protected mail host,
`cli` plays the outside world with several source addresses. Every address
is documentation/private space assigned here, to these two veth ends only,
so no packet can leave the namespaces.
"""

import itertools
import os
import shutil
import subprocess
import sys
import time

AGENT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "netns_agent.py")
_serial = itertools.count()

SRV4, SRV6 = "10.99.1.1", "2001:db8:1::1"
# name -> address on the client's veth; the country plan is in
# tests/fixtures/rir/delegated-testnet-extended.
CLIENT = {
    "unlisted4": "10.99.1.2",        # JP, never chosen
    "kr4": "10.99.64.5",             # KR 10.99.64.0/18
    "kr_allowed4": "10.99.100.5",    # inside KR, but on the allow-list in the tests
    "cn4": "10.99.128.5",            # CN, first /23 of 768 hosts
    "cn_tail4": "10.99.130.5",       # CN, the /24 left over from 768 = 512 + 256
    "after_cn4": "10.99.131.5",      # just past CN: unlisted
    "unlisted6": "2001:db8:1::2",
    "kr6": "2001:db8:64::5",
    "kr_allowed6": "2001:db8:64:100::5",
    "cn6": "2001:db8:128::5",
}
SRV_PORTS = (25, 2525)
CLI_PORT = 8080


def need(binary):
    path = shutil.which(binary)
    assert path, f"{binary} is not installed; run contrib/bootstrap.sh (Debian: iptables ipset nftables iproute2)"
    return path


def sh(*args, ns=None, check=True, input=None):
    cmd = (["ip", "netns", "exec", ns] if ns else []) + [str(a) for a in args]
    res = subprocess.run(cmd, capture_output=True, text=True, input=input, timeout=60)
    if check and res.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({res.returncode}): {res.stderr.strip()}")
    return res


class Pair:
    """The smallest two-namespace network: namespaces `srv` and `cli`, and,
    when the client has addresses, veth0 (srv) <-> veth1 (cli) made inside
    srv, so nothing ever exists in the host namespace. Without client
    addresses, the server's go on its loopback. An address with a prefix
    ("10.99.1.1/16") is on-link by that prefix; one without is a host
    address, and the other end gets a route to it, so a client can come
    from a chosen country's address without any packet leaving the
    namespaces."""

    def __init__(self, srv_addrs=(), cli_addrs=()):
        assert os.geteuid() == 0, "needs root (network namespaces); CI runs the suite as root"
        need("ip")
        tag = f"mf{os.getpid() % 100000}x{next(_serial)}"
        self.srv, self.cli = f"{tag}s", f"{tag}c"
        self.srv_addrs, self.cli_addrs = list(srv_addrs), list(cli_addrs)
        self._made = []

    def __enter__(self):
        try:
            self._setup()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc):
        self.close()

    def _setup(self):
        for ns in (self.srv, self.cli):
            sh("ip", "netns", "add", ns)
            self._made.append(ns)
            sh("ip", "link", "set", "lo", "up", ns=ns)
            # No duplicate address detection: addresses (link-local too) usable at once.
            # (Written to /proc directly: no dependency on procps' sysctl.)
            for conf in ("all", "default"):
                sh("sh", "-c", f"echo 0 > /proc/sys/net/ipv6/conf/{conf}/accept_dad", ns=ns)
        if not self.cli_addrs:
            for addr in self.srv_addrs:
                sh("ip", "addr", "add", _prefixed(addr), "dev", "lo", ns=self.srv)
            return
        sh("ip", "link", "add", "veth0", "type", "veth", "peer", "name", "veth1", "netns", self.cli, ns=self.srv)
        for ns, dev, mine, theirs in ((self.srv, "veth0", self.srv_addrs, self.cli_addrs),
                                      (self.cli, "veth1", self.cli_addrs, self.srv_addrs)):
            for addr in mine:
                sh("ip", "addr", "add", _prefixed(addr), "dev", dev, *(["nodad"] if ":" in addr else []), ns=ns)
            sh("ip", "link", "set", dev, "up", ns=ns)
            for addr in theirs:
                if "/" not in addr:
                    sh("ip", "-6" if ":" in addr else "-4", "route", "add", _prefixed(addr), "dev", dev, ns=ns)

    def close(self):
        for ns in self._made:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        self._made.clear()

    def run_in(self, ns, *args, input=None, timeout=60):
        return subprocess.run(["ip", "netns", "exec", ns, *map(str, args)], input=input,
                              capture_output=True, timeout=timeout)

    def send_mail(self, src, dst, helo, data: bytes, rcpt="user@example.org", port=25):
        """One message by SMTP from the client namespace: Python's smtplib,
        bound to the source address src, saying whatever HELO the test wants."""
        res = self.run_in(self.cli, sys.executable, "-c", _SEND, src, dst, port, helo, rcpt, input=data)
        assert res.returncode == 0, f"SMTP from {src} with HELO {helo!r} failed: {res.stderr.decode()[-2000:]}"


_SEND = r"""
import smtplib, sys
src, dst, port, helo, rcpt = sys.argv[1:6]
s = smtplib.SMTP(timeout=30, source_address=(src, 0))
s.connect(dst, int(port))
code, text = s.ehlo(helo)
assert code == 250, (code, text)
s.sendmail("sender@example.net", [rcpt], sys.stdin.buffer.read())
s.quit()
"""


def _prefixed(addr):
    return addr if "/" in addr else f"{addr}/{128 if ':' in addr else 32}"


class Lab(Pair):
    """The firewall tests' plan: SRV4/SRV6 and every CLIENT address on one
    link, an agent in each namespace to open connections."""

    def __init__(self):
        assert os.geteuid() == 0, "the firewall tests need root (network namespaces); CI runs them as root"
        for binary in ("iptables-restore", "ip6tables-restore", "ipset", "nft"):
            need(binary)
        super().__init__(srv_addrs=[f"{SRV4}/16", f"{SRV6}/32"],
                         cli_addrs=[f"{addr}/{32 if ':' in addr else 16}" for addr in CLIENT.values()])
        self.agents = {}

    def _setup(self):
        super()._setup()
        self.agents[self.srv] = self._agent(self.srv, SRV_PORTS)
        self.agents[self.cli] = self._agent(self.cli, (CLI_PORT,))
        self._wait_ready()

    def _wait_ready(self):
        """Every client address reaches the host before any rule is loaded, so
        a timeout later is the firewall's doing, not a link still coming up."""
        deadline = time.monotonic() + 10
        pending = list(CLIENT)
        while pending:
            pending = [name for name in pending if self.inbound(name, timeout=0.5) != "ok"]
            assert not pending or time.monotonic() < deadline, f"lab link not up for {pending}"

    def _agent(self, ns, ports):
        proc = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, AGENT, *map(str, ports)],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        line = proc.stdout.readline().strip()
        assert line == "ready", f"agent in {ns} did not start: {line!r}"
        return proc

    def close(self):
        for proc in self.agents.values():
            proc.kill()
            proc.wait()
        self.agents.clear()
        super().close()

    def connect(self, ns, src, dst, port, timeout=0.7):
        agent = self.agents[ns]
        agent.stdin.write(f"connect {src} {dst} {port} {timeout}\n")
        agent.stdin.flush()
        return agent.stdout.readline().strip()

    def inbound(self, name, port=25, timeout=0.7):
        """A connection from CLIENT[name] to the protected host."""
        src = CLIENT[name]
        return self.connect(self.cli, src, SRV6 if ":" in src else SRV4, port, timeout)

    def outbound(self, name):
        """The protected host connecting out to CLIENT[name]."""
        dst = CLIENT[name]
        return self.connect(self.srv, SRV6 if ":" in dst else SRV4, dst, CLI_PORT)

    def srv_sh(self, *args, **kw):
        return sh(*args, ns=self.srv, **kw)
