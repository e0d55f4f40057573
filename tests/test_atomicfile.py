"""atomicfile.replace: whole file or nothing, and no temporary name another
user can capture (issue 14, item 11).

The attack: root writes `krfilter -o /shared/krfilter.ipset` into a sticky,
world-writable directory. The old temporary name was `.NAME.tmp.PID`, opened
without O_EXCL: a user who made that name first (for the right PID, or for
all of them) owned the file root then filled and renamed into place, and
could write rules into it through a descriptor kept open, before it was
loaded. Here the user pre-creates the old name for this very process, keeps
it open, and gets nothing.
"""

import os
import stat
import subprocess
import sys

import pytest

from conftest import REPO, need
from mailfilter import atomicfile

NOBODY = 65534


def test_writes_whole_file_with_mode_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "out"
    target.write_bytes(b"old")
    old = os.umask(0o077)               # the mode asked for wins over a strict umask
    try:
        atomicfile.replace(str(target), (b"new ", b"content"), 0o644)
    finally:
        os.umask(old)
    assert target.read_bytes() == b"new content"
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert os.listdir(tmp_path) == ["out"]


def test_a_failed_write_keeps_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "out"
    target.write_bytes(b"old")

    def chunks():
        yield b"half"
        raise RuntimeError("disk on fire")
    with pytest.raises(RuntimeError):
        atomicfile.replace(str(target), chunks())
    assert target.read_bytes() == b"old" and os.listdir(tmp_path) == ["out"]


@pytest.mark.root
def test_a_planted_temporary_name_in_a_sticky_directory_captures_nothing(tmp_path):
    assert os.geteuid() == 0, "needs root (chown to another user); CI runs the suite as root"
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o1777)                         # like /tmp
    target = shared / "krfilter.ipset"
    # The name the old code used for this process: the user makes it, owns
    # it, and keeps it open for writing.
    planted = shared / f".krfilter.ipset.tmp.{os.getpid()}"
    planted.write_bytes(b"")
    os.chown(planted, NOBODY, NOBODY)
    os.chmod(planted, 0o666)
    fd = os.open(planted, os.O_RDWR)
    try:
        atomicfile.replace(str(target), (b"create krfilter4 hash:net\n",), 0o644)
        st = target.stat()
        assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (0, 0o644)      # root's, not the user's
        # The user's file is untouched, and is not the one now in place.
        assert os.fstat(fd).st_ino != st.st_ino
        assert os.pread(fd, 100, 0) == b"" and planted.read_bytes() == b""
        os.pwrite(fd, b"-A INPUT -j ACCEPT\n", 0)
        assert target.read_bytes() == b"create krfilter4 hash:net\n"
    finally:
        os.close(fd)


@pytest.mark.root
def test_krfilter_output_into_a_sticky_directory_is_roots(tmp_path):
    # The same through the command the issue names. krfilter runs as PID 1 of
    # a new PID namespace, so the old code's name is known exactly:
    # .krfilter.ipset.tmp.1, which the user has made and holds open.
    need("unshare")
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o1777)
    planted = shared / ".krfilter.ipset.tmp.1"
    planted.write_bytes(b"planted\n")
    os.chown(planted, NOBODY, NOBODY)
    os.chmod(planted, 0o666)
    fd = os.open(planted, os.O_RDWR)
    try:
        env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
        res = subprocess.run(["unshare", "--pid", "--fork", sys.executable, "-c",
                              "import os, sys; assert os.getpid() == 1; from mailfilter.cli import main; "
                              "sys.exit(main(sys.argv[1:]))",
                              "krfilter", "-q", "-c", "KR", "-o", str(shared / "krfilter.ipset"),
                              os.path.join(REPO, "tests", "fixtures", "rir", "delegated-apnic-sample")],
                             capture_output=True, text=True, env=env, timeout=60)
        assert res.returncode == 0, res.stderr
        st = (shared / "krfilter.ipset").stat()
        assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (0, 0o644)
        assert os.fstat(fd).st_ino != st.st_ino and os.pread(fd, 100, 0) == b"planted\n"
        assert sorted(os.listdir(shared)) == [".krfilter.ipset.tmp.1", "krfilter.ipset"]
    finally:
        os.close(fd)
