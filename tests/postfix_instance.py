"""A private, real Postfix for a test: its own config and queue directory,
SMTP on a private loopback port, delivering with virtual(8) into Maildirs.

Nothing of /etc/postfix is read or changed: every command gets `-c DIR`.
The directory lives under /tmp with mode 0755 because Postfix's daemons run
as the postfix user and must reach their queue.
"""

import os
import shutil
import socket
import subprocess
import tempfile
import time

from conftest import need

MASTER_CF = """\
{listen} inet n - n - - smtpd
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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Postfix:
    def __init__(self, milter=None, mailboxes=("alice", "bob", "carol"), domain="example.test", extra=()):
        need("postfix")
        self.root = tempfile.mkdtemp(prefix="mf-postfix-")
        os.chmod(self.root, 0o755)
        self.config = os.path.join(self.root, "etc")
        self.queue = os.path.join(self.root, "queue")
        self.data = os.path.join(self.root, "data")
        self.mail = os.path.join(self.root, "mail")
        self.log = os.path.join(self.root, "maillog")
        self.port = free_port()
        self.domain = domain
        os.makedirs(self.config)
        os.makedirs(self.mail)
        os.makedirs(self.queue, mode=0o755)
        os.makedirs(self.data, mode=0o700)
        import pwd
        postfix = pwd.getpwnam("postfix")
        os.chown(self.data, postfix.pw_uid, postfix.pw_gid)
        nobody = 65534
        os.chown(self.mail, nobody, nobody)
        with open(os.path.join(self.config, "vmailbox"), "w") as fh:
            for name in mailboxes:
                fh.write(f"{name}@{domain} {name}/\n")
        settings = {
            "compatibility_level": "3.6",
            "queue_directory": self.queue,
            "data_directory": self.data,
            "mail_owner": "postfix",
            "setgid_group": "postdrop",
            "myhostname": "mx." + domain,
            "mydomain": domain,
            "myorigin": domain,
            "mydestination": "",
            "inet_interfaces": "127.0.0.1",
            "inet_protocols": "ipv4",
            "mynetworks": "127.0.0.0/8",
            "smtpd_relay_restrictions": "permit_mynetworks, reject_unauth_destination",
            "virtual_mailbox_domains": domain,
            "virtual_mailbox_base": self.mail,
            "virtual_mailbox_maps": f"texthash:{self.config}/vmailbox",
            "virtual_uid_maps": f"static:{nobody}",
            "virtual_gid_maps": f"static:{nobody}",
            "maillog_file": self.log,
            "maillog_file_prefixes": "/tmp",
            "alias_maps": "",
            "alias_database": "",
            "local_recipient_maps": "",
            "smtputf8_enable": "no",
            "biff": "no",
            "smtpd_banner": "$myhostname ESMTP",
            # Everything at once: a test must not wait out the queue manager.
            "in_flow_delay": "0",
            "default_destination_concurrency_limit": "20",
            "virtual_destination_concurrency_limit": "20",
            "default_process_limit": "100",
            "message_size_limit": "52428800",
            "virtual_mailbox_limit": "0",
            "shlib_directory": "/usr/lib/postfix",
            "daemon_directory": "/usr/lib/postfix/sbin",
            "meta_directory": "/etc/postfix",
        }
        if milter:
            settings.update({"smtpd_milters": milter, "non_smtpd_milters": milter,
                             "milter_default_action": "accept", "milter_protocol": "6"})
        settings.update(dict(extra))
        with open(os.path.join(self.config, "main.cf"), "w") as fh:
            for key, value in settings.items():
                fh.write(f"{key} = {value}\n")
        with open(os.path.join(self.config, "master.cf"), "w") as fh:
            fh.write(MASTER_CF.format(listen=f"127.0.0.1:{self.port}"))

    def postfix(self, *args, check=True):
        r = subprocess.run([need("postfix"), "-c", self.config, *args], capture_output=True, text=True, timeout=120)
        if check:
            assert r.returncode == 0, f"postfix {' '.join(args)}: {r.stdout}{r.stderr}\n{self.read_log()}"
        return r

    def start(self):
        self.postfix("check")
        self.postfix("start")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=2) as s:
                    if s.recv(100).startswith(b"220"):
                        return self
            except OSError:
                time.sleep(0.1)
        raise AssertionError(f"postfix did not listen on {self.port}: {self.read_log()}")

    def stop(self):
        pid = None
        try:
            with open(os.path.join(self.queue, "pid", "master.pid")) as fh:
                pid = int(fh.read().split()[0])
        except (OSError, ValueError, IndexError):
            pass
        self.postfix("stop", check=False)
        deadline = time.monotonic() + 20
        while pid and time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def read_log(self) -> str:
        try:
            with open(self.log, errors="replace") as fh:
                return fh.read()
        except OSError:
            return ""

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
        total = 0
        for sub in ("new", "cur"):
            folder = os.path.join(self.mail, mailbox, sub)
            if os.path.isdir(folder):
                total += len(os.listdir(folder))
        return total

    def wait_for(self, mailbox, n, timeout=60.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.count(mailbox) >= n:
                return self.delivered(mailbox)
            time.sleep(0.05)
        raise AssertionError(f"{self.count(mailbox)} of {n} messages delivered to {mailbox}: {self.read_log()[-3000:]}")
