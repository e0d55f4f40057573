"""Failures point somewhere: without syslog they go to the state directory's
mailfilter.log, and the X-CRM114-Notice in the mail names the file.

Issue 11: with no syslog socket and no procmail LOGFILE the cause of an
UNSURE ( 0.00 ) appeared nowhere. The filter here runs with no syslog:
this machine has no /dev/log; where one exists, a private mount namespace
covers it with /dev/null (root, as CI runs), so the same test holds there.
"""

import os
import subprocess

from conftest import MAILFILTER, assert_passthrough, env_for, status_of

MESSAGE = b"From: friend@example.com\nSubject: lunch\n\nSee you at noon.\n"


def without_syslog(argv):
    if not os.path.exists("/dev/log"):
        return list(argv)
    assert os.geteuid() == 0, "/dev/log exists: hiding it needs a mount namespace (root)"
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c",
            'mount --bind /dev/null /dev/log && exec "$@"', "sh", *argv]


def filter_message(home, data=MESSAGE):
    result = subprocess.run(without_syslog(MAILFILTER), input=data, capture_output=True,
                            env=env_for(home), timeout=60)
    assert result.returncode == 0, result.stderr
    return result


def corrupt(home):
    os.makedirs(home, exist_ok=True)
    with open(os.path.join(home, "model.mfm"), "wb") as fh:
        fh.write(b"MFMODEL\0 truncated")


def test_without_syslog_the_cause_goes_to_the_state_directory_and_the_notice_says_where(home):
    corrupt(home)
    result = filter_message(home)
    log = os.path.join(home, "mailfilter.log")
    assert_passthrough(MESSAGE, result.stdout)
    assert status_of(result.stdout) == "UNSURE ( 0.00 )"
    notice = f"X-CRM114-Notice: mailfilter could not classify this message; see {log}.".encode()
    assert notice in result.stdout, result.stdout
    text = open(log).read()
    assert "message passed through unclassified" in text and "truncated model file" in text, text
    assert os.stat(log).st_mode & 0o777 == 0o600
    filter_message(home)
    assert open(log).read().count("passed through unclassified") == 2


def test_the_log_file_is_bounded(home):
    corrupt(home)
    log = os.path.join(home, "mailfilter.log")
    with open(log, "wb") as fh:
        fh.write(b"old line\n" * 130000)                 # past 1 MiB
    filter_message(home)
    assert os.path.getsize(log + ".1") > 1 << 20
    assert "passed through unclassified" in open(log).read()


def test_with_nowhere_to_log_the_notice_says_so(tmp_path):
    """--home names a file: no state directory, no log file; the message
    still goes through, and the notice and stderr say what happened."""
    not_a_dir = tmp_path / "state"
    not_a_dir.write_bytes(b"")
    result = filter_message(not_a_dir)
    assert status_of(result.stdout) == "UNSURE ( 0.00 )"
    assert b"see the delivery program's error output (no syslog, no log file)." in result.stdout
    assert b"passed through unclassified" in result.stderr


def test_a_message_that_classifies_writes_no_log(home):
    result = filter_message(home)
    assert b"could not classify" not in result.stdout
    assert not os.path.exists(os.path.join(home, "mailfilter.log"))
