"""`mailfilter check`: one line per finding, a fix with every problem.

Run here as the test's own account on a scratch HOME (the account's
passwd home is replaced by HOME only for what the tests control: --home,
--maildir and --trainer-config are given). A private Postfix config
(MAIL_CONFIG, read by the real postconf) says what mailbox_command is.
The end-to-end run, after a real install and real deliveries, is in
tests/test_system_install.py.
"""

import os
import re
import subprocess

from conftest import MAILFILTER, SAMPLES, env_for, need
from test_logging import without_syslog

LINE = re.compile(r"^(ok:      \S.*|problem: \S.*; fix: \S.*|problem: \S.*|\d+ problems? for \S+|nothing to fix for \S+)$")


def check(tmp_path, *extra, mailbox_command="/usr/bin/procmail -a \"$EXTENSION\""):
    etc = tmp_path / "postfix"
    etc.mkdir(exist_ok=True)
    (etc / "main.cf").write_text(f"compatibility_level = 3.6\nmailbox_command = {mailbox_command}\n")
    env = env_for(None)
    env["MAIL_CONFIG"] = str(etc)
    need("postconf")
    args = ["check", "--home", str(tmp_path / "state"), "--maildir", str(tmp_path / "Maildir"),
            "--trainer-config", str(tmp_path / "maildir-train.conf"), *extra]
    result = subprocess.run(without_syslog(MAILFILTER + args), capture_output=True, env=env, timeout=60)
    text = result.stdout.decode()
    for line in text.splitlines():
        assert LINE.match(line), line
    return result.returncode, text


def problems(text):
    return [line for line in text.splitlines() if line.startswith("problem:")]


def test_a_bare_account_gets_one_line_per_problem_each_with_a_fix(tmp_path):
    code, text = check(tmp_path, mailbox_command="")
    assert code == 1
    found = problems(text)
    assert any("does not hand mail to procmail or maildrop" in p and "mailbox_command" in p for p in found), text
    assert any("no model yet" in p and "mailfilter train --spam" in p for p in found), text
    assert any("no learn-spam / learn-good folders" in p for p in found), text
    assert all("; fix: " in p for p in found), found
    assert re.search(r"^\d+ problems for ", text, re.M)


def test_a_trained_state_with_the_trainer_listed_has_nothing_to_fix_but_the_recipe(tmp_path):
    state = tmp_path / "state"
    trained = subprocess.run(MAILFILTER + ["train", "--home", str(state), "--no-progress",
                                           "--spam", os.path.join(SAMPLES, "train", "spam"),
                                           "--good", os.path.join(SAMPLES, "train", "good")],
                             capture_output=True, env=env_for(None), timeout=120)
    assert trained.returncode == 0, trained.stderr
    for folder in ("", ".learn-spam", ".learn-good"):
        for sub in ("cur", "new", "tmp"):
            os.makedirs(tmp_path / "Maildir" / folder / sub)
    import pwd
    (tmp_path / "maildir-train.conf").write_text(f"{pwd.getpwuid(os.getuid()).pw_name}\n")
    code, text = check(tmp_path)
    assert re.search(r"^ok: +model .*features v\d+, generation 1, trained on \d+ spam and \d+ good$", text, re.M), text
    assert re.search(r"^ok: +state directory .*\(\w+, 0700\)$", text, re.M), text
    assert "ok:      Postfix delivers through: mailbox_command = /usr/bin/procmail" in text
    assert "is listed in" in text and "learn folders:" in text
    # The test's account has no recipe in its real home (tests don't touch it): that is all.
    others = [p for p in problems(text) if "recipe calls mailfilter" not in p]
    assert others == [], text


def test_a_model_from_other_features_says_rebuild(tmp_path):
    from mailfilter.atomicfile import replace
    from mailfilter.store import modelfile
    state = tmp_path / "state"
    os.makedirs(state, mode=0o700)
    model = modelfile.empty(10)
    model.trained_spam = model.trained_good = 3
    replace(str(state / "model.mfm"), modelfile.chunks(model, modelfile.FeatureIdentity(99, "other")))
    code, text = check(tmp_path)
    assert code == 1
    assert any("model written by features v99" in p and "fix: mailfilter rebuild" in p for p in problems(text)), text


def test_one_class_and_a_bad_config_line_are_problems(tmp_path):
    state = tmp_path / "state"
    learned = subprocess.run(MAILFILTER + ["learn", "--home", str(state), "--spam"],
                             input=open(os.path.join(SAMPLES, "train", "spam", "00.eml"), "rb").read(),
                             capture_output=True, env=env_for(None), timeout=60)
    assert learned.returncode == 0, learned.stderr
    (state / "mailfilter.conf").write_text("spam_threshold = -1.5\ngood_treshold = 1\n")
    code, text = check(tmp_path)
    assert any("learned no good mail yet" in p and "train --good" in p for p in problems(text)), text
    assert any(f"{state / 'mailfilter.conf'}:2: unknown key 'good_treshold'" in p for p in problems(text)), text


def test_a_failure_log_in_the_state_directory_is_pointed_at(tmp_path):
    state = tmp_path / "state"
    os.makedirs(state, mode=0o700)
    (state / "mailfilter.log").write_text("2026-01-01 mailfilter[1]: message passed through unclassified\n")
    code, text = check(tmp_path)
    assert any("mailfilter.log, which has entries" in p for p in problems(text)), text
