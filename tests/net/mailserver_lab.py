"""Real mail servers for the relay and submission tests: a Postfix master and
a Dovecot, each with a private configuration in a temporary directory,
running in a network namespace the test made (tests/net/netns_lab.py's
pattern: pid-based names, documentation/private addresses on one veth pair,
no packet leaves the namespaces). Nothing under /etc is read for writing or
changed; the system's own Postfix and Dovecot, if any, are never touched.
"""

import itertools
import os
import shutil
import signal
import subprocess
import tempfile
import time

from netns_lab import need, sh

SRV, CLI = "10.99.1.1", "10.99.1.2"
DOMAIN, HOSTNAME = "example.org", "mail.example.org"
_serial = itertools.count()


class NetnsPair:
    """`srv` holds the servers, `cli` is the untrusted outside (10.99.1.2)."""

    def __init__(self):
        assert os.geteuid() == 0, "these tests need root (network namespaces); CI runs them as root"
        need("ip")
        tag = f"mfr{os.getpid() % 100000}x{next(_serial)}"
        self.srv, self.cli = f"{tag}s", f"{tag}c"
        self._made = []

    def __enter__(self):
        try:
            for ns in (self.srv, self.cli):
                sh("ip", "netns", "add", ns)
                self._made.append(ns)
                sh("ip", "link", "set", "lo", "up", ns=ns)
            sh("ip", "link", "add", "veth0", "type", "veth", "peer", "name", "veth1", "netns", self.cli,
               ns=self.srv)
            sh("ip", "addr", "add", f"{SRV}/24", "dev", "veth0", ns=self.srv)
            sh("ip", "addr", "add", f"{CLI}/24", "dev", "veth1", ns=self.cli)
            sh("ip", "link", "set", "veth0", "up", ns=self.srv)
            sh("ip", "link", "set", "veth1", "up", ns=self.cli)
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


def private_dir(prefix):
    """A directory the postfix and dovecot users can traverse (pytest's
    tmp_path sits under a 0700 directory of root's)."""
    d = tempfile.mkdtemp(prefix=prefix, dir="/tmp")
    os.chmod(d, 0o755)
    return d


def make_certificate(directory):
    """A self-signed certificate for mail.example.org and 10.99.1.1."""
    need("openssl")
    cert, key = os.path.join(directory, "cert.pem"), os.path.join(directory, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", key, "-out", cert, "-days", "2", "-subj", f"/CN={HOSTNAME}",
                    "-addext", f"subjectAltName=DNS:{HOSTNAME},IP:{SRV}"],
                   check=True, capture_output=True, timeout=60)
    return cert, key


class Postfix:
    """A Postfix instance: config in DIR/etc, queue in DIR/spool, log in DIR/maillog."""

    def __init__(self, directory):
        need("postconf")
        need("postfix")
        self.dir = directory
        self.etc = os.path.join(directory, "etc")
        self.spool = os.path.join(directory, "spool")
        self.maillog = os.path.join(directory, "maillog")
        os.makedirs(self.etc)
        for name in ("main.cf", "master.cf"):
            shutil.copy(f"/usr/share/postfix/{name}.dist", os.path.join(self.etc, name))
        os.makedirs(self.spool)
        os.makedirs(os.path.join(directory, "lib"))
        shutil.chown(os.path.join(directory, "lib"), "postfix")
        self.master = None
        # The stock main.cf.dist (compatibility_level 3.7, mynetworks
        # 127.0.0.0/8) is "the default configuration"; only paths, names and
        # TLS are set here, nothing about relaying.
        cert, key = make_certificate(directory)
        self.cert = cert
        self.postconf("-e",
                      f"queue_directory={self.spool}", f"data_directory={directory}/lib",
                      "mail_owner=postfix", "setgid_group=postdrop",
                      "sendmail_path=/usr/sbin/sendmail", "newaliases_path=/usr/bin/newaliases",
                      "mailq_path=/usr/bin/mailq", "html_directory=no", "readme_directory=no",
                      "manpage_directory=/usr/share/man", "sample_directory=/usr/share/doc/postfix/examples",
                      f"myhostname={HOSTNAME}", f"mydomain={DOMAIN}",
                      "mydestination=$myhostname, $mydomain, localhost",
                      "alias_maps=inline:{postmaster=root}", "alias_database=",
                      "inet_interfaces=all", f"maillog_file={self.maillog}",
                      f"maillog_file_prefixes={directory}",
                      f"smtpd_tls_cert_file={cert}", f"smtpd_tls_key_file={key}",
                      "smtpd_tls_security_level=may",
                      # Nothing may ever leave: a message that did get queued stays
                      # in the queue, where postqueue -p shows it.
                      "defer_transports=smtp, relay, local, virtual, lmtp, error",
                      # Each transaction an open relay accepts and we RSET takes a
                      # flow-control token that qmgr never hands back (nothing is
                      # delivered), so from the second run on Postfix paused 1 s per
                      # accepted RCPT: 64 s instead of 0.3 s for one port, measured.
                      "in_flow_delay=0")
        # No chroot: the queue directory is a scratch directory, with no
        # copies of /etc/services, resolv.conf or libraries in it.
        self.postconf("-F", "*/*/chroot = n")

    def postconf(self, *args):
        res = subprocess.run(["postconf", "-c", self.etc, *args], capture_output=True, text=True, timeout=60)
        assert res.returncode == 0, f"postconf {' '.join(args)}: {res.stderr}"
        return res.stdout

    def add_service(self, port, **overrides):
        self.postconf("-M", f"{port}/inet={port} inet n - n - - smtpd")
        for key, value in overrides.items():
            self.postconf("-P", f"{port}/inet/{key}={value}")

    def start(self, ns, ports):
        # `postfix check` makes the queue directories, owned as Postfix wants.
        subprocess.run(["postfix", "-c", self.etc, "check"], capture_output=True, timeout=60)
        self.master = subprocess.Popen(["ip", "netns", "exec", ns, "/usr/lib/postfix/sbin/master",
                                        "-c", self.etc, "-d"],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.ns = ns
        deadline = time.monotonic() + 20
        while True:
            listening = sh("ss", "-Hltn", ns=ns).stdout
            if all(f":{p} " in listening for p in ports):
                return
            assert self.master.poll() is None, f"postfix master exited: {self.master.stderr.read()}\n{self.log()}"
            assert time.monotonic() < deadline, f"postfix not listening on {ports}:\n{listening}\n{self.log()}"
            time.sleep(0.1)

    def log(self):
        try:
            with open(self.maillog, encoding="utf-8", errors="replace") as fh:
                return fh.read()
        except OSError:
            return "(no maillog)"

    def queue(self):
        res = subprocess.run(["postqueue", "-c", self.etc, "-p"], capture_output=True, text=True, timeout=60)
        return res.stdout + res.stderr

    def alive(self):
        return self.master is not None and self.master.poll() is None

    def stop(self):
        if self.master is not None and self.master.poll() is None:
            self.master.send_signal(signal.SIGTERM)
            try:
                self.master.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.master.kill()
                self.master.wait()


class Dovecot:
    """Dovecot for SASL only: no protocols, a passwd-file of users, and the
    auth socket where Postfix's smtpd_sasl_path=private/auth looks for it."""

    def __init__(self, directory, auth_socket, users):
        need("dovecot")
        self.dir = directory
        self.socket = auth_socket
        self.proc = None
        os.makedirs(os.path.join(directory, "run"))
        os.makedirs(os.path.join(directory, "state"))
        passwd = os.path.join(directory, "passwd")
        with open(passwd, "w") as fh:
            for user, password in users.items():
                fh.write(f"{user}:{{PLAIN}}{password}::::::\n")
        os.chmod(passwd, 0o644)
        self.conf = os.path.join(directory, "dovecot.conf")
        with open(self.conf, "w") as fh:
            fh.write(f"""\
instance_name = mfrelay-{os.getpid()}-{next(_serial)}
base_dir = {directory}/run
state_dir = {directory}/state
log_path = {directory}/dovecot.log
protocols = none
ssl = no
auth_mechanisms = plain login
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {passwd}
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
        self.proc = subprocess.Popen(["ip", "netns", "exec", ns, "dovecot", "-F", "-c", self.conf],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 20
        while not os.path.exists(self.socket):
            assert self.proc.poll() is None, f"dovecot exited: {self.proc.stderr.read()}"
            assert time.monotonic() < deadline, "dovecot's auth socket did not appear"
            time.sleep(0.05)

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
