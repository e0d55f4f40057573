"""maildir-train for a whole server: run as root with two real users (useradd).

Proves the privilege drop (every file the trainer creates belongs to the
user; the per-user processes run with the user's uid), that a symlink or a
hard link planted in one user's learn folder pointing at another user's mail
is refused (the target untouched and not trained), that one user's broken
model does not stop the other, and that a killed per-user process is restarted.
"""

import os
import shutil
import signal
import subprocess
import sys

import pytest

from conftest import REPO, env_for
from test_maildir_train import (TRAINER, Trainer, classify, contents, deliver, digest, junk,
                                learn_good, learn_spam, ledger_rows, make_message, wait_for)

pytestmark = pytest.mark.root
TRAINER_ONCE = TRAINER + ["--once", "--log", "stderr", "--retry", "1"]


def as_user(pw, path):
    os.chown(path, pw.pw_uid, pw.pw_gid)
    return path


def user_maildir(pw):
    root = os.path.join(pw.pw_dir, "Maildir")
    for sub in ("", "cur", "new", "tmp"):
        path = os.path.join(root, sub)
        os.makedirs(path, mode=0o700, exist_ok=True)
        as_user(pw, path)
    return root


def deliver_as(pw, folder_dir, name, data, sub="cur"):
    path = deliver(folder_dir, name, data, sub=sub)
    as_user(pw, path)
    return path


def child_uids(parent_pid):
    uids = set()
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/status") as fh:
                status = dict(line.split(":", 1) for line in fh if ":" in line)
        except OSError:
            continue
        if int(status.get("PPid", "0").strip()) == parent_pid:
            real, effective, saved, _ = status["Uid"].split()
            uids.add((int(real), int(effective), int(saved)))
    return uids


def test_root_serves_two_users_each_as_itself_and_refuses_cross_user_links(two_users, tmp_path):
    alice, bob = two_users
    a_dir, b_dir = user_maildir(alice), user_maildir(bob)
    a_home = os.path.join(alice.pw_dir, ".local", "share", "mailfilter")
    b_home = os.path.join(bob.pw_dir, ".local", "share", "mailfilter")
    conf = tmp_path / "maildir-train.conf"
    conf.write_text(f"# two test users\n*  spam-folder=Junk\n{alice.pw_name}\n{bob.pw_name}  layout=maildir++\n")

    trainer = Trainer(["--config", str(conf), "--retry", "1"], tmp_path / "trainer.log", env=env_for(None))
    try:
        for pw, root in ((alice, a_dir), (bob, b_dir)):
            wait_for(lambda: os.path.isdir(os.path.join(root, ".learn-good", "cur")),
                     f"{pw.pw_name}'s learn folders", proc=trainer)
        wait_for(lambda: trainer.count(r": watching ") == 2, "both watching", proc=trainer)

        # The privilege drop: the per-user processes are the users, for good.
        assert child_uids(trainer.pid) == {(alice.pw_uid,) * 3, (bob.pw_uid,) * 3}
        for pw, root in ((alice, a_dir), (bob, b_dir)):
            for created in (".learn-spam", ".learn-spam/cur", ".learn-good/new", "subscriptions"):
                st = os.lstat(os.path.join(root, created))
                assert (st.st_uid, st.st_gid) == (pw.pw_uid, pw.pw_gid), created

        # Bob's private mail, and two traps in alice's learn-spam pointing at it.
        secret = make_message("good", 1)
        secret_path = deliver_as(bob, b_dir, "100.M1P1.mx:2,S", secret)
        other_path = deliver_as(bob, b_dir, "101.M1P1.mx:2,S", make_message("good", 2))
        secret_stat, other_stat = os.stat(secret_path), os.stat(other_path)
        symlink = os.path.join(learn_spam(a_dir), "cur", "200.M1P1.evil:2,S")
        os.symlink(secret_path, symlink)
        os.lchown(symlink, alice.pw_uid, alice.pw_gid)             # alice's own link
        hardlink = os.path.join(learn_spam(a_dir), "cur", "201.M1P1.evil:2,S")
        os.link(other_path, hardlink)                              # as if protected_hardlinks were off

        spam_a = make_message("spam", 3)
        deliver_as(alice, learn_spam(a_dir), "300.M1P1.mx:2,S", spam_a)
        good_b = make_message("good", 4)
        deliver_as(bob, learn_good(b_dir), "301.M1P1.mx", good_b, sub="new")

        wait_for(lambda: contents(junk(a_dir)) == [spam_a], "alice's spam filed", proc=trainer)
        wait_for(lambda: contents(b_dir) == sorted([secret, make_message("good", 2), good_b]),
                 "bob's good mail filed", proc=trainer)
        wait_for(lambda: trainer.count(r"refused \.learn-spam/cur/20[01]") == 2, "both refusals", proc=trainer)

        # Refused: the traps are where they were, bob's files untouched, nothing trained from them.
        assert os.path.islink(symlink) and os.path.exists(hardlink)
        for path, before, data in ((secret_path, secret_stat, secret), (other_path, other_stat, None)):
            after = os.stat(path)
            assert (after.st_ino, after.st_mtime_ns, after.st_uid) == \
                   (before.st_ino, before.st_mtime_ns, before.st_uid)
        assert open(secret_path, "rb").read() == secret
        for home in (a_home, b_home):
            assert digest(secret) not in dict(ledger_rows(home))
        assert "symbolic link" in trainer.log() and f"owned by uid {bob.pw_uid}" in trainer.log()

        # What the trainer created is the users' own; the state is private.
        for pw, home, root in ((alice, a_home, a_dir), (bob, b_home, b_dir)):
            st = os.stat(home)
            assert (st.st_uid, st.st_mode & 0o777) == (pw.pw_uid, 0o700)
            st = os.stat(os.path.join(home, "model.mfm"))
            assert (st.st_uid, st.st_mode & 0o777) == (pw.pw_uid, 0o600)
        st = os.stat(os.path.join(junk(a_dir), "cur"))
        assert (st.st_uid, st.st_gid) == (alice.pw_uid, alice.pw_gid)
        assert classify(spam_a, a_home) == "SPAM" and classify(good_b, b_home) == "GOOD"
        assert ledger_rows(b_home) == [(digest(good_b), "good")]

        # One user's broken model does not stop the other.
        with open(os.path.join(a_home, "model.mfm"), "wb") as fh:
            fh.write(b"not a model")
        spam_a2, good_b2 = make_message("spam", 5), make_message("good", 6)
        stuck = deliver_as(alice, learn_spam(a_dir), "400.M1P1.mx:2,S", spam_a2)
        deliver_as(bob, learn_good(b_dir), "401.M1P1.mx:2,S", good_b2)
        wait_for(lambda: good_b2 in contents(b_dir), "bob's mail filed despite alice's model", proc=trainer)
        wait_for(lambda: f"{alice.pw_name}: could not learn" in trainer.log(), "alice's failure logged",
                 proc=trainer)
        assert open(stuck, "rb").read() == spam_a2

        # A per-user process that dies is restarted; the other keeps going.
        a_pids = [pid for pid in os.listdir("/proc") if pid.isdigit() and _uid_of(pid) == alice.pw_uid]
        assert a_pids
        os.kill(int(a_pids[0]), signal.SIGKILL)
        wait_for(lambda: trainer.count(rf"{alice.pw_name}: trainer \(pid \d+\) exited with signal 9") == 1,
                 "the crash noticed", proc=trainer)
        os.unlink(os.path.join(a_home, "model.mfm"))              # alice fixes her model
        wait_for(lambda: spam_a2 in contents(junk(a_dir)), "alice's spam filed after the restart",
                 proc=trainer)
        assert child_uids(trainer.pid) == {(alice.pw_uid,) * 3, (bob.pw_uid,) * 3}
    finally:
        code = trainer.stop(signal.SIGTERM)
    assert code == 0, trainer.log()
    assert child_uids(trainer.pid) == set()
    assert trainer.count("stopping:") == 2


def _uid_of(pid):
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("Uid:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def test_everything_is_loaded_before_the_switch_so_an_unreadable_install_still_learns(two_users, tmp_path):
    """The trainer drops to each user; after that it may not be able to read
    the Python installation (a pyenv or venv under /root). Every import a
    learn needs must already have happened as root. A hand-kept preload list
    drifted once (atomicfile, imported inside store.save, was missing) and
    every message was refused as "cannot be learned"."""
    alice, _ = two_users
    maildir = user_maildir(alice)
    install = tmp_path / "root-only"
    install.mkdir(mode=0o700)                   # root's, unreadable to alice
    for package in ("mailfilter", "maildir_train"):
        shutil.copytree(os.path.join(REPO, package), install / package,
                        ignore=shutil.ignore_patterns("__pycache__"))
    conf = tmp_path / "maildir-train.conf"
    conf.write_text(f"{alice.pw_name}\n")
    for sub in ("", "cur", "new", "tmp"):
        os.makedirs(os.path.join(learn_spam(maildir), sub), mode=0o700, exist_ok=True)
        as_user(alice, os.path.join(learn_spam(maildir), sub))
    spam = make_message("spam", 7)
    deliver_as(alice, learn_spam(maildir), "700.M1P1.mx:2,S", spam)
    env = env_for(None)
    env["PYTHONPATH"] = str(install)            # only the unreadable copy, not the repo
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    # cwd "/": `python -m` puts the working directory first on sys.path, and
    # the repo's own readable tree must not stand in for the unreadable copy.
    done = subprocess.run([sys.executable, "-m", "maildir_train", "--config", str(conf), "--once",
                           "--log", "stderr"], capture_output=True, env=env, timeout=120, cwd="/")
    log = done.stderr.decode("utf-8", "replace")
    assert done.returncode == 0, log
    assert "cannot be learned" not in log and " 0 refused" in log, log
    assert contents(junk(maildir)) == [spam], log
    home = os.path.join(alice.pw_dir, ".local", "share", "mailfilter")
    assert ledger_rows(home) == [(digest(spam), "spam")]


def test_a_link_to_another_users_private_file_is_refused_once_and_remembered(two_users, tmp_path):
    """Issue 14: root hard-linked bob's 0600 file into alice's learn-spam.
    As alice the trainer can't open it (EACCES): it was retried for ever with
    a warning each time, and `--once` exited 75 on every run."""
    alice, bob = two_users
    a_dir, b_dir = user_maildir(alice), user_maildir(bob)
    conf = tmp_path / "maildir-train.conf"
    conf.write_text(f"{alice.pw_name}\n")
    once = TRAINER_ONCE + ["--config", str(conf)]
    first_run = subprocess.run(once, env=env_for(None), capture_output=True, timeout=120)
    assert first_run.returncode == 0, first_run.stderr
    private = deliver_as(bob, b_dir, "100.M1P1.mx:2,S", make_message("good", 5))
    os.chmod(private, 0o600)
    link = os.path.join(learn_spam(a_dir), "cur", "201.M1P1.evil:2,S")
    os.link(private, link)
    spam = make_message("spam", 6)
    deliver_as(alice, learn_spam(a_dir), "300.M1P1.mx:2,S", spam)
    runs = [subprocess.run(once, env=env_for(None), capture_output=True, timeout=120) for _ in range(2)]
    assert [r.returncode for r in runs] == [0, 0], runs[-1].stderr
    assert runs[0].stderr.count(f"refused .learn-spam/cur/201.M1P1.evil:2,S: owned by uid {bob.pw_uid}".encode()) == 1
    assert b"refused ." not in runs[1].stderr and b"warning" not in runs[1].stderr
    assert contents(junk(a_dir)) == [spam]
    assert os.path.exists(link) and open(private, "rb").read() == make_message("good", 5)
