"""`mailfilter eval` through the daemon gives the in-process figures: the
results file is byte-identical, so the daemon classifies and learns exactly
as the library does, a learn being seen by the very next classification."""

import os

import loadgen
from conftest import SAMPLES, run_mailfilter
from serve_daemon import Daemon

from mailfilter.rawmail import strip_our_headers


def corpus(tmp_path, n=120):
    lines = []
    for i, data in enumerate(loadgen.messages(n, start=60_000)):
        # Without forged X-CRM114-* fields: in-process eval trains on the
        # features of the message as classified, while TELL (like `learn`)
        # strips our fields first, so such a message would train differently.
        data = strip_our_headers(data)
        name = f"m{i:04d}.eml"
        (tmp_path / name).write_bytes(data)
        # the label loadgen's vocabulary implies, with some noise
        spammy = sum(data.count(w.encode()) for w in loadgen.SPAMMY)
        hammy = sum(data.count(w.encode()) for w in loadgen.HAMMY)
        lines.append(f"{'spam' if (spammy > hammy) != (i % 17 == 0) else 'ham'} {name}")
    for label, folder in (("spam", "spam"), ("ham", "good")):
        for name in sorted(os.listdir(os.path.join(SAMPLES, "train", folder))):
            lines.append(f"{label} {os.path.join(SAMPLES, 'train', folder, name)}")
    index = tmp_path / "index"
    index.write_text("\n".join(lines) + "\n")
    return index


def test_eval_through_the_daemon_is_byte_identical(tmp_path):
    index = corpus(tmp_path)
    local = run_mailfilter(["eval", str(index), "--results", str(tmp_path / "local.txt")], b"", None)
    assert local.returncode == 0, local.stderr
    with Daemon(tmp_path, tmp_path / "empty-state") as d:
        remote = run_mailfilter(["eval", str(index), "--spamd", d.socket,
                                 "--results", str(tmp_path / "daemon.txt")], b"", None)
        assert remote.returncode == 0, remote.stderr + d.log().encode()
    assert (tmp_path / "daemon.txt").read_bytes() == (tmp_path / "local.txt").read_bytes()
    figures = [line for line in local.stdout.splitlines() if not line.startswith(b"messages/s")]
    assert figures == [line for line in remote.stdout.splitlines() if not line.startswith(b"messages/s")]
    verdicts = (tmp_path / "local.txt").read_text()
    assert "verdict=SPAM" in verdicts and "verdict=GOOD" in verdicts


def test_eval_spamd_refuses_home(tmp_path):
    r = run_mailfilter(["eval", "idx", "--spamd", "/x.sock", "--home", str(tmp_path)], b"", None)
    assert r.returncode == 64 and b"no --home" in r.stderr


def test_eval_daemon_down(tmp_path):
    index = corpus(tmp_path, n=3)
    r = run_mailfilter(["eval", str(index), "--spamd", str(tmp_path / "none.sock")], b"", None)
    assert r.returncode == 69 and b"none.sock" in r.stderr, r.stderr
