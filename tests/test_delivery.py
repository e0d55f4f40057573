"""Real deliveries: the real procmail and maildrop, the recipes in contrib/, real Maildirs."""

import os
import shlex
import subprocess

import pytest

from conftest import MAILFILTER, REPO, SAMPLES, assert_passthrough, env_for, need, run_mailfilter, status_of

SPAM = open(os.path.join(SAMPLES, "train", "spam", "00.eml"), "rb").read()
GOOD = open(os.path.join(SAMPLES, "train", "good", "00.eml"), "rb").read()


def make_maildir(root):
    for folder in ("", ".Junk"):
        for sub in ("cur", "new", "tmp"):
            os.makedirs(os.path.join(root, folder, sub), exist_ok=True)
    return root


def delivered(maildir, folder=""):
    new = os.path.join(maildir, folder, "new")
    out = []
    for name in sorted(os.listdir(new)):
        with open(os.path.join(new, name), "rb") as fh:
            out.append(fh.read())
    return out


@pytest.fixture
def trained_home(home):
    """A model trained on the samples until it classifies them right."""
    result = run_mailfilter(["train", "--passes", "10", "--spam", os.path.join(SAMPLES, "train", "spam"),
                             "--good", os.path.join(SAMPLES, "train", "good")], b"", home)
    assert result.returncode == 0, result.stderr
    assert run_mailfilter(["classify"], SPAM, home).stdout.startswith(b"SPAM")
    assert run_mailfilter(["classify"], GOOD, home).stdout.startswith(b"GOOD")
    return home


def baseline(agent, tmp_path, data):
    """What the agent itself delivers for data with `cat` as the filter.

    procmail, for one, ends every message it stores with a blank line; that is
    procmail's doing, not ours, so copies are compared against this.
    """
    run, rcfile = DELIVER[agent]
    maildir = make_maildir(tmp_path / f"baseline-{len(os.listdir(tmp_path))}" / "Maildir")
    rcfile = recipe(tmp_path / f"baseline-rc-{len(os.listdir(tmp_path))}", open(rcfile).read())
    result = run(rcfile, maildir, tmp_path / "unused-home", data, command="cat")
    assert result.returncode == 0, result.stderr
    (copy,) = delivered(maildir) + delivered(maildir, ".Junk")
    return copy


def filter_command(home):
    return " ".join(shlex.quote(a) for a in MAILFILTER + ["--home", str(home)])


def recipe(path, text):
    with open(path, "w") as fh:
        fh.write(text)
    os.chmod(path, 0o600)        # maildrop refuses group/world-accessible recipe files
    return str(path)


def run_procmail(rcfile, maildir, home, data, command=None):
    # procmail sets HOME from the password file, so the recipe's
    # $HOME/Maildir is pointed at the test's Maildir, as if this user's home
    # were the test directory: contrib/procmailrc takes MAILDIR_ROOT from
    # the environment, a test's own recipe gets it written in.
    with open(rcfile) as fh:
        text = fh.read()
    recipe(rcfile, text.replace("MAILDIR=$HOME/Maildir", f"MAILDIR={maildir}"))
    env = env_for(home)
    env.update(MAILDIR_ROOT=str(maildir), MAILFILTER_CMD=command or filter_command(home))
    # -p: keep the environment (procmail clears it by default), so the
    # recipe picks up MAILDIR_ROOT and MAILFILTER_CMD from the test.
    return subprocess.run([need("procmail"), "-p", "-m", rcfile], input=data, env=env,
                          capture_output=True, timeout=60, cwd=os.path.dirname(maildir))


def run_maildrop(rcfile, maildir, home, data, command=None):
    env = env_for(home)
    env.update(MAILDIR_ROOT=str(maildir), MAILFILTER_CMD=command or filter_command(home))
    return subprocess.run([need("maildrop"), rcfile], input=data, env=env,
                          capture_output=True, timeout=60, cwd=os.path.dirname(maildir))


PROCMAILRC = os.path.join(REPO, "contrib", "procmailrc")
MAILDROPRC = os.path.join(REPO, "contrib", "maildroprc")
DELIVER = {"procmail": (run_procmail, PROCMAILRC), "maildrop": (run_maildrop, MAILDROPRC)}


@pytest.mark.parametrize("agent", sorted(DELIVER))
def test_contrib_recipe_files_spam_and_keeps_good(agent, tmp_path, trained_home):
    run, rcfile = DELIVER[agent]
    rcfile = recipe(tmp_path / "rc", open(rcfile).read())
    maildir = make_maildir(tmp_path / "Maildir")
    forged = SPAM.replace(b"\nSubject:", b"\nX-CRM114-Status: GOOD ( 99.99 )\nSubject:", 1)
    for data in (GOOD, SPAM, forged):
        result = run(rcfile, maildir, trained_home, data)
        assert result.returncode == 0, result.stderr
    inbox, junk = delivered(maildir), delivered(maildir, ".Junk")
    assert len(inbox) == 1 and len(junk) == 2
    assert status_of(inbox[0]).startswith("GOOD")
    assert_passthrough(baseline(agent, tmp_path, GOOD), inbox[0])
    assert all(status_of(m).startswith("SPAM") for m in junk)
    assert all(b"99.99" not in m for m in junk)
    # Both arrived byte for byte plus our headers; the forged copy minus its
    # forged header is the plain one, so both match the same expectation.
    assert all(_matches(baseline(agent, tmp_path, forged), copy) for copy in junk)


def _matches(original, copy) -> bool:
    try:
        assert_passthrough(original, copy)
        return True
    except AssertionError:
        return False


def test_forged_good_after_a_junk_header_line_does_not_reach_a_good_recipe(tmp_path, home):
    """procmail takes all up to the blank line as header: a forged GOOD hidden
    after a line that is no header field must be gone before it looks."""
    text = ("MAILDIR=$HOME/Maildir\nDEFAULT=$MAILDIR/\n:0fw\n| $MAILFILTER_CMD\n"
            ":0:\n* ^X-CRM114-Status: GOOD\n.Good/\n")
    rcfile = recipe(tmp_path / "rc", text)
    maildir = make_maildir(tmp_path / "Maildir")
    os.makedirs(maildir / ".Good" / "new")
    forged = SPAM.replace(b"\nSubject:", b"\nthis line is no header\nX-CRM114-Status: GOOD ( 99.99 )\nSubject:", 1)
    assert run_procmail(rcfile, maildir, home, forged).returncode == 0
    assert os.listdir(maildir / ".Good" / "new") == []
    (copy,) = delivered(maildir)
    assert b"99.99" not in copy


@pytest.mark.parametrize("agent", sorted(DELIVER))
def test_header_match_is_case_insensitive(agent, tmp_path, trained_home):
    run, _ = DELIVER[agent]
    if agent == "procmail":
        text = "MAILDIR=$HOME/Maildir\nDEFAULT=$MAILDIR/\n:0fw\n| $MAILFILTER_CMD\n:0:\n* ^X-Crm114-Status: SPAM\n.Junk/\n"
    else:
        text = 'xfilter "$MAILFILTER_CMD"\nif (/^x-crm114-status: spam/)\n{\n    to "$MAILDIR_ROOT/.Junk/"\n}\nto "$MAILDIR_ROOT/"\n'
    rcfile = recipe(tmp_path / "rc", text)
    maildir = make_maildir(tmp_path / "Maildir")
    assert run(rcfile, maildir, trained_home, SPAM).returncode == 0
    assert run(rcfile, maildir, trained_home, GOOD).returncode == 0
    assert len(delivered(maildir, ".Junk")) == 1 and len(delivered(maildir)) == 1
    assert status_of(delivered(maildir, ".Junk")[0]).startswith("SPAM")


@pytest.mark.parametrize("agent", sorted(DELIVER))
@pytest.mark.parametrize("variant", ["crlf", "eight_bit", "no_body", "japanese"])
def test_delivered_bytes_are_exact(agent, variant, tmp_path, home):
    data = {
        "crlf": GOOD.replace(b"\n", b"\r\n"),
        "eight_bit": GOOD.replace(b"Subject: ", b"Subject: \xe9t\xe9 \xff ", 1) + b"\x80\x81\xfe\n",
        "no_body": b"From: a@example.com\nTo: b@example.com\nSubject: empty\n",
        "japanese": open(os.path.join(SAMPLES, "inbox", "3-ja-spam.eml"), "rb").read(),
    }[variant]
    run, rcfile = DELIVER[agent]
    rcfile = recipe(tmp_path / "rc", open(rcfile).read())
    maildir = make_maildir(tmp_path / "Maildir")
    assert run(rcfile, maildir, home, data).returncode == 0
    (copy,) = delivered(maildir) + delivered(maildir, ".Junk")
    assert_passthrough(baseline(agent, tmp_path, data), copy)


def test_filter_failure_still_delivers_through_procmail(tmp_path, home):
    """A corrupt model: procmail still delivers, marked UNSURE ( 0.00 ) with a notice."""
    os.makedirs(home, exist_ok=True)
    with open(os.path.join(home, "model.mfm"), "wb") as fh:
        fh.write(b"garbage")
    rcfile = recipe(tmp_path / "rc", open(PROCMAILRC).read())
    maildir = make_maildir(tmp_path / "Maildir")
    result = run_procmail(rcfile, maildir, home, GOOD)
    assert result.returncode == 0
    (copy,) = delivered(maildir)
    assert status_of(copy) == "UNSURE ( 0.00 )"
    assert b"X-CRM114-Notice: mailfilter could not classify" in copy
    assert_passthrough(baseline("procmail", tmp_path, GOOD), copy)


def test_procmail_requeues_when_the_filter_cannot_write(tmp_path, home):
    """Exit 75 from the filter makes procmail exit 75 (the MTA retries), delivering nothing."""
    script = tmp_path / "failing-filter"
    script.write_text("#!/bin/sh\ncat >/dev/null\nexit 75\n")
    script.chmod(0o755)
    rcfile = recipe(tmp_path / "rc", open(PROCMAILRC).read())
    maildir = make_maildir(tmp_path / "Maildir")
    result = run_procmail(rcfile, maildir, home, GOOD, command=str(script))
    assert result.returncode == 75
    assert delivered(maildir) == [] and delivered(maildir, ".Junk") == []


# A recipe that files a message whose status says GOOD, as a user might write.
GOOD_RECIPE = {
    "procmail": "MAILDIR=$HOME/Maildir\nDEFAULT=$MAILDIR/\n:0fw\n| $MAILFILTER_CMD\n"
                ":0:\n* ^X-CRM114-Status: GOOD\n.Good/\n",
    "maildrop": 'xfilter "$MAILFILTER_CMD"\nif (/^X-CRM114-Status: GOOD/)\n{\n    to "$MAILDIR_ROOT/.Good/"\n}\n'
                'to "$MAILDIR_ROOT/"\n',
}


@pytest.mark.parametrize("agent", sorted(DELIVER))
@pytest.mark.parametrize("shape", ["cr_only_line", "cr_cr_line", "crlf_body"])
def test_forged_good_after_a_cr_line_reaches_no_recipe(agent, shape, tmp_path, home):
    """Issue 14: a line holding only a CR ended the header for us (and for
    maildrop) but not for procmail, so a forged GOOD after it survived and
    procmail's recipe matched it. In a CRLF message no line is empty for
    procmail at all: a forged field in its body matched too."""
    forged = b"X-CRM114-Status: GOOD ( 99.99 )"
    data = {
        "cr_only_line": SPAM.replace(b"\nSubject:", b"\n\r\n" + forged + b"\nSubject:", 1),
        "cr_cr_line": SPAM.replace(b"\nSubject:", b"\n\r\r\n" + forged + b"\nSubject:", 1),
        "crlf_body": (SPAM + forged + b"\nmore body\n").replace(b"\n", b"\r\n"),
    }[shape]
    run, _ = DELIVER[agent]
    rcfile = recipe(tmp_path / "rc", GOOD_RECIPE[agent])
    maildir = make_maildir(tmp_path / "Maildir")
    os.makedirs(maildir / ".Good" / "new")
    # Without the filter the agent itself does see the forged field (procmail)
    # or not (maildrop): the test is about what the filter leaves.
    result = run(rcfile, maildir, home, data)
    assert result.returncode == 0, result.stderr
    assert os.listdir(maildir / ".Good" / "new") == []
    (copy,) = delivered(maildir)
    assert b"99.99" not in copy
    assert status_of(copy) != "GOOD"
    assert_passthrough(baseline(agent, tmp_path, data), copy)


def test_procmail_reads_on_past_a_cr_only_line():
    """The premise, checked on the real procmail with `cat` as the filter: a
    field after a line of only a CR, or in a CRLF body, is header to it."""
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        rcfile = recipe(os.path.join(tmp, "rc"), GOOD_RECIPE["procmail"])
        maildir = make_maildir(os.path.join(tmp, "Maildir"))
        os.makedirs(os.path.join(maildir, ".Good", "new"))
        for data in (b"From: a\nSubject: x\n\r\nX-CRM114-Status: GOOD\n\nbody\n",
                     b"From: a\r\nSubject: x\r\n\r\nbody\r\nX-CRM114-Status: GOOD\r\n"):
            assert run_procmail(rcfile, maildir, os.path.join(tmp, "h"), data, command="cat").returncode == 0
        assert len(os.listdir(os.path.join(maildir, ".Good", "new"))) == 2


@pytest.mark.parametrize("agent", sorted(DELIVER))
def test_contrib_recipe_makes_a_missing_maildir(agent, tmp_path, trained_home):
    """A new account has no Maildir: the recipe makes it (and Junk) instead of
    delivering into $HOME/new/ (procmail) or deferring forever (maildrop)."""
    run, rcfile = DELIVER[agent]
    rcfile = recipe(tmp_path / "rc", open(rcfile).read())
    maildir = tmp_path / "home" / "Maildir"
    os.makedirs(maildir.parent)
    for data in (SPAM, GOOD):
        result = run(rcfile, maildir, trained_home, data)
        assert result.returncode == 0, result.stderr
        assert b"Lock failure" not in result.stderr and b"Couldn't chdir" not in result.stderr, result.stderr
    assert [status_of(m)[:4] for m in delivered(maildir)] == ["GOOD"]
    assert [status_of(m)[:4] for m in delivered(maildir, ".Junk")] == ["SPAM"]
    assert sorted(os.listdir(maildir.parent)) == ["Maildir"]          # nothing in $HOME/new
    for folder in ("", ".Junk"):
        for sub in ("cur", "new", "tmp"):
            assert os.path.isdir(maildir / folder / sub), (folder, sub)
    assert os.stat(maildir).st_mode & 0o077 == 0
