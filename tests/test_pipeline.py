"""pipeline: bytes in, verdict, our headers on the raw bytes, bytes out; never stops the mail.

In-process, with a stand-in classifier where a test needs one to fail on
demand (the real one is exercised through the command in the other tests).
"""

import pytest

from conftest import CHARSET_CASES, assert_passthrough, status_of
from mailfilter import pipeline
from mailfilter.classifier import Classifier, Verdict
from mailfilter.state import Config
from mailfilter.store import empty

MESSAGE = b"From: a@example.com\r\nX-CRM114-Status: GOOD ( 9.99 )\r\nSubject: hi\r\n\r\nbody\r\n"


def real_classifier():
    return Classifier(Config(model_bits=10), empty(10))


def test_filter_bytes_is_the_input_plus_our_headers_minus_forged_ones():
    out, outcome = pipeline.filter_bytes(MESSAGE, real_classifier)
    assert_passthrough(MESSAGE, out)
    assert status_of(out) == "UNSURE ( 0.00 )" and not outcome.failed
    assert b"X-CRM114-Notice: Please train this message.\r\n" in out
    assert b"GOOD ( 9.99 )" not in out


@pytest.mark.parametrize("failure", [RuntimeError("model exploded"), ImportError("no mmh3"),
                                     MemoryError()])
def test_any_failure_in_classifying_still_delivers_unsure_with_the_notice(failure, capsys):
    def broken():
        raise failure

    out, outcome = pipeline.filter_bytes(MESSAGE, broken)
    assert outcome.failed
    assert_passthrough(MESSAGE, out)
    assert status_of(out) == "UNSURE ( 0.00 )"
    assert pipeline.FAILED_NOTICE.encode() in out
    assert "passed through unclassified" in capsys.readouterr().err


def test_status_only_writes_the_verdict_and_reads_the_rest():
    big = b"Subject: x\n\n" + b"y" * (3 << 20)
    written, offset = [], [0]

    def read(n):
        chunk = big[offset[0]:offset[0] + n]
        offset[0] += len(chunk)
        return chunk

    outcome = pipeline.filter_stream(read, written.append, real_classifier, status_only=True)
    assert b"".join(written) == outcome.verdict.status.encode() + b"\n"
    assert offset[0] == len(big)


def test_a_write_failure_is_raised_for_the_caller_to_retry():
    def full_disk(data):
        raise OSError(28, "No space left on device")

    pending = [MESSAGE]
    with pytest.raises(OSError):
        pipeline.filter_stream(lambda n: pending.pop() if pending else b"", full_disk, real_classifier)


def test_outcome_lines_follow_mailreaver():
    outcome = pipeline.Outcome(Verdict("SPAM", -3.5), "ab" * 32)
    assert outcome.status_lines() == [
        b"X-CRM114-Version: mailfilter " + pipeline.__version__.encode(),
        b"X-CRM114-CacheID: sfid-" + b"ab" * 8,
        b"X-CRM114-Status: SPAM ( -3.50 )",
    ]


def test_read_file_reads_as_the_filter_reads_stdin(tmp_path):
    import os
    for name in sorted(os.listdir(CHARSET_CASES))[:10]:
        path = os.path.join(CHARSET_CASES, name)
        prefix, block = pipeline.read_file(path)
        with open(path, "rb") as fh:
            assert prefix == fh.read()[:len(prefix)]
        out, _ = pipeline.filter_bytes(open(path, "rb").read(), real_classifier)
        assert_passthrough(open(path, "rb").read(), out)


def test_the_pipe_filter_loads_nothing_heavy(tmp_path):
    """What the per-message start-up imports, for a user with a trained
    model: none of the modules that cost milliseconds and that only
    learning, the network helper or the daemon need (numpy, SQLite,
    tempfile's shutil/bz2/lzma, argparse, redis, the MIME parser of
    mail-parser, netaddr, watchdog, tqdm)."""
    import subprocess
    import sys

    from conftest import MAILFILTER, SAMPLES, env_for
    home = tmp_path / "state"
    trained = subprocess.run(MAILFILTER + ["train", "--home", str(home), "--no-progress",
                                           "--spam", f"{SAMPLES}/train/spam", "--good", f"{SAMPLES}/train/good"],
                             capture_output=True, env=env_for(home), timeout=300)
    assert trained.returncode == 0, trained.stderr
    probe = ("import sys, runpy\nsys.argv = ['mailfilter']\n"
             "try:\n    runpy.run_module('mailfilter', run_name='__main__')\n"
             "except SystemExit:\n    pass\n"
             "sys.stderr.write('MODULES ' + ' '.join(sorted(sys.modules)))\n")
    message = open(f"{SAMPLES}/inbox/1-good.eml", "rb").read()
    out = subprocess.run([sys.executable, "-c", probe], input=message, capture_output=True,
                         env=env_for(home), timeout=60)
    assert b"X-CRM114-Status: GOOD" in out.stdout or b"X-CRM114-Status: UNSURE" in out.stdout, out.stderr
    loaded = set(out.stderr.split(b"MODULES ", 1)[1].decode().split())
    heavy = {"numpy", "sqlite3", "tempfile", "shutil", "bz2", "lzma", "argparse", "redis", "mailparser",
             "netaddr", "watchdog", "tqdm", "dataclasses", "inspect", "socket", "hashlib"}
    assert loaded & heavy == set()
