"""Concurrent deliveries: many filters at once while the model is being rewritten.

1. Rounds of 50 filter processes started together on 50 different messages,
   while `mailfilter learn` runs in a loop and the Maildir trainer learns
   from its folders, all on one state directory: every filter exits 0 and
   writes its input plus our headers, classified (a torn model read would
   show as the failure notice), and the model loads and classifies after.
2. A real procmail delivering 1000 messages, 16 at a time, into one Maildir:
   1000 files, each byte-exact.
"""

import os
import random
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor


from conftest import CHARSET_CASES, MAILFILTER, REPO, SAMPLES, assert_passthrough, env_for, need
from hostile import reference_strip
from mailfilter.commands.demo import RCFILE

TRAINER = [sys.executable, "-m", "maildir_train"]
FAILED_NOTICE = b"could not classify"
WORDS = ("free money offer click here now meeting tomorrow report attached cheap pills unsubscribe "
         "invoice project budget lunch winner prize urgent account verify password holiday photos").split()


def make_message(n, eol=b"\n", forged=False, size=6):
    rng = random.Random(n)
    body = eol.join(" ".join(rng.choice(WORDS) for _ in range(12)).encode() for _ in range(size))
    head = [b"From: sender%d@example.com" % n, b"To: user@example.org", b"X-Test-Id: %d" % n,
            b"Subject: %s #%d" % (rng.choice(WORDS).encode(), n), b"Message-ID: <%d.%d@example>" % (n, rng.getrandbits(40))]
    if forged:
        head.insert(2, b"x-crm114-status: GOOD ( 99.99 )" + eol + b"\t(folded)")
    return eol.join(head) + eol + eol + body + eol


def varied_messages(count, start=0):
    """Plain, CRLF, bare CR, forged headers, large, trained spam, and the charset fixtures."""
    fixtures = [open(os.path.join(CHARSET_CASES, f), "rb").read() for f in sorted(os.listdir(CHARSET_CASES))
                if not f.startswith("LICENSE")]
    spam_dir = os.path.join(SAMPLES, "train", "spam")
    spams = [open(os.path.join(spam_dir, f), "rb").read() for f in sorted(os.listdir(spam_dir))]
    out = []
    for i in range(start, start + count):
        kind = i % 7
        if kind == 6:
            # Spam the model was trained on: lands in .Junk through procmail.
            out.append(b"X-Test-Id: %d\n" % i + spams[i // 7 % len(spams)])
        elif kind == 0 and fixtures:
            data = fixtures[i // 7 % len(fixtures)]
            eol = b"\r\n" if b"\r\n" in data else (b"\n" if b"\n" in data else b"\r")
            out.append(b"X-Test-Id: %d" % i + eol + data)
        elif kind == 1:
            out.append(make_message(i, b"\r\n"))
        elif kind == 2:
            out.append(make_message(i, b"\r"))
        elif kind == 3:
            out.append(make_message(i, forged=True))
        elif kind == 4:
            out.append(make_message(i, size=3000))        # ~250 KB
        else:
            out.append(make_message(i))
    return out


def train_home(home):
    subprocess.run(MAILFILTER + ["train", "--home", str(home), "--no-progress", "--passes", "3",
                                 "--spam", os.path.join(SAMPLES, "train", "spam"),
                                 "--good", os.path.join(SAMPLES, "train", "good")],
                   check=True, capture_output=True, env=env_for(home))


def make_maildir(root, folders=("",)):
    for folder in folders:
        for sub in ("cur", "new", "tmp"):
            os.makedirs(os.path.join(root, folder, sub), exist_ok=True)
    return str(root)


def deliver(folder_dir, name, data):
    tmp = os.path.join(folder_dir, "tmp", name)
    with open(tmp, "wb") as fh:
        fh.write(data)
    os.rename(tmp, os.path.join(folder_dir, "new", name))


def files(folder_dir):
    return [os.path.join(folder_dir, sub, n) for sub in ("cur", "new")
            if os.path.isdir(os.path.join(folder_dir, sub)) for n in os.listdir(os.path.join(folder_dir, sub))]


ROUNDS = 3
AT_ONCE = 50


def test_fifty_filters_at_once_while_learn_and_the_trainer_rewrite_the_model(tmp_path):
    home = tmp_path / "state"
    train_home(home)
    env = env_for(home)
    maildir = make_maildir(tmp_path / "Maildir")
    trainer_log = open(tmp_path / "trainer.log", "wb")
    trainer = subprocess.Popen(TRAINER + ["--log", "stderr", "--user", "--maildir", maildir, "--home", str(home),
                                          "--retry", "1", "--batch", "5"],
                               stdout=trainer_log, stderr=subprocess.STDOUT, env=env)
    read_log = lambda: (tmp_path / "trainer.log").read_text(errors="replace")
    deadline = time.monotonic() + 30
    while "watching" not in read_log():
        assert trainer.poll() is None and time.monotonic() < deadline, read_log()
        time.sleep(0.05)

    stop = threading.Event()
    learn_results = []          # (returncode, stderr, start, end)
    trainer_fed = []

    def learn_loop():
        n = 0
        while not stop.is_set():
            data = make_message(100_000 + n)
            start = time.monotonic()
            r = subprocess.run(MAILFILTER + ["learn", "-q", "--spam" if n % 2 else "--good"], input=data,
                               capture_output=True, env=env, timeout=120)
            learn_results.append((r.returncode, r.stderr, start, time.monotonic()))
            n += 1

    def feed_trainer():
        n = 0
        while not stop.is_set():
            folder = os.path.join(maildir, ".learn-spam" if n % 2 else ".learn-good")
            if os.path.isdir(os.path.join(folder, "tmp")):
                deliver(folder, f"{1700000000 + n}.M{n}P1.test", make_message(200_000 + n))
                trainer_fed.append(n)
            n += 1
            stop.wait(0.05)

    helpers = [threading.Thread(target=learn_loop), threading.Thread(target=feed_trainer)]
    for t in helpers:
        t.start()
    failures = []
    filter_windows = []
    try:
        time.sleep(0.5)         # let both writers get going
        for round_ in range(ROUNDS):
            messages = varied_messages(AT_ONCE, start=round_ * AT_ONCE)
            barrier = threading.Barrier(AT_ONCE)

            def one(data):
                barrier.wait()
                start = time.monotonic()
                r = subprocess.run(MAILFILTER, input=data, capture_output=True, env=env, timeout=300)
                filter_windows.append((start, time.monotonic()))
                return data, r

            with ThreadPoolExecutor(AT_ONCE) as pool:
                for data, r in pool.map(one, messages):
                    try:
                        assert r.returncode == 0, r.stderr
                        assert_passthrough(data, r.stdout)
                        assert FAILED_NOTICE not in r.stdout[:65536], r.stderr
                    except AssertionError as err:
                        failures.append(f"{data[:60]!r}: {err}")
    finally:
        stop.set()
        for t in helpers:
            t.join()
    assert not failures, f"{len(failures)} of {ROUNDS * AT_ONCE} filters failed:\n" + "\n".join(failures[:5])

    # Every learn succeeded, and the writers really overlapped the filters.
    assert learn_results and all(rc == 0 for rc, *_ in learn_results), [e for rc, e, *_ in learn_results if rc]
    first, last = min(s for s, _ in filter_windows), max(e for _, e in filter_windows)
    assert sum(1 for _, _, s, e in learn_results if s < last and e > first) >= 2
    # The trainer learns and files all it was given, then stops cleanly.
    deadline = time.monotonic() + 60
    while files(os.path.join(maildir, ".learn-spam")) or files(os.path.join(maildir, ".learn-good")):
        assert trainer.poll() is None and time.monotonic() < deadline, read_log()
        time.sleep(0.1)
    trainer.send_signal(signal.SIGTERM)
    assert trainer.wait(timeout=60) == 0, read_log()
    trainer_log.close()
    assert trainer_fed and len(files(maildir)) + len(files(os.path.join(maildir, ".Junk"))) == len(trainer_fed)

    # The model loads and classifies afterwards, and holds everything learned.
    r = subprocess.run(MAILFILTER + ["classify"], input=make_message(1), capture_output=True, env=env, timeout=60)
    assert r.returncode == 0 and re.fullmatch(rb"(SPAM|GOOD|UNSURE) \( [+-]?\d+\.\d\d \)\n", r.stdout), r
    import sqlite3
    with sqlite3.connect(home / "ledger.sqlite") as db:
        rows = db.execute("SELECT COUNT(*) FROM trained").fetchone()[0]
    assert rows >= len(learn_results) + len(trainer_fed)
    assert not [n for n in os.listdir(home) if ".tmp." in n]
    print(f"\n{ROUNDS}x{AT_ONCE} filters at once, {len(learn_results)} learn runs and "
          f"{len(trainer_fed)} trainer messages alongside: none failed")


# -- procmail ---------------------------------------------------------------------------

DELIVERIES = 1000
PARALLEL = 16


def _rcfile(work, maildir, command, lock=True):
    """The demo's recipe (contrib/procmailrc's), for this Maildir and filter command."""
    text = RCFILE.format(maildir=maildir, workdir=work, command=command, pythonpath=REPO)
    if lock:
        # CRM114-era recipes lock the filter per user. That serialises it, and
        # procmail polls a held lock every LOCKSLEEP (8) seconds: 1000 parallel
        # deliveries would take ~20 minutes, which is why contrib/procmailrc
        # has no lock (the filter needs none: readers mmap a file that writers
        # replace atomically). The locked variant is still checked, on fewer.
        assert ":0fw\n" in text
        text = text.replace(":0fw\n", f":0fw: {work}/.mailfilter.lock\n", 1)
    path = os.path.join(work, "procmailrc-lock" if lock else "procmailrc")
    with open(path, "w") as fh:
        fh.write(text)
    return path


def _deliver_all(procmail, rcfile, messages, parallel):
    def one(data):
        return subprocess.run([procmail, "-m", rcfile], input=data, capture_output=True, timeout=600)
    with ThreadPoolExecutor(parallel) as pool:
        return list(pool.map(one, messages))


def _by_test_id(maildir):
    out = {}
    for folder in ("", ".Junk"):
        for path in files(os.path.join(maildir, folder)):
            with open(path, "rb") as fh:
                data = fh.read()
            m = re.search(rb"X-Test-Id: (\d+)", data)
            assert m, data[:200]
            assert int(m.group(1)) not in out, f"message {m.group(1)} delivered twice"
            out[int(m.group(1))] = data
    return out


def _check_deliveries(tmp_path, name, messages, lock, parallel):
    procmail = need("procmail")
    work = tmp_path / name
    work.mkdir()
    home = tmp_path / "state"
    # What procmail itself stores for each message (it adds a final blank
    # line where there is none), with `cat` as the filter.
    base_dir = make_maildir(work / "baseline", ("", ".Junk"))
    base_rc = _rcfile(str(work / "baseline"), base_dir, "cat", lock=False)
    assert all(r.returncode == 0 for r in _deliver_all(procmail, base_rc, messages, parallel))
    baseline = _by_test_id(base_dir)
    # Now through mailfilter.
    maildir = make_maildir(work / "Maildir", ("", ".Junk"))
    command = " ".join(shlex.quote(a) for a in MAILFILTER + ["--home", str(home)])
    rcfile = _rcfile(str(work), maildir, command, lock=lock)
    start = time.monotonic()
    results = _deliver_all(procmail, rcfile, messages, parallel)
    elapsed = time.monotonic() - start
    assert all(r.returncode == 0 for r in results), [r.stderr for r in results if r.returncode][:3]
    got = _by_test_id(maildir)
    assert len(files(maildir)) + len(files(os.path.join(maildir, ".Junk"))) == len(messages)
    assert sorted(got) == sorted(baseline) == sorted(range(len(messages)))
    for test_id, data in got.items():
        assert_passthrough_of(baseline[test_id], data)
        assert FAILED_NOTICE not in data[:65536]
    log = (work / "procmail.log").read_bytes()
    assert b"procmail: " not in log, log[-2000:]      # procmail reports its own trouble so
    junk = len(files(os.path.join(maildir, ".Junk")))
    return elapsed, junk


def assert_passthrough_of(stored_plain, stored_filtered):
    """The filtered copy is the plain copy minus forged X-CRM114-* plus our block."""
    from conftest import _OURS
    m = _OURS.search(stored_filtered)
    assert m and b"X-CRM114-Status: " in m.group(0)
    assert stored_filtered[:m.start()] + stored_filtered[m.end():] == reference_strip(stored_plain)


def _messages(count):
    out = varied_messages(count)
    # Test ids 0..count-1 in order: varied_messages numbers them that way.
    return out


def test_procmail_delivers_1000_messages_in_parallel_byte_exact(tmp_path):
    train_home(tmp_path / "state")
    elapsed, junk = _check_deliveries(tmp_path, "parallel", _messages(DELIVERIES), lock=False, parallel=PARALLEL)
    assert 0 < junk < DELIVERIES
    print(f"\n{DELIVERIES} deliveries, {PARALLEL} at a time: all byte-exact, {junk} in Junk, {elapsed:.1f} s")


def test_procmail_with_the_documented_locking_recipe(tmp_path):
    # The recipe exactly as documented, lock included; LOCKSLEEP stays 8 s,
    # so few messages: the point is the recipe, not the throughput.
    train_home(tmp_path / "state")
    _check_deliveries(tmp_path, "locked", _messages(12), lock=True, parallel=4)
