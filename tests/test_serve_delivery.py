"""The spamc recipes in contrib/ (procmailrc-spamc, maildroprc-spamc), run by
the real procmail and maildrop: through the daemon while it runs, through the
pipe filter when it doesn't, back to the MTA (75) when neither can."""

import os

import pytest

from conftest import assert_passthrough, need, status_of
from serve_daemon import Daemon
from test_delivery import (GOOD, REPO, SPAM, baseline, delivered, filter_command, make_maildir, recipe,
                           run_maildrop, run_procmail, trained_home)  # noqa: F401 - a fixture

RECIPES = {"procmail": (run_procmail, os.path.join(REPO, "contrib", "procmailrc-spamc")),
           "maildrop": (run_maildrop, os.path.join(REPO, "contrib", "maildroprc-spamc"))}
FORGED = SPAM.replace(b"\nSubject:", b"\nX-CRM114-Status: GOOD ( 99.99 )\nSubject:", 1)


def spamc_cmd(socket_path):
    return f"{need('spamc')} -x -U {socket_path} -s 52428800"


@pytest.mark.parametrize("agent", sorted(RECIPES))
def test_spamc_recipe_through_the_daemon_then_the_fallback(agent, tmp_path, trained_home, monkeypatch):
    run, rc_source = RECIPES[agent]
    def rcfile(phase):      # run_procmail writes the Maildir into the file: one per phase
        return recipe(tmp_path / f"rc-{phase}", open(rc_source).read())
    daemon = Daemon(tmp_path, trained_home).start()
    monkeypatch.setenv("SPAMC_CMD", spamc_cmd(daemon.socket))
    try:
        # The daemon answers: the pipe filter must not even be needed.
        up = make_maildir(tmp_path / "up" / "Maildir")
        for data in (GOOD, FORGED):
            r = run(rcfile("up"), up, trained_home, data, command="false")
            assert r.returncode == 0, r.stderr
    finally:
        daemon.stop()
    (good,), (spam,) = delivered(up), delivered(up, ".Junk")
    assert status_of(good).startswith("GOOD") and status_of(spam).startswith("SPAM")
    assert_passthrough(baseline(agent, tmp_path, GOOD), good)
    assert_passthrough(baseline(agent, tmp_path, FORGED), spam)
    assert b"99.99" not in spam

    # The daemon is gone: the pipe filter marks the mail instead.
    down = make_maildir(tmp_path / "down" / "Maildir")
    r = run(rcfile("down"), down, trained_home, FORGED, command=filter_command(trained_home))
    assert r.returncode == 0, r.stderr
    (fallback,) = delivered(down, ".Junk")
    assert fallback == spam                      # the same bytes either way

    # Neither can: the MTA gets 75 and keeps the message.
    none = make_maildir(tmp_path / "none" / "Maildir")
    r = run(rcfile("none"), none, trained_home, FORGED, command="false")
    assert r.returncode == 75, (r.returncode, r.stderr)
    assert delivered(none) == [] and delivered(none, ".Junk") == []
