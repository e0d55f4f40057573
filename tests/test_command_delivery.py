"""Command mail through the real procmail and maildrop, with the recipes in contrib/.

A user forwards a message to themselves with `command SECRET spam|good|undo`
(or a priolist command): the filter learns it and the INBOX gets a report
instead of the command mail. Everything else, a wrong or missing secret, a
secret quoted in a reply, another user's secret, several commands, too big,
is delivered as the ordinary mail it is, and nothing is learned.
"""

import hashlib
import os
import re
import shutil
import sqlite3

import pytest

import commandmails
import hostile
from conftest import CHARSET_CASES, SAMPLES, assert_passthrough, run_mailfilter, train_on_samples
from mailfilter import commandmail, pipeline, view
from mailfilter.state import State
from mailfilter.trainingcache import TrainingCache
from test_delivery import DELIVER, baseline, delivered, make_maildir, recipe

INBOX_GOOD = open(os.path.join(SAMPLES, "inbox", "1-good.eml"), "rb").read()
INBOX_SPAM = open(os.path.join(SAMPLES, "inbox", "2-spam.eml"), "rb").read()


@pytest.fixture(scope="module")
def trained_state(tmp_path_factory):
    home = tmp_path_factory.mktemp("command") / "state"
    train_on_samples(home, passes=5)
    return home


def _user(trained_state, home):
    shutil.copytree(trained_state, home)
    secret, _, _ = commandmail.ensure_secret(State(str(home)))
    return home, secret


@pytest.fixture
def user(trained_state, tmp_path):
    """(state directory, secret) of a user with a trained model."""
    return _user(trained_state, tmp_path / "state")


def deliver(agent, tmp_path, home, data, maildir_name="Maildir"):
    run, rcfile = DELIVER[agent]
    rc = recipe(tmp_path / f"rc-{agent}", open(rcfile).read())
    maildir = make_maildir(tmp_path / maildir_name)
    result = run(rc, maildir, home, data)
    assert result.returncode == 0, result.stderr
    assert b"Traceback" not in result.stderr, result.stderr
    return maildir, result


def classify(home, data) -> str:
    out = run_mailfilter(["classify"], data, home)
    assert out.returncode == 0, out.stderr
    return out.stdout.decode().strip()


def fingerprint(home):
    """Everything a command could change: model, ledger, cache, rules."""
    def digest(name):
        path = os.path.join(home, name)
        return hashlib.sha256(open(path, "rb").read()).hexdigest() if os.path.exists(path) else None

    def rows(name, table):
        path = os.path.join(home, name)
        if not os.path.exists(path):
            return None
        db = sqlite3.connect(path)
        try:
            return sorted(db.execute(f"SELECT digest, label FROM {table}").fetchall())
        finally:
            db.close()
    return digest("model.mfm"), rows("ledger.sqlite", "trained"), rows("cache.sqlite", "taught"), digest("priolist.mfp")


def newest_cached(home):
    cache = TrainingCache(os.path.join(home, "cache.sqlite"), 10 ** 6, 10 ** 12)
    try:
        return list(cache.entries())[-1]
    finally:
        cache.close()


def the_report(maildir):
    """The one message in the INBOX, which must be our report; nothing in Junk."""
    assert delivered(maildir, ".Junk") == []
    (report,) = delivered(maildir)
    assert re.search(rb"(?m)^X-CRM114-Action: ", report), report[:600]
    assert not re.search(rb"(?m)^X-CRM114-Status: ", report)
    return report


def _pr(text: str) -> str:
    return text.split("(")[1].split(")")[0].strip()


# -- learning by forwarding ----------------------------------------------------------------

@pytest.mark.parametrize("agent", sorted(DELIVER))
def test_forwarded_as_attachment_is_learned_and_answered(agent, tmp_path, user):
    home, secret = user
    assert classify(home, INBOX_GOOD).startswith("GOOD")
    command_mail = commandmails.as_attachment(f"command {secret} spam", [INBOX_GOOD])
    maildir, _ = deliver(agent, tmp_path, home, command_mail)
    report = the_report(maildir)
    now = classify(home, INBOX_GOOD)
    assert now.startswith("SPAM")                                   # the original flips
    assert b"X-CRM114-Action: LEARNED SPAM" in report
    text = report.split(b"\n\n", 1)[1].decode()
    assert re.search(r"learned as spam: pR \+\d+\.\d\d → " + re.escape(_pr(now)) + "\n", text), text
    assert '"Re: patch review for the parser" from frank@example.org' in text
    assert "taken from the attachment" in text
    digest, label, learned = newest_cached(home)
    assert (label, learned) == ("spam", INBOX_GOOD)                 # the original, byte for byte
    assert f"sfid-{digest[:16]}" in text
    assert secret.encode() not in report                             # never written anywhere
    assert b"In-Reply-To: <cmd-1@example.org>" in report and b"Auto-Submitted: auto-replied" in report
    # The other way: a correction, as `learn` would make it.
    os.rename(os.path.join(maildir, "new"), os.path.join(tmp_path, "first-report"))
    os.makedirs(os.path.join(maildir, "new"))
    maildir, _ = deliver(agent, tmp_path, home, commandmails.as_attachment(f"Command {secret} good", [INBOX_GOOD]))
    assert b"corrected to good: pR" in the_report(maildir)
    assert classify(home, INBOX_GOOD).startswith("GOOD")


def test_the_same_command_twice_changes_nothing_the_second_time(tmp_path, user):
    home, secret = user
    command_mail = commandmails.as_attachment(f"command {secret} spam", [INBOX_SPAM], in_subject=False)
    deliver("procmail", tmp_path, home, command_mail)
    before = fingerprint(home)
    deliver("procmail", tmp_path, home, command_mail)
    assert fingerprint(home) == before
    reports = delivered(tmp_path / "Maildir")
    assert len(reports) == 2 and b"already learned as spam; nothing changed" in reports[0] + reports[1]


def test_several_messages_attached_are_all_learned(tmp_path, user):
    home, secret = user
    # Trained as good before: each one a correction.
    spams = [open(os.path.join(SAMPLES, "train", "good", name), "rb").read() for name in ("00.eml", "01.eml", "02.eml")]
    maildir, _ = deliver("procmail", tmp_path, home,
                         commandmails.as_attachment(f"command {secret} spam", spams, cte="base64"))
    report = the_report(maildir)
    assert b"Subject: mailfilter: 3 messages learned as spam" in report
    assert report.count(b"corrected to spam: pR") == 3 and report.count(b"it now classifies as SPAM") == 3


def test_undo_by_mail_takes_a_training_back(tmp_path, user):
    home, secret = user
    before = classify(home, INBOX_GOOD)
    deliver("procmail", tmp_path, home, commandmails.as_attachment(f"command {secret} spam", [INBOX_GOOD]))
    assert classify(home, INBOX_GOOD).startswith("SPAM")
    shutil.rmtree(tmp_path / "Maildir")
    maildir, _ = deliver("procmail", tmp_path, home, commandmails.as_attachment(f"command {secret} undo", [INBOX_GOOD]))
    report = the_report(maildir)
    assert b"X-CRM114-Action: UNDONE" in report and b"undone (it was taught as spam)" in report
    assert classify(home, INBOX_GOOD) == before                      # the score it had, to the hundredth
    shutil.rmtree(maildir)
    maildir, _ = deliver("procmail", tmp_path, home, commandmails.as_attachment(f"command {secret} undo", [INBOX_GOOD]))
    assert b"nothing to undo: this message was never taught" in the_report(maildir)


# -- inline forwards from the charset cases ------------------------------------------------------

INLINE_CASES = [
    # fixture, client, charset and transfer encoding of the forward
    ("iso_2022_jp_plain", "thunderbird-ja", "iso-2022-jp", "7bit"),
    ("euc_plain_iso_2022_jp", "apple-ja", "iso-2022-jp", "7bit"),
    ("sjis_plain_iso_2022_jp", "outlook-ja", "iso-2022-jp", "7bit"),
    ("sjis_base64_iso_2022_jp", "gmail", "utf-8", "base64"),
    ("mime_b_iso_2022_jp", "apple", "utf-8", "quoted-printable"),
    ("mime_q_iso_2022_jp", "thunderbird-ja", "iso-2022-jp", "7bit"),
    ("mime_b_shift_jis", "outlook", "shift_jis", "8bit"),
    ("utf8_base64", "gmail", "utf-8", "base64"),
    ("utf8_plain", "apple", "utf-8", "8bit"),
    ("gb18030_base64_gb2312", "outlook", "utf-8", "8bit"),
    ("iso_8895_1_plain", "thunderbird", "iso-8859-1", "quoted-printable"),
    ("html", "outlook-web", "utf-8", "8bit"),
    ("crlf", "gmail", "utf-8", "7bit"),
]


def _words(text: str):
    return text.split()


@pytest.mark.parametrize("fixture,client,charset,cte", INLINE_CASES, ids=[c[0] for c in INLINE_CASES])
def test_inline_forward_learns_the_original_text(fixture, client, charset, cte, tmp_path, user):
    home, secret = user
    original = open(os.path.join(CHARSET_CASES, fixture), "rb").read()
    command_mail = commandmails.inline(f"command {secret} spam", original, client, charset, cte)
    maildir, _ = deliver("procmail", tmp_path, home, command_mail)
    report = the_report(maildir)
    assert b"learned as spam" in report and b"taken from the text forwarded inline" in report
    digest, label, learned = newest_cached(home)
    assert label == "spam" and digest[:16].encode() in report
    headers, text = commandmails.decoded(original)
    learned_headers, learned_text = commandmails.decoded(learned)
    assert _words(learned_text) == _words(text)                    # the original's text, not the forward's
    for name in ("subject", "from", "to"):
        assert learned_headers.get(name, "") == headers.get(name, ""), name
    assert "Sent from my phone" not in view.parse(learned).texts[0]
    assert b"X-CRM114" not in learned and secret.encode() not in learned


def test_inline_forward_through_maildrop_with_the_command_in_the_subject(tmp_path, user):
    home, secret = user
    original = open(os.path.join(CHARSET_CASES, "iso_2022_jp_plain"), "rb").read()
    command_mail = commandmails.inline(f"command {secret} spam", original, "thunderbird-ja", "iso-2022-jp",
                                       "7bit", in_subject=True)
    maildir, _ = deliver("maildrop", tmp_path, home, command_mail)
    assert b"learned as spam" in the_report(maildir)
    _, label, learned = newest_cached(home)
    assert _words(commandmails.decoded(learned)[1]) == _words(commandmails.decoded(original)[1])
    assert b'charset="iso-2022-jp"' in learned                    # kept in the charset it was forwarded in


def test_a_cached_original_is_trained_byte_for_byte(tmp_path, user):
    """The forward carries the X-CRM114-CacheID of a message in the training
    cache: that cached text is what is trained, not the inline copy."""
    home, secret = user
    maildir, _ = deliver("procmail", tmp_path, home, INBOX_GOOD, "Delivered")
    (copy,) = delivered(maildir)
    assert run_mailfilter(["learn", "--good"], copy, home).returncode == 0
    digest, label, cached = newest_cached(home)
    assert label == "good"
    shown = [tuple(line.split(": ", 1)) for line in copy.decode().split("\n\n")[0].split("\n")
             if line.startswith("X-CRM114-")]
    assert ("X-CRM114-CacheID", "sfid-" + digest[:16]) in shown
    entries_before = len(fingerprint(home)[2])
    maildir, _ = deliver("procmail", tmp_path, home,
                         commandmails.inline(f"command {secret} spam", copy, "gmail", show=shown))
    report = the_report(maildir)
    assert b"corrected to spam" in report and b"taken from the training cache, byte for byte" in report
    assert newest_cached(home) == (digest, "spam", cached)          # the same bytes, relabelled
    assert len(fingerprint(home)[2]) == entries_before              # no copy of the inline text
    assert classify(home, INBOX_GOOD).startswith("SPAM")


# -- priolist.mfp by mail --------------------------------------------------------------------

def test_priolist_commands_by_mail(tmp_path, user):
    home, secret = user
    rule = r"-^Subject:.*patch\sreview"

    def command(line):
        shutil.rmtree(tmp_path / "Maildir", ignore_errors=True)
        maildir, _ = deliver("procmail", tmp_path, home, commandmails.plain(line, "Sent from my phone\n"))
        return the_report(maildir)

    report = command(f"command {secret} maxprio {rule}")
    assert b"X-CRM114-Action: PRIOLIST MAXPRIO" in report and b"is now the first rule" in report
    assert classify(home, INBOX_GOOD) == "SPAM ( -999.99 )"
    report = command(f"command {secret} delprio {rule}")
    assert b"removed from priolist.mfp" in report
    assert classify(home, INBOX_GOOD).startswith("GOOD")
    before = fingerprint(home)
    report = command(f"command {secret} minprio -^From:(unclosed")
    assert b"X-CRM114-Action: REFUSED" in report and b"bad regex" in report
    assert fingerprint(home) == before


# -- everything else is ordinary mail ----------------------------------------------------------

def _not_commands(secret, other_secret):
    original = INBOX_SPAM
    return {
        "wrong secret": commandmails.as_attachment(f"command {secret[:-1]}x spam", [original]),
        "missing secret": commandmails.as_attachment("command spam", [original]),
        "secret quoted in a reply": commandmails.plain(
            "Re: mailfilter: learned as spam",
            f"Thanks, that worked.\n\nOn Monday you wrote:\n> command {secret} spam\n> ---------- Forwarded message"
            f" ---------\n> From: win@lottery.example\n"),
        "reply keeping the subject": commandmails.plain(f"Re: command {secret} spam", "Did it work?\n"),
        "not the first line": commandmails.plain("a note", f"Hi,\n\ncommand {secret} spam\n"),
        "another user's secret": commandmails.as_attachment(f"command {other_secret} spam", [original]),
        "ordinary text": commandmails.plain("tools", "Command line tools are great.\n"),
    }


NOT_COMMANDS = ["wrong secret", "missing secret", "secret quoted in a reply", "reply keeping the subject",
                "not the first line", "another user's secret", "ordinary text"]


@pytest.mark.parametrize("agent", sorted(DELIVER))
@pytest.mark.parametrize("case", NOT_COMMANDS)
def test_anything_else_is_delivered_as_ordinary_mail(case, agent, tmp_path, trained_state):
    home, secret = _user(trained_state, tmp_path / "alice")
    other, other_secret = _user(trained_state, tmp_path / "bob")
    data = _not_commands(secret, other_secret)[case]
    before, other_before = fingerprint(home), fingerprint(other)
    maildir, result = deliver(agent, tmp_path, home, data)
    copies = delivered(maildir) + delivered(maildir, ".Junk")
    assert len(copies) == 1
    assert_passthrough(baseline(agent, tmp_path, data), copies[0])    # as it came, plus our headers
    assert fingerprint(home) == before and fingerprint(other) == other_before
    refused = case in ("wrong secret", "missing secret", "another user's secret")
    assert (b"nothing learned (failure 1 this hour)" in result.stderr) == refused, result.stderr
    assert secret.encode() not in result.stderr and other_secret.encode() not in result.stderr


def test_without_a_secret_set_command_mail_is_off(tmp_path, trained_state):
    home = tmp_path / "state"
    shutil.copytree(trained_state, home)
    data = commandmails.as_attachment("command anything12 spam", [INBOX_SPAM])
    before = fingerprint(home)
    out = run_mailfilter([], data, home)
    assert out.returncode == 0 and b"no command_secret is set" in out.stderr
    assert_passthrough(data, out.stdout)
    assert fingerprint(home) == before


def test_a_secret_too_short_turns_command_mail_off(tmp_path, trained_state):
    home = tmp_path / "state"
    shutil.copytree(trained_state, home)
    (home / "mailfilter.conf").write_text("command_secret = 1234\n")
    helped = run_mailfilter(["command-secret"], b"", home)
    assert helped.returncode == 0 and b"shorter than 8 characters" in helped.stderr and b"--new" in helped.stderr
    data = commandmails.as_attachment("command 1234 spam", [INBOX_SPAM])
    before = fingerprint(home)
    out = run_mailfilter([], data, home)
    assert b"shorter than 8 characters, so command mail is off" in out.stderr
    assert_passthrough(data, out.stdout)
    assert fingerprint(home) == before


@pytest.mark.parametrize("case", ["several commands", "two command words", "too big"])
def test_limits_make_it_ordinary_mail_and_say_why(case, tmp_path, user):
    home, secret = user
    big = INBOX_SPAM + b"padding padding padding\n" * 12000            # ~300 KB: over 256 KiB of body
    data, reason = {
        "several commands": (commandmails.as_attachment(f"command {secret} spam", [INBOX_SPAM])
                             .replace(b"format=flowed\nContent-Transfer-Encoding: 7bit\n\n",
                                      f"format=flowed\nContent-Transfer-Encoding: 7bit\n\ncommand {secret} good"
                                      .encode()), b"several commands (2)"),
        "two command words": (commandmails.as_attachment(f"command {secret} spam good", [INBOX_SPAM]),
                              b"several commands (spam followed by good)"),
        "too big": (commandmails.as_attachment(f"command {secret} spam", [big]), b"over the size limit"),
    }[case]
    before = fingerprint(home)
    out = run_mailfilter([], data, home)
    assert out.returncode == 0 and reason in out.stderr, out.stderr
    assert_passthrough(data, out.stdout)
    assert fingerprint(home) == before


def test_unknown_command_word_with_the_right_secret_is_answered(tmp_path, user):
    home, secret = user
    out = run_mailfilter([], commandmails.plain(f"command {secret} spma", "oops\n"), home)
    assert out.returncode == 0 and b"X-CRM114-Action: REFUSED" in out.stdout
    assert b"no known command word" in out.stdout


def test_nothing_forwarded_is_answered_not_learned(tmp_path, user):
    home, secret = user
    before = fingerprint(home)
    out = run_mailfilter([], commandmails.plain(f"command {secret} spam", ""), home)
    assert b"X-CRM114-Action: REFUSED" in out.stdout and b"no forwarded message found" in out.stdout
    assert fingerprint(home) == before


# -- hostile input with a valid command -------------------------------------------------------

@pytest.fixture(scope="module")
def hostile_user(trained_state, tmp_path_factory):
    return _user(trained_state, tmp_path_factory.mktemp("hostile-command") / "state")


@pytest.mark.parametrize("form", ["subject", "attached"])
@pytest.mark.parametrize("case", hostile.CASES, ids=lambda c: c.name)
def test_hostile_mail_with_a_valid_command_is_learned_or_refused_never_lost(case, form, hostile_user, capfd):
    """The hostile corpus, each case with a valid command: as the command
    mail itself (the command in its subject) and forwarded as an attachment.
    Either the report comes back or the mail goes through as it was; no
    exception, and never the safety net (that would be a bug caught late).

    In-process, through the pipeline and hook the pipe filter runs (the
    deliveries above run the real command): 140 interpreter start-ups cost
    30 s where this costs a few."""
    home, secret = hostile_user
    message = case.build(case.small)
    if form == "subject":
        data = f"Subject: command {secret} spam\n".encode() + message
    else:
        data = commandmails.as_attachment(f"command {secret} spam", [message])
    out, outcome = pipeline.filter_bytes(data, pipeline.user_classifier(str(home)),
                                         commands=pipeline.user_commands(str(home)))
    log = capfd.readouterr().err
    assert "passed on as ordinary mail" not in log and "could not classify" not in log, log
    if re.match(rb"(From [^\n]*\n)?From: mailfilter <MAILER-DAEMON@", out):
        assert re.search(rb"\nX-CRM114-Action: (LEARNED SPAM|REFUSED)\n", out), out[:800]
        assert outcome.verdict.label == "GOOD"
    else:
        assert_passthrough(data, out)
