"""priolist.mfp: rules from real spam waves, forced verdicts, bad regexes."""

import os

from conftest import env_for, run_mailfilter, status_of, MAILFILTER
import subprocess

RULES = r"""# Rules from real spam waves.
-^X-Mailer: AOL 8\.0 for Windows US sub 307
-^X-Mailer: Douhou@Mail
# Spam that quotes the recipient's own address in a header of its own.
-^X-Info:.*${RECIPIENT}
# Our own domain's newsletter is always good.
+^From: .*@lists\.example\.org
"""


def message(extra: bytes, frm=b"someone@example.net") -> bytes:
    return b"From: " + frm + b"\nTo: me@example.com\nSubject: hello\n" + extra + b"\nplain text\n"


def with_rules(home, text=RULES):
    os.makedirs(home, exist_ok=True)
    (home / "priolist.mfp").write_text(text)


def test_aol_and_douhou_mailers_are_forced_spam(home):
    with_rules(home)
    for mailer in (b"AOL 8.0 for Windows US sub 307", b"Douhou@Mail"):
        out = run_mailfilter([], message(b"X-Mailer: " + mailer + b"\n"), home)
        assert status_of(out.stdout) == "SPAM ( -999.99 )"
    # Another AOL version is not that spam wave.
    out = run_mailfilter([], message(b"X-Mailer: AOL 9.0 for Windows US sub 307\n"), home)
    assert status_of(out.stdout) == "UNSURE ( 0.00 )"


def test_recipient_from_environment(home):
    with_rules(home)
    data = message(b"X-Info: sent to me@example.com by request\n")
    env = env_for(home)
    env["RECIPIENT"] = "me@example.com"
    out = subprocess.run(MAILFILTER, input=data, capture_output=True, env=env)
    assert status_of(out.stdout) == "SPAM ( -999.99 )"
    env["RECIPIENT"] = "other@example.com"
    out = subprocess.run(MAILFILTER, input=data, capture_output=True, env=env)
    assert status_of(out.stdout) == "UNSURE ( 0.00 )"


def test_recipient_from_delivered_to(home):
    with_rules(home)
    data = b"Delivered-To: me+tag@example.com\n" + message(b"X-Info: for me+tag@example.com\n")
    assert status_of(run_mailfilter([], data, home).stdout) == "SPAM ( -999.99 )"
    # Without any recipient the rule can't match.
    assert status_of(run_mailfilter([], message(b"X-Info: me@example.com\n"), home).stdout) == "UNSURE ( 0.00 )"


def test_recipient_is_matched_literally(home):
    with_rules(home)
    # "." in the address must not match any character.
    data = b"Delivered-To: a.b@example.com\n" + message(b"X-Info: aXb@example.com\n")
    assert status_of(run_mailfilter([], data, home).stdout) == "UNSURE ( 0.00 )"


def test_plus_rule_forces_good_and_first_match_wins(home):
    with_rules(home, "+^Subject: hello\n-^Subject: hello\n")
    assert status_of(run_mailfilter([], message(b""), home).stdout) == "GOOD ( +999.99 )"
    with_rules(home, RULES)
    out = run_mailfilter(["classify"], message(b"", frm=b"news@lists.example.org"), home)
    assert out.stdout == b"GOOD ( +999.99 )\n"


def test_rule_matches_folded_header(home):
    with_rules(home)
    data = message(b"X-Mailer:\n Douhou@Mail\n")
    assert status_of(run_mailfilter([], data, home).stdout) == "SPAM ( -999.99 )"


def test_bad_regex_names_the_line_and_mail_still_flows(home):
    with_rules(home, "# fine\n-^X-Mailer: Douhou@Mail\n-^Subject: (unclosed\nbogus line\n")
    out = run_mailfilter([], message(b"X-Mailer: Douhou@Mail\n"), home)
    assert out.returncode == 0
    rules = str(home / "priolist.mfp").encode()
    assert rules + b":3: bad regex" in out.stderr
    assert rules + b":4: a rule starts with + (good) or - (spam)" in out.stderr
    assert status_of(out.stdout) == "SPAM ( -999.99 )"       # the good rules still apply


def test_missing_rules_file_is_no_rules(home):
    assert run_mailfilter([], message(b""), home).stderr == b""
