"""Dovecot, for real: training by moving mail (IMAPSieve) and delivery
through mailfilter (LMTP + Sieve filter), with the files in contrib/dovecot/.

A private Dovecot from Debian (dovecot-imapd, dovecot-lmtpd, dovecot-sieve)
with its own configuration, sockets, port and users, mail in mdbox
(tests/dovecot_lab.py); a real IMAP session with imaplib and real LMTP
deliveries with smtplib. Issue 11: sites whose Dovecot stores mail in
mdbox/sdbox have no Maildir files for maildir-train to watch, and there was
no Dovecot LDA/LMTP + Sieve recipe.
"""

import json
import os
import re
import shutil
import sqlite3
import subprocess

import pytest

from conftest import MAILFILTER, SAMPLES, assert_passthrough, env_for, need, run_mailfilter
from dovecot_lab import DovecotLab

pytestmark = pytest.mark.root

INBOX_SAMPLES = os.path.join(SAMPLES, "inbox")
# What Dovecot's LMTP puts above a message before Sieve sees it.
TRACE = re.compile(rb"(?:(?:Return-Path|Delivered-To|Received):[^\r\n]*\r\n(?:[ \t][^\r\n]*\r\n)*)+")


@pytest.fixture(scope="module")
def lab():
    assert os.geteuid() == 0, "starts Dovecot with users of their own uids: run as root (CI does)"
    lab = DovecotLab(names=("alice", "bob", "carol", "dave", "erin"))
    try:
        _homeless(lab, "erin")
        _train(lab, "carol")
        yield lab.start()
        errors = [line for line in lab.log_text().splitlines()
                  if ": Error: " in line or ": Fatal: " in line or "Panic" in line]
        expected = [line for line in errors if "erin" in line]       # the homeless user's, on purpose
        assert errors == expected, "\n".join(errors)
    finally:
        lab.close()


def _homeless(lab, name):
    """A user whose userdb home is /, mail elsewhere: the scripts must
    refuse to pick a state directory, and Dovecot must still deliver."""
    user = lab.users[name]
    mail = os.path.join(lab.dir, f"{name}-mail")
    os.makedirs(mail)
    os.chown(mail, user.uid, user.uid)
    passwd = os.path.join(lab.etc, "passwd")
    with open(passwd) as fh:
        lines = fh.read().splitlines()
    with open(passwd, "w") as fh:
        for line in lines:
            if line.startswith(f"{name}:"):
                fields = line.split(":")
                fields[5] = "/"
                line = ":".join(fields[:7]) + f":userdb_mail=mdbox:{mail}"
            fh.write(line + "\n")


# Where the LMTP test's mail must go, whatever a (changing) learner makes of
# the small sample model: a verdict forced by the user's rules is as good a
# SPAM as any for the recipe, and the forged GOOD header still has to go.
RULES = """\
-^From: .*@(pills|deai2|prize)\\.example
+^From: .*frank@example\\.org
"""


USER_SCRIPT = """\
require ["fileinto", "mailbox"];
if header :matches "X-CRM114-Status" "GOOD*" {
  fileinto :create "Filtered";
}
"""


def _train(lab, name):
    """The user's model, taught from the samples, and RULES (as root in a
    scratch directory, then given to the user: root may not write in their
    home)."""
    scratch = os.path.join(lab.dir, f"train-{name}")
    done = run_mailfilter(["train", "--spam", os.path.join(SAMPLES, "train", "spam"),
                           "--good", os.path.join(SAMPLES, "train", "good"), "--passes", "3",
                           "--no-progress"], home=scratch)
    assert done.returncode == 0, done.stderr
    with open(os.path.join(scratch, "priolist.mfp"), "w") as fh:
        fh.write(RULES)
    user = lab.users[name]
    # The user's own Sieve script, which runs after deliver.sieve: it must see
    # the message as mailfilter wrote it.
    os.makedirs(os.path.join(user.home, "sieve"))
    with open(os.path.join(user.home, "sieve", "mine.sieve"), "w") as fh:
        fh.write(USER_SCRIPT)
    os.symlink("sieve/mine.sieve", os.path.join(user.home, ".dovecot.sieve"))
    for path in (os.path.join(user.home, "sieve"), os.path.join(user.home, "sieve", "mine.sieve"),
                 os.path.join(user.home, ".dovecot.sieve")):
        os.lchown(path, user.uid, user.uid)
    user = lab.users[name]
    os.makedirs(os.path.dirname(user.state))
    shutil.move(scratch, user.state)
    lab.chown_state(name)


def ledger(user):
    path = os.path.join(user.state, "ledger.sqlite")
    if not os.path.exists(path):
        return {}
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return dict(db.execute("SELECT digest, label FROM trained"))
    finally:
        db.close()


def digest_of(data: bytes) -> str:
    from mailfilter.rawmail import content_digest, strip_our_headers
    return content_digest(strip_our_headers(data))


def classify(user, data: bytes) -> str:
    done = run_mailfilter(["classify"], data, home=user.state)
    assert done.returncode == 0, done.stderr
    return done.stdout.decode().split()[0]


def crlf(data: bytes) -> bytes:
    return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def uids(client, mailbox):
    typ, _ = client.select(mailbox)
    assert typ == "OK"
    typ, data = client.uid("SEARCH", None, "ALL")
    return data[0].split()


def fetch_all(client, mailbox) -> list:
    found = []
    for uid in uids(client, mailbox):
        typ, data = client.uid("FETCH", uid, "(BODY.PEEK[])")
        assert typ == "OK", data
        found.append(data[0][1])
    return found


def move(client, source, uid, target):
    client.select(source)
    typ, data = client.uid("MOVE", uid, target)
    assert typ == "OK", data


SPAMMY = crlf(b"From: Deals <offers@cheap-pills.example>\nTo: alice@mx.example.org\n"
              b"Subject: VIAGRA CIALIS 90% OFF today only\nMessage-ID: <spam-1@cheap-pills.example>\n\n"
              b"Cheap pills, no prescription, casino bonus, claim your prize now.\n")
OTHER = crlf(b"From: Ann <ann@work.example.org>\nTo: alice@mx.example.org\nSubject: minutes\n"
             b"Message-ID: <minutes-1@work.example.org>\n\nThe minutes of Tuesday's meeting.\n")
THIRD = crlf(b"From: Bo <bo@work.example.org>\nTo: alice@mx.example.org\nSubject: lunch\n"
             b"Message-ID: <lunch-1@work.example.org>\n\nLunch on Friday?\n")


def test_imapsieve_moving_mail_into_and_out_of_junk_trains_the_users_model_on_mdbox(lab):
    alice, bob = lab.users["alice"], lab.users["bob"]
    client = lab.imap("alice")
    try:
        for data in (SPAMMY, OTHER, THIRD):
            typ, _ = client.append("INBOX", None, None, data)
            assert typ == "OK"
        inbox = uids(client, "INBOX")
        spam, other, third = (digest_of(m) for m in (SPAMMY, OTHER, THIRD))
        assert ledger(alice) == {}

        # INBOX -> Junk: spam. The learn runs inside the MOVE, so it is done when MOVE answers.
        move(client, "INBOX", inbox[0], "Junk")
        assert ledger(alice) == {spam: "spam"}
        assert classify(alice, SPAMMY) == "SPAM"

        # Junk -> Archive: the user says it is not spam after all.
        (in_junk,) = uids(client, "Junk")
        move(client, "Junk", in_junk, "Archive")
        assert ledger(alice) == {spam: "good"}
        assert classify(alice, SPAMMY) == "GOOD"

        # A COPY into Junk counts as well, and leaves the original where it was.
        client.select("INBOX")
        typ, _ = client.uid("COPY", inbox[1], "Junk")
        assert typ == "OK"
        assert ledger(alice) == {spam: "good", other: "spam"}
        assert len(uids(client, "INBOX")) == 2

        # Junk -> Trash: deleting spam teaches nothing.
        (in_junk,) = uids(client, "Junk")
        move(client, "Junk", in_junk, "Trash")
        assert ledger(alice) == {spam: "good", other: "spam"}

        # Moves that don't touch Junk teach nothing either.
        move(client, "INBOX", inbox[2], "Archive")
        assert ledger(alice) == {spam: "good", other: "spam"}
    finally:
        client.logout()

    # Stored in mdbox: there are no Maildir files a trainer could have watched.
    storage = os.path.join(alice.home, "mdbox", "storage")
    assert any(name.startswith("m.") for name in os.listdir(storage))
    assert not any(name in ("cur", "new") for _, dirs, _ in os.walk(alice.home) for name in dirs)
    # Learned as alice, in her state directory, and nobody else's.
    assert {os.stat(os.path.join(alice.state, n)).st_uid for n in os.listdir(alice.state)} == {alice.uid}
    assert spam not in ledger(bob) and other not in ledger(bob)
    # stats shows what her moves taught, newest first.
    done = run_mailfilter(["stats", "--json"], home=alice.state)
    assert done.returncode == 0, done.stderr
    info = json.loads(done.stdout)
    assert info["trained"] == {"spam": 1, "good": 1}
    assert [(e["label"], e["sender_domain"], e["subject"]) for e in info["recent"]] == [
        ("spam", "work.example.org", "minutes"), ("good", "cheap-pills.example", "VIAGRA CIALIS 90% OFF today only")]


def tricky_good() -> bytes:
    """Good mail with what a careless rewrite would damage: 8-bit text, a
    folded header, trailing blanks, a line starting with a dot (LMTP
    dot-stuffing), a long line, a forged X-CRM114 header of ours."""
    return (b"From: Frank <frank@example.org>\r\n"
            b"To: carol@mx.example.org\r\n"
            b"Subject: =?UTF-8?B?w4lxdWlwZSBtZWV0aW5n?= notes\r\n"
            b"Message-ID: <tricky-1@example.org>\r\n"
            b"X-Folded: first part\r\n\tsecond part   \r\n"
            b"X-CRM114-Status: SPAM ( -99.00 )\r\n"
            b"Content-Type: text/plain; charset=utf-8\r\n"
            b"\r\n"
            b"R\xc3\xa9sum\xc3\xa9 of the meeting, caf\xc3\xa9 at ten.  \r\n"
            b".a line that starts with a dot\r\n"
            b"..two dots\r\n"
            + b"long " * 190 + b"\r\n"
            b"\r\n"
            b"Thanks, Frank\r\n")


def test_lmtp_delivery_runs_mailfilter_files_spam_in_junk_and_keeps_every_byte(lab):
    carol = lab.users["carol"]
    sent = {}
    for name in sorted(os.listdir(INBOX_SAMPLES)):
        with open(os.path.join(INBOX_SAMPLES, name), "rb") as fh:
            sent[name] = crlf(fh.read())
    sent["tricky"] = tricky_good()
    for data in sent.values():
        lab.lmtp_deliver("carol", data)

    client = lab.imap("carol")
    try:
        folders = {box: fetch_all(client, box) for box in ("INBOX", "Junk", "Filtered")}
    finally:
        client.logout()
    where = {}
    for box, messages in folders.items():
        for stored in messages:
            matches = [name for name, data in sent.items() if data.split(b"\r\n", 1)[0] in stored
                       and re.search(rb"Message-ID: [^\r\n]*|Subject: [^\r\n]*", data).group(0) in stored]
            assert len(matches) == 1, stored[:300]
            name = matches[0]
            where[name] = box
            start = stored.index(sent[name].split(b"\r\n", 1)[0])
            trace = stored[:start]
            assert TRACE.fullmatch(trace), trace
            # What Sieve's filter was given is the trace plus the original;
            # what was stored is exactly that, forged X-CRM114 lines out, ours in.
            assert_passthrough(trace + sent[name], stored)
            status = re.search(rb"\r\nX-CRM114-Status: (\w+)", stored).group(1)
            assert (status == b"SPAM") == (box == "Junk"), (name, status, box)
    # GOOD went on to carol's own script, which saw mailfilter's header (the
    # tricky one arrived with a forged SPAM one) and filed it.
    assert where == {"1-good.eml": "Filtered", "2-spam.eml": "Junk", "3-ja-spam.eml": "Junk",
                     "4-forged.eml": "Junk", "tricky": "Filtered"}

    # The filter ran as carol, in her state directory: it counted the verdicts there.
    done = run_mailfilter(["stats", "--json"], home=carol.state)
    assert done.returncode == 0, done.stderr
    counted = json.loads(done.stdout)["verdicts"]["total"]
    assert counted["spam"] == 3 and sum(counted.values()) == 5
    assert {os.stat(os.path.join(carol.state, n)).st_uid for n in os.listdir(carol.state)} == {carol.uid}

    # The user disagrees: out of Junk with the IMAP client (IMAPSieve). The
    # learn lands in the same state directory the filter used, under the
    # digest the filter wrote into X-CRM114-CacheID.
    client = lab.imap("carol")
    try:
        junk = dict(zip(uids(client, "Junk"), fetch_all(client, "Junk")))
        (uid,) = [uid for uid, stored in junk.items() if b"prize.example" in stored]
        cache_id = re.search(rb"X-CRM114-CacheID: sfid-(\w+)", junk[uid]).group(1).decode()
        move(client, "Junk", uid, "INBOX")
    finally:
        client.logout()
    assert [label for digest, label in ledger(carol).items() if digest.startswith(cache_id)] == ["good"]


def test_a_filter_that_refuses_still_delivers_the_message_unmarked(lab):
    """erin has no home (/): mailfilter-filter refuses to guess a state
    directory (every user of a vmail uid would share one model), the Sieve
    filter action fails, and Dovecot keeps the message in INBOX as it came,
    with the reason in its log."""
    data = crlf(b"From: x@example.org\nTo: erin@mx.example.org\nSubject: still here\n\nbody\n")
    lab.lmtp_deliver("erin", data)
    client = lab.imap("erin")
    try:
        (stored,) = fetch_all(client, "INBOX")
    finally:
        client.logout()
    assert stored.endswith(data) and b"X-CRM114" not in stored
    assert "mailfilter-filter: no HOME for erin" in lab.log_text()


def test_check_reads_the_dovecot_setup_instead_of_recipes_and_the_trainer(lab, tmp_path):
    """`mailfilter check` on an LMTP + IMAPSieve + mdbox set-up: inside the
    lab's mount namespace (where /usr/local/bin/mailfilter is) all is well;
    outside, the missing command the scripts call is the problem it names."""
    need("nsenter")
    carol = lab.users["carol"]
    etc = tmp_path / "postfix"
    etc.mkdir()
    (etc / "main.cf").write_text("compatibility_level = 3.6\nmailbox_transport = lmtp:unix:private/dovecot-lmtp\n")
    env = env_for(None)
    env["MAIL_CONFIG"] = str(etc)
    args = ["check", "--home", carol.state, "--maildir", os.path.join(carol.home, "Maildir"),
            "--trainer-config", str(tmp_path / "none.conf"), "--dovecot-config", lab.conf]
    inside = subprocess.run(["nsenter", "--mount", "--target", str(lab.proc.pid), *MAILFILTER, *args],
                            capture_output=True, env=env, timeout=120)
    text = inside.stdout.decode()
    assert "ok:      Postfix delivers through: mailbox_transport = lmtp:unix:private/dovecot-lmtp" in text
    assert f"ok:      Dovecot's LMTP delivers through mailfilter ({lab.sieve_dir}/deliver.sieve)" in text
    assert "ok:      Dovecot keeps mail in mdbox (mdbox:~/mdbox), not a Maildir" in text
    assert "ok:      Dovecot's IMAPSieve trains on moves into and out of Junk" in text
    assert not any(w in text for w in ("recipe", "learn-spam", "Maildir ")), text
    # What is left is about the state directory as root sees it, not about Dovecot.
    assert all("Dovecot" not in line and "Postfix" not in line
               for line in text.splitlines() if line.startswith("problem:")), text
    if not os.path.exists("/usr/local/bin/mailfilter"):
        outside = subprocess.run([*MAILFILTER, *args], capture_output=True, env=env, timeout=120)
        text = outside.stdout.decode()
        assert outside.returncode == 1
        assert (f"problem: Dovecot's LMTP does not filter through mailfilter: {lab.sieve_dir}/bin/mailfilter-filter "
                f"runs /usr/local/bin/mailfilter, which is not there; fix: install") in text, text
        assert "problem: Dovecot's IMAPSieve does not train mailfilter" in text


def as_user_in_lab(lab, name, *command, input=None):
    """Run a command as the lab user, in the lab's mount namespace (where
    /usr/local/bin/mailfilter is), as `--user NAME` would for a real account."""
    need("setpriv")
    user = lab.users[name]
    return subprocess.run(["nsenter", "--mount", "--target", str(lab.proc.pid),
                           "setpriv", f"--reuid={user.uid}", f"--regid={user.uid}", "--clear-groups",
                           "env", "-i", f"HOME={user.home}", "PATH=/usr/local/bin:/usr/bin:/bin",
                           *command], input=input, capture_output=True, timeout=300, cwd="/")


def test_mail_already_sorted_in_mdbox_is_taught_through_a_maildir_copy(lab):
    """README step 7b: `doveadm backup` to a Maildir, then `mailfilter train`."""
    dave = lab.users["dave"]
    client = lab.imap("dave")
    sorted_mail = {"Junk": os.path.join(SAMPLES, "train", "spam"), "INBOX": os.path.join(SAMPLES, "train", "good")}
    digests = {"spam": set(), "good": set()}
    try:
        for box, directory in sorted_mail.items():
            for name in sorted(os.listdir(directory))[:8]:
                with open(os.path.join(directory, name), "rb") as fh:
                    data = crlf(fh.read())
                typ, _ = client.append(box, None, None, data)       # APPEND is not a move: no learn
                assert typ == "OK"
                digests["spam" if box == "Junk" else "good"].add(digest_of(data))
    finally:
        client.logout()
    assert ledger(dave) == {}
    done = subprocess.run(["doveadm", "-c", lab.conf, "backup", "-u", "dave", "maildir:~/mailfilter-export"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    export = os.path.join(dave.home, "mailfilter-export")
    done = as_user_in_lab(lab, "dave", "mailfilter", "train", "--spam", os.path.join(export, ".Junk"),
                          "--good", export, "--passes", "5", "--no-progress")
    assert done.returncode == 0, done.stderr.decode()
    taught = ledger(dave)
    assert {d for d, label in taught.items() if label == "spam"} == digests["spam"]
    assert {d for d, label in taught.items() if label == "good"} == digests["good"]


def test_dovecot_lda_runs_the_same_recipe(lab, tmp_path):
    """Delivery by dovecot-lda, as Postfix's mailbox_command runs it (as the
    user, the message on stdin): the same deliver.sieve, the same filter."""
    bob = lab.users["bob"]
    os.makedirs(bob.state, exist_ok=True)
    with open(os.path.join(bob.state, "priolist.mfp"), "w") as fh:
        fh.write("-^Subject: LDA spam test\n")
    lab.chown_state("bob")
    spam = crlf(b"From: x@example.org\nTo: bob@mx.example.org\nSubject: LDA spam test\n\nbuy now\n")
    good = crlf(b"From: y@example.org\nTo: bob@mx.example.org\nSubject: LDA hello\n\nhello bob\n")
    for data in (spam, good):
        done = as_user_in_lab(lab, "bob", "/usr/lib/dovecot/dovecot-lda", "-c", lab.conf, "-d", "bob",
                              "-f", "sender@example.net", input=data)
        assert done.returncode == 0, done.stderr.decode()
    client = lab.imap("bob")
    try:
        folders = {box: [m for m in fetch_all(client, box) if b"LDA" in m] for box in ("INBOX", "Junk")}
    finally:
        client.logout()
    (in_junk,), (in_inbox,) = folders["Junk"], folders["INBOX"]
    for sent, stored in ((spam, in_junk), (good, in_inbox)):
        start = stored.index(sent.split(b"\r\n", 1)[0])
        assert TRACE.fullmatch(stored[:start]) or stored[:start] == b"", stored[:start]
        assert_passthrough(stored[:start] + sent, stored)
    assert b"X-CRM114-Status: SPAM ( -999.99 )" in in_junk and b"X-CRM114-Status: SPAM" not in in_inbox

    # check, for a Postfix whose mailbox_command is dovecot-lda
    etc = tmp_path / "postfix"
    etc.mkdir()
    (etc / "main.cf").write_text('compatibility_level = 3.6\n'
                                 'mailbox_command = /usr/lib/dovecot/dovecot-lda -f "$SENDER" -a "$RECIPIENT"\n')
    env = env_for(None)
    env["MAIL_CONFIG"] = str(etc)
    done = subprocess.run(["nsenter", "--mount", "--target", str(lab.proc.pid), *MAILFILTER, "check",
                           "--home", bob.state, "--dovecot-config", lab.conf], capture_output=True, env=env,
                          timeout=120)
    assert f"ok:      Dovecot's LDA (dovecot-lda) delivers through mailfilter ({lab.sieve_dir}/deliver.sieve)" \
        in done.stdout.decode(), done.stdout.decode()


def test_postfix_hands_mail_to_dovecot_lmtp_which_files_it_through_mailfilter(lab):
    """The README's Dovecot delivery end to end: mail arrives by SMTP at a
    real Postfix, whose virtual_transport is Dovecot's LMTP socket (the
    one 95-mailfilter-lmtp.conf makes for Postfix), and lands in carol's
    mdbox through mailfilter: spam in Junk, good mail on to her own script,
    each with our header once and the rest of it as Postfix passed it on."""
    import smtplib

    from postfix_lab import on_loopback
    marker = f"via-postfix-{os.getpid()}".encode()
    sent = {}
    for name in ("1-good.eml", "2-spam.eml"):
        with open(os.path.join(INBOX_SAMPLES, name), "rb") as fh:
            sent[name] = crlf(b"X-Test-Run: " + marker + b"\n" + fh.read())
    postfix = on_loopback({"virtual_mailbox_domains": "mx.example.org",
                           "virtual_mailbox_maps": "inline:{ carol@mx.example.org=carol }",
                           "virtual_transport": f"lmtp:unix:{lab.lmtp_socket}"})
    with open(os.path.join(postfix.etc, "master.cf"), "a") as fh:
        fh.write("lmtp      unix  -       -       n       -       -       lmtp\n")
    postfix.start()
    try:
        with smtplib.SMTP("127.0.0.1", postfix.port, timeout=60) as client:
            for data in sent.values():
                assert not client.sendmail("sender@example.net", ["carol@mx.example.org"], data)
        postfix.wait_for_log("status=sent", count=len(sent), timeout=120, hopeless=("status=bounced",))
    finally:
        postfix.close()
    client = lab.imap("carol")
    try:
        folders = {box: [m for m in fetch_all(client, box) if marker in m] for box in ("INBOX", "Junk", "Filtered")}
    finally:
        client.logout()
    where = {}
    for box, messages in folders.items():
        for stored in messages:
            (name,) = [n for n, data in sent.items() if data.split(b"\r\n", 2)[1] in stored]
            where[name] = box
            start = stored.index(b"X-Test-Run: " + marker)
            assert b"Received: from " in stored[:start]            # Postfix's smtpd was on the way
            assert_passthrough(stored[:start] + sent[name], stored)
            assert stored.count(b"\r\nX-CRM114-Status: ") == 1
    assert where == {"1-good.eml": "Filtered", "2-spam.eml": "Junk"}
