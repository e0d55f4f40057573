"""Verdict counts: how many messages the filter marked SPAM, GOOD, UNSURE.

Many filter processes run at once (procmail starts one per message), so the
count can't be a number read, incremented and written back without a lock.
Instead each verdict (the pipe filter's, and `mailfilter serve`'s for spamc
and the milter) appends one byte to a file of the month, in the state
directory:

    verdicts-2025-01    "SGGUSG..."   S spam, G good, U unsure,
                                      F could not classify (also UNSURE in the
                                      header), C a command mail answered

A write of one byte with O_APPEND is atomic against every other appender
on a local filesystem (the kernel moves the file offset and writes under
the inode lock; over NFS a count may be lost, never a message), so no
verdict is lost or torn without any lock, and a reader only counts bytes.
The cost (bench/verdict_counter.py, on a shared 2-core machine at load 7):
record() takes 10-16 us on ext4 and on tmpfs; a whole filter process, 200
runs each way, paired, was +0.05 ms (+0.1%) with counting, which is noise
beside its 80 ms there (~20 ms unloaded). 8 processes appending 5,000
verdicts each at once left exactly 40,000 bytes. One byte of disk per
message: a busy user's 3,000 a day is 90 KB a month. Old months can be
deleted at will; `stats` sums what is there.

Months are UTC, so a count never depends on the TZ a delivery agent sets.
Recording never raises and never blocks: the message has already been
written out when it is called, and a full disk, a read-only or missing state
directory, or a FIFO planted under the name (O_NONBLOCK: no reader, ENXIO)
just leaves that verdict uncounted.
"""

import os
import time

PREFIX = "verdicts-"
LETTERS = {"SPAM": b"S", "GOOD": b"G", "UNSURE": b"U", "failed": b"F", "command": b"C"}
NAMES = {b"S"[0]: "spam", b"G"[0]: "good", b"U"[0]: "unsure", b"F"[0]: "failed", b"C"[0]: "command"}
_FLAGS = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


def file_name(when: float = None) -> str:
    return PREFIX + time.strftime("%Y-%m", time.gmtime(when))


def record(state_dir: str, kind: str) -> None:
    """Count one verdict: kind is a label (SPAM, GOOD, UNSURE), "failed" or
    "command". Never raises."""
    try:
        fd = os.open(os.path.join(state_dir, file_name()), _FLAGS, 0o600)
        try:
            os.write(fd, LETTERS.get(kind, b"U"))
        finally:
            os.close(fd)
    except Exception:  # noqa: BLE001 - counting must never cost a delivery
        pass


def count(home, outcome) -> None:
    """Count a pipeline.Outcome in the state directory home names (as
    state.resolve_home reads it): what the pipe filter calls once the
    message is out. Never raises."""
    try:
        from .state import resolve_home
        record(resolve_home(home), kind_of(outcome))
    except Exception:  # noqa: BLE001 - counting must never cost a delivery
        pass


def kind_of(outcome) -> str:
    """What record() counts for a pipeline.Outcome."""
    if outcome.failed:
        return "failed"
    if getattr(outcome.verdict, "answered", False):
        return "command"
    return outcome.verdict.label


def counts(state_dir: str) -> dict:
    """{"total": {name: n}, "months": {"YYYY-MM": {name: n}}} of every month
    file in state_dir, oldest month first."""
    zero = {name: 0 for name in NAMES.values()}
    total, months = dict(zero), {}
    try:
        names = sorted(n for n in os.listdir(state_dir) if n.startswith(PREFIX))
    except OSError:
        names = []
    for name in names:
        month = name[len(PREFIX):]
        try:
            fd = os.open(os.path.join(state_dir, name), os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
            with os.fdopen(fd, "rb") as fh:
                data = fh.read()
        except OSError:
            continue
        tally = {label: data.count(letter) for letter, label in NAMES.items()}
        months[month] = tally
        for label, n in tally.items():
            total[label] += n
    return {"total": total, "months": months}
