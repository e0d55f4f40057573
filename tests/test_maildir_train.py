"""maildir-train, end to end: the real process on a real Maildir, driven the way
an IMAP server drives it (rename from INBOX, copy into new/, write in tmp/ then
rename). Waits are polls with a deadline; nothing asserts on a fixed sleep."""

import os
import random
import re
import signal
import sqlite3
import struct
import subprocess
import sys
import time

import pytest

from conftest import REPO, env_for, run_mailfilter

TRAINER = [sys.executable, "-m", "maildir_train"]
WAIT = 30.0

SPAM_WORDS = ("viagra cialis pills pharmacy discount casino jackpot bonus winner lottery prize "
              "claim bitcoin crypto guaranteed profit loan credit approved urgent offer exclusive "
              "replica watches rolex miracle diet enlarge unsubscribe act now cash million dollars "
              "inheritance beneficiary wire transfer password verify account suspended").split()
GOOD_WORDS = ("meeting agenda thursday project budget quarter review draft report minutes schedule "
              "conference team lunch notes slides deadline invoice contract proposal colleague office "
              "presentation feedback milestone release sprint backlog design document specification "
              "architecture database migration deployment kernel patch compiler benchmark").split()


# -- messages and Maildirs -------------------------------------------------------------------------

def make_message(kind: str, n: int) -> bytes:
    """A clearly spammy or clearly good message; n makes it unique."""
    rng = random.Random(f"{kind}{n}")
    words = SPAM_WORDS if kind == "spam" else GOOD_WORDS
    sender = "deals@promo-%d.example" % n if kind == "spam" else "colleague%d@work.example.org" % n
    subject = " ".join(rng.choice(words) for _ in range(5))
    body = "\n".join(" ".join(rng.choice(words) for _ in range(12)) for _ in range(6))
    return (f"From: {sender}\nTo: user@example.com\nSubject: {subject} #{n}\n"
            f"Message-ID: <{kind}.{n}.{rng.getrandbits(48)}@example>\n"
            f"Date: Mon, 2 Sep 2024 10:00:00 +0000\nContent-Type: text/plain; charset=us-ascii\n\n"
            f"{body}\n").encode()


def make_maildir(root):
    for sub in ("cur", "new", "tmp"):
        os.makedirs(os.path.join(root, sub), exist_ok=True)
    return str(root)


def deliver(folder_dir, name, data: bytes, sub="new"):
    """Write in tmp/, rename into sub/: how every Maildir writer delivers."""
    tmp = os.path.join(folder_dir, "tmp", name.split(":")[0])
    with open(tmp, "wb") as fh:
        fh.write(data)
    final = os.path.join(folder_dir, sub, name)
    os.rename(tmp, final)
    return final


def files_in(folder_dir, subs=("cur", "new")):
    out = {}
    for sub in subs:
        path = os.path.join(folder_dir, sub)
        if os.path.isdir(path):
            for name in os.listdir(path):
                out[os.path.join(sub, name)] = os.path.join(path, name)
    return out


def contents(folder_dir):
    return sorted(open(p, "rb").read() for p in files_in(folder_dir).values())


def classify(message: bytes, home) -> str:
    r = run_mailfilter(["classify", "--home", str(home)], message)
    assert r.returncode == 0, r.stderr
    return r.stdout.decode().split()[0]


def ledger_rows(home):
    path = os.path.join(str(home), "ledger.sqlite")
    if not os.path.exists(path):
        return []
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return db.execute("SELECT digest, label FROM trained").fetchall()
    finally:
        db.close()


def digest(message: bytes) -> str:
    sys.path.insert(0, REPO)
    from mailfilter.rawmail import content_digest
    return content_digest(message)


def wait_for(condition, what, timeout=WAIT, proc=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"trainer exited ({proc.returncode}) while waiting for {what}:\n"
                                 + proc.log())
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}"
                         + (":\n" + proc.log() if proc is not None else ""))


# -- the trainer process -----------------------------------------------------------------------------

class Trainer:
    """The real maildir-train process, logging to a file we can read."""

    def __init__(self, args, log_path, env=None, **popen):
        self.log_path = str(log_path)
        self.log_file = open(self.log_path, "ab")
        self.proc = subprocess.Popen(TRAINER + ["--log", "stderr"] + list(args), stdout=self.log_file,
                                     stderr=self.log_file, env=env or env_for(None), **popen)
        self.pid = self.proc.pid

    def log(self) -> str:
        with open(self.log_path, "rb") as fh:
            return fh.read().decode("utf-8", "replace")

    def poll(self):
        return self.proc.poll()

    @property
    def returncode(self):
        return self.proc.returncode

    def count(self, pattern) -> int:
        return len(re.findall(pattern, self.log()))

    def stop(self, sig=signal.SIGTERM, timeout=WAIT) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        finally:
            self.log_file.close()

    def kill(self):
        return self.stop(signal.SIGKILL)


def user_args(maildir, home, *extra):
    return ["--user", "--maildir", str(maildir), "--home", str(home), "--retry", "1", *extra]


@pytest.fixture
def box(tmp_path):
    """(maildir root, state dir, log path) for one user."""
    return make_maildir(tmp_path / "Maildir"), tmp_path / "state", tmp_path / "trainer.log"


@pytest.fixture
def running(box):
    """A trainer started on the box, ready (its folders exist); stopped with SIGTERM after."""
    maildir, home, log_path = box
    started = []

    def start(*extra, wait_ready=True):
        t = Trainer(user_args(maildir, home, *extra), log_path)
        started.append(t)
        if wait_ready:
            wait_for(lambda: "watching" in t.log(), "start-up", proc=t)
        return t

    yield start
    for t in started:
        if t.poll() is None:
            assert t.stop() == 0, t.log()


def junk(maildir):
    return os.path.join(maildir, ".Junk")


def learn_spam(maildir):
    return os.path.join(maildir, ".learn-spam")


def learn_good(maildir):
    return os.path.join(maildir, ".learn-good")


# -- the IMAP moves ----------------------------------------------------------------------------------

def test_imap_move_copy_and_append_are_learned_filed_and_corrected(box, running):
    maildir, home, _ = box
    trainer = running()
    assert sorted(open(os.path.join(maildir, "subscriptions")).read().split()) == ["learn-good", "learn-spam"]
    for folder in (".learn-spam", ".learn-good"):
        assert os.path.isfile(os.path.join(maildir, folder, "maildirfolder"))

    # 1. IMAP MOVE: INBOX cur/ -> .learn-spam/cur/, the \Seen flag in the name.
    spam = make_message("spam", 1)
    inbox_copy = deliver(maildir, "1700000001.M1P1.mx:2,S", spam, sub="cur")
    assert classify(spam, home) == "UNSURE"
    os.rename(inbox_copy, os.path.join(learn_spam(maildir), "cur", "1700000001.M1P1.mx:2,S"))
    filed = os.path.join(junk(maildir), "cur", "1700000001.M1P1.mx:2,S")
    wait_for(lambda: os.path.exists(filed), "the spam filed in .Junk/cur", proc=trainer)
    assert open(filed, "rb").read() == spam                      # bytes unchanged
    assert files_in(learn_spam(maildir)) == {} and files_in(maildir) == {}
    assert classify(spam, home) == "SPAM"
    assert ledger_rows(home) == [(digest(spam), "spam")]
    assert "Junk" in open(os.path.join(maildir, "subscriptions")).read().split()

    # 2. IMAP COPY: a plain file written straight into .learn-good/new/.
    good = make_message("good", 2)
    assert classify(good, home) != "GOOD"
    with open(os.path.join(learn_good(maildir), "new", "1700000002.M2P2.mx"), "wb") as fh:
        fh.write(good)
    filed_good = os.path.join(maildir, "cur", "1700000002.M2P2.mx:2,")
    wait_for(lambda: os.path.exists(filed_good), "the good message filed in INBOX/cur", proc=trainer)
    assert open(filed_good, "rb").read() == good
    assert classify(good, home) == "GOOD"

    # 3. APPEND: written in tmp/ (ignored there), then renamed into new/.
    spam3 = make_message("spam", 3)
    in_tmp = os.path.join(learn_spam(maildir), "tmp", "1700000003.M3P3.mx")
    with open(in_tmp, "wb") as fh:
        fh.write(spam3)
    # Order proves tmp/ is ignored: a later message is filed while this one stays.
    later = make_message("spam", 4)
    deliver(learn_spam(maildir), "1700000004.M4P4.mx:2,S", later, sub="cur")
    wait_for(lambda: os.path.exists(os.path.join(junk(maildir), "cur", "1700000004.M4P4.mx:2,S")),
             "the later message filed", proc=trainer)
    assert os.path.exists(in_tmp)
    os.rename(in_tmp, os.path.join(learn_spam(maildir), "new", "1700000003.M3P3.mx"))
    wait_for(lambda: os.path.exists(os.path.join(junk(maildir), "cur", "1700000003.M3P3.mx:2,")),
             "the appended message filed", proc=trainer)
    assert classify(spam3, home) == "SPAM"

    # 4. The user changes their mind: .Junk -> learn-good corrects it.
    os.rename(filed, os.path.join(learn_good(maildir), "cur", "1700000001.M1P1.mx:2,S"))
    back = os.path.join(maildir, "cur", "1700000001.M1P1.mx:2,S")
    wait_for(lambda: os.path.exists(back), "the corrected message back in INBOX", proc=trainer)
    assert open(back, "rb").read() == spam
    assert classify(spam, home) == "GOOD"
    rows = dict(ledger_rows(home))
    assert rows[digest(spam)] == "good" and len(rows) == 4
    assert trainer.count(r"good corrected \(pR before -[\d.]+") == 1
    # One log line per message: user, label, score before, destination.
    assert re.search(r"\]: \S+: spam learned \(pR before 0\.00, after -[\d.]+\); "
                     r"\.learn-spam/cur/1700000001\.M1P1\.mx:2,S -> \.Junk/cur/1700000001\.M1P1\.mx:2,S",
                     trainer.log())


def test_moved_back_again_with_the_same_label_is_skipped_and_still_filed(box, running):
    maildir, home, _ = box
    trainer = running()
    spam = make_message("spam", 10)
    deliver(learn_spam(maildir), "1.M1P1.mx:2,S", spam)
    wait_for(lambda: contents(junk(maildir)) == [spam], "first filing", proc=trainer)
    # The same message again under another name (IMAP servers rename files).
    deliver(learn_spam(maildir), "2.M2P2.other:2,S", spam)
    wait_for(lambda: contents(junk(maildir)) == [spam, spam], "second filing", proc=trainer)
    assert ledger_rows(home) == [(digest(spam), "spam")]
    assert trainer.count("spam already learned") == 1


def test_a_taken_name_in_the_destination_is_never_overwritten(box, running):
    maildir, home, _ = box
    trainer = running()
    os.makedirs(os.path.join(maildir, "cur"), exist_ok=True)
    existing = deliver(maildir, "7.M7P7.mx:2,S", b"Subject: already here\n\nkeep me\n", sub="cur")
    good = make_message("good", 11)
    deliver(learn_good(maildir), "7.M7P7.mx:2,S", good, sub="cur")
    wait_for(lambda: len(files_in(maildir)) == 2, "the message filed under a new name", proc=trainer)
    assert open(existing, "rb").read() == b"Subject: already here\n\nkeep me\n"
    new = [p for p in files_in(maildir).values() if p != existing]
    assert open(new[0], "rb").read() == good and new[0].endswith(":2,S")


def test_messages_dropped_while_stopped_are_handled_at_start(box, running):
    maildir, home, log_path = box
    first = running()
    assert first.stop() == 0
    spams = [make_message("spam", 100 + i) for i in range(5)]
    goods = [make_message("good", 200 + i) for i in range(5)]
    for i, m in enumerate(spams):
        deliver(learn_spam(maildir), f"{i}.M1P1.mx:2,S", m, sub="cur")
    for i, m in enumerate(goods):
        deliver(learn_good(maildir), f"{i}.M2P2.mx", m)
    trainer = running("--summary", "0.5")
    wait_for(lambda: len(files_in(junk(maildir))) == 5 and len(files_in(maildir)) == 5,
             "all ten filed", proc=trainer)
    wait_for(lambda: re.search(r": summary: 10 learned \(5 spam, 5 good\)", trainer.log()),
             "the periodic summary", proc=trainer)
    assert contents(junk(maildir)) == sorted(spams) and contents(maildir) == sorted(goods)
    assert all(classify(m, home) == "SPAM" for m in spams)
    assert all(classify(m, home) == "GOOD" for m in goods)
    assert len(ledger_rows(home)) == 10


def test_five_hundred_at_once_all_trained_and_filed(box, running):
    maildir, home, _ = box
    trainer = running()
    spams = [make_message("spam", 1000 + i) for i in range(250)]
    goods = [make_message("good", 2000 + i) for i in range(250)]
    start = time.monotonic()
    for i, (s, g) in enumerate(zip(spams, goods)):
        deliver(learn_spam(maildir), f"{1700000000 + i}.M{i}P9.mx:2,S", s, sub="cur")
        deliver(learn_good(maildir), f"{1700000000 + i}.M{i}P8.mx", g)
    assert len(files_in(learn_spam(maildir))) + len(files_in(learn_good(maildir))) <= 500
    wait_for(lambda: len(files_in(junk(maildir))) == 250 and len(files_in(maildir)) == 250,
             "500 messages filed", timeout=60, proc=trainer)
    elapsed = time.monotonic() - start
    assert files_in(learn_spam(maildir)) == {} and files_in(learn_good(maildir)) == {}
    assert contents(junk(maildir)) == sorted(spams) and contents(maildir) == sorted(goods)
    rows = ledger_rows(home)
    assert len(rows) == 500 and len({d for d, _ in rows}) == 500
    assert dict(rows) == {**{digest(m): "spam" for m in spams}, **{digest(m): "good" for m in goods}}
    for m in spams[::50] + goods[::50]:
        assert classify(m, home) == ("SPAM" if m in spams else "GOOD")
    print(f"\n500 messages dropped at once: all learned and filed in {elapsed:.2f} s")


def test_sigterm_finishes_the_batch_in_hand_and_exits_zero(box, running):
    maildir, home, log_path = box
    trainer = running()
    messages = [make_message("spam", 3000 + i) for i in range(400)]
    for i, m in enumerate(messages):
        deliver(learn_spam(maildir), f"{i}.M{i}P1.mx:2,S", m, sub="cur")
    wait_for(lambda: trainer.count("spam learned") >= 1, "learning to start", proc=trainer)
    assert trainer.stop(signal.SIGTERM, timeout=10) == 0
    assert "SIGTERM received" in trainer.log() and "stopping:" in trainer.log()
    left, filed = contents(learn_spam(maildir)), contents(junk(maildir))
    assert sorted(left + filed) == sorted(messages)             # nothing lost, nothing doubled
    learned = {d for d, _ in ledger_rows(home)}
    assert {digest(m) for m in filed} <= learned                # filed only after learning
    # A restart (cron style) takes the rest.
    r = subprocess.run(TRAINER + user_args(maildir, home, "--once", "--log", "stderr"),
                       env=env_for(None), capture_output=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert contents(junk(maildir)) == sorted(messages) and len(ledger_rows(home)) == 400


def _kill_when(phase, t, home):
    """SIGKILL the trainer at a chosen point of its work; returns whether it got there."""
    if phase == "start-up":
        reached = _poll(lambda: "training from" in t.log())
    elif phase == "saving the model":
        # The new model is being written beside the old one (store.save).
        reached = _poll(lambda: any(".tmp." in n for n in _listdir(home)), step=0.0005)
    else:                                   # filing: some of a learned batch moved, not all
        reached = _poll(lambda: t.count("spam learned|good learned") >= 3)
    t.kill()
    return reached


def _poll(condition, timeout=10.0, step=0.002):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(step)
    return False


def _listdir(path):
    try:
        return os.listdir(path)
    except FileNotFoundError:
        return []


def test_sigkill_at_several_points_loses_nothing_and_trains_nothing_twice(box, tmp_path):
    maildir, home, _ = box
    messages = {}
    for folder in (learn_spam(maildir), learn_good(maildir)):
        make_maildir(folder)
    for i in range(300):
        kind = "spam" if i % 2 else "good"
        m = make_message(kind, 4000 + i)
        messages[m] = kind
        deliver(learn_spam(maildir) if kind == "spam" else learn_good(maildir), f"{i}.M{i}P1.mx:2,S", m,
                sub="cur")

    def everything():
        return sorted(contents(learn_spam(maildir)) + contents(learn_good(maildir))
                      + contents(junk(maildir)) + contents(maildir))

    kills = []
    for n, phase in enumerate(["start-up", "saving the model", "filing"] * 3):
        t = Trainer(user_args(maildir, home, "--batch", "20"), tmp_path / f"run{n}.log")
        reached = _kill_when(phase, t, home)
        left = len(files_in(learn_spam(maildir))) + len(files_in(learn_good(maildir)))
        kills.append((phase, reached, left))
        assert everything() == sorted(messages), f"lost or doubled after kill -9 while {phase}"
        if not left:
            break
    # Every kind of kill point was really hit at least once.
    assert {p for p, reached, _ in kills if reached} == {"start-up", "saving the model", "filing"}, kills
    print("\nkill -9 points (phase, reached, messages still to do):", kills)
    r = subprocess.run(TRAINER + user_args(maildir, home, "--once", "--log", "stderr"),
                       env=env_for(None), capture_output=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert contents(learn_spam(maildir)) == [] and contents(learn_good(maildir)) == []
    assert contents(junk(maildir)) == sorted(m for m, k in messages.items() if k == "spam")
    assert contents(maildir) == sorted(m for m, k in messages.items() if k == "good")
    # The ledger matches the files: one row per message handled, with its label.
    rows = ledger_rows(home)
    assert dict(rows) == {digest(m): k for m, k in messages.items()} and len(rows) == 300
    # No row belongs to a model save that never happened (core ledger's generation check).
    db = sqlite3.connect(os.path.join(str(home), "ledger.sqlite"))
    newest_row = db.execute("SELECT MAX(generation) FROM trained").fetchone()[0]
    db.close()
    with open(os.path.join(str(home), "model.mfm"), "rb") as fh:
        model_generation = struct.unpack_from("<8sIIQQQ", fh.read(64))[5]
    assert newest_row <= model_generation
    # Each message was trained in exactly one saved generation: what the kills
    # interrupted was redone, what was saved was skipped (logged "already learned").
    assert all(classify(m, home) == ("SPAM" if k == "spam" else "GOOD") for m, k in list(messages.items())[::30])


def test_a_file_vanishing_between_event_and_read(box, running):
    maildir, home, _ = box
    trainer = running()
    messages = [make_message("spam", 5000 + i) for i in range(200)]
    removed = set()
    for i, m in enumerate(messages):
        path = deliver(learn_spam(maildir), f"{i}.M{i}P1.mx:2,S", m, sub="cur")
        if i % 2:
            try:
                os.unlink(path)     # the user deletes it again, racing the trainer
                removed.add(m)
            except FileNotFoundError:
                pass                # the trainer was faster: it was filed
    kept = sorted(m for m in messages if m not in removed)
    wait_for(lambda: contents(junk(maildir)) == kept and contents(learn_spam(maildir)) == [],
             "the rest filed", proc=trainer)
    # Still alive and still working afterwards.
    extra = make_message("good", 5999)
    deliver(learn_good(maildir), "x.M1P1.mx", extra)
    wait_for(lambda: contents(maildir) == [extra], "a later message filed", proc=trainer)
    assert trainer.poll() is None


def test_read_message_of_a_vanished_file_is_none(tmp_path):
    sys.path.insert(0, REPO)
    from maildir_train.maildir import read_message
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        assert read_message(fd, "gone:2,S", os.getuid()) is None
    finally:
        os.close(fd)


def test_a_destination_that_cannot_be_created_leaves_the_message_and_retries(box, running):
    maildir, home, _ = box
    with open(os.path.join(maildir, ".Junk"), "wb") as fh:      # a file where the folder should be
        fh.write(b"not a folder")
    trainer = running()
    spam = make_message("spam", 6000)
    src = deliver(learn_spam(maildir), "1.M1P1.mx:2,S", spam, sub="cur")
    wait_for(lambda: "cannot file" in trainer.log(), "the failure logged", proc=trainer)
    assert open(src, "rb").read() == spam                        # left where it was
    assert ledger_rows(home) == [(digest(spam), "spam")]         # but learned
    os.unlink(os.path.join(maildir, ".Junk"))
    filed = os.path.join(junk(maildir), "cur", "1.M1P1.mx:2,S")
    wait_for(lambda: os.path.exists(filed), "filed on retry", proc=trainer)
    assert open(filed, "rb").read() == spam and not os.path.exists(src)
    assert ledger_rows(home) == [(digest(spam), "spam")]
    assert trainer.count("spam learned") == 1 and trainer.count("spam already learned") >= 1


def test_a_corrupt_model_leaves_messages_in_place_until_fixed(box, running):
    maildir, home, _ = box
    trainer = running()
    os.makedirs(home, mode=0o700, exist_ok=True)
    with open(os.path.join(str(home), "model.mfm"), "wb") as fh:
        fh.write(b"garbage")
    spam = make_message("spam", 6100)
    src = deliver(learn_spam(maildir), "1.M1P1.mx:2,S", spam, sub="cur")
    wait_for(lambda: "could not learn" in trainer.log(), "the failure logged", proc=trainer)
    assert open(src, "rb").read() == spam and trainer.poll() is None
    os.unlink(os.path.join(str(home), "model.mfm"))
    wait_for(lambda: contents(junk(maildir)) == [spam], "filed once the model is usable", proc=trainer)


def test_symlinks_and_fifos_are_refused_and_left_alone(box, running, tmp_path):
    maildir, home, _ = box
    trainer = running()
    secret = make_message("good", 7000)
    target = tmp_path / "elsewhere.eml"
    target.write_bytes(secret)
    before = os.stat(target)
    link = os.path.join(learn_spam(maildir), "cur", "1.M1P1.evil:2,S")
    os.symlink(target, link)
    os.mkfifo(os.path.join(learn_spam(maildir), "new", "2.M2P2.fifo"))
    spam = make_message("spam", 7001)
    deliver(learn_spam(maildir), "3.M3P3.mx:2,S", spam, sub="cur")
    wait_for(lambda: contents(junk(maildir)) == [spam], "the real message filed", proc=trainer)
    wait_for(lambda: trainer.count("refused") >= 2, "both refusals logged", proc=trainer)
    assert os.path.islink(link) and target.read_bytes() == secret
    assert os.stat(target).st_mtime_ns == before.st_mtime_ns
    assert digest(secret) not in dict(ledger_rows(home))
    assert classify(secret, home) != "SPAM"
    assert trainer.count("symbolic link") == 1        # logged once, not on every rescan


def test_a_file_still_being_written_into_new_waits_for_close(box, running):
    maildir, home, _ = box
    trainer = running()
    good = make_message("good", 7100)
    path = os.path.join(learn_good(maildir), "new", "1.M1P1.slowcopy")
    with open(path, "wb") as fh:
        fh.write(good[:40])
        fh.flush()
        # Prove the half-written file is not taken: a later message gets filed first.
        other = make_message("good", 7101)
        deliver(learn_good(maildir), "2.M2P2.mx", other)
        wait_for(lambda: contents(maildir) == [other], "the other message filed", proc=trainer)
        assert os.path.exists(path)
        fh.write(good[40:])
    wait_for(lambda: contents(maildir) == sorted([good, other]), "filed after close", proc=trainer)
    assert digest(good[:40]) not in dict(ledger_rows(home))


def test_dovecot_hard_link_copy_is_accepted(box, running):
    maildir, home, _ = box
    trainer = running()
    spam = make_message("spam", 7200)
    original = deliver(maildir, "1.M1P1.mx:2,S", spam, sub="cur")
    os.link(original, os.path.join(learn_spam(maildir), "cur", "2.M2P2.mx:2,S"))   # IMAP COPY
    wait_for(lambda: contents(junk(maildir)) == [spam], "the copy filed", proc=trainer)
    assert open(original, "rb").read() == spam        # the INBOX original is untouched
    assert classify(spam, home) == "SPAM"


# -- layouts, options, config ---------------------------------------------------------------------

def test_fs_layout_and_a_custom_spam_folder(box, running):
    maildir, home, _ = box
    trainer = running("--layout", "fs", "--spam-folder", "Spam")
    assert os.path.isdir(os.path.join(maildir, "learn-spam", "cur"))
    spam = make_message("spam", 8000)
    deliver(os.path.join(maildir, "learn-spam"), "1.M1P1.mx:2,S", spam, sub="cur")
    filed = os.path.join(maildir, "Spam", "cur", "1.M1P1.mx:2,S")
    wait_for(lambda: os.path.exists(filed), "filed in Spam/cur", proc=trainer)
    assert not os.path.exists(os.path.join(maildir, ".learn-spam"))


def test_auto_layout_follows_existing_fs_folders(box):
    maildir, home, _ = box
    make_maildir(os.path.join(maildir, "Sent"))
    make_maildir(os.path.join(maildir, "Drafts"))
    r = subprocess.run(TRAINER + user_args(maildir, home, "--once", "--log", "stderr"),
                       env=env_for(None), capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert os.path.isdir(os.path.join(maildir, "learn-good", "new"))


def test_spam_action_delete_deletes_only_spam(box, running):
    maildir, home, _ = box
    trainer = running("--spam-action", "delete")
    spam, good = make_message("spam", 8100), make_message("good", 8101)
    deliver(learn_spam(maildir), "1.M1P1.mx:2,S", spam)
    wait_for(lambda: contents(learn_spam(maildir)) == [], "the spam handled", proc=trainer)
    assert classify(spam, home) == "SPAM" and "deleted (spam-action=delete)" in trainer.log()
    deliver(learn_good(maildir), "2.M2P2.mx:2,S", good)
    wait_for(lambda: contents(maildir) == [good], "the good message filed", proc=trainer)
    assert not os.path.exists(junk(maildir))


def test_subscriptions_are_kept_and_updated_idempotently(box):
    maildir, home, _ = box
    with open(os.path.join(maildir, "subscriptions"), "wb") as fh:
        fh.write(b"V\t2\n\nSent\nArchive\t2024\n")
    with open(os.path.join(maildir, "courierimapsubscribed"), "wb") as fh:
        fh.write(b"INBOX.Sent\n")
    for _ in range(2):
        r = subprocess.run(TRAINER + user_args(maildir, home, "--once", "--log", "stderr"),
                           env=env_for(None), capture_output=True, timeout=60)
        assert r.returncode == 0, r.stderr
    assert open(os.path.join(maildir, "subscriptions"), "rb").read() == \
        b"V\t2\n\nSent\nArchive\t2024\nlearn-spam\nlearn-good\n"
    assert open(os.path.join(maildir, "courierimapsubscribed"), "rb").read() == \
        b"INBOX.Sent\nINBOX.learn-spam\nINBOX.learn-good\n"


def test_once_reports_work_left_for_later_with_75(box):
    maildir, home, _ = box
    with open(os.path.join(maildir, ".Junk"), "wb") as fh:
        fh.write(b"in the way")
    r = subprocess.run(TRAINER + user_args(maildir, home, "--once", "--log", "stderr"),
                       env=env_for(None), capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr
    deliver(learn_spam(maildir), "1.M1P1.mx:2,S", make_message("spam", 8200))
    r = subprocess.run(TRAINER + user_args(maildir, home, "--once", "--log", "stderr"),
                       env=env_for(None), capture_output=True, timeout=60)
    assert r.returncode == 75, r.stderr
    assert b"cannot file" in r.stderr


@pytest.mark.parametrize("text, expect", [
    ("alice spam-folder=Junk\nbob colour=blue\n", ":2: unknown key 'colour'"),
    ("root layout=sideways\n", ":1: layout must be one of"),
    ("nosuchuser-mftest\n", ":1: no such user 'nosuchuser-mftest'"),
    ("# nothing\n", ": no mailboxes listed"),
    ("root\nroot\n", ":2: root is listed twice"),
    ("x@example.org user=root\n", ":1: x@example.org: user=root needs maildir= and home="),
    ("root spam-folder=a/b\n", ":1: folder name 'a/b'"),
])
def test_bad_config_is_one_line_with_file_and_line_and_exit_78(tmp_path, text, expect):
    conf = tmp_path / "maildir-train.conf"
    conf.write_text(text)
    r = subprocess.run(TRAINER + ["--config", str(conf), "--log", "stderr", "--once"],
                       env=env_for(None), capture_output=True, timeout=60)
    assert r.returncode == 78, r.stderr
    lines = r.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and f"{conf}{expect}" in lines[0], lines


def test_help_teaches_and_usage_errors_exit_64():
    r = subprocess.run(TRAINER + ["--help"], env=env_for(None), capture_output=True, timeout=60)
    assert r.returncode == 0
    text = r.stdout.decode()
    for must in ("learn-spam", "learn-good", "--config", "--once", "spam-action", "exit status", "examples"):
        assert must in text, must
    r = subprocess.run(TRAINER + ["--user", "--layout", "nonsense"], env=env_for(None),
                       capture_output=True, timeout=60)
    assert r.returncode == 64


def test_latency_from_move_to_filed(box, running):
    """Issue 4's promise: learned and filed within 5 seconds of the move."""
    maildir, home, _ = box
    trainer = running()
    latencies = []
    for i in range(10):
        spam = make_message("spam", 9000 + i)
        src = deliver(maildir, f"{i}.M{i}P1.mx:2,S", spam, sub="cur")
        filed = os.path.join(junk(maildir), "cur", f"{i}.M{i}P1.mx:2,S")
        start = time.monotonic()
        os.rename(src, os.path.join(learn_spam(maildir), "cur", f"{i}.M{i}P1.mx:2,S"))
        wait_for(lambda: os.path.exists(filed), "filed", timeout=5, proc=trainer)
        latencies.append(time.monotonic() - start)
    latencies.sort()
    print(f"\nmove -> filed: median {latencies[5] * 1000:.0f} ms, max {latencies[-1] * 1000:.0f} ms")
    assert latencies[-1] < 5


def test_config_mode_once_and_sighup_reload(tmp_path):
    """The server mode's plumbing without root: every entry is our own account."""
    import pwd
    me = pwd.getpwuid(os.getuid()).pw_name
    first = make_maildir(tmp_path / "m1")
    second = make_maildir(tmp_path / "m2")
    conf = tmp_path / "maildir-train.conf"
    conf.write_text(f"{me} maildir={first} home={tmp_path / 's1'}\n")
    for folder in (".learn-spam", ".learn-good"):
        make_maildir(os.path.join(first, folder))
    spam = make_message("spam", 9500)
    deliver(learn_spam(first), "1.M1P1.mx:2,S", spam)
    r = subprocess.run(TRAINER + ["--config", str(conf), "--once", "--log", "stderr"],
                       env=env_for(None), capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert contents(junk(first)) == [spam]

    t = Trainer(["--config", str(conf), "--retry", "1"], tmp_path / "trainer.log")
    try:
        wait_for(lambda: t.count(": watching ") == 1, "the first mailbox watched", proc=t)
        conf.write_text(f"{me} maildir={first} home={tmp_path / 's1'}\n"
                        f"second  user={me} maildir={second} \\\n"
                        f"        home={tmp_path / 's2'} spam-folder=Spam\n")
        t.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: t.count(": watching ") == 3, "both watched after SIGHUP", proc=t)
        spam2 = make_message("spam", 9501)
        deliver(learn_spam(second), "2.M1P1.mx:2,S", spam2)
        wait_for(lambda: contents(os.path.join(second, ".Spam")) == [spam2], "the new mailbox trained",
                 proc=t)
        assert classify(spam2, tmp_path / "s2") == "SPAM"
        conf.write_text("nonsense-key-line colour=blue\n")      # a broken config is not taken
        t.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: "keeping the running config" in t.log(), "the bad config refused", proc=t)
        assert t.poll() is None
    finally:
        assert t.stop() == 0, t.log()
    assert "all trainers stopped" in t.log()


def test_an_inotify_queue_overflow_wakes_the_trainer():
    """watchdog reports an overflow of non-recursive watches only in its log."""
    import logging
    sys.path.insert(0, REPO)
    from maildir_train.watcher import FolderWatcher, Waker
    waker = Waker()
    watcher = FolderWatcher(waker)
    try:
        assert not waker.wait(0)
        logging.getLogger("watchdog.observers.inotify_c").warning(
            "Inotify queue overflowed; filesystem events were lost")
        assert waker.wait(0) and watcher.overflows == 1
    finally:
        watcher.stop()
        logging.getLogger("watchdog").removeHandler(watcher._listener)


def test_a_subscriptions_file_it_cannot_update_does_not_stop_training(box, running):
    maildir, home, _ = box
    os.mkdir(os.path.join(maildir, "subscriptions"))            # in the way: can't be read or replaced
    trainer = running()
    spam = make_message("spam", 9600)
    deliver(learn_spam(maildir), "1.M1P1.mx:2,S", spam)
    wait_for(lambda: contents(junk(maildir)) == [spam], "filed anyway", proc=trainer)
    assert "cannot update the subscriptions file" in trainer.log()


def test_a_message_the_library_chokes_on_is_refused_without_blocking_the_rest(box, monkeypatch):
    """In-process: learn_messages raising (a bug meeting hostile mail) costs one message, not all."""
    sys.path.insert(0, REPO)
    import maildir_train.trainer as trainer_module
    from maildir_train.config import Mailbox
    maildir, home, _ = box
    real = trainer_module.learn_messages

    def choking(state, config, messages):
        if any(b"POISON" in raw for raw, *_ in messages):
            raise ValueError("the library choked")
        return real(state, config, messages)

    monkeypatch.setattr(trainer_module, "learn_messages", choking)
    me = os.getuid()
    mb = Mailbox(name="me", user="me", uid=me, gid=os.getgid(), account_home=str(home),
                 maildir=maildir, home=str(home), layout="maildir++")
    t = trainer_module.Trainer(mb, retry=1)
    t.scan()                                                     # creates the folders
    messages = [make_message("spam", 9700 + i) for i in range(7)]
    poison = make_message("spam", 9799).replace(b"Subject:", b"Subject: POISON")
    for i, m in enumerate(messages[:3] + [poison] + messages[3:]):
        deliver(learn_spam(maildir), f"{i}.M{i}P1.mx:2,S", m, sub="cur")
    result = t.scan()
    assert result.handled == 7 and contents(junk(maildir)) == sorted(messages)
    assert contents(learn_spam(maildir)) == [poison]             # left in place, never lost
    assert t.counters.refused == 1
    assert t.scan().handled == 0 and t.counters.refused == 1     # not retried on every scan


# -- issue 14: what users can leave in their folders -------------------------------------------------

def test_hard_links_to_a_huge_message_keep_the_trainer_under_100_mb(box, tmp_path):
    """40 hard links to one 32 MB file drove the trainer to 1.44 GB: every
    link's 32 MB header was held in one batch. Batches are bounded by bytes."""
    from conftest import need
    maildir, home, _ = box
    subprocess.run(TRAINER + user_args(maildir, home, "--once", "--log", "stderr"),
                   env=env_for(None), capture_output=True, timeout=60, check=True)
    big = b"From: a@example.com\nSubject: " + b"x" * (32 * 1024 * 1024) + b"\n\nbody\n"
    first = deliver(learn_spam(maildir), "1.M1P1.mx:2,S", big, sub="cur")
    for i in range(2, 9):                     # 8 links: 256 MB held at once before
        os.link(first, os.path.join(learn_spam(maildir), "cur", f"{i}.M{i}P1.mx:2,S"))
    report = tmp_path / "rss"
    r = subprocess.run([need("time"), "-f", "%M", "-o", str(report)] + TRAINER
                       + user_args(maildir, home, "--once", "--log", "stderr"),
                       env=env_for(None), capture_output=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert len(files_in(junk(maildir))) == 8 and files_in(learn_spam(maildir)) == {}
    peak_mb = int(report.read_text().split()[-1]) // 1024
    assert peak_mb < 100, f"peak RSS {peak_mb} MB"


def _once(maildir, home):
    return subprocess.run(TRAINER + user_args(maildir, home, "--once", "--log", "stderr"),
                          env=env_for(None), capture_output=True, timeout=60)


def test_a_socket_is_refused_once_and_remembered_across_runs(box, tmp_path):
    """A socket in a learn folder was retried for ever with a warning each
    time, and `--once` exited 75 on every run."""
    import socket as socket_module
    maildir, home, _ = box
    assert _once(maildir, home).returncode == 0
    sock = socket_module.socket(socket_module.AF_UNIX)
    sock.bind(os.path.join(learn_spam(maildir), "new", "1.M1P1.sock"))
    spam = make_message("spam", 9900)
    deliver(learn_spam(maildir), "2.M2P2.mx:2,S", spam, sub="cur")
    try:
        first = _once(maildir, home)
        assert first.returncode == 0, first.stderr
        assert first.stderr.count(b"refused .learn-spam/new/1.M1P1.sock: not a regular file") == 1
        assert contents(junk(maildir)) == [spam]
        second = _once(maildir, home)
        assert second.returncode == 0, second.stderr
        assert b"refused ." not in second.stderr and b"warning" not in second.stderr
    finally:
        sock.close()


def test_file_names_cannot_inject_log_lines_or_drop_them(box):
    """A newline in a file name injected log lines; a non-UTF-8 name made
    the syslog handler drop the line (checked below with the real handler)."""
    maildir, home, _ = box
    assert _once(maildir, home).returncode == 0
    injected = "1.M1P1.mx\nmaildir-train[1]: alice: good learned; forged line:2,S"
    deliver(learn_spam(maildir), injected, make_message("spam", 9910), sub="cur")
    raw_name = os.fsdecode(b"2.M2P2.\xff\xfe:2,S")
    deliver(learn_spam(maildir), raw_name, make_message("spam", 9911), sub="cur")
    r = _once(maildir, home)
    assert r.returncode == 0, r.stderr
    lines = r.stderr.decode("utf-8").splitlines()
    assert not any(line.startswith("maildir-train[1]:") for line in lines), lines
    assert any("1.M1P1.mx\\nmaildir-train[1]" in line for line in lines), lines
    assert any("2.M2P2.\\xff\\xfe" in line for line in lines), lines
    assert len(files_in(junk(maildir))) == 2


def test_a_non_utf8_name_reaches_syslog(tmp_path):
    """SysLogHandler encodes the line as UTF-8: a lone surrogate from a
    non-UTF-8 file name failed that, and the line was dropped."""
    import logging
    import logging.handlers
    import socket as socket_module
    sys.path.insert(0, REPO)
    from maildir_train.service import _Formatter
    address = str(tmp_path / "log.sock")
    server = socket_module.socket(socket_module.AF_UNIX, socket_module.SOCK_DGRAM)
    server.bind(address)
    handler = logging.handlers.SysLogHandler(address=address, facility=logging.handlers.SysLogHandler.LOG_MAIL)
    handler.setFormatter(_Formatter())
    logger = logging.getLogger("maildir-train-test-syslog")
    logger.addHandler(handler)
    try:
        name = os.fsdecode(b"2.M2P2.\xff\xfe:2,S")
        logger.warning("alice: refused %s: owned by uid 0", name)       # raw, as any caller might
        server.settimeout(5)
        got = [server.recv(4096)]
    finally:
        logger.removeHandler(handler)
        handler.close()
        server.close()
    assert all(b"2.M2P2.\\xff\\xfe" in g for g in got), got


def test_an_existing_junk_folder_is_subscribed(box):
    """Issue 11: a Junk folder made before the trainer ran (by a recipe) was
    never subscribed, so clients that list subscribed folders hid it."""
    maildir, home, _ = box
    make_maildir(junk(maildir))
    with open(os.path.join(maildir, "subscriptions"), "wb") as fh:
        fh.write(b"V\t2\n\nSent\n")
    r = subprocess.run(TRAINER + user_args(maildir, home, "--once", "--log", "stderr"),
                       env=env_for(None), capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert open(os.path.join(maildir, "subscriptions"), "rb").read() == \
        b"V\t2\n\nSent\nlearn-spam\nlearn-good\nJunk\n"


def test_once_with_a_missing_maildir_fails_loudly(tmp_path):
    """Issue 11: `--once` exited 0 with no Maildir, so a cron job stayed
    broken in silence. It exits 66 and says how to fix it."""
    missing = tmp_path / "no-such" / "Maildir"
    r = subprocess.run(TRAINER + user_args(missing, tmp_path / "state", "--once", "--log", "stderr"),
                       env=env_for(None), capture_output=True, timeout=60)
    assert r.returncode == 66, r.stderr
    err = r.stderr.decode()
    assert f"cannot open Maildir {missing}" in err and "maildirmake" in err, err
