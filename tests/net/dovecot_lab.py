"""A private Dovecot for the SASL tests, and what the relay tests add to
tests/net/postfix_lab.py's Postfix: a TLS certificate and a wait for the
listeners.

Dovecot runs for SASL only (no protocols), with its own configuration,
base_dir, state_dir and passwd-file under a temporary directory, in the
test's server namespace; its auth socket goes where Postfix's
smtpd_sasl_path=private/auth looks. /etc/dovecot is never read or written:
`dovecot -c` takes everything from our file.
"""

import itertools
import os
import signal
import subprocess
import time

from netns_lab import need, sh

_serial = itertools.count()


def make_certificate(directory, names, addresses):
    """A self-signed certificate (and its key) for these names and addresses."""
    need("openssl")
    cert, key = os.path.join(directory, "cert.pem"), os.path.join(directory, "key.pem")
    alt = ",".join([f"DNS:{n}" for n in names] + [f"IP:{a}" for a in addresses])
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", key, "-out", cert, "-days", "2", "-subj", f"/CN={names[0]}",
                    "-addext", f"subjectAltName={alt}"],
                   check=True, capture_output=True, timeout=60)
    return cert, key


def wait_listening(ns, ports, timeout=20):
    """Until every port has a listener in the namespace (`postfix start`
    returns before the master has necessarily bound them all)."""
    deadline = time.monotonic() + timeout
    while True:
        listening = sh("ss", "-Hltn", ns=ns).stdout
        if all(f":{p} " in listening for p in ports):
            return
        assert time.monotonic() < deadline, f"not listening on all of {ports}:\n{listening}"
        time.sleep(0.1)


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
