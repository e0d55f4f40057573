"""`mailfilter relaytest` against a real Postfix, and `mailfilter submission
--sasl dovecot` against a real Dovecot, both started here.

One private Postfix per module (tests/postfix_lab.py; a start costs
seconds) in a server namespace (10.99.1.1), with Postfix's own defaults for
relaying and one smtpd service per configuration under test:
   25  the defaults (compatibility_level 3.6): relays nothing
 2525  permits every client (what `smtpd_relay_restrictions = permit` means;
       Postfix refuses to start an smtpd with that literal setting)
 2526  an over-wide mynetworks (0.0.0.0/0): the classic open relay
 2527  trusts senders in its own domain: relays for the sender tricks only
 2528  trusts clients that say EHLO with its own name: relays after that only
 587/465  set up by `mailfilter submission --sasl dovecot --apply`, logins
       checked by a private Dovecot (tests/dovecot_lab.py) over private/auth
relaytest runs in a client namespace (10.99.1.2), which the server does not
trust, as a stranger on the Internet. DATA is never sent, so after every
test the queue must be empty and the smtpd log must show no DATA command.
"""

import json
import os
import subprocess
import sys
import time

import pytest
from conftest import MAILFILTER, env_for
from dovecot_lab import SaslDovecot
from netns_lab import Pair
from postfix_lab import DOMAIN, HOSTNAME, Postfix, make_certificate

pytestmark = pytest.mark.root

SRV, CLI = "10.99.1.1", "10.99.1.2"
USER, PASSWORD = "alice", "correct horse battery staple"
OPEN_PORTS = {2525: "every client permitted", 2526: "mynetworks = 0.0.0.0/0"}
PORTS = [25, 465, 587, 2525, 2526, 2527, 2528]
TRICKS = 15                  # relay attempts per phase, the control aside
SENDER_TRICKS = {"your domain as sender", "odd case", "trailing dots"}


class Server(Postfix):
    """postfix_lab's instance with Postfix's own master.cf, and what these
    tests read of it."""

    def __init__(self, netns):
        with open("/usr/share/postfix/master.cf.dist") as fh:
            stock = fh.read()
        super().__init__(netns=netns, ports=PORTS, master=stock, settings={
            # A mail domain of its own, as on a fresh Debian install; only
            # postmaster (an alias) is a local recipient.
            "mydestination": "$myhostname, $mydomain, localhost",
            "virtual_mailbox_domains": "",
            "alias_maps": "inline:{ postmaster=root }",
            "smtpd_tls_security_level": "may",
            # Nothing may ever leave: a message that did get queued stays in
            # the queue, where postqueue -p shows it.
            "defer_transports": "smtp, relay, local, virtual, lmtp, error",
        })
        self.cert, key = make_certificate(self.root, [HOSTNAME], [SRV])
        self.postconf("-e", f"smtpd_tls_cert_file = {self.cert}", f"smtpd_tls_key_file = {key}")
        # No chroot: the queue directory is a scratch directory, with no
        # copies of /etc/services, resolv.conf or libraries in it.
        self.postconf("-F", "*/*/chroot = n")

    def add_service(self, port, **overrides):
        self.postconf("-M", f"{port}/inet={port} inet n - n - - smtpd")
        for key, value in overrides.items():
            self.postconf("-P", f"{port}/inet/{key}={value}")

    def queue(self):
        res = subprocess.run(["postqueue", "-c", self.etc, "-p"], capture_output=True, text=True, timeout=60)
        return res.stdout + res.stderr

    def alive(self):
        pid = self.master_pid()
        return pid is not None and os.path.exists(f"/proc/{pid}")


class Lab:
    pass


@pytest.fixture(scope="module")
def lab():
    with Pair(srv_addrs=[SRV], cli_addrs=[CLI]) as pair, Server(pair.srv) as server:
        with open(os.path.join(server.etc, "trusted_senders"), "w") as fh:
            fh.write(f"{DOMAIN} OK\n")
        with open(os.path.join(server.etc, "trusted_helo"), "w") as fh:
            fh.write(f"{HOSTNAME} OK\n")
        server.add_service(2525, smtpd_relay_restrictions="check_client_access,static:OK,"
                                                          "reject_unauth_destination")
        server.add_service(2526, mynetworks="0.0.0.0/0")
        server.add_service(2527, smtpd_relay_restrictions=f"check_sender_access,texthash:{server.etc}/"
                                                          "trusted_senders,reject_unauth_destination")
        server.add_service(2528, smtpd_relay_restrictions=f"check_helo_access,texthash:{server.etc}/"
                                                          "trusted_helo,reject_unauth_destination")
        # The submission ports as an admin would set them up.
        res = run_mailfilter("submission", "--config-dir", server.etc, "--sasl", "dovecot", "--apply")
        assert res.returncode == 0, res.stderr
        server.start()
        dovecot = SaslDovecot(os.path.join(server.root, "dovecot"), os.path.join(server.spool, "private", "auth"),
                              {USER: PASSWORD})
        with dovecot.start(pair.srv):
            lab = Lab()
            lab.pair, lab.postfix, lab.dovecot = pair, server, dovecot
            yield lab


def run_mailfilter(*args, ns=None, timeout=300):
    cmd = (["ip", "netns", "exec", ns] if ns else []) + MAILFILTER + [str(a) for a in args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env_for(None), timeout=timeout)


def relaytest(lab, *args, ns=None):
    """No pause between attempts unless the test asks: the server is ours."""
    delay = [] if "--delay" in args else ["--delay", 0]
    return run_mailfilter("relaytest", *args, *delay, ns=ns or lab.pair.cli)


def report_of(res):
    assert "Traceback" not in res.stderr, res.stderr
    return json.loads(res.stdout)


def attempts(report):
    return [a for t in report["targets"] for a in t["attempts"]]


@pytest.fixture
def untouched(lab):
    """After the test: the server is up, nothing queued, and no session of
    ours got as far as DATA (Postfix logs every session's command counts)."""
    with open(lab.postfix.maillog, encoding="utf-8", errors="replace") as fh:
        fh.seek(0, os.SEEK_END)
        start = fh.tell()
    yield
    assert lab.postfix.alive(), lab.postfix.log()[-3000:]
    assert "Mail queue is empty" in lab.postfix.queue()
    with open(lab.postfix.maillog, encoding="utf-8", errors="replace") as fh:
        fh.seek(start)
        log = fh.read()
    sessions = [line for line in log.splitlines() if "disconnect from" in line]
    assert sessions, "no session reached the server"
    assert not [line for line in sessions if " data=" in line or " bdat=" in line]
    # Every transaction that MAIL opened was closed with RSET.
    for line in sessions:
        counts = dict(word.split("=", 1) for word in line.split() if "=" in word)
        assert accepted(counts.get("mail", "0")) <= accepted(counts.get("rset", "0")), line


def accepted(count):
    """Postfix's `mail=3/5` (3 of 5 accepted), or `mail=5` (all of them)."""
    return int(count.split("/")[0])


def test_default_configuration_relays_nothing(lab, untouched):
    res = relaytest(lab, SRV, "--port", 25, "--domain", DOMAIN, "--json")
    assert res.returncode == 0, res.stderr
    assert res.stderr == ""
    report = report_of(res)
    tried = attempts(report)
    # Before and after STARTTLS, each with our name and with the server's in EHLO.
    phases = {(a["tls"], a["helo_as"]) for a in tried}
    assert phases == {("none", "ours"), ("none", "theirs"), ("starttls", "ours"), ("starttls", "theirs")}
    assert {a["helo"] for a in tried if a["helo_as"] == "theirs"} == {HOSTNAME}
    relays = [a for a in tried if a["expected"] == "refused"]
    assert len(relays) == 4 * TRICKS
    assert {a["verdict"] for a in relays} == {"refused"}
    assert all(a["reply"].startswith("454 4.7.1 ") and a["reply"].endswith("Relay access denied")
               for a in relays)
    controls = [a for a in tried if a["expected"] == "accepted"]
    assert [a["verdict"] for a in controls] == ["accepted"] * 4
    # What went over the wire is what the trick says, untouched by any address parser.
    sent = {line for a in tried for line in a["sent"]}
    for line in ("RCPT TO:<relaytest%example.com@example.org>", "RCPT TO:<example.com!relaytest@example.org>",
                 'RCPT TO:<"relaytest@example.com"@example.org>', "RCPT TO:<@example.org:relaytest@example.com>",
                 "RCPT TO:<relaytest%example.com@[10.99.1.1]>", "RCPT TO:<relaytest@[192.0.2.25]>",
                 "MAIL FROM:<>", "RCPT TO:<relaytest@ExAmPlE.CoM>", "RCPT TO:<relaytest@example.com.>"):
        assert line in sent
    assert not [line for line in sent if line.split()[0] in ("DATA", "BDAT")]
    assert report["targets"][0]["source"] == "10.99.1.2"


def test_default_configuration_table(lab, untouched):
    res = relaytest(lab, SRV, "--port", 25, "--domain", DOMAIN)
    assert res.returncode == 0
    lines = res.stdout.splitlines()
    assert lines[-1] == f"nothing relayed: all {4 * TRICKS} relay attempts were refused"
    assert f"{SRV} port 25 from 10.99.1.2, after STARTTLS, EHLO {HOSTNAME} (the server's own name)" in lines
    assert not [line for line in lines if "RELAYED" in line]


@pytest.mark.parametrize("port", sorted(OPEN_PORTS))
def test_open_configuration_is_reported(lab, untouched, port):
    res = relaytest(lab, SRV, "--port", port, "--domain", DOMAIN, "--json")
    assert res.returncode == 1, res.stderr
    tried = attempts(report_of(res))
    relays = [a for a in tried if a["expected"] == "refused"]
    assert len(relays) == 4 * TRICKS and {a["verdict"] for a in relays} == {"RELAYED"}
    assert {a["verdict"] for a in tried if a["expected"] == "accepted"} == {"accepted"}
    table = relaytest(lab, SRV, "--port", port, "--domain", DOMAIN)
    assert table.returncode == 1
    assert table.stdout.splitlines()[-1] == (f"OPEN RELAY: {4 * TRICKS} of {4 * TRICKS} relay attempts were "
                                             "accepted (RELAYED above); fix this before the server goes live")
    assert sum(" RELAYED " in line for line in table.stdout.splitlines()) == 4 * TRICKS


def test_trusting_your_own_domain_relays_for_the_sender_tricks(lab, untouched):
    res = relaytest(lab, SRV, "--port", 2527, "--domain", DOMAIN, "--json")
    assert res.returncode == 1
    tried = attempts(report_of(res))
    for phase in {(a["tls"], a["helo_as"]) for a in tried}:
        relayed = {a["trick"] for a in tried if (a["tls"], a["helo_as"]) == phase and a["verdict"] == "RELAYED"}
        assert relayed == SENDER_TRICKS, phase


def test_trusting_your_own_helo_name_relays_after_that_ehlo(lab, untouched):
    res = relaytest(lab, SRV, "--port", 2528, "--domain", DOMAIN, "--json")
    assert res.returncode == 1
    tried = [a for a in attempts(report_of(res)) if a["expected"] == "refused"]
    assert {a["verdict"] for a in tried if a["helo_as"] == "theirs"} == {"RELAYED"}
    assert {a["verdict"] for a in tried if a["helo_as"] == "ours"} == {"refused"}


def test_domain_guessed_from_the_greeting(lab, untouched):
    res = relaytest(lab, SRV, "--port", 25, "--json")
    assert res.returncode == 0
    report = report_of(res)
    assert report["domain"] == DOMAIN
    assert "RCPT TO:<postmaster@example.org>" in attempts(report)[0]["sent"]


def test_politeness_delay_and_connection_limit(lab, untouched):
    start = time.monotonic()
    res = relaytest(lab, SRV, "--port", 25, "--domain", DOMAIN, "--json", "--max-connections", 1,
                    "--delay", 0.2)
    elapsed = time.monotonic() - start
    assert res.returncode == 75
    assert res.stderr == (f"mailfilter: {SRV} port 25: stopped at the connection limit "
                          "(--max-connections 1)\n")
    report = report_of(res)
    assert report["connections"] == 1
    # One session, then the limit: its 8 attempts, each after the --delay
    # pause (a lower bound, which no machine can beat; not a speed test).
    assert len(attempts(report)) == 8 and elapsed >= 8 * 0.2


def test_submission_ports_refuse_before_auth(lab, untouched):
    res = relaytest(lab, SRV, "--port", "587,465", "--domain", DOMAIN, "--json")
    assert res.returncode == 0, res.stderr
    report = report_of(res)
    tried = attempts(report)
    assert {a["verdict"] for a in tried if a["expected"] == "refused"} == {"refused"}
    before_tls = [a for a in tried if a["port"] == 587 and a["tls"] == "none"]
    assert before_tls and {a["stage"] for a in before_tls} == {"MAIL"}
    assert all(a["reply"].startswith("530 5.7.0") for a in before_tls)      # Must issue STARTTLS first
    after_tls = [a for a in tried if a["port"] == 587 and a["tls"] == "starttls"]
    assert after_tls and {a["stage"] for a in after_tls} == {"RCPT"}
    assert {(a["port"], a["tls"]) for a in tried} == {(587, "none"), (587, "starttls"), (465, "implicit")}


def test_submission_ports_accept_after_auth(lab, untouched, tmp_path):
    secret = tmp_path / "password"
    secret.write_text(PASSWORD + "\n")
    res = relaytest(lab, SRV, "--port", "587,465", "--domain", DOMAIN, "--user", USER,
                    "--password-file", secret, "--cafile", lab.postfix.cert, "--json")
    assert res.returncode == 0, res.stderr
    tried = attempts(report_of(res))
    logged_in = [a for a in tried if a["auth"]]
    assert {(a["port"], a["trick"], a["verdict"]) for a in logged_in} == {
        (port, trick, "accepted") for port in (587, 465)
        for trick in ("control: your postmaster", "foreign sender")}
    assert {a["verdict"] for a in tried if not a["auth"] and a["expected"] == "refused"} == {"refused"}
    assert PASSWORD not in res.stdout


def test_real_client_logs_in_on_587(lab, untouched):
    """The submission set-up itself, seen by Python's own SMTP client: no
    RCPT to a foreign domain before AUTH, a real SASL login through Dovecot,
    then the same RCPT accepted. (Before the tests with a wrong password:
    Dovecot delays every login from an address that failed recently.)"""
    code = f"""
import smtplib, ssl, sys
ctx = ssl.create_default_context(cafile={lab.postfix.cert!r})
s = smtplib.SMTP({SRV!r}, 587, timeout=30)
s.starttls(context=ctx)
s.ehlo("client.example.net")
print(s.docmd("MAIL FROM:<{USER}@{DOMAIN}>")[0], s.docmd("RCPT TO:<friend@example.com>")[0], s.docmd("RSET")[0])
s.login({USER!r}, {PASSWORD!r})
print(s.docmd("MAIL FROM:<{USER}@{DOMAIN}>")[0], s.docmd("RCPT TO:<friend@example.com>")[0], s.docmd("RSET")[0])
s.quit()
"""
    res = subprocess.run(["ip", "netns", "exec", lab.pair.cli, sys.executable, "-c", code],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines() == ["250 554 250", "250 250 250"]
    assert "Mail queue is empty" in lab.postfix.queue()


def test_wrong_password_is_77(lab, untouched, tmp_path):
    secret = tmp_path / "password"
    secret.write_text("wrong\n")
    res = relaytest(lab, SRV, "--port", 587, "--domain", DOMAIN, "--user", USER, "--password-file", secret,
                    "--cafile", lab.postfix.cert)
    assert res.returncode == 77
    (line,) = res.stderr.splitlines()
    assert line.startswith(f"mailfilter: {SRV} port 587: AUTH as {USER} refused: "
                           "535 5.7.8 Error: authentication failed")


def test_password_only_to_a_trusted_certificate(lab, untouched, tmp_path):
    secret = tmp_path / "password"
    secret.write_text(PASSWORD + "\n")
    before = os.path.getsize(lab.postfix.maillog)
    res = relaytest(lab, SRV, "--port", 587, "--domain", DOMAIN, "--user", USER, "--password-file", secret)
    assert res.returncode == 77
    assert res.stderr.splitlines() == [f"mailfilter: {SRV} port 587: certificate not trusted: "
                                       "self-signed certificate"]
    with open(lab.postfix.maillog) as fh:
        fh.seek(before)
        assert " auth=" not in fh.read()


def test_submission_sees_that_sasl_works(lab):
    res = run_mailfilter("submission", "--config-dir", lab.postfix.etc, "--sasl", "dovecot")
    assert res.returncode == 0
    assert "nothing to change" in res.stdout
    assert "auth socket" not in res.stderr and "AUTH" not in res.stderr


def test_submission_sees_a_socket_postfix_may_not_open(lab):
    sock = os.path.join(lab.postfix.spool, "private", "auth")
    st = os.stat(sock)
    os.chmod(sock, 0o600)
    os.chown(sock, 0, 0)
    try:
        res = run_mailfilter("submission", "--config-dir", lab.postfix.etc)
    finally:
        os.chown(sock, st.st_uid, st.st_gid)
        os.chmod(sock, st.st_mode & 0o7777)
    assert res.returncode == 0
    assert (f"submission: Postfix (user postfix) may not open Dovecot's auth socket {sock} (mode 0600), "
            "so every AUTH fails: use `unix_listener") in res.stderr


def test_this_machine_is_named_and_netns_tests_from_outside(lab, untouched):
    # Run on the server itself: 127.0.0.1 is in the stock mynetworks, so
    # everything "relays", which proves nothing; the tool says so.
    local = relaytest(lab, "127.0.0.1", "--port", 25, "--domain", DOMAIN, "--json", ns=lab.pair.srv)
    assert local.returncode == 1
    assert "127.0.0.1 (127.0.0.1) is this machine" in local.stderr and "--netns" in local.stderr
    assert {a["verdict"] for a in attempts(report_of(local)) if a["expected"] == "refused"} == {"RELAYED"}

    res = relaytest(lab, "127.0.0.1", "--port", 25, "--domain", DOMAIN, "--json", "--netns", ns=lab.pair.srv)
    assert res.returncode == 0, res.stderr
    assert res.stderr == ""
    report = report_of(res)
    (target,) = report["targets"]
    assert target["source"].startswith("203.0.113.") and target["connected_to"] == "198.51.100.1"
    assert {a["verdict"] for a in attempts(report) if a["expected"] == "refused"} == {"refused"}
    left = subprocess.run(["ip", "netns", "exec", lab.pair.srv, "ip", "-o", "link"], capture_output=True,
                          text=True).stdout
    assert "mfrt" not in left
    assert report["netns"]["name"] not in subprocess.run(["ip", "netns", "list"], capture_output=True,
                                                         text=True).stdout


def test_netns_is_for_this_machine_only(lab):
    res = relaytest(lab, SRV, "--port", 25, "--domain", DOMAIN, "--netns")
    assert res.returncode == 64
    assert res.stderr == (f"mailfilter: --netns tests this machine from a namespace on it, but {SRV} ({SRV}) "
                          "is not this machine\n")


def test_queue_check_sees_a_message_that_got_data(lab):
    """The emptiness checked after every test means something: one message
    that does get DATA shows up in postqueue -p."""
    code = f"""
import smtplib
s = smtplib.SMTP({SRV!r}, 2526, timeout=30)
s.sendmail("someone@example.net", ["friend@example.com"], "Subject: queued\\r\\n\\r\\nbody\\r\\n")
s.quit()
"""
    subprocess.run(["ip", "netns", "exec", lab.pair.cli, sys.executable, "-c", code], check=True, timeout=60)
    try:
        assert "friend@example.com" in lab.postfix.queue()
    finally:
        subprocess.run(["postsuper", "-c", lab.postfix.etc, "-d", "ALL"], capture_output=True, timeout=60)
    assert "Mail queue is empty" in lab.postfix.queue()
