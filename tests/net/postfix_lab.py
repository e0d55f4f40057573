"""A private, real Postfix for the tests, inside network namespaces.

Everything the instance owns lives under one directory of its own: its
configuration (`postfix -c DIR`), queue, data directory, the Maildirs it
delivers to (virtual(8), as uid nobody) and its log file (maillog_file, so
no syslog is needed). Its listeners live in a network namespace, so ports
25, 465 and 587 can't clash with the system's Postfix or another engineer's
test. /etc/postfix is only ever read (meta_directory: dynamicmaps.cf and
postfix-files), never written.

`Pair` is the smallest two-namespace network: a server and a client joined
by one veth pair, each end given the addresses a test asks for, with on-link
routes between them, so a client can come from a chosen country's address
without any packet leaving the namespaces.
"""

import itertools
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time

from netns_lab import need, sh

POSTFIX = "/usr/sbin/postfix"
NOBODY = 65534
_serial = itertools.count()


def _tag():
    return f"mp{os.getpid() % 100000}x{next(_serial)}"


class Pair:
    """Namespaces `srv` and `cli`, veth0 (srv) <-> veth1 (cli)."""

    def __init__(self, srv_addrs=(), cli_addrs=()):
        assert os.geteuid() == 0, "needs root (network namespaces); CI runs the suite as root"
        need("ip")
        tag = _tag()
        self.srv, self.cli = f"{tag}s", f"{tag}c"
        self.srv_addrs, self.cli_addrs = list(srv_addrs), list(cli_addrs)
        self._made = []

    def __enter__(self):
        try:
            for ns in (self.srv, self.cli):
                sh("ip", "netns", "add", ns)
                self._made.append(ns)
                sh("ip", "link", "set", "lo", "up", ns=ns)
                for conf in ("all", "default"):
                    sh("sh", "-c", f"echo 0 > /proc/sys/net/ipv6/conf/{conf}/accept_dad", ns=ns)
            if self.cli_addrs:
                sh("ip", "link", "add", "veth0", "type", "veth", "peer", "name", "veth1", "netns", self.cli,
                   ns=self.srv)
                for ns, dev, mine, theirs in ((self.srv, "veth0", self.srv_addrs, self.cli_addrs),
                                              (self.cli, "veth1", self.cli_addrs, self.srv_addrs)):
                    for addr in mine:
                        host = f"{addr}/{128 if ':' in addr else 32}"
                        sh("ip", "addr", "add", host, "dev", dev, *(["nodad"] if ":" in addr else []), ns=ns)
                    sh("ip", "link", "set", dev, "up", ns=ns)
                    for addr in theirs:
                        sh("ip", "-6" if ":" in addr else "-4", "route", "add",
                           f"{addr}/{128 if ':' in addr else 32}", "dev", dev, ns=ns)
            else:
                for addr in self.srv_addrs:
                    sh("ip", "addr", "add", f"{addr}/{128 if ':' in addr else 32}", "dev", "lo", ns=self.srv)
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        for ns in self._made:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        self._made.clear()

    def run_in(self, ns, *args, input=None, timeout=60):
        return subprocess.run(["ip", "netns", "exec", ns, *map(str, args)], input=input,
                              capture_output=True, timeout=timeout)


def instance_dir():
    """Postfix's daemons run as `postfix`, and must reach the queue: so not
    under pytest's tmp_path, whose parent is 0700 root."""
    root = tempfile.mkdtemp(prefix="mf-postfix-")
    os.chmod(root, 0o755)
    return root


def base_settings(root):
    """main.cf settings that make an instance private and self-contained."""
    return {
        "compatibility_level": "3.6",
        "queue_directory": f"{root}/spool",
        "data_directory": f"{root}/data",
        "meta_directory": "/etc/postfix",
        "mail_owner": "postfix",
        "setgid_group": "postdrop",
        "myhostname": "mx.example.org",
        "mydomain": "example.org",
        "mydestination": "",
        "inet_interfaces": "all",
        "inet_protocols": "all",
        "maillog_file_prefixes": root,
        "maillog_file": f"{root}/maillog",
        "alias_maps": "",
        "alias_database": "",
        # No resolver in the namespace: the client name is "unknown", as for
        # most spam sources anyway.
        "smtpd_peername_lookup": "no",
        "virtual_mailbox_domains": "example.org",
        "virtual_mailbox_base": f"{root}/mail",
        "virtual_mailbox_maps": "inline:{ user@example.org=user/ }",
        "virtual_uid_maps": f"static:{NOBODY}",
        "virtual_gid_maps": f"static:{NOBODY}",
    }


class Postfix:
    """One private instance: `etc` holds main.cf and master.cf (the caller
    writes master.cf, or passes a directory that has one)."""

    def __init__(self, root, netns, settings=None, etc=None):
        assert os.path.exists(POSTFIX), "postfix is not installed; run contrib/bootstrap.sh"
        pwd.getpwnam("postfix")
        self.root, self.netns = root, netns
        self.etc = etc or os.path.join(root, "etc")
        self.maildir_base = os.path.join(root, "mail")
        for sub in ("etc", "spool", "data", "mail"):
            os.makedirs(os.path.join(root, sub), exist_ok=True)
        os.makedirs(self.etc, exist_ok=True)
        os.chmod(self.etc, 0o755)
        shutil.chown(os.path.join(root, "data"), "postfix")
        os.chown(self.maildir_base, NOBODY, NOBODY)
        main = os.path.join(self.etc, "main.cf")
        with open(main, "a") as fh:
            fh.write("\n# private test instance (tests/net/postfix_lab.py)\n")
            for key, value in {**base_settings(root), **(settings or {})}.items():
                fh.write(f"{key} = {value}\n")
        self.running = False

    def postfix(self, *args):
        return subprocess.run(["ip", "netns", "exec", self.netns, POSTFIX, "-c", self.etc, *args],
                              capture_output=True, text=True, timeout=60)

    def start(self):
        res = self.postfix("start")
        self.running = True             # so stop() ends whatever did start
        if res.returncode != 0:
            why = f"postfix start failed ({res.returncode}): {res.stderr.strip()}\n--- maillog:\n{self.log()}"
            self.stop()
            raise AssertionError(why)
        return self

    def stop(self):
        if not self.running:
            return
        pid = self.master_pid()
        self.postfix("stop")
        deadline = time.monotonic() + 15
        while pid and _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if pid and _alive(pid):
            os.kill(pid, 9)             # our own master, by its pid file
        self.running = False

    def master_pid(self):
        try:
            with open(os.path.join(self.root, "spool", "pid", "master.pid")) as fh:
                return int(fh.read().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def log(self):
        try:
            with open(os.path.join(self.root, "maillog"), errors="replace") as fh:
                return fh.read()
        except OSError:
            return "(no maillog)"

    def wait_for_log(self, text, count=1, timeout=30):
        deadline = time.monotonic() + timeout
        while self.log().count(text) < count:
            assert time.monotonic() < deadline, f"{count} x {text!r} not in the maillog:\n{self.log()}"
            time.sleep(0.1)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()



def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


# The client side: Python's smtplib in the client namespace, bound to one
# source address, saying whatever HELO the test wants.
_SEND = r"""
import smtplib, sys
src, dst, port, helo, rcpt, path = sys.argv[1:7]
with open(path, "rb") as fh:
    data = fh.read()
s = smtplib.SMTP(timeout=30, source_address=(src, 0))
s.connect(dst, int(port))
code, text = s.ehlo(helo)
assert code == 250, (code, text)
s.sendmail("sender@example.net", [rcpt], data)
s.quit()
"""


def send(pair, src, dst, helo, data: bytes, rcpt="user@example.org", port=25, tmpdir=None):
    fd, path = tempfile.mkstemp(dir=tmpdir, prefix="msg-")
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.chmod(path, 0o644)
    try:
        res = pair.run_in(pair.cli, sys.executable, "-c", _SEND, src, dst, port, helo, rcpt, path)
    finally:
        os.unlink(path)
    assert res.returncode == 0, f"SMTP from {src} with HELO {helo!r} failed: {res.stderr.decode()[-2000:]}"
