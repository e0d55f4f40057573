"""The one write path (learning.Session), the training cache and rebuild.

The in-process tests are fast unit tests of the session's promises. The
concurrency tests run the real commands as processes, since the bug they
pin (a learn lost for good when `eval --save` or `train` saved a model
loaded before it) lived in how separate processes shared the model.
"""

import os
import shutil
import subprocess
import time

import pytest

from conftest import MAILFILTER, SAMPLES, env_for, run_mailfilter
from mailfilter import learning
from mailfilter.rawmail import content_digest
from mailfilter.state import Config, State
from mailfilter.store import open_store
from mailfilter.trainingcache import TrainingCache


def sample(kind, name):
    with open(os.path.join(SAMPLES, "train", kind, name), "rb") as fh:
        return fh.read()


SPAM = sample("spam", "00.eml")
GOOD = sample("good", "00.eml")
# A plainly good message that the tests teach as spam, so that whether that
# one learn survived shows in its verdict.
TAUGHT_AS_SPAM = (b"From: colleague@example.org\nTo: me@example.org\nSubject: minutes of the "
                  b"planning meeting\n\nHi, attached are the minutes of Tuesday's planning "
                  b"meeting. Action items are listed at the end. Thanks, Ann\n")


@pytest.fixture
def state(tmp_path):
    return State(str(tmp_path / "state")).ensure()


def config():
    return Config(model_bits=12)


def test_learn_skip_and_correct_in_one_session(state):
    with learning.session_for(state, config()) as session:
        first = session.learn(SPAM, True)
        again = session.learn(SPAM, True)
        corrected = session.learn(SPAM, False)
    assert (first.action, again.action, corrected.action) == ("learned", "skipped", "corrected")
    assert first.pr_after < first.pr_before
    store = open_store(state, config())
    assert store.generation() == 1                    # one commit for the session
    with store.writer() as writer:
        writer.load_copy()
        assert writer.label_of(first.digest) == "good"


def test_an_exception_in_the_session_changes_nothing(state):
    learning.learn_messages(state, config(), [(GOOD, False)])
    store = open_store(state, config())
    before = open(store.model_path, "rb").read()
    with pytest.raises(RuntimeError):
        with learning.session_for(state, config()) as session:
            session.learn(SPAM, True)
            raise RuntimeError("the disk, the user, anything")
    assert open(store.model_path, "rb").read() == before
    with store.writer() as writer:
        writer.load_copy()
        assert writer.label_of(content_digest(SPAM)) is None


def test_a_session_that_teaches_nothing_commits_nothing(state):
    learning.learn_messages(state, config(), [(GOOD, False)])
    result, = learning.learn_messages(state, config(), [(GOOD, False)])
    assert result.action == "skipped"
    assert open_store(state, config()).generation() == 1


def test_our_headers_do_not_change_what_is_learned(state):
    delivered = b"X-CRM114-Status: GOOD ( 3.00 )\n" + SPAM
    first, = learning.learn_messages(state, config(), [(delivered, True)])
    again, = learning.learn_messages(state, config(), [(SPAM, True)])
    assert first.digest == again.digest and again.action == "skipped"


def test_undo_takes_the_score_back_and_forgets_the_message(state):
    learning.learn_messages(state, config(), [(GOOD, False), (SPAM, True)])
    taught, = learning.learn_messages(state, config(), [(TAUGHT_AS_SPAM, True)])
    assert taught.action == "learned" and taught.pr_after < taught.pr_before
    cache = TrainingCache(os.path.join(state.home, "cache.sqlite"), 100, 10 ** 8)
    assert cache.lookup(taught.digest[:16])[1] == "spam"
    with learning.session_for(state, config()) as session:
        undone = session.undo(b"X-CRM114-Status: SPAM ( -3.00 )\n" + TAUGHT_AS_SPAM)
    assert undone.action == "undone" and undone.label == "spam" and undone.digest == taught.digest
    assert undone.pr_before == pytest.approx(taught.pr_after, abs=1e-4)
    assert undone.pr_after == pytest.approx(taught.pr_before, abs=1e-3)
    assert cache.lookup(taught.digest[:16]) is None                 # a rebuild leaves it out
    with open_store(state, config()).writer() as writer:
        writer.load_copy()
        assert writer.record_of(taught.digest) is None
        assert writer.label_of(content_digest(SPAM)) == "spam"        # the others stay
    again, = learning.learn_messages(state, config(), [(TAUGHT_AS_SPAM, True)])
    assert again.action == "learned"                                  # not "skipped": it was forgotten
    cache.close()


def test_undo_of_a_message_never_taught_changes_nothing(state):
    learning.learn_messages(state, config(), [(GOOD, False)])
    generation = open_store(state, config()).generation()
    with learning.session_for(state, config()) as session:
        result = session.undo(SPAM)
    assert result.action == "unknown" and result.pr_after == result.pr_before
    assert open_store(state, config()).generation() == generation


def test_undo_then_learn_in_one_session_keeps_the_new_teaching(state):
    learning.learn_messages(state, config(), [(SPAM, True)])
    with learning.session_for(state, config()) as session:
        session.undo(SPAM)
        relearned = session.learn(SPAM, False)
    assert relearned.action == "learned"
    with open_store(state, config()).writer() as writer:
        writer.load_copy()
        assert writer.label_of(relearned.digest) == "good"


# -- the training cache ---------------------------------------------------------------

def test_cache_keeps_the_newest_within_both_bounds(tmp_path):
    cache = TrainingCache(str(tmp_path / "cache.sqlite"), max_messages=3, max_bytes=10 ** 6)
    for n in range(5):
        cache.add(f"d{n}", "spam", b"Subject: %d\n\nbody %d\n" % (n, n))
    cache.flush()
    assert [d for d, _, _ in cache.entries()] == ["d2", "d3", "d4"]
    cache.add("d2", "good", b"Subject: 2\n\nbody 2\n")        # relabelled: moves to the end
    cache.flush()
    assert [(d, label) for d, label, _ in cache.entries()] == [("d3", "spam"), ("d4", "spam"), ("d2", "good")]
    cache.close()
    small = TrainingCache(str(tmp_path / "small.sqlite"), max_messages=100, max_bytes=1)
    small.add("a", "spam", b"x" * 1000)
    small.add("b", "spam", b"y" * 1000)
    small.flush()
    assert [d for d, _, _ in small.entries()] == []            # each alone is over 1 byte
    small.close()


def test_cache_lookup_by_cache_id_and_forget(tmp_path):
    cache = TrainingCache(str(tmp_path / "cache.sqlite"), max_messages=10, max_bytes=10 ** 8)
    cache.add("abcdef0123456789" + "0" * 48, "spam", b"Subject: a\n\na\n")
    cache.add("abcdef0123456789" + "1" * 48, "good", b"Subject: b\n\nb\n")   # shares 64 bits
    cache.add("0123456789abcdef" + "2" * 48, "good", b"Subject: c\n\nc\n")
    cache.flush()
    assert cache.lookup("0123456789ABCDEF") == ("0123456789abcdef" + "2" * 48, "good", b"Subject: c\n\nc\n")
    assert cache.lookup("abcdef0123456789") is None          # two match: no guess
    assert cache.lookup("abcdef0123456789" + "1" * 48)[1] == "good"
    for bad in ("", "0123", "zz23456789abcdef", "0123456789abcdef'--", "%"):
        assert cache.lookup(bad) is None
    cache.forget(["0123456789abcdef" + "2" * 48])
    assert cache.lookup("0123456789abcdef") is None and len(cache) == 2
    cache.close()


def test_cache_holds_what_the_classifier_reads_and_nothing_unflushed_survives(tmp_path):
    cache = TrainingCache(str(tmp_path / "cache.sqlite"), max_messages=10, max_bytes=10 ** 8)
    huge = b"Subject: big\n\n" + b"a" * (2 << 20)
    cache.add("big", "spam", huge)
    cache.add("lost", "spam", GOOD)
    cache.flush()
    cache.add("unflushed", "good", GOOD)
    cache.close()
    reopened = TrainingCache(str(tmp_path / "cache.sqlite"), max_messages=10, max_bytes=10 ** 8)
    entries = {d: raw for d, _, raw in reopened.entries()}
    assert set(entries) == {"big", "lost"}
    assert entries["big"] == huge[:len(b"Subject: big\n\n") + 256 * 1024]


def test_rebuild_teaches_a_model_that_agrees_with_what_was_taught(state, tmp_path):
    """Rebuild replays the cache in the order it was taught, each message as
    `learn` taught it. The weights are not the same bits (the rehearsal
    draws differ between one session per message and one for all), but the
    model must say of every taught message what the user taught, as the
    original did."""
    from mailfilter.classifier import Classifier, label_for
    from mailfilter.store import modelfile
    messages = [(sample(kind, name), kind == "spam")
                for kind in ("spam", "good") for name in sorted(os.listdir(os.path.join(SAMPLES, "train", kind)))]
    messages = [messages[i] for i in sorted(range(len(messages)), key=lambda i: (i * 7919) % len(messages))]
    taught_count = 0
    for raw, is_spam in messages:                     # one learn per message, as a user would
        result, = learning.learn_messages(state, config(), [(raw, is_spam)])
        taught_count += result.action != "skipped"    # a few samples are the same message
    store = open_store(state, config())

    def verdicts():
        classifier = Classifier(config(), store.open_for_reading())
        return [label_for(classifier.model.pr(classifier.features(raw)[1]), config()) for raw, _ in messages]

    before = verdicts()
    os.unlink(store.model_path)
    done = learning.rebuild(state, config())
    assert (done.cached, done.taught, done.shared, done.where) == (taught_count, taught_count, False,
                                                                   store.model_path)
    assert verdicts() == before
    assert before == ["SPAM" if is_spam else "GOOD" for _, is_spam in messages]
    head = open(store.model_path, "rb").read(64)
    assert head[8:12] == modelfile.FORMAT.to_bytes(4, "little")


def test_rebuild_with_an_empty_cache_changes_nothing(state):
    assert learning.rebuild(state, config()) is None
    assert not os.path.exists(os.path.join(state.home, "model.mfm"))


def test_rebuild_command_after_a_feature_change(tmp_path):
    """The user's way out of "model written by features vN": the filter says
    to rebuild; rebuild makes the model usable again, as it was."""
    home = tmp_path / "state"
    for raw, flag in ((SPAM, "--spam"), (GOOD, "--good")):
        assert run_mailfilter(["learn", flag], raw, home).returncode == 0
    before = run_mailfilter(["classify"], SPAM, home).stdout
    model = home / "model.mfm"
    raw = bytearray(model.read_bytes())
    raw[40:44] = (99).to_bytes(4, "little")             # as if written by other features
    model.write_bytes(bytes(raw))
    refused = run_mailfilter([], SPAM, home)
    assert b"UNSURE ( 0.00 )" in refused.stdout and b"run `mailfilter rebuild`" in refused.stderr
    rebuilt = run_mailfilter(["rebuild"], b"", home)
    assert rebuilt.returncode == 0 and b"from 2 cached messages" in rebuilt.stdout, rebuilt.stderr
    assert run_mailfilter(["classify"], SPAM, home).stdout == before


def test_rebuild_command_with_nothing_cached_exits_66(tmp_path):
    out = run_mailfilter(["rebuild"], b"", tmp_path / "state")
    assert out.returncode == 66 and b"training cache" in out.stderr


# -- one write path: a learn beside a long writer is never lost ----------------------------

def _corpus(tmp_path, copies):
    """An index of many messages (the samples again and again, each made unique)."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    lines = []
    names = [(kind, name) for kind in ("spam", "good")
             for name in sorted(os.listdir(os.path.join(SAMPLES, "train", kind)))]
    for n in range(copies):
        for kind, name in names:
            path = corpus / f"{n}-{kind}-{name}"
            path.write_bytes(b"X-Copy: %d\n" % n + sample(kind, name))
            lines.append(f"{'spam' if kind == 'spam' else 'ham'} {path.name}\n")
    (corpus / "index").write_text("".join(lines))
    return corpus


def _learn_while(writer_cmd, home, started):
    """Start a long writer, wait until it is well under way, then learn one
    message as spam. Afterwards that learn must be in the model."""
    writer = subprocess.Popen(writer_cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env_for(home))
    deadline = time.monotonic() + 60
    while not started() and writer.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert writer.poll() is None, "the long writer ended before the learn could run beside it"
    learn = run_mailfilter(["learn", "--spam"], TAUGHT_AS_SPAM, home)
    out, err = writer.communicate(timeout=300)
    assert writer.returncode == 0, err
    assert learn.returncode == 0 and learn.stdout.startswith(b"learned as spam"), learn.stderr
    again = run_mailfilter(["learn", "--spam"], TAUGHT_AS_SPAM, home)
    assert again.stdout.startswith(b"already learned as spam")
    # The ledger says it was learned; the model must agree.
    assert run_mailfilter(["classify"], TAUGHT_AS_SPAM, home).stdout.startswith(b"SPAM")


def test_learn_during_eval_save_is_not_lost(tmp_path):
    home = tmp_path / "state"
    corpus = _corpus(tmp_path, copies=60)
    results = tmp_path / "results.txt"
    cmd = MAILFILTER + ["eval", str(corpus / "index"), "--home", str(home), "--save",
                        "--results", str(results)]
    _learn_while(cmd, home, lambda: results.exists() and results.stat().st_size > 2000)


def test_learn_during_train_is_not_lost(tmp_path):
    home = tmp_path / "state"
    corpus = _corpus(tmp_path, copies=60)
    spam = tmp_path / "spam"
    good = tmp_path / "good"
    spam.mkdir(), good.mkdir()
    for path in corpus.iterdir():
        if "-spam-" in path.name:
            shutil.copy(path, spam / path.name)
        elif "-good-" in path.name:
            shutil.copy(path, good / path.name)
    cmd = MAILFILTER + ["train", "--home", str(home), "--no-progress", "--passes", "4",
                        "--spam", str(spam), "--good", str(good)]
    lock = home / "model.lock"
    # train takes the writer lock once it has listed the corpus.
    _learn_while(cmd, home, lambda: lock.exists() and _locked(lock))


def _locked(path):
    import fcntl
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def test_a_correction_is_not_undone_by_rehearsing_the_old_label(state):
    """Rehearsal re-teaches recent messages; the copy of a message taught as
    spam before the user corrected it must not be among them."""
    learning.learn_messages(state, config(), [(GOOD, True)])          # the user's mistake
    for _ in range(3):                                                # and later, a correction
        result, = learning.learn_messages(state, config(), [(GOOD, False)])
    from mailfilter.classifier import Classifier, label_for
    classifier = Classifier(config(), open_store(state, config()).open_for_reading())
    assert label_for(classifier.model.pr(classifier.features(GOOD)[1]), config()) == "GOOD"
    with learning.session_for(state, config()) as session:            # one session, both ways
        session.learn(SPAM, False)
        session.learn(SPAM, True)
        for n in range(30):
            session.learn(b"Subject: filler %d\n\nnothing much %d\n" % (n, n), n % 2 == 0)
        assert label_for(session.model.pr(session.classifier.features(SPAM)[1]), config()) == "SPAM"


# -- issue 14: the ledger keys on the whole message ---------------------------------------------

HEAD_G = b"From: ann@example.org\nTo: me@example.org\nSubject: the quarterly report\n\n"
SHARED = b"".join(b"line %06d of the quarterly report, nothing to see\n" % i for i in range(6000))  # ~300 KB
LONG_GOOD = HEAD_G + SHARED + b"Regards, Ann\n"
LONG_SPAM = HEAD_G + SHARED + b"BUY CHEAP PILLS NOW http://pills.example/\n"


def _learn(home, data, label):
    r = run_mailfilter(["learn", "--" + label], data, home)
    assert r.returncode == 0, r.stderr
    return r.stdout.decode()


def test_a_spam_sharing_the_first_256_kib_does_not_correct_a_good_message(tmp_path):
    """The digest covered only the header and 256 KiB of body, so a spam
    with the same start as a good message "corrected" it in the ledger."""
    assert content_digest(LONG_GOOD) == content_digest(LONG_SPAM)      # the premise
    home = tmp_path / "state"
    assert _learn(home, LONG_GOOD, "good").startswith("learned as good")
    assert _learn(home, LONG_SPAM, "spam").startswith("learned as spam")   # was: corrected
    assert _learn(home, LONG_GOOD, "good").startswith("already learned as good")
    assert _learn(home, LONG_SPAM, "spam").startswith("already learned as spam")


def test_the_delivered_copy_of_a_long_message_trains_exactly_like_the_original(tmp_path):
    from mailfilter.rawmail import message_digest
    home = tmp_path / "state"
    delivered = run_mailfilter([], LONG_GOOD, home).stdout
    assert b"X-CRM114-Status:" in delivered and delivered != LONG_GOOD
    assert message_digest(delivered) == message_digest(LONG_GOOD)
    assert _learn(home, LONG_GOOD, "good").startswith("learned as good")
    assert _learn(home, delivered, "good").startswith("already learned as good")
    crlf = delivered.replace(b"\n", b"\r\n")
    assert _learn(home, crlf, "good").startswith("already learned as good")


def _old_digest(data):
    """What mailfilter before issue 14 stored: SHA-256 of the message with our
    fields and a From_ line gone, line endings as LF, cut at the header and
    256 KiB of body. An independent reading, for a plain message."""
    import hashlib
    head, _, body = data.partition(b"\n\n")
    return hashlib.sha256(head + b"\n\n" + body[:256 * 1024]).hexdigest()


def test_an_old_ledger_still_knows_what_it_was_taught(tmp_path):
    """A ledger from before whole-message digests: its rows are legacy. A
    long message is still found through its old digest (in legacy rows
    only); a short one's digest is the same either way."""
    import sqlite3
    home = tmp_path / "state"
    home.mkdir()
    db = sqlite3.connect(str(home / "ledger.sqlite"))
    db.executescript("CREATE TABLE trained (digest TEXT PRIMARY KEY, label TEXT NOT NULL CHECK "
                     "(label IN ('spam', 'good')), trained_at REAL NOT NULL, pr_before REAL, "
                     "generation INTEGER NOT NULL);")
    for data, label in ((LONG_GOOD, "good"), (TAUGHT_AS_SPAM, "spam")):
        db.execute("INSERT INTO trained VALUES (?, ?, 0, 0, 0)", (_old_digest(data), label))
    db.commit()
    db.close()
    assert _learn(home, LONG_GOOD, "good").startswith("already learned as good")
    assert _learn(home, TAUGHT_AS_SPAM, "spam").startswith("already learned as spam")
    assert _learn(home, LONG_GOOD, "spam").startswith("corrected as spam")
    # Rows written now are whole-message rows: a prefix twin of a message
    # learned now is a message of its own (an old row keeps matching its
    # prefix twins: that is the price of keeping old ledgers).
    head = b"From: bob@example.org\nSubject: logs\n\n"
    assert _learn(home, head + SHARED + b"one\n", "good").startswith("learned as good")
    assert _learn(home, head + SHARED + b"two\n", "spam").startswith("learned as spam")
