"""The storage contract: one suite, run against every model store.

SpamBayes runs one storage test class over every backend; this is ours. A
new store (Redis) adds itself to the `store` fixture's params and must pass
every test here unchanged. In-process and fast: no subprocesses.
"""

import struct
import threading
import time

import pytest

from mailfilter import features
from mailfilter.store import ModelError, StoreWriter, empty, modelfile, open_store
from mailfilter.state import Config, State

IDS = ({0, 5, 17, 300}, {600, 700})        # two families, bits=10: family 1 is 512..1023


def _file_store(tmp_path, bits=10):
    return open_store(State(str(tmp_path)), Config(model_bits=bits))


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory):
    from redis_lab import RedisLab
    lab = RedisLab(tmp_path_factory.mktemp("redis")).start()
    yield lab
    lab.stop()


def _redis_store(tmp_path, redis_server, bits=10):
    # A real redis-server (tests/redis_lab.py); each test its own key prefix.
    prefix = f"t{abs(hash(str(tmp_path))) % 10**9}:"
    config = Config(model_bits=bits, store=f"{redis_server.url}&prefix={prefix}")
    return open_store(State(str(tmp_path)), config)


@pytest.fixture(params=["file", "redis"])
def store(request, tmp_path):
    if request.param == "redis":
        return _redis_store(tmp_path, request.getfixturevalue("redis_server"))
    return _file_store(tmp_path)


def _teach(model, value=0.25):
    for i in IDS[0] | IDS[1]:
        model.weights[i] += value
    model.trained_spam += 1


def test_no_model_yet_reads_as_empty_generation_zero(store):
    model = store.open_for_reading()
    assert store.generation() == 0 and model.generation == 0
    assert model.pr(IDS) == 0.0


def test_commit_is_what_readers_see_and_bumps_the_generation(store):
    with store.writer() as writer:
        model = writer.load_copy()
        _teach(model)
        writer.commit(model, [("d1", "spam", 0.0)])
    assert store.generation() == 1
    read = store.open_for_reading()
    assert read.generation == 1 and read.trained_spam == 1
    assert read.pr(IDS) == model.pr(IDS) != 0.0


def test_a_copy_is_private_until_committed(store):
    with store.writer() as writer:
        model = writer.load_copy()
        _teach(model)
        assert store.open_for_reading().pr(IDS) == 0.0       # nothing committed yet
    assert store.generation() == 0


def test_ledger_answers_for_what_was_committed(store):
    with store.writer() as writer:
        writer.load_copy()
        assert writer.label_of("d1") is None
        model = writer.load_copy()
        writer.commit(model, [("d1", "spam", -0.5), ("d2", "good", 0.3)])
    with store.writer() as writer:
        writer.load_copy()
        assert writer.label_of("d1") == "spam" and writer.label_of("d2") == "good"
        model = writer.load_copy()
        writer.commit(model, [("d1", "good", 0.1)])             # a correction replaces
    with store.writer() as writer:
        writer.load_copy()
        assert writer.label_of("d1") == "good"


def test_fresh_copy_is_empty_and_keeps_the_generation_going(store):
    for _ in range(2):
        with store.writer() as writer:
            model = writer.load_copy()
            _teach(model)
            writer.commit(model, [("d1", "spam", 0.0)])
    with store.writer() as writer:
        fresh = writer.load_copy(fresh=True)
        assert fresh.pr(IDS) == 0.0 and fresh.generation == 2
        writer.commit(fresh, [("d9", "good", 0.0)], replace_ledger=True)
    assert store.generation() == 3
    with store.writer() as writer:
        writer.load_copy()
        assert writer.label_of("d1") is None and writer.label_of("d9") == "good"


def test_one_writer_at_a_time(store):
    """A second writer waits until the first has committed, then sees its work."""
    order = []
    first_has_lock = threading.Event()

    def first():
        with store.writer() as writer:
            first_has_lock.set()
            model = writer.load_copy()
            time.sleep(0.3)
            _teach(model)
            writer.commit(model, [("d1", "spam", 0.0)])
            order.append("first committed")

    thread = threading.Thread(target=first)
    thread.start()
    assert first_has_lock.wait(10)
    with store.writer() as writer:
        order.append("second has the lock")
        assert writer.load_copy().generation == 1
    thread.join()
    assert order == ["first committed", "second has the lock"]


def test_writer_is_the_documented_interface(store):
    writer = store.writer()
    assert isinstance(writer, StoreWriter)
    for name in ("load_copy", "label_of", "record_of", "commit", "__enter__", "__exit__"):
        assert callable(getattr(writer, name))


def test_ledger_keeps_the_score_before_and_forgets_on_commit(store):
    """What command mail's undo needs: the label and the pR before the latest
    teaching, and rows dropped in the commit that undoes them."""
    with store.writer() as writer:
        model = writer.load_copy()
        assert writer.record_of("d1") is None
        writer.commit(model, [("d1", "spam", -0.5), ("d2", "good", 0.25)])
    with store.writer() as writer:
        model = writer.load_copy()
        assert writer.record_of("d1") == ("spam", -0.5) and writer.record_of("d2") == ("good", 0.25)
        _teach(model)
        writer.commit(model, [], forget=["d1"])
    assert store.generation() == 2 and store.open_for_reading().pr(IDS) == model.pr(IDS)
    with store.writer() as writer:
        writer.load_copy()
        assert writer.record_of("d1") is None and writer.label_of("d1") is None
        assert writer.label_of("d2") == "good"


def test_ledger_rows_keep_subject_and_sender_and_learned_lists_them(store):
    """What `mailfilter stats` reads: counts per label and the newest rows,
    with the subject and sender's domain (store/__init__.py, the row)."""
    from mailfilter.store.rows import LedgerRow
    assert store.learned() == {"spam": 0, "good": 0, "recent": []}       # nothing yet, nothing made
    with store.writer() as writer:
        writer.commit(writer.load_copy(), [LedgerRow("d1", "spam", -0.5, "Cheap pills", "spam.example"),
                                           ("d2", "good", 0.25)])            # the plain 3-tuple still works
    time.sleep(0.01)
    with store.writer() as writer:
        writer.commit(writer.load_copy(), [LedgerRow("d3", "good", 1.0, "Minutes", "work.example"),
                                           LedgerRow("d1", "good", -2.0, "Cheap pills", "spam.example")])
    learned = store.learned(recent=10)
    assert (learned["spam"], learned["good"]) == (0, 3)
    newest = [(e.digest, e.label, e.subject, e.sender_domain, e.pr_before) for e in learned["recent"]]
    assert newest[:2] == [("d1", "good", "Cheap pills", "spam.example", -2.0),
                          ("d3", "good", "Minutes", "work.example", 1.0)]      # the later commit first
    assert newest[2] == ("d2", "good", None, None, 0.25)
    assert learned["recent"][0].trained_at >= learned["recent"][2].trained_at
    assert [e.digest for e in store.learned(recent=1)["recent"]] == ["d1"]
    assert store.describe()["generation"] == 2


# -- the file store's own format ------------------------------------------------------

def test_file_records_the_feature_version_and_settings(tmp_path):
    store = _file_store(tmp_path)
    with store.writer() as writer:
        writer.commit(writer.load_copy(), [("d", "spam", 0.0)])
    head = (tmp_path / "model.mfm").read_bytes()[:64]
    fmt, version, crc = struct.unpack_from("<I", head, 8)[0], *struct.unpack_from("<II", head, 40)
    assert fmt == modelfile.FORMAT
    assert version == features.VERSION
    assert crc == modelfile.FeatureIdentity(features.VERSION, features.SPEC).crc


@pytest.mark.parametrize("offset, value, words", [
    (40, features.VERSION + 1, f"model written by features v{features.VERSION + 1}, this is v{features.VERSION}"),
    (44, 1, "with other settings"),
])
def test_a_model_of_other_features_is_refused_with_the_way_out(tmp_path, offset, value, words):
    store = _file_store(tmp_path)
    with store.writer() as writer:
        writer.commit(writer.load_copy(), [("d", "spam", 0.0)])
    path = tmp_path / "model.mfm"
    raw = bytearray(path.read_bytes())
    struct.pack_into("<I", raw, offset, value)
    path.write_bytes(bytes(raw))
    def copy_for_writing():
        with store.writer() as writer:
            return writer.load_copy()

    for read in (store.open_for_reading, copy_for_writing):
        with pytest.raises(ModelError) as err:
            read()
        assert words in str(err.value) and "run `mailfilter rebuild`" in str(err.value)
        assert "\n" not in str(err.value)


def test_format_2_files_were_written_by_features_v1(tmp_path):
    """Models saved before the feature version was recorded still load while
    the features are v1, and are refused (not misread) once they change."""
    bits = 10
    model = empty(bits)
    model.weights[5] = 1.5
    header = struct.pack("<8sIIQQQ24x", modelfile.MAGIC, 2, bits, 3, 4, 7)
    path = tmp_path / "model.mfm"
    path.write_bytes(header + bytes(model.weights.cast("B")) + bytes(model.sq_grads.cast("B")))
    v1 = modelfile.FeatureIdentity(1, "anything")
    loaded = modelfile.map_readonly(str(path), bits, v1)
    assert loaded.weights[5] == 1.5 and loaded.generation == 7 and loaded.trained_good == 4
    with pytest.raises(ModelError, match="model written by features v1, this is v2"):
        modelfile.map_readonly(str(path), bits, modelfile.FeatureIdentity(2, "anything"))


# What each feature version's settings text hashes to. A change to features.py
# that changes what an id means must bump VERSION and add a line here; a
# change that forgets to is caught by this test, instead of by users' models
# silently scoring garbage.
SPEC_CRCS = {
    1: 0xddd2f42c,
    2: 0x110fe81b,      # identity family, three ranges, byte grams without our lines
}


def test_feature_settings_are_pinned_to_their_version():
    crc = modelfile.FeatureIdentity(features.VERSION, features.SPEC).crc
    assert features.VERSION in SPEC_CRCS, "a new feature version: add its CRC to SPEC_CRCS"
    assert SPEC_CRCS[features.VERSION] == crc, (
        f"features.SPEC changed (crc {crc:#x}) but VERSION is still {features.VERSION}: bump it")


def test_ledger_rows_newer_than_the_model_are_forgotten(tmp_path):
    """A crash between the ledger commit and the model rename leaves rows of a
    generation the model never reached; the next writer drops them, so those
    messages are simply taught again."""
    from mailfilter.store.ledger import Ledger
    store = _file_store(tmp_path)
    with store.writer() as writer:
        writer.commit(writer.load_copy(), [("kept", "spam", 0.0)])
    ledger = Ledger(store.ledger_path, 1)
    ledger.record([("orphan", "good", 0.0)], 2)          # as if the model save never happened
    ledger.close()
    with store.writer() as writer:
        writer.load_copy()
        assert writer.label_of("kept") == "spam"
        assert writer.label_of("orphan") is None
