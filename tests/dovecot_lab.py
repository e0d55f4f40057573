"""A private Dovecot for a test: its own configuration, base_dir (sockets),
state_dir, log and passwd-file of users, all under one directory.
/etc/dovecot is never read or written: `dovecot -c` takes everything from
our file. It runs in the foreground (dovecot -F), a child of the test, so
stop() ends exactly the process the test started.

`SaslDovecot` is Dovecot for SASL only, for the relay tests: no protocols,
in the test's server namespace, its auth socket where Postfix's
smtpd_sasl_path=private/auth looks.

`DovecotLab` serves IMAP and LMTP with the shipped mailfilter snippets
(contrib/dovecot/), for tests/test_dovecot.py. Everything is under one lab
directory in /tmp: besides Dovecot's own files, the users' homes (mail in
mdbox, the mailfilter state directory) and the sieve scripts. IMAP listens
on a free port of 127.0.0.1; LMTP on the unix socket the shipped snippet
names for Postfix (moved into the lab).

Dovecot runs in a private mount namespace so that the shipped programs run
unmodified: they call /usr/local/bin/mailfilter, which is made there (an
overlay, gone with the namespace) as a wrapper running this checkout with
the test's Python. The users' processes run with their own unprivileged
uids, so every directory on the way to that Python (pyenv under /root on a
developer's machine) is made traversable in the namespace only, by the
same kind of overlay. Users exist only in Dovecot's passwd-file, as virtual
users do; their uids are unused numbers derived from the test's pid.
"""

import imaplib
import itertools
import os
import shutil
import signal
import smtplib
import socket
import stat
import subprocess
import sys
import tempfile
import time

from conftest import REPO, free_port, need

CONTRIB = os.path.join(REPO, "contrib", "dovecot")
# Where the snippets say things live on a server, and where the lab puts them.
SERVER_DIR = "/etc/dovecot/mailfilter"
POSTFIX_LMTP = "/var/spool/postfix/private/dovecot-lmtp"
PASSWORD = "lab-password"

_serial = itertools.count()


class Dovecot:
    """What every private instance has: dovecot.conf and passwd in `etc`,
    run/, state/ and dovecot.log in `directory`."""

    def __init__(self, directory, etc):
        need("dovecot")
        self.dir = directory
        self.etc = etc
        self.conf = os.path.join(etc, "dovecot.conf")
        self.passwd = os.path.join(etc, "passwd")
        self.log = os.path.join(directory, "dovecot.log")
        self.proc = None
        for sub in ("run", "state"):
            os.makedirs(os.path.join(directory, sub))

    def write_config(self, passwd_lines, body):
        """The passwd-file, and dovecot.conf: the private instance's own
        directories, then body."""
        with open(self.passwd, "w") as fh:
            fh.writelines(line + "\n" for line in passwd_lines)
        os.chmod(self.passwd, 0o644)
        with open(self.conf, "w") as fh:
            fh.write(f"""\
# A private instance (tests/dovecot_lab.py); nothing from /etc/dovecot.
instance_name = mf-dovecot-{os.getpid()}-{next(_serial)}
base_dir = {self.dir}/run
state_dir = {self.dir}/state
log_path = {self.log}
""" + body)

    def _start(self, argv, ready, timeout):
        """Run argv (which ends in exec dovecot -F), until ready() says so."""
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + timeout
        while True:
            assert self.proc.poll() is None, f"dovecot exited: {self.proc.stderr.read()}\n{self.log_text()}"
            if ready():
                return self
            assert time.monotonic() < deadline, f"dovecot did not come up:\n{self.log_text()}"
            time.sleep(0.05)

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def log_text(self) -> str:
        try:
            with open(self.log, errors="replace") as fh:
                return fh.read()
        except OSError:
            return "(no dovecot log)"


class SaslDovecot(Dovecot):
    """Dovecot for SASL only: no protocols, a passwd-file of users (name:
    password), and the auth socket where Postfix's smtpd_sasl_path=private/auth
    looks for it."""

    def __init__(self, directory, auth_socket, users):
        os.makedirs(directory)
        super().__init__(directory, directory)
        self.socket = auth_socket
        self.write_config([f"{user}:{{PLAIN}}{password}::::::" for user, password in users.items()], f"""\
protocols = none
ssl = no
auth_mechanisms = plain login
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {self.passwd}
}}
userdb {{
  driver = static
  args = uid=nobody gid=nogroup home=/nonexistent
}}
service auth {{
  unix_listener {auth_socket} {{
    mode = 0660
    user = postfix
    group = postfix
  }}
}}
""")

    def start(self, ns):
        return self._start(["ip", "netns", "exec", ns, "dovecot", "-F", "-c", self.conf],
                           lambda: os.path.exists(self.socket), timeout=20)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


class User:
    def __init__(self, name, uid, home):
        self.name, self.uid, self.home = name, uid, home

    @property
    def state(self):
        """The state directory mailfilter uses for this user (HOME's default)."""
        return os.path.join(self.home, ".local", "share", "mailfilter")


class DovecotLab(Dovecot):
    def __init__(self, names=("alice", "bob")):
        for binary in ("sievec", "unshare", "mount"):
            need(binary)
        for program in ("imap", "lmtp"):
            assert os.path.exists(f"/usr/lib/dovecot/{program}"), \
                f"dovecot's {program} is missing: apt-get install dovecot-imapd dovecot-lmtpd"
        assert os.path.exists("/usr/lib/dovecot/modules/sieve/lib90_sieve_extprograms_plugin.so"), \
            "dovecot-sieve is missing: apt-get install dovecot-sieve"
        directory = tempfile.mkdtemp(prefix="mf-dovecot-", dir="/tmp")
        os.chmod(directory, 0o755)             # the users' processes must reach their homes
        super().__init__(directory, os.path.join(directory, "etc"))
        self.sieve_dir = os.path.join(self.etc, "mailfilter")
        self.lmtp_socket = os.path.join(self.dir, "spool", "private", "dovecot-lmtp")
        self.port = free_port()
        base_uid = 3_000_000 + (os.getpid() % 100_000) * 10 + next(_serial) * 3
        self.users = {}
        for i, name in enumerate(names):
            home = os.path.join(self.dir, "home", name)
            os.makedirs(home)
            uid = base_uid + i
            os.chown(home, uid, uid)
            os.chmod(home, 0o700)
            self.users[name] = User(name, uid, home)
        for sub in ("spool/private", "usr-local/upper", "usr-local/work"):
            os.makedirs(os.path.join(self.dir, sub))
        self._install_contrib()
        self._write_config()

    # -- set-up --------------------------------------------------------------------------------

    def _install_contrib(self):
        """The shipped files, as the README installs them: the sieve scripts
        and programs unmodified, the conf.d snippets with only their paths
        moved into the lab."""
        os.makedirs(os.path.join(self.sieve_dir, "bin"))
        for name in ("report-spam.sieve", "report-good.sieve", "deliver.sieve"):
            shutil.copy(os.path.join(CONTRIB, name), self.sieve_dir)
        for name in ("mailfilter-learn", "mailfilter-filter"):
            shutil.copy(os.path.join(CONTRIB, "bin", name), os.path.join(self.sieve_dir, "bin"))
            os.chmod(os.path.join(self.sieve_dir, "bin", name), 0o755)
        os.makedirs(os.path.join(self.etc, "conf.d"))
        for name in ("95-mailfilter-imapsieve.conf", "95-mailfilter-lmtp.conf"):
            with open(os.path.join(CONTRIB, name)) as fh:
                text = fh.read()
            assert SERVER_DIR in text, f"{name} no longer names {SERVER_DIR}: update the lab"
            text = text.replace(SERVER_DIR, self.sieve_dir)
            if name.endswith("lmtp.conf"):
                assert POSTFIX_LMTP in text, f"{name} no longer names {POSTFIX_LMTP}: update the lab"
                text = text.replace(POSTFIX_LMTP, self.lmtp_socket)
            with open(os.path.join(self.etc, "conf.d", name), "w") as fh:
                fh.write(text)

    def _write_config(self):
        self.write_config([f"{user.name}:{{PLAIN}}{PASSWORD}:{user.uid}:{user.uid}::{user.home}::"
                           for user in self.users.values()], f"""\
listen = 127.0.0.1
protocols = imap lmtp
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain
first_valid_uid = 1000
mail_location = mdbox:~/mdbox
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%n {self.passwd}
}}
userdb {{
  driver = passwd-file
  args = {self.passwd}
}}
namespace inbox {{
  inbox = yes
  separator = /
  mailbox Junk {{
    special_use = \\Junk
    auto = subscribe
  }}
  mailbox Trash {{
    special_use = \\Trash
    auto = subscribe
  }}
  mailbox Archive {{
    auto = subscribe
  }}
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {self.port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
# dovecot-lda runs as the user: a log it can write, the stats socket it can
# reach (what 95-mailfilter-lmtp.conf's comment says for LDA sites).
protocol lda {{
  log_path = /dev/stderr
  info_log_path = /dev/stderr
}}
service stats {{
  unix_listener stats-writer {{
    mode = 0666
  }}
}}
# Debian's own conf.d/90-sieve.conf says this; the user's delivery script.
plugin {{
  sieve = file:~/sieve;active=~/.dovecot.sieve
}}
!include conf.d/95-mailfilter-imapsieve.conf
!include conf.d/95-mailfilter-lmtp.conf
""")
        for name in ("report-spam.sieve", "report-good.sieve", "deliver.sieve"):
            done = subprocess.run(["sievec", "-c", self.conf, os.path.join(self.sieve_dir, name)],
                                  capture_output=True, text=True, timeout=60)
            assert done.returncode == 0, f"sievec {name}: {done.stdout}{done.stderr}"

    def _namespace_script(self) -> str:
        """Shell run in the private mount namespace, ending in exec dovecot."""
        python = sys.executable
        lines = ["set -e"]
        # Every directory on the way to the interpreter and this checkout
        # must be traversable by the users' uids: an overlay, in here only.
        blocked = set()
        for path in (os.path.realpath(python), os.path.abspath(python), REPO):
            probe = os.path.dirname(path)
            while probe != "/":
                if not os.stat(probe).st_mode & stat.S_IXOTH:
                    blocked.add(probe)
                probe = os.path.dirname(probe)
        for n, path in enumerate(sorted(blocked)):
            upper, work = os.path.join(self.dir, f"open{n}", "upper"), os.path.join(self.dir, f"open{n}", "work")
            os.makedirs(upper)
            os.makedirs(work)
            lines += [f"mount -t overlay overlay -o lowerdir={path},upperdir={upper},workdir={work} {path}",
                      f"chmod o+x {path}"]
        upper, work = os.path.join(self.dir, "usr-local", "upper"), os.path.join(self.dir, "usr-local", "work")
        wrapper = (f"#!/bin/sh\n# the checkout under test, as /usr/local/bin/mailfilter would be\n"
                   f"PYTHONPATH={REPO} exec {python} -m mailfilter \"$@\"\n")
        lines += [f"mount -t overlay overlay -o lowerdir=/usr/local,upperdir={upper},workdir={work} /usr/local",
                  "mkdir -p /usr/local/bin",
                  f"cat > /usr/local/bin/mailfilter <<'EOF'\n{wrapper}EOF",
                  "chmod 755 /usr/local/bin/mailfilter",
                  f"exec dovecot -F -c {self.conf}"]
        return "\n".join(lines) + "\n"

    # -- running -------------------------------------------------------------------------------

    def start(self):
        return self._start(["unshare", "--mount", "--propagation", "private", "sh", "-c", self._namespace_script()],
                           lambda: os.path.exists(self.lmtp_socket) and self._accepts(), timeout=30)

    def _accepts(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                return sock.recv(100).startswith(b"* OK")
        except OSError:
            return False

    def close(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    # -- clients -------------------------------------------------------------------------------

    def imap(self, name) -> imaplib.IMAP4:
        client = imaplib.IMAP4("127.0.0.1", self.port, timeout=60)
        client.login(name, PASSWORD)
        return client

    def lmtp_deliver(self, name, message: bytes, sender="sender@example.net"):
        """Deliver over LMTP to name@mx.example.org, as Postfix's
        mailbox_transport does; raises unless the recipient was accepted."""
        with smtplib.LMTP(self.lmtp_socket, timeout=60) as client:
            client.ehlo("mx.example.org")
            refused = client.sendmail(sender, [f"{name}@mx.example.org"], message)
            assert not refused, refused

    def chown_state(self, name):
        """Give a state directory made by root in a test to its user."""
        user = self.users[name]
        for root, dirs, files in os.walk(user.state):
            for entry in [root] + [os.path.join(root, f) for f in files]:
                os.chown(entry, user.uid, user.uid)
        for path in (os.path.join(user.home, ".local"), os.path.join(user.home, ".local", "share")):
            os.chown(path, user.uid, user.uid)
