"""Shared helpers: run the real `mailfilter` command and check the byte invariant."""

import contextlib
import os
import pwd
import re
import socket
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(REPO, "tests", "fixtures")
CHARSET_CASES = os.path.join(FIXTURES, "charset-cases")
SAMPLES = os.path.join(REPO, "mailfilter", "samples")
MAILFILTER = [sys.executable, "-m", "mailfilter"]

# What our filter adds: a run of whole header lines, X-CRM114-Version first.
_OURS = re.compile(rb"(?:^|(?<=[\r\n]))X-CRM114-Version: mailfilter [^\r\n]*(?:\r\n|\r|\n)"
                   rb"(?:X-CRM114-[A-Za-z]+: [^\r\n]*(?:\r\n|\r|\n))*")


def env_for(home):
    env = dict(os.environ)
    if home is None:
        env.pop("MAILFILTER_HOME", None)
    else:
        env["MAILFILTER_HOME"] = str(home)
    env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("RECIPIENT", None)
    return env


def run_mailfilter(args, data=b"", home=None, **kw):
    return subprocess.run(MAILFILTER + list(args), input=data, capture_output=True,
                          env=env_for(home), timeout=kw.pop("timeout", 120), **kw)


def added_block(output: bytes) -> bytes:
    m = _OURS.search(output)
    assert m, f"no X-CRM114 block in output: {output[:300]!r}"
    return m.group(0)


def status_of(output: bytes) -> str:
    m = re.search(rb"X-CRM114-Status: ([^\r\n]*)", added_block(output))
    return m.group(1).decode()


def remove_forged(data: bytes) -> bytes:
    """The input minus X-CRM114-* fields (and their folded lines), by an
    independent, simple reading of the header: what the filter must remove.

    As procmail reads it, the header runs to the first empty line, so our
    fields are removed even after a line that is not a header field, and
    after a line holding only a CR (procmail reads on; with LF lines only
    a line with nothing before its LF is empty)."""
    # Lines end at LF when there is one (a CR before it, or alone inside a
    # line, is part of the line); only a message without LF splits at CR.
    sep = b"\n" if b"\n" in data else b"\r"
    lines = [line + sep for line in data.split(sep)]
    lines[-1] = lines[-1][:-1]
    out, in_header, dropping = [], True, False
    for i, line in enumerate(lines):
        if in_header:
            if i == 0 and line.startswith(b"From "):
                out.append(line)
                continue
            if (line in (b"\n", b"") if sep == b"\n" else line.strip(b"\r\n") == b""):
                in_header = False
            elif line[:1] in (b" ", b"\t"):
                if dropping:
                    continue
            elif re.match(rb"[!-9;-~]+[ \t]*:", line):
                dropping = line.lower().startswith(b"x-crm114-")
                if dropping:
                    continue
            else:
                dropping = False        # not a field, but still procmail's header
        out.append(line)
    return b"".join(out)


def assert_passthrough(data: bytes, output: bytes):
    """output == data with forged X-CRM114-* removed and ours added, nothing else."""
    m = _OURS.search(output)
    assert m and b"X-CRM114-Status: " in m.group(0), output[:500]
    stripped = output[:m.start()] + output[m.end():]
    assert stripped == remove_forged(data)


@pytest.fixture(scope="session", autouse=True)
def no_bare_python(tmp_path_factory):
    """A fresh Debian machine's python3 lacks our dependencies, so a test that
    runs a bare `python3` from PATH passes here and fails there. Every test
    runs with a PATH whose python3/python refuse loudly: tests must run
    sys.executable or the venv's entry points."""
    shims = tmp_path_factory.mktemp("no-bare-python")
    for name in ("python3", "python"):
        shim = shims / name
        shim.write_text("#!/bin/sh\necho 'a test ran a bare python3 from PATH; use sys.executable' >&2\n"
                        "exit 127\n")
        shim.chmod(0o755)
    old = os.environ["PATH"]
    os.environ["PATH"] = f"{shims}{os.pathsep}{old}"
    yield
    os.environ["PATH"] = old


@pytest.fixture
def home(tmp_path):
    return tmp_path / "state"


def need(binary):
    """Real binaries are part of the test set-up (.ci/run installs them):
    missing one is a failure, never a skip."""
    import shutil
    path = shutil.which(binary)
    assert path, f"{binary} is not installed; run contrib/bootstrap.sh (apt-get install {binary})"
    return path


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on just now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def train_on_samples(home, passes):
    """home's model trained on the shipped samples (train/spam, train/good)."""
    result = run_mailfilter(["train", "--no-progress", "--passes", str(passes),
                             "--spam", os.path.join(SAMPLES, "train", "spam"),
                             "--good", os.path.join(SAMPLES, "train", "good")], b"", home)
    assert result.returncode == 0, result.stderr
    return home


@contextlib.contextmanager
def real_accounts(tag, count, shell="/usr/sbin/nologin"):
    """`count` real accounts with fresh homes (useradd -m), named after this
    process, so that runs side by side don't meet; afterwards their
    processes (theirs only) are killed and the accounts removed with their
    homes."""
    assert os.geteuid() == 0, "this test creates users: run as root (CI does), or -m 'not root'"
    need("useradd")
    need("userdel")
    names = [f"{tag}{os.getpid() % 100000}{chr(ord('a') + i)}" for i in range(count)]

    def quiet(*cmd):
        return subprocess.run(cmd, capture_output=True, timeout=60)

    try:
        for name in names:
            quiet("userdel", "-r", name)                # a leftover from an interrupted run
            made = quiet("useradd", "-m", "-s", shell, name)
            assert made.returncode == 0, made.stderr
        yield [pwd.getpwnam(name) for name in names]
    finally:
        for name in names:
            quiet("pkill", "-KILL", "-u", name)          # only that test user's processes
            quiet("userdel", "-r", name)


@pytest.fixture
def two_users():
    """Two real accounts (root only; deselect with -m "not root")."""
    with real_accounts("mft", 2) as users:
        yield users
