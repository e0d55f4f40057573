"""Command mail, in-process: the secret, the cheap test, reading the command
and the forwarded message, the priolist edits, the failure log.

The deliveries through real procmail and maildrop are in
tests/test_command_delivery.py.
"""

import hmac
import os
import stat

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import commandmails
from conftest import CHARSET_CASES, SAMPLES, run_mailfilter
from mailfilter import commandmail, forwarded, pipeline, rules, view
from mailfilter.errors import ConfigError
from mailfilter.rawmail import scan_header
from mailfilter.state import State

SECRET = "k3p9w2xq7mfa8tzr4nbc"


# -- the secret --------------------------------------------------------------------------

def test_secret_matches_only_the_secret():
    assert commandmail.secret_matches(SECRET, SECRET)
    for wrong in ("", SECRET[:-1], SECRET + "x", SECRET.upper(), " " + SECRET, "x" * 1000, "日本語", "\udcff"):
        assert not commandmail.secret_matches(wrong, SECRET), wrong
    assert not commandmail.secret_matches("", "")            # no secret set: nothing matches


def test_secret_is_compared_in_constant_time(monkeypatch):
    """The comparison is hmac.compare_digest on two 32-byte hashes, whatever
    the guess: its time depends neither on where a guess first differs nor
    on its length. (The function is checked, not timed: rule 4.)"""
    calls = []
    real = hmac.compare_digest

    def spy(a, b):
        calls.append((type(a), len(a), len(b)))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    guesses = [SECRET, SECRET[:1], SECRET[:-1] + "x", "x" + SECRET[1:], "", "y" * 100_000, "日本語"]
    results = [commandmail.secret_matches(guess, SECRET) for guess in guesses]
    assert results == [True] + [False] * (len(guesses) - 1)
    assert calls == [(bytes, 32, 32)] * len(guesses)


def test_command_secret_makes_one_and_keeps_the_rest_of_the_config(tmp_path):
    state = State(str(tmp_path / "state")).ensure()
    with open(state.config_path, "w") as fh:
        fh.write("# mine\nspam_threshold = -2   # tuned\ngood_threshold = 1.5")      # no final newline
    os.chmod(state.config_path, 0o644)
    secret, created, problem = commandmail.ensure_secret(state)
    assert created and problem is None and len(secret) == commandmail.SECRET_LENGTH
    assert set(secret) <= set(commandmail.SECRET_ALPHABET)
    text = open(state.config_path).read()
    assert text.startswith("# mine\nspam_threshold = -2   # tuned\ngood_threshold = 1.5\n")
    assert f"\ncommand_secret = {secret}\n" in text
    assert stat.S_IMODE(os.stat(state.config_path).st_mode) == 0o600       # it holds a secret now
    assert commandmail.ensure_secret(state) == (secret, False, None)        # shown, not replaced
    newer, created, _ = commandmail.ensure_secret(state, new=True)
    assert created and newer != secret
    text = open(state.config_path).read()
    assert text.count("command_secret") == 1 and newer in text and secret not in text
    assert commandmail.configured_secret(state) == newer


def test_command_secret_refuses_a_bad_config_and_changes_nothing(tmp_path):
    home = tmp_path / "state"
    os.makedirs(home)
    (home / "mailfilter.conf").write_text("colour = blue\n")
    with pytest.raises(ConfigError):
        commandmail.ensure_secret(State(str(home)))
    assert (home / "mailfilter.conf").read_text() == "colour = blue\n"
    out = run_mailfilter(["command-secret"], b"", home)
    assert out.returncode == 78 and b"unknown key 'colour'" in out.stderr


def test_command_secret_command(tmp_path):
    home = tmp_path / "state"
    out = run_mailfilter(["command-secret"], b"", home)
    assert out.returncode == 0, out.stderr
    secret = commandmail.configured_secret(State(str(home)))
    assert f"command {secret} spam".encode() in out.stdout
    assert run_mailfilter(["command-secret", "--no-such-option"], b"", home).returncode == 64
    helped = run_mailfilter(["command-secret", "--help"], b"", home)
    assert helped.returncode == 0 and b"example" in helped.stdout and b"exit status" in helped.stdout


def test_a_secret_in_the_system_config_is_ignored(tmp_path, monkeypatch):
    system = tmp_path / "system.conf"
    system.write_text(f"command_secret = {SECRET}\n")
    import mailfilter.state
    monkeypatch.setattr(mailfilter.state, "SYSTEM_CONFIG", str(system))
    assert commandmail.configured_secret(State(str(tmp_path / "state")).ensure()) == ""


# -- the cheap test on every message -----------------------------------------------------

def _every_sample():
    for root in (SAMPLES, CHARSET_CASES):
        for folder, _, names in os.walk(root):
            for name in names:
                if not name.startswith("LICENSE"):
                    yield os.path.join(folder, name)


def test_ordinary_mail_does_not_look_like_a_command():
    paths = list(_every_sample())
    assert len(paths) > 80
    for path in paths:
        data = open(path, "rb").read()
        assert not pipeline.might_be_command(data, scan_header(data)), path


@pytest.mark.parametrize("data", [
    b"Subject: command x spam\n\nhi\n",
    b"Subject:   Command x spam\n\nhi\n",
    b"subject : COMMAND x spam\n\nhi\n",
    b"Subject: =?UTF-8?B?Y29tbWFuZCB4IHNwYW0=?=\n\nhi\n",             # "command x spam"
    b"Subject: =?iso-2022-jp?Q?command_x_spam?=\n\nhi\n",
    b"Subject: x\n\ncommand x spam\n",
    b"Subject: x\r\n\r\n\r\n  Command x spam\r\n",
    b"Subject: x\r\rcommand x spam\r",
    b"Subject: x\nContent-Transfer-Encoding: base64\n\nQ29tbWFuZCB4IHNwYW0K\n",   # "Command x spam\n"
    b'Subject: x\nContent-Type: multipart/mixed; boundary="b"\n\npreamble\n--b\n'
    b"Content-Type: text/plain\n\ncommand x spam\n--b--\n",
])
def test_command_forms_pass_the_cheap_test(data):
    assert pipeline.might_be_command(data, scan_header(data))


@pytest.mark.parametrize("data", [
    b"Subject: Re: command x spam\n\n> command x spam\n",
    b"Subject: x\n\nsee the command below\n",
    b"Subject: x\n\n" + b"a" * pipeline.COMMAND_WINDOW + b"\ncommand x spam\n",      # too far down
])
def test_not_command_forms(data):
    assert not pipeline.might_be_command(data, scan_header(data))


def test_the_filter_does_not_import_the_command_code_for_ordinary_mail(tmp_path):
    probe = ("import sys, runpy; sys.argv = ['mailfilter', '--home', %r]\n"
             "try:\n    runpy.run_module('mailfilter', run_name='__main__')\n"
             "except SystemExit:\n    pass\n"
             "sys.stderr.write('LOADED' if {'mailfilter.commandmail', 'mailfilter.forwarded'} & set(sys.modules)"
             " else 'NOT LOADED')\n"
             % str(tmp_path / "state"))
    import subprocess
    import sys
    from conftest import env_for
    for data, expected in ((open(os.path.join(SAMPLES, "inbox", "1-good.eml"), "rb").read(), b"NOT LOADED"),
                           (b"Subject: command x spam\n\nhi\n", b"LOADED")):
        out = subprocess.run([sys.executable, "-c", probe], input=data, capture_output=True,
                             env=env_for(tmp_path / "state"), timeout=60)
        assert out.stderr.endswith(expected), out.stderr


# -- reading the command -----------------------------------------------------------------

def _read(data):
    mail = forwarded.read_mail(data, scan_header(data))
    return mail, commandmail.command_lines(mail)


def test_command_in_subject_or_first_line():
    mail, (found, after) = _read(commandmails.plain("command s3cretpass spam", "Sent from my phone\n"))
    assert found == [("subject", "command s3cretpass spam")] and after.startswith("Sent from my phone")
    mail, (found, after) = _read(commandmails.plain("Fwd: x", "\n\nCommand s3cretpass good\nthe rest\n"))
    assert found == [("text", "Command s3cretpass good")] and after == "the rest\n"
    mail, (found, _) = _read(commandmails.plain("x", "hello\ncommand s3cretpass spam\n"))
    assert found == []                                   # not the first line: not a command
    mail, (found, _) = _read(commandmails.plain("command a spam", "command b good\n"))
    assert len(found) == 2


def test_command_line_of_a_japanese_phone_mail():
    body = "command　s3cretpass　spam\n".encode("iso2022_jp")     # ideographic spaces from a Japanese IME
    data = (b"Subject: =?ISO-2022-JP?B?GyRCRT5BVxsoQg==?=\nContent-Type: text/plain; charset=ISO-2022-JP\n\n" + body)
    _, (found, _) = _read(data)
    command = commandmail.parse_command(found[0][1], found[0][0])
    assert (command.secret, command.word, command.args) == ("s3cretpass", "spam", [])


@pytest.mark.parametrize("line,expected", [
    ("command s3cretpass spam", ("s3cretpass", "spam", [])),
    ("COMMAND s3cretpass Good", ("s3cretpass", "good", [])),
    ("command s3cretpass nonspam", ("s3cretpass", "good", [])),
    ("command s3cretpass undo", ("s3cretpass", "undo", [])),
    ("command s3cretpass maxprio -^From:.*@spam\\.example", ("s3cretpass", "maxprio", ["-^From:.*@spam\\.example"])),
    ("command s3cretpass spam good", ("s3cretpass", "spam", ["good"])),
    ("command spam", (None, "spam", [])),
    ("command delprio -x", (None, "delprio", ["-x"])),
    ("command line tools are great", ("line", None, ["are", "great"])),
    ("command s3cretpass", ("s3cretpass", None, [])),
])
def test_parse_command(line, expected):
    command = commandmail.parse_command(line, "text")
    assert (command.secret, command.word, command.args) == expected


def test_html_only_command_mail_keeps_its_lines():
    data = (b"Subject: Fwd: x\nContent-Type: text/html; charset=utf-8\n\n<html><body><div>command s3cretpass spam"
            b"</div><div><br></div><div>Begin forwarded message:</div><div>From: a@b</div></body></html>\n")
    _, (found, after) = _read(data)
    assert found == [("text", "command s3cretpass spam")] and "Begin forwarded message:" in after


def test_attached_messages_are_found_whole():
    original = open(os.path.join(SAMPLES, "inbox", "2-spam.eml"), "rb").read()
    for data in (commandmails.as_attachment("command s spam", [original]),
                 commandmails.as_attachment("command s spam", [original], eol=b"\r\n"),
                 commandmails.as_attachment("command s spam", [original], cte="base64"),
                 commandmails.as_attachment("command s spam", [original], filename="spam.eml")):
        mail, (found, after) = _read(data)
        assert found == [("subject", "command s spam")]
        (found_original,) = forwarded.originals_of(mail, after)
        assert found_original.how == "attached"
        expected = original.replace(b"\n", b"\r\n") if b"\r\n" in data and b"base64" not in data else original
        assert found_original.raw == expected


# -- inline forwards -----------------------------------------------------------------------

ORIGINAL = (b"From: Spammer <win@lottery.example>\nTo: me@example.org\nSubject: You won\n"
            b"Date: Sun, 1 Dec 2024 10:00:00 +0000\nContent-Type: text/plain\n\nClaim your prize today.\n"
            b"Reply with your bank details.\n")


@pytest.mark.parametrize("client", sorted(commandmails.CLIENTS))
def test_inline_forward_banners_and_header_names(client):
    text = commandmails.inline_text(None, ORIGINAL, client)
    inline = forwarded.inline_original(text)
    headers = dict(inline.headers)
    assert headers["From"] == "Spammer <win@lottery.example>" and headers["Subject"] == "You won"
    assert headers["To"] == "me@example.org" and "2024" in headers["Date"]
    assert inline.body == "Claim your prize today.\nReply with your bank details.\n"
    assert "Sent from my phone" not in inline.body        # what the user wrote above the banner goes


def test_inline_forward_drops_our_lines_and_keeps_the_cache_id():
    show = [("X-CRM114-Version", "mailfilter 0.1.0"), ("X-CRM114-CacheID", "sfid-0123456789abcdef"),
            ("X-CRM114-Status", "GOOD ( 2.50 )")]
    inline = forwarded.inline_original(commandmails.inline_text(None, ORIGINAL, "gmail", show))
    assert inline.cache_id == "0123456789abcdef"
    assert not any(name.lower().startswith("x-crm114") for name, _ in inline.headers)
    message = forwarded.inline_message(inline, "utf-8")
    assert b"X-CRM114" not in message and b"CRM114" not in message
    shown = [("Content-Type", "text/html; charset=shift_jis"), ("MIME-Version", "1.0"),
             ("Content-Transfer-Encoding", "base64"), ("Message-ID", "<orig@lottery.example>")]
    inline = forwarded.inline_original(commandmails.inline_text(None, ORIGINAL, "gmail", shown))
    message = forwarded.inline_message(inline, "utf-8")
    assert message.count(b"Content-Type:") == 1 and message.count(b"MIME-Version:") == 1
    assert b"base64" not in message and b"Message-ID: <orig@lottery.example>\n" in message


def test_inline_forward_quoted_and_without_banner():
    quoted = "\n".join("> " + line for line in commandmails.inline_text(None, ORIGINAL, "outlook").split("\n"))
    assert forwarded.inline_original(quoted).body.startswith("Claim your prize")
    pasted = "From: x@y\nSubject: pasted\n\nJust the text\n"
    inline = forwarded.inline_original(pasted)
    assert dict(inline.headers)["Subject"] == "pasted" and inline.body == "Just the text\n"
    note = "Note: this one got through\nand here is more\n"
    assert forwarded.inline_original(note).headers == []              # "Note:" is no header
    assert forwarded.inline_original("\n\n   \n") is None
    ended = "----- Forwarded message from x <x@y> -----\nSubject: s\n\nbody\n----- End forwarded message -----\n-- \nsig\n"
    assert forwarded.inline_original(ended).body == "body\n"


def test_inline_message_keeps_the_forwarding_charset_when_it_can():
    original = open(os.path.join(CHARSET_CASES, "iso_2022_jp_plain"), "rb").read()
    inline = forwarded.inline_original(commandmails.inline_text(None, original, "thunderbird-ja"))
    message = forwarded.inline_message(inline, "ISO-2022-JP")
    assert b'charset="iso-2022-jp"' in message and message.isascii()          # 7-bit JIS, as sent
    assert view.parse(message).texts[0].split() == view.parse(original).texts[0].split()
    assert b"charset=\"utf-8\"" in forwarded.inline_message(inline, "us-ascii")   # can't hold kanji


# -- priolist.mfp by mail --------------------------------------------------------------------

def test_priolist_edits(tmp_path):
    state = State(str(tmp_path / "state")).ensure()
    with open(state.rules_path, "w") as fh:
        fh.write("# my rules\n\n-^X-Mailer: Douhou@Mail\n+^From:.*@trusted\\.example\n")
    edit = commandmail.edit_priolist
    assert edit(state, "maxprio", "-^From:.*@spam\\.example") == (
        True, "priolist.mfp: -^From:.*@spam\\.example is now the first rule (SPAM when it matches)")
    assert edit(state, "minprio", "+^List-Id:") == (
        True, "priolist.mfp: +^List-Id: is now the last rule (GOOD when it matches)")
    assert edit(state, "maxprio", "-^From:.*@spam\\.example")[0] is False
    assert open(state.rules_path).read() == ("# my rules\n\n-^From:.*@spam\\.example\n-^X-Mailer: Douhou@Mail\n"
                                             "+^From:.*@trusted\\.example\n+^List-Id:\n")
    edit(state, "maxprio", "+^List-Id:")                  # moved to the top, not doubled
    assert open(state.rules_path).read().count("List-Id") == 1
    assert edit(state, "delprio", "^X-Mailer: Douhou@Mail")[0] is True           # without its sign
    assert edit(state, "delprio", "-^From:.*@spam\\.example")[0] is True
    assert edit(state, "delprio", "-^nothing") == (False, "no rule -^nothing in priolist.mfp; nothing changed")
    assert open(state.rules_path).read() == "# my rules\n\n+^List-Id:\n+^From:.*@trusted\\.example\n"
    rule_list, errors = rules.load(state.rules_path)
    assert len(rule_list) == 2 and not errors
    assert stat.S_IMODE(os.stat(state.rules_path).st_mode) == 0o600


@pytest.mark.parametrize("rule,complaint", [
    ("-^From:(unclosed", "bad regex"),
    ("-[z-a]", "bad regex"),
    ("^From:.*@spam", "+REGEX (good) or -REGEX (spam)"),
    ("-", "+REGEX (good) or -REGEX (spam)"),
])
def test_priolist_refuses_what_the_loader_would(tmp_path, rule, complaint):
    state = State(str(tmp_path / "state")).ensure()
    with pytest.raises(commandmail.CommandError) as err:
        commandmail.edit_priolist(state, "maxprio", rule)
    assert complaint in str(err.value)
    assert not os.path.exists(state.rules_path)
    assert [name for name in os.listdir(state.home) if name.startswith(".priolist")] == []


# -- failed secrets in the log ----------------------------------------------------------------

def test_failed_secrets_are_logged_rate_limited(tmp_path, capfd):
    state = State(str(tmp_path / "state")).ensure()
    mail = forwarded.CommandMail()
    mail.sender = "Eve <eve@example.net>\x1b[2J"
    start = 1_700_000_000.0
    counts = [commandmail.note_failure(state, mail, "wrong secret", now=start + i) for i in range(9)]
    assert counts == list(range(1, 10))
    lines = capfd.readouterr().err.splitlines()
    assert len(lines) == commandmail.FAILURES_LOGGED + 1
    assert all("wrong secret" in line and "eve@example.net" in line for line in lines[:-1])
    assert "\x1b" not in "".join(lines)                                  # nothing from mail reaches a terminal raw
    assert "counted, not logged" in lines[-1]
    commandmail.note_failure(state, mail, "wrong secret", now=start + commandmail.FAILURE_WINDOW + 1)
    lines = capfd.readouterr().err.splitlines()
    assert "9 failed secrets in the hour" in lines[0] and "guessing" in lines[0]
    assert "failure 1 this hour" in lines[1]


# -- any input: no exception ----------------------------------------------------------------
PREFIXES = [b"Subject: command s3cretpass spam\n\n",
            b"Subject: x\nContent-Type: multipart/mixed; boundary=b\n\n--b\n\ncommand s3cretpass spam\n--b\n"
            b"Content-Type: message/rfc822\nContent-Transfer-Encoding: base64\n\n",
            b"Subject: x\nContent-Type: text/html; charset=iso-2022-jp\nContent-Transfer-Encoding: quoted-printable\n\n"
            b"command s3cretpass spam<br>",
            b"Subject: =?utf-8?b?Y29tbWFuZCBzM2NyZXRwYXNzIHNwYW0=?=\nContent-Type: message/rfc822\n\n", b""]
LINES = ["command s3cretpass spam", "Command s3cretpass maxprio -x(", "", " ", "> quoted", ">", "\t folded",
         "---------- Forwarded message ---------", "-----Original Message-----", "Begin forwarded message:",
         "-------- 転送メッセージ --------", "_" * 32, "From: a <a@b>", "差出人：x", "件名: 日本語",
         "X-CRM114-CacheID: sfid-0123456789abcdef", "X-CRM114-Status: SPAM ( -1.00 )", "Content-Type: text/html",
         "----- End forwarded message -----", "Subject:", "=?utf-8?b?////?="]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(PREFIXES), st.binary(max_size=3000))
def test_reading_any_command_mail_never_raises(prefix, body):
    data = prefix + body
    block = scan_header(data)
    pipeline.might_be_command(data, block)
    mail = forwarded.read_mail(data, block)
    found, after = commandmail.command_lines(mail)
    for where, line in found:
        commandmail.parse_command(line, where)
    for original in forwarded.originals_of(mail, after):
        forwarded.describe(original.raw)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(LINES) | st.text(max_size=60), max_size=30),
       st.sampled_from(["utf-8", "iso-2022-jp", "us-ascii", "x-unknown", None]))
def test_any_inline_text_makes_a_message_or_nothing(lines, charset):
    inline = forwarded.inline_original("\n".join(lines))
    if inline is not None:
        message = forwarded.inline_message(inline, charset)
        assert scan_header(message).fields                # a message with a header
        assert b"X-CRM114" not in message.split(b"\n\n", 1)[0]
