"""`mailfilter serve` with Debian's real spamc as the client, every command.

The daemon runs on a private socket over a state directory trained on the
samples; the reference for every message is the real pipe filter
(`python -m mailfilter`) over the same state directory: spamc's output must
equal it byte for byte, the hostile corpus of tests/hostile.py included.
"""

import os
import re
import signal
import socket
import subprocess

import pytest

import hostile
from conftest import (MAILFILTER, SAMPLES, assert_passthrough, env_for, need, run_mailfilter, status_of,
                      train_on_samples)
from mailfilter.state import Config
from serve_daemon import Daemon, spamc

# spamc prints "score/threshold" with score = -pR, threshold = -spam_threshold.
THRESHOLD = -Config().spam_threshold

SPAM = open(os.path.join(SAMPLES, "train", "spam", "00.eml"), "rb").read()
GOOD = open(os.path.join(SAMPLES, "train", "good", "00.eml"), "rb").read()
INBOX = sorted(os.path.join(SAMPLES, "inbox", n) for n in os.listdir(os.path.join(SAMPLES, "inbox")))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    home = tmp_path_factory.mktemp("serve") / "state"
    train_on_samples(home, passes=10)
    (home / "priolist.mfp").write_text(hostile.PRIOLIST)
    return home


@pytest.fixture(scope="module")
def daemon(trained, tmp_path_factory):
    need("spamc")
    d = Daemon(tmp_path_factory.mktemp("sock"), trained)
    d.start()
    yield d
    assert d.stop() == 0, d.log()


def pipe_filter(data, home, args=()):
    r = run_mailfilter(list(args), data, home)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_process_is_the_pipe_filter_byte_for_byte(daemon, trained):
    for path in INBOX + [os.path.join(SAMPLES, "train", "spam", "00.eml")]:
        data = open(path, "rb").read()
        r = spamc(daemon.socket, data=data)
        assert r.returncode == 0, r.stderr
        assert r.stdout == pipe_filter(data, trained), path
        assert_passthrough(data, r.stdout)


@pytest.mark.parametrize("case", [c for c in hostile.CASES if c.name != "empty"], ids=lambda c: c.name)
def test_hostile_corpus_through_spamc_is_byte_exact(case, daemon, trained):
    sizes = [case.small]
    if case.name in ("header_line_10mb", "rfc822_base64_bomb", "parts_100000", "crlf", "bare_cr"):
        sizes.append(case.large)     # past the daemon's in-memory spool, and spamc's 500 KB default
    for size in sizes:
        data = case.build(size)
        r = spamc(daemon.socket, data=data)
        assert r.returncode == 0, r.stderr
        assert r.stdout == pipe_filter(data, trained), f"{case.name} at {len(data)} bytes"
        assert b"could not classify" not in r.stdout[:1 << 20]


def test_empty_message_is_answered_by_the_daemon(daemon, trained):
    # spamc itself never sends an empty message (it passes it through,
    # libspamc.c _message_read_raw): the daemon's answer is checked over the
    # protocol directly.
    answer = raw_request(daemon.socket, b"PROCESS SPAMC/1.5\r\nUser: x\r\nContent-length: 0\r\n\r\n")
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"SPAMD/1.5 0 EX_OK\r\n")
    assert body == pipe_filter(b"", trained)
    assert f"Content-length: {len(body)}".encode() in head


def raw_request(path, data: bytes) -> bytes:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(30)
        s.connect(path)
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        chunks = []
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)


def test_headers_command_gives_the_same_message(daemon, trained):
    # spamc --headers: the daemon sends the header block, spamc appends the body.
    for data in (SPAM, GOOD, hostile.BY_NAME["crlf"].build(2000), hostile.BY_NAME["mixed_line_endings"].build(2000)):
        r = spamc(daemon.socket, ["--headers"], data)
        assert r.returncode == 0, r.stderr
        assert r.stdout == pipe_filter(data, trained)


def test_compressed_request(daemon, trained):
    # spamc -z sends the message zlib-compressed with "Compress: zlib", but
    # Debian's spamc is built without zlib (it exits 64 for -z), so the
    # request spamc would send is made here.
    import zlib
    packed = zlib.compress(SPAM, 3)
    answer = raw_request(daemon.socket, b"PROCESS SPAMC/1.5\r\nUser: x\r\nCompress: zlib\r\n"
                         b"Content-length: %d\r\n\r\n" % len(packed) + packed)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"SPAMD/1.5 0 EX_OK\r\n")
    assert body == pipe_filter(SPAM, trained)


def test_check_exits_1_for_spam_and_prints_score_over_threshold(daemon, trained):
    spam = spamc(daemon.socket, ["-c"], SPAM)
    good = spamc(daemon.socket, ["-c"], GOOD)
    assert spam.returncode == 1 and good.returncode == 0, (spam, good)
    # score = -pR, threshold = -spam_threshold, as spamc prints them
    pr_spam = float(re.search(r"\( (\S+) \)", status_of(pipe_filter(SPAM, trained))).group(1))
    pr_good = float(re.search(r"\( (\S+) \)", status_of(pipe_filter(GOOD, trained))).group(1))
    assert spam.stdout == b"%.1f/%.1f\n" % (-pr_spam, THRESHOLD)
    assert good.stdout == b"%.1f/%.1f\n" % (-pr_good, THRESHOLD)
    assert status_of(pipe_filter(SPAM, trained)).startswith("SPAM")


def test_exit_code_option_and_symbols_and_report(daemon):
    assert spamc(daemon.socket, ["-E"], SPAM).returncode == 1
    assert spamc(daemon.socket, ["-E"], GOOD).returncode == 0
    symbols = spamc(daemon.socket, ["-y"], SPAM)
    assert symbols.returncode == 0 and symbols.stdout == b"MAILFILTER_SPAM"
    for option in ("-r", "-R"):            # REPORT_IFSPAM and REPORT: spam gets the report
        report = spamc(daemon.socket, [option], SPAM)
        assert report.returncode == 0
        first, rest = report.stdout.split(b"\n", 1)
        assert re.fullmatch(rb"\d+\.\d/%.1f" % THRESHOLD, first)
        assert b"X-CRM114-Status: SPAM" in rest
    # REPORT_IFSPAM on good mail: spamc prints nothing at all (libspamc.c)
    assert spamc(daemon.socket, ["-r"], GOOD).stdout == b""
    assert b"X-CRM114-Status: GOOD" in spamc(daemon.socket, ["-R"], GOOD).stdout


def test_ping(daemon):
    r = subprocess.run([need("spamc"), "-U", daemon.socket, "-K"], capture_output=True, timeout=30)
    assert r.returncode == 0 and r.stdout == b"SPAMD/1.5 0\n", r


def test_tell_learns_and_the_next_classification_sees_it(tmp_path):
    home = tmp_path / "fresh"
    message = hostile.HEAD + b"\nwin a free cruise, reply now to claim your prize\n"
    with Daemon(tmp_path, home) as d:
        before = spamc(d.socket, data=message)
        assert status_of(before.stdout).startswith("UNSURE")
        learned = spamc(d.socket, ["-L", "spam"], message)
        assert (learned.returncode, learned.stdout) == (0, b"Message successfully un/learned\n"), learned
        again = spamc(d.socket, ["-L", "spam"], message)
        assert again.stdout == b"Message was already un/learned\n"
        assert spamc(d.socket, ["-c"], message).returncode == 1
        after = spamc(d.socket, data=message)
        assert status_of(after.stdout).startswith("SPAM")
        assert after.stdout == pipe_filter(message, home)
        # a learn from the command line is seen by the daemon's next answer
        r = run_mailfilter(["learn", "--good"], message, home)
        assert r.returncode == 0, r.stderr
        assert spamc(d.socket, ["-c"], message).returncode == 0
        assert status_of(spamc(d.socket, data=message).stdout).startswith("GOOD")
        # the ledger holds what TELL taught, as after `mailfilter learn`
        import sqlite3
        with sqlite3.connect(home / "ledger.sqlite") as db:
            assert db.execute("select count(*) from trained").fetchone()[0] >= 1


def test_forget_is_refused_and_spamc_says_so(tmp_path):
    with Daemon(tmp_path, tmp_path / "h") as d:
        r = spamc(d.socket, ["-L", "forget"], SPAM)
        assert r.returncode != 0
        assert "forgetting a message is not supported" in d.log()


def test_tcp_listener_on_loopback(tmp_path, trained):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with Daemon(tmp_path, trained, ["--listen", f"127.0.0.1:{port}"]) as d:
        r = subprocess.run([need("spamc"), "-d", "127.0.0.1", "-p", str(port), "-s", "1000000"],
                           input=SPAM, capture_output=True, timeout=60)
        assert r.returncode == 0, r.stderr
        assert r.stdout == pipe_filter(SPAM, trained)
        assert "serving on" in d.log() and f"127.0.0.1:{port}" in d.log()


def test_listen_refuses_non_loopback(tmp_path):
    r = run_mailfilter(["serve", "--socket", str(tmp_path / "s"), "--listen", "0.0.0.0:7830"], b"", tmp_path / "h")
    assert r.returncode == 64
    assert b"only loopback" in r.stderr


def test_daemon_down_spamc_passes_the_message_unchanged(tmp_path):
    r = spamc(str(tmp_path / "nobody-listens.sock"), data=SPAM)
    assert (r.returncode, r.stdout) == (0, SPAM)


def test_systemd_socket_activation(tmp_path, trained):
    # systemd-socket-activate (Debian's systemd package) creates the socket
    # and passes it as fd 3 with LISTEN_FDS/LISTEN_PID, as systemd does.
    tool = need("systemd-socket-activate")
    path = str(tmp_path / "activated.sock")
    env = env_for(trained)
    proc = subprocess.Popen([tool, "-l", path, *MAILFILTER, "serve", "--home", str(trained)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        from serve_daemon import wait_for_ping
        import time
        deadline = time.monotonic() + 30
        while not os.path.exists(path) and time.monotonic() < deadline:
            time.sleep(0.05)
        wait_for_ping(path, proc, 30)
        r = spamc(path, data=SPAM)
        assert r.stdout == pipe_filter(SPAM, trained)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        out = proc.communicate(timeout=30)[0]
    assert b"serving on" in out and b"activated.sock" in out, out


def test_socket_in_use_is_refused(tmp_path, daemon):
    r = run_mailfilter(["serve", "--socket", daemon.socket], b"", tmp_path / "h")
    assert r.returncode == 69 and b"another daemon is listening" in r.stderr


def test_help_teaches():
    r = run_mailfilter(["serve", "--help"])
    assert r.returncode == 0
    for needle in (b"spamc -U", b"-L spam", b"exit status", b"--trusted-user", b"socket activation"):
        assert needle in r.stdout
