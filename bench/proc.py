"""Run one child process on a message and measure it: wall time, and peak RSS via GNU time.

We reap the child ourselves with os.wait4(), right after it exits, so the
wall time is spawn-to-reaped and nothing else.

Peak RSS cannot come from our own wait4(): Linux carries the parent's
resident size into the child's ru_maxrss at fork/exec (execve records the
old mm's high-water mark), so every child of this 60+ MB Python process
would report at least 60 MB. GNU time is a ~1 MB parent, so its %M is the
child's own peak (plus the children it waited for, e.g. crm114's trainer).
"""

import os
import subprocess
import tempfile
import time
from dataclasses import dataclass


@dataclass
class Run:
    returncode: int
    seconds: float          # wall clock, from spawn to reaped
    maxrss_kb: int          # ru_maxrss from our wait4: inflated by our own RSS, see above
    stdout: bytes
    stderr: bytes


_stderr_sink = None


def _stderr_file():
    # One scratch file, truncated per run: a pipe for stderr as well as one
    # for stdout would need threads to drain both without deadlock.
    global _stderr_sink
    if _stderr_sink is None:
        _stderr_sink = tempfile.TemporaryFile()
    _stderr_sink.seek(0)
    _stderr_sink.truncate()
    return _stderr_sink


def run(argv, stdin_path, capture=True, env=None, cwd=None) -> Run:
    """Run argv with the file at stdin_path as stdin, as procmail would feed it."""
    err = _stderr_file()
    with open(stdin_path, "rb") as fin:
        started = time.perf_counter()
        child = subprocess.Popen(argv, stdin=fin, stdout=subprocess.PIPE if capture else subprocess.DEVNULL,
                                 stderr=err, env=env, cwd=cwd)
        out = child.stdout.read() if capture else b""
        if capture:
            child.stdout.close()
        _, status, usage = os.wait4(child.pid, 0)
        seconds = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)   # tell Popen it is reaped
    err.seek(0)
    return Run(child.returncode, seconds, usage.ru_maxrss, out, err.read())


TIME = "/usr/bin/time"


def peak_rss_kb(argv, stdin_path, env=None):
    """Peak RSS of argv run on one message, in KiB, measured by GNU time; None if it failed."""
    with tempfile.NamedTemporaryFile("r", suffix=".rss") as report:
        done = run([TIME, "-f", "%M", "-o", report.name] + list(argv), stdin_path, capture=False, env=env)
        text = report.read().strip().splitlines()
    # GNU time prefixes "Command exited with non-zero status N" when it did.
    try:
        return int(text[-1]), done.returncode
    except (IndexError, ValueError):
        return None, done.returncode
