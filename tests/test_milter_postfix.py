"""`mailfilter milter` in a real, private Postfix (tests/postfix_lab.py):
mail sent by SMTP to 127.0.0.1 is delivered by virtual(8) into a Maildir
carrying our headers once, with forged X-CRM114-* headers removed; the
daemon down gives UNSURE ( 0.00 ) with the notice, the milter down lets mail
through unmarked (milter_default_action = accept), and rejecting is opt-in.
"""

import os
import re
import smtplib
import subprocess
import time

import pytest

from conftest import MAILFILTER, SAMPLES, env_for, free_port, run_mailfilter, train_on_samples
from postfix_lab import milter_settings, on_loopback
from serve_daemon import Daemon

SPAM = open(os.path.join(SAMPLES, "train", "spam", "00.eml"), "rb").read()
GOOD = open(os.path.join(SAMPLES, "train", "good", "00.eml"), "rb").read()
FORGED = (b"X-CRM114-Status: GOOD ( 99.99 )\n"
          b"x-crm114-notice: forged\n\tand folded\n")


def forge(message):
    return FORGED + message


class Milter:
    def __init__(self, tmp_path, spamd, args=()):
        self.port = free_port()
        self.log_path = tmp_path / f"milter-{self.port}.log"
        self.argv = MAILFILTER + ["milter", "--listen", f"inet:127.0.0.1:{self.port}", "--spamd", spamd,
                                  "--timeout", "10"] + list(args)
        self.proc = None

    def start(self, env):
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.argv, env=env, stdout=self._log, stderr=self._log,
                                     stdin=subprocess.DEVNULL)
        import socket
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log()
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise AssertionError("milter did not listen: " + self.log())

    def log(self):
        return self.log_path.read_text(errors="replace")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=30)
        self._log.close()
        return self.proc.returncode


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    home = tmp_path_factory.mktemp("milter") / "state"
    train_on_samples(home, passes=10)
    return home


@pytest.fixture
def stack(tmp_path, trained):
    daemon = Daemon(tmp_path, trained).start()
    milter = Milter(tmp_path, daemon.socket).start(env_for(trained))
    postfix = on_loopback(milter_settings(f"inet:127.0.0.1:{milter.port}")).start()
    yield daemon, milter, postfix
    postfix.close()
    milter.stop()
    daemon.stop()


def send(postfix, message, to=("alice@example.org",)):
    with smtplib.SMTP("127.0.0.1", postfix.port, timeout=60) as smtp:
        smtp.sendmail("sender@example.net", list(to), message.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"))


def ours(delivered: bytes):
    head = delivered.split(b"\n\n", 1)[0]
    return re.findall(rb"(?im)^(x-crm114-[a-z]+):[ \t]*(.*)$", head)


def test_spam_and_good_are_marked_once_and_forgeries_removed(stack):
    _, _, postfix = stack
    send(postfix, forge(SPAM))
    send(postfix, forge(GOOD), to=("bob@example.org",))
    spam = postfix.wait_for("alice", 1)[0]
    good = postfix.wait_for("bob", 1)[0]
    for delivered, label in ((spam, b"SPAM"), (good, b"GOOD")):
        fields = ours(delivered)
        names = [name.lower() for name, _ in fields]
        assert names.count(b"x-crm114-status") == 1, fields
        assert names.count(b"x-crm114-version") == 1 and names.count(b"x-crm114-cacheid") == 1
        status = dict((n.lower(), v) for n, v in fields)[b"x-crm114-status"]
        assert status.startswith(label + b" ( "), fields
        assert b"99.99" not in delivered and b"forged" not in delivered and b"and folded" not in delivered
    # The body arrives as sent.
    assert spam.endswith(SPAM.split(b"\n\n", 1)[1])


def test_daemon_down_marks_unsure_and_delivers(stack):
    daemon, milter, postfix = stack
    daemon.stop()
    send(postfix, forge(SPAM))
    delivered = postfix.wait_for("alice", 1)[0]
    fields = dict((n.lower(), v) for n, v in ours(delivered))
    assert fields[b"x-crm114-status"] == b"UNSURE ( 0.00 )"
    assert fields[b"x-crm114-notice"].startswith(b"mailfilter could not classify")
    assert b"99.99" not in delivered
    assert "message passed through unclassified" in milter.log()


def test_milter_down_mail_still_flows(stack):
    _, milter, postfix = stack
    assert milter.stop() == 0
    send(postfix, SPAM)
    delivered = postfix.wait_for("alice", 1)[0]
    assert ours(delivered) == []            # milter_default_action = accept
    assert delivered.endswith(SPAM.split(b"\n\n", 1)[1])


def test_reject_is_opt_in(tmp_path, trained):
    daemon = Daemon(tmp_path, trained).start()
    milter = Milter(tmp_path, daemon.socket, ["--reject-above", "1.5"]).start(env_for(trained))
    postfix = on_loopback(milter_settings(f"inet:127.0.0.1:{milter.port}")).start()
    try:
        with pytest.raises(smtplib.SMTPDataError) as refused:
            send(postfix, SPAM)
        assert refused.value.smtp_code == 550
        send(postfix, GOOD)
        assert len(postfix.wait_for("alice", 1)) == 1
    finally:
        postfix.close()
        milter.stop()
        daemon.stop()


def test_recipient_map():
    from mailfilter.serve.milter import RecipientMap
    import tempfile
    with tempfile.NamedTemporaryFile("w", suffix=".map", delete=False) as fh:
        fh.write("# site map\nalice@example.org alice\n@example.net *\n@lists.example.org bob\n")
    try:
        m = RecipientMap(fh.name)
        assert m.user_for("<Alice@Example.org>") == "alice"
        assert m.user_for("carol+news@example.net") == "carol"
        assert m.user_for("anyone@lists.example.org") == "bob"
        assert m.user_for("dave@elsewhere.test") is None
    finally:
        os.unlink(fh.name)


def test_bad_recipient_map_line(tmp_path):
    bad = tmp_path / "map"
    bad.write_text("alice@example.org\n")
    r = run_mailfilter(["milter", "--recipient-map", str(bad), "--listen", f"inet:127.0.0.1:{free_port()}"])
    assert r.returncode == 78 and f"{bad}:1:".encode() in r.stderr, r.stderr


def test_help_teaches():
    r = run_mailfilter(["milter", "--help"])
    assert r.returncode == 0
    for needle in (b"milter_default_action = accept", b"--recipient-map", b"--reject-above", b"smtpd_milters"):
        assert needle in r.stdout
