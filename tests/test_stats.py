"""`mailfilter stats`, the ledger's subject and sender columns, and the verdict counters.

Issue 11: an admin expects what `sa-learn --dump magic` and `rspamc stat`
give: messages trained per class, the model's generation and age, the
recent learns with their dates and labels (so the ledger keeps the subject
and the sender's domain beside the digest), verdict counts, and --json.
The commands run as real processes on real state directories.
"""

import json
import os
import sqlite3
import stat
import subprocess
import time

import pytest

from conftest import MAILFILTER, SAMPLES, env_for, need, run_mailfilter
from mailfilter import ledgerfields, verdicts
from mailfilter.store import ledger as ledger_module
from test_root_safety import user  # noqa: F401 - the fixture: a real account made with useradd

SPAM_DIR = os.path.join(SAMPLES, "train", "spam")
GOOD_DIR = os.path.join(SAMPLES, "train", "good")


def message(subject: bytes, sender: bytes, body: bytes = b"hello there\n") -> bytes:
    return b"From: " + sender + b"\nTo: me@example.org\nSubject: " + subject + b"\n\n" + body


def learn(home, data, label):
    done = run_mailfilter(["learn", f"--{label}"], data, home=home)
    assert done.returncode == 0, done.stderr
    return done


def stats(home, *args):
    done = run_mailfilter(["stats", *args], home=home)
    assert done.returncode == 0, done.stderr.decode()
    return json.loads(done.stdout) if "--json" in args else done.stdout.decode()


# -- the ledger's new fields ---------------------------------------------------------------------

def test_learns_are_listed_newest_first_with_decoded_subject_and_sender_domain(home):
    learn(home, message(b"=?ISO-2022-JP?B?GyRCJUYlOSVIGyhC?= offer", b"Deals <promo@Mail.Spam-Shop.example>",
                        b"cheap pills casino bonus\n"), "spam")
    time.sleep(0.01)
    learn(home, message(b"Minutes of the planning meeting", b"ann@work.example.org"), "good")
    info = stats(home, "--json")
    assert info["trained"] == {"spam": 1, "good": 1}
    recent = info["recent"]
    assert [(e["label"], e["sender_domain"], e["subject"]) for e in recent] == [
        ("good", "work.example.org", "Minutes of the planning meeting"),
        ("spam", "mail.spam-shop.example", "\u30c6\u30b9\u30c8 offer"),     # decoded ISO-2022-JP
    ]
    assert recent[0]["trained_at"] >= recent[1]["trained_at"]
    assert recent[0]["time"][:10] == time.strftime("%Y-%m-%d")
    text = stats(home)
    assert "trained:   1 spam, 1 good messages" in text
    lines = text.splitlines()
    first = lines.index("recent learns, newest first:")
    assert "good  work.example.org" in lines[first + 1] and "Minutes of the planning" in lines[first + 1]
    assert "spam  mail.spam-shop.example" in lines[first + 2]


def test_a_correction_moves_the_message_to_the_other_class(home):
    data = message(b"Quarterly report", b"boss@work.example.org")
    learn(home, data, "spam")
    learn(home, data, "good")
    info = stats(home, "--json")
    assert info["trained"] == {"spam": 0, "good": 1}
    assert [e["label"] for e in info["recent"]] == ["good"]


def test_a_hostile_subject_cannot_steer_the_admins_terminal():
    nasty = "\x1b]0;owned\x07\x1b[2J Win \u202ebig\u202c\r\n\tnow " + "x" * 200
    cleaned = ledgerfields.clean(nasty, 80)
    assert len(cleaned) == 80 and cleaned.endswith("\u2026")
    assert not any(ord(c) < 0x20 or 0x7f <= ord(c) <= 0x9f or c in "\u202e\u202c" for c in cleaned)
    assert cleaned.startswith("]0;owned [2J Win big now x")


@pytest.mark.parametrize("value, domain", [
    ("Ann <ann@Work.Example.ORG>", "work.example.org"),
    ("ann@work.example.org (Ann)", "work.example.org"),
    ('"a@fake.example" <real@true.example>', "true.example"),
    ("\u5c71\u7530 <taro@\u4f8b\u3048.jp>", "xn--r8jz45g.jp"),
    ("undisclosed-recipients:;", None),
    ("x@bad_domain!.example", None),
    ("", None),
])
def test_sender_domain(value, domain):
    assert ledgerfields.domain_of(value) == domain


def test_a_long_subject_is_kept_to_80_characters(home):
    learn(home, message(b"Subject " + b"word " * 40, b"a@b.example"), "good")
    (entry,) = stats(home, "--json")["recent"]
    assert len(entry["subject"]) == 80 and entry["subject"].startswith("Subject word word")


OLD_SCHEMA = """
CREATE TABLE trained (
    digest TEXT PRIMARY KEY,
    label TEXT NOT NULL CHECK (label IN ('spam', 'good')),
    trained_at REAL NOT NULL,
    pr_before REAL,
    generation INTEGER NOT NULL
);
"""


def test_a_ledger_from_before_is_read_as_it_is_and_migrated_by_the_next_learn(home):
    """What an existing user's ledger looks like after the upgrade."""
    learn(home, message(b"seed", b"a@seed.example"), "good")       # a model at generation 1
    path = os.path.join(home, "ledger.sqlite")
    os.remove(path)
    db = sqlite3.connect(path)
    db.executescript(OLD_SCHEMA)
    db.execute("INSERT INTO trained VALUES ('old-digest', 'spam', 1700000000.0, -0.5, 1)")
    db.commit()
    db.close()
    info = stats(home, "--json")
    assert info["trained"] == {"spam": 1, "good": 0}
    assert info["recent"][0]["digest"] == "old-digest" and info["recent"][0]["subject"] is None
    db = sqlite3.connect(path)
    columns = [row[1] for row in db.execute("PRAGMA table_info(trained)")]
    db.close()
    assert "subject" not in columns                  # stats read it and changed nothing
    learn(home, message(b"After the upgrade", b"new@new.example"), "spam")
    info = stats(home, "--json")
    assert info["trained"] == {"spam": 2, "good": 0}
    assert [(e["digest"] == "old-digest", e["subject"], e["sender_domain"]) for e in info["recent"]] == [
        (False, "After the upgrade", "new.example"), (True, None, None)]
    assert "(no subject recorded)" in stats(home)


def test_rebuild_keeps_subjects_and_the_times_they_were_taught(home):
    learn(home, message(b"Spammy thing", b"x@spam.example", b"casino bonus\n"), "spam")
    learn(home, message(b"Lunch on Friday", b"y@work.example"), "good")
    before = stats(home, "--json")["recent"]
    done = run_mailfilter(["rebuild"], home=home)
    assert done.returncode == 0, done.stderr
    after = stats(home, "--json")["recent"]
    assert [(e["digest"], e["label"], e["subject"], e["sender_domain"], e["trained_at"]) for e in after] == \
        [(e["digest"], e["label"], e["subject"], e["sender_domain"], e["trained_at"]) for e in before]


# -- the model -------------------------------------------------------------------------------------

def distinct(directory):
    from mailfilter.rawmail import content_digest, strip_our_headers
    digests = set()
    for name in os.listdir(directory):
        with open(os.path.join(directory, name), "rb") as fh:
            digests.add(content_digest(strip_our_headers(fh.read())))
    return len(digests)


def test_model_generation_age_and_update_counts(home):
    done = run_mailfilter(["train", "--spam", SPAM_DIR, "--good", GOOD_DIR, "--no-progress"], home=home)
    assert done.returncode == 0, done.stderr
    os.utime(os.path.join(home, "model.mfm"), (time.time() - 7200, time.time() - 7200))
    info = stats(home, "--json")
    spam_n, good_n = distinct(SPAM_DIR), distinct(GOOD_DIR)       # the samples hold a few duplicates
    assert info["trained"] == {"spam": spam_n, "good": good_n}
    model = info["model"]
    assert model["generation"] == 1 and model["feature_version"] >= 1 and model["features_current"]
    assert 7100 < model["age_seconds"] < 7400 and model["size"] == os.path.getsize(os.path.join(home, "model.mfm"))
    assert 0 < info["model_updates"]["spam"] <= spam_n and 0 < info["model_updates"]["good"] <= good_n
    assert len(info["recent"]) == 10 and info["problems"] == []
    assert len(stats(home, "--json", "--recent", "3")["recent"]) == 3
    text = stats(home)
    assert "model:     generation 1, features v" in text and "(2 h ago)" in text


def test_a_model_of_other_features_is_shown_with_the_way_out(home):
    learn(home, message(b"x", b"a@b.example"), "spam")
    path = os.path.join(home, "model.mfm")
    with open(path, "r+b") as fh:
        fh.seek(40)
        fh.write((99).to_bytes(4, "little"))
    info = stats(home, "--json")
    assert info["model"]["feature_version"] == 99 and info["model"]["features_current"] is False
    assert any("run `mailfilter rebuild`" in p for p in info["problems"])
    assert info["trained"]["spam"] == 1                              # the ledger still shows


# -- verdict counts --------------------------------------------------------------------------------

def filter_message(home, data):
    done = run_mailfilter([], data, home=home)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_filter_counts_each_verdict_and_stats_shows_them(home):
    done = run_mailfilter(["train", "--spam", SPAM_DIR, "--good", GOOD_DIR, "--passes", "3", "--no-progress"],
                          home=home)
    assert done.returncode == 0, done.stderr
    inbox = os.path.join(SAMPLES, "inbox")
    labels = []
    for name in sorted(os.listdir(inbox)):
        with open(os.path.join(inbox, name), "rb") as fh:
            out = filter_message(home, fh.read())
        labels.append(out.split(b"X-CRM114-Status: ", 1)[1].split(b" ", 1)[0].decode().lower())
    out = filter_message(home, b"")                       # an empty message: still a verdict
    labels.append(out.split(b"X-CRM114-Status: ", 1)[1].split(b" ", 1)[0].decode().lower())
    info = stats(home, "--json")
    want = {k: labels.count(k) for k in ("spam", "good", "unsure")}
    assert info["verdicts"]["total"] == dict(want, failed=0, command=0)
    month = time.strftime("%Y-%m", time.gmtime())
    assert info["verdicts"]["months"] == {month: info["verdicts"]["total"]}
    assert f"verdicts:  {len(labels)} messages: {want['spam']} SPAM, {want['good']} GOOD" in stats(home)


def test_a_failed_classification_is_counted_as_such(home):
    os.makedirs(home)
    with open(os.path.join(home, "mailfilter.conf"), "w") as fh:
        fh.write("spam_threshold = banana\n")
    out = filter_message(home, message(b"hi", b"a@b.example"))
    assert b"UNSURE ( 0.00 )" in out
    assert verdicts.counts(str(home))["total"]["failed"] == 1


def test_many_filters_at_once_lose_no_count(home):
    """procmail starts one filter per message: 24 at once, one byte each."""
    learn(home, message(b"seed", b"a@b.example"), "good")
    data = message(b"Status report", b"c@d.example")
    procs = [subprocess.Popen(MAILFILTER, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, env=env_for(home)) for _ in range(24)]
    for proc in procs:
        proc.stdin.write(data)
        proc.stdin.close()
    for proc in procs:
        assert proc.stdout.read().endswith(b"hello there\n")
        assert proc.wait(timeout=120) == 0
    assert sum(verdicts.counts(str(home))["total"].values()) == 24


def test_the_daemon_counts_what_it_classifies_for_spamc(home, tmp_path):
    """`mailfilter serve` (spamc) marks mail in place of the pipe filter, so
    it counts the same way; TELL and PING are not verdicts."""
    from serve_daemon import Daemon, spamc
    need("spamc")
    learn(home, message(b"seed", b"a@b.example"), "good")
    daemon = Daemon(tmp_path, home).start()
    try:
        for n in range(3):
            assert spamc(daemon.socket, data=message(b"Hello %d" % n, b"c@d.example")).returncode == 0
        assert spamc(daemon.socket, ["--headers"], message(b"Headers", b"c@d.example")).returncode == 0
        assert spamc(daemon.socket, ["-c"], message(b"Check", b"c@d.example")).returncode in (0, 1)
        assert spamc(daemon.socket, ["-L", "ham"], message(b"Told", b"c@d.example")).returncode in (0, 5, 6)
    finally:
        assert daemon.stop() == 0, daemon.log()
    assert sum(verdicts.counts(str(home))["total"].values()) == 5


@pytest.mark.parametrize("trap", ["directory", "fifo"])
def test_a_counter_that_cannot_be_written_never_stops_the_mail(home, trap):
    learn(home, message(b"seed", b"a@b.example"), "good")
    name = os.path.join(home, verdicts.file_name())
    if trap == "directory":
        os.mkdir(name)
    else:
        os.mkfifo(name, 0o600)        # opening it for writing would block without O_NONBLOCK
    data = message(b"Hello", b"c@d.example")
    out = run_mailfilter([], data, home=home, timeout=60)
    assert out.returncode == 0 and out.stdout.endswith(b"hello there\n") and b"X-CRM114-Status" in out.stdout
    assert out.stderr == b""


def test_counts_sum_the_months_present(tmp_path):
    (tmp_path / "verdicts-2024-12").write_bytes(b"SSGU")
    (tmp_path / "verdicts-2025-01").write_bytes(b"GGFC")
    (tmp_path / "verdicts-notes").write_bytes(b"SSSS")     # not a month: still a name we own
    counts = verdicts.counts(str(tmp_path))
    assert counts["months"]["2024-12"] == {"spam": 2, "good": 1, "unsure": 1, "failed": 0, "command": 0}
    assert counts["total"]["good"] == 3 and counts["total"]["failed"] == 1 and counts["total"]["command"] == 1


# -- the command -----------------------------------------------------------------------------------

def test_no_state_directory_is_66_and_nothing_is_made(tmp_path):
    home = tmp_path / "nothing-here"
    done = run_mailfilter(["stats"], home=home)
    assert done.returncode == 66 and b"no state directory" in done.stderr
    assert not home.exists()


def test_bad_recent_is_a_usage_error(home):
    assert run_mailfilter(["stats", "--recent", "-1"], home=home).returncode == 64


@pytest.mark.root
def test_root_reading_a_users_ledger_leaves_only_files_of_theirs(tmp_path):
    """A read of a WAL ledger leaves -wal and -shm files; made by root they
    would lock the user's next learn out, so root's stats relies on SQLite
    giving them to the ledger's owner. This pins that."""
    assert os.geteuid() == 0, "what root may do: run as root (CI does), or -m 'not root'"
    home = tmp_path / "someone"
    learn(home, message(b"x", b"a@b.example"), "spam")
    for entry in [home] + list(home.iterdir()):
        os.chown(entry, 65534, 65534)
    assert not any(e.name.endswith(("-wal", "-shm")) for e in home.iterdir())
    info = stats(home, "--json")
    assert info["trained"]["spam"] == 1
    assert any(e.name.endswith("-shm") for e in home.iterdir())
    assert {os.stat(e).st_uid for e in home.iterdir()} == {65534}


def test_state_files_stay_private(home):
    learn(home, message(b"x", b"a@b.example"), "spam")
    filter_message(home, message(b"y", b"c@d.example"))
    mode = stat.S_IMODE(os.stat(os.path.join(home, verdicts.file_name())).st_mode)
    assert mode == 0o600


def test_the_ledger_module_reads_an_absent_ledger_as_empty(tmp_path):
    assert ledger_module.learned(str(tmp_path / "none.sqlite")) == {"spam": 0, "good": 0, "recent": []}


@pytest.mark.root
def test_stats_user_shows_that_users_and_their_next_learn_works(user):
    """As root, --user NAME: the user's own state directory, read without a
    trace of root's; the user's next learn still works."""
    from test_root_safety import state_of
    done = run_mailfilter(["learn", "--user", user.pw_name, "--spam"],
                          message(b"Cheap watches", b"x@replica.example", b"replica rolex\n"))
    assert done.returncode == 0, done.stderr
    state = state_of(user)
    done = run_mailfilter(["stats", "--user", user.pw_name, "--json"])
    assert done.returncode == 0, done.stderr
    info = json.loads(done.stdout)
    assert info["state_directory"] == state
    assert [(e["label"], e["sender_domain"], e["subject"]) for e in info["recent"]] == [
        ("spam", "replica.example", "Cheap watches")]
    assert {os.stat(os.path.join(state, n)).st_uid for n in os.listdir(state)} == {user.pw_uid}
    done = run_mailfilter(["learn", "--user", user.pw_name, "--good"], message(b"Lunch", b"y@work.example"))
    assert done.returncode == 0, done.stderr
    assert run_mailfilter(["stats", "--user", "no-such-user-here"]).returncode == 67
