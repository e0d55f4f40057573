"""A private, real Postfix for a test: its own configuration, queue, data
directory, log file (maillog_file, so no syslog is needed) and Maildirs
(virtual(8) delivers as uid nobody), all under one directory.

Nothing of /etc/postfix is written: every command gets `-c ETC`, and
/etc/postfix is only read (meta_directory: dynamicmaps.cf and
postfix-files). An instance runs in this network namespace, its listeners
on 127.0.0.1 (`on_loopback`), or in a test's namespace (`netns`, see
tests/net/netns_lab.py's Pair), where ports 25, 465 and 587 can't clash
with the system's Postfix or another engineer's test.
"""

import os
import shutil
import subprocess
import tempfile
import time

from conftest import free_port, need

HOSTNAME, DOMAIN = "mx.example.org", "example.org"
NOBODY = 65534

# The services every instance runs (and virtual(8), the delivery agent of
# the default settings); a caller puts its listeners and any other agent
# in front (master_cf). Nothing is chrooted: the queue directory is a
# scratch directory, with no copies of /etc/services, resolv.conf or
# libraries in it.
SERVICES = """\
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
virtual   unix  -       n       n       -       -       virtual
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""


def master_cf(*lines):
    """master.cf: the caller's lines, then SERVICES."""
    return "".join(line.rstrip("\n") + "\n" for line in lines) + SERVICES


def instance_dir():
    """Postfix's daemons run as `postfix`, and must reach the queue: so not
    under pytest's tmp_path, whose parent is 0700 root."""
    root = tempfile.mkdtemp(prefix="mf-postfix-")
    os.chmod(root, 0o755)
    return root


def base_settings(root, mailboxes):
    """main.cf settings that make an instance private and self-contained,
    delivering NAME@example.org to the Maildir mail/NAME/ for each name in
    mailboxes."""
    boxes = ", ".join(f"{name}@{DOMAIN}={name}/" for name in mailboxes)
    return {
        "compatibility_level": "3.6",
        "queue_directory": f"{root}/spool",
        "data_directory": f"{root}/data",
        "meta_directory": "/etc/postfix",
        "mail_owner": "postfix",
        "setgid_group": "postdrop",
        "myhostname": HOSTNAME,
        "mydomain": DOMAIN,
        "mydestination": "",
        "inet_interfaces": "all",
        "inet_protocols": "all",
        "maillog_file_prefixes": root,
        "maillog_file": f"{root}/maillog",
        "alias_maps": "",
        "alias_database": "",
        "biff": "no",
        # No resolver in a test's namespace: the client name is "unknown",
        # as for most spam sources anyway.
        "smtpd_peername_lookup": "no",
        # Every message at once: a test must not wait out the queue manager.
        # (Each transaction an open relay accepts and relaytest RSETs takes a
        # flow-control token that qmgr never hands back, nothing being
        # delivered, so from the second run on Postfix paused 1 s per
        # accepted RCPT: 64 s instead of 0.3 s for one port, measured.)
        "in_flow_delay": "0",
        "virtual_mailbox_domains": DOMAIN,
        "virtual_mailbox_base": f"{root}/mail",
        "virtual_mailbox_maps": f"inline:{{ {boxes} }}",
        "virtual_uid_maps": f"static:{NOBODY}",
        "virtual_gid_maps": f"static:{NOBODY}",
    }


class Postfix:
    """One private instance under `root` (a new directory of its own,
    removed by close(), when none is given), in the network namespace
    `netns` if one is given. main.cf is base_settings with the caller's
    settings on top; master.cf is the caller's text (see master_cf).
    start() returns once every one of `ports` has a listener."""

    def __init__(self, root=None, netns=None, settings=None, master=SERVICES, mailboxes=("user",), ports=(),
                 env=None):
        need("postfix")
        self.owns_root = root is None
        self.root = root or instance_dir()
        self.netns, self.env, self.ports = netns, env, list(ports)
        self.etc = os.path.join(self.root, "etc")
        self.spool = os.path.join(self.root, "spool")
        self.mail = os.path.join(self.root, "mail")
        self.maillog = os.path.join(self.root, "maillog")
        for sub in ("etc", "spool", "data", "mail"):
            os.makedirs(os.path.join(self.root, sub), exist_ok=True)
        os.chmod(self.etc, 0o755)
        shutil.chown(os.path.join(self.root, "data"), "postfix")
        os.chown(self.mail, NOBODY, NOBODY)
        with open(os.path.join(self.etc, "main.cf"), "w") as fh:
            fh.write("# private test instance (tests/postfix_lab.py)\n")
            for key, value in {**base_settings(self.root, mailboxes), **(settings or {})}.items():
                fh.write(f"{key} = {value}\n")
        with open(os.path.join(self.etc, "master.cf"), "w") as fh:
            fh.write(master)
        self.running = False

    def _run(self, *args):
        prefix = ["ip", "netns", "exec", self.netns] if self.netns else []
        return subprocess.run(prefix + [str(a) for a in args], capture_output=True, text=True, timeout=120,
                              env=self.env)

    def postfix(self, *args):
        return self._run("postfix", "-c", self.etc, *args)

    def postconf(self, *args):
        res = self._run("postconf", "-c", self.etc, *args)
        assert res.returncode == 0, f"postconf {' '.join(args)}: {res.stderr}"
        return res.stdout

    def start(self):
        res = self.postfix("start")
        self.running = True             # so stop() ends whatever did start
        if res.returncode != 0:
            why = f"postfix start failed ({res.returncode}): {res.stderr.strip()}\n--- maillog:\n{self.log()}"
            self.stop()
            raise AssertionError(why)
        self.wait_listening(self.ports)
        return self

    def wait_listening(self, ports, timeout=20):
        """Until every port has a listener (`postfix start` may return before
        the master has bound them all)."""
        deadline = time.monotonic() + timeout
        while ports:
            listening = self._run("ss", "-Hltn").stdout
            if all(f":{port} " in listening for port in ports):
                return
            assert time.monotonic() < deadline, f"not listening on all of {ports}:\n{listening}\n{self.log()}"
            time.sleep(0.1)

    def stop(self):
        if not self.running:
            return
        pid = self.master_pid()
        self.postfix("stop")
        deadline = time.monotonic() + 20
        while pid and _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if pid and _alive(pid):
            os.kill(pid, 9)             # our own master, by its pid file
        self.running = False

    def close(self):
        self.stop()
        if self.owns_root:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def master_pid(self):
        try:
            with open(os.path.join(self.spool, "pid", "master.pid")) as fh:
                return int(fh.read().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def log(self):
        try:
            with open(self.maillog, errors="replace") as fh:
                return fh.read()
        except OSError:
            return "(no maillog)"

    def wait_for_log(self, text, count=1, timeout=30, hopeless=()):
        """Until the maillog has text count times; any of `hopeless` in it
        fails at once."""
        deadline = time.monotonic() + timeout
        while True:
            log = self.log()
            if log.count(text) >= count:
                return
            assert time.monotonic() < deadline and not any(h in log for h in hopeless), \
                f"{count} x {text!r} not in the maillog:\n{log}"
            time.sleep(0.1)

    # -- what virtual(8) delivered -------------------------------------------------------------

    def delivered(self, mailbox):
        out = []
        for sub in ("new", "cur"):
            folder = os.path.join(self.mail, mailbox, sub)
            if os.path.isdir(folder):
                for name in sorted(os.listdir(folder)):
                    with open(os.path.join(folder, name), "rb") as fh:
                        out.append(fh.read())
        return out

    def count(self, mailbox) -> int:
        return sum(len(os.listdir(folder)) for folder in (os.path.join(self.mail, mailbox, sub)
                                                          for sub in ("new", "cur")) if os.path.isdir(folder))

    def wait_for(self, mailbox, n, timeout=60.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.count(mailbox) >= n:
                return self.delivered(mailbox)
            time.sleep(0.05)
        raise AssertionError(f"{self.count(mailbox)} of {n} messages delivered to {mailbox}: {self.log()[-3000:]}")


def on_loopback(settings=None, mailboxes=("alice", "bob")):
    """An instance in this namespace whose smtpd listens on a free port of
    127.0.0.1 (its `port`), nothing else."""
    port = free_port()
    pf = Postfix(settings={"inet_interfaces": "loopback-only", "inet_protocols": "ipv4", **(settings or {})},
                 master=master_cf(f"127.0.0.1:{port} inet n - n - - smtpd"), mailboxes=mailboxes, ports=[port])
    pf.port = port
    return pf


def milter_settings(milter):
    """main.cf settings that put the milter at `milter` in front of every message."""
    return {"smtpd_milters": milter, "non_smtpd_milters": milter, "milter_default_action": "accept",
            "milter_protocol": "6"}


def make_certificate(directory, names, addresses=()):
    """A self-signed certificate (and its key) for these names and addresses."""
    need("openssl")
    cert, key = os.path.join(directory, "cert.pem"), os.path.join(directory, "key.pem")
    alt = ",".join([f"DNS:{n}" for n in names] + [f"IP:{a}" for a in addresses])
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", key, "-out", cert, "-days", "2", "-subj", f"/CN={names[0]}",
                    "-addext", f"subjectAltName={alt}"],
                   check=True, capture_output=True, timeout=60)
    return cert, key


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
