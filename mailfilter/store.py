"""The model file: versioned header, mmap for readers, locked atomic replace for writers.

Layout (little-endian):
    0  8s  magic  b"MFMODEL\\0"
    8  I   format version
   12  I   bits: the file holds 2**bits float32 weights
   16  Q   messages trained as spam
   24  Q   messages trained as good
   32  Q   generation: +1 per save, matched against the ledger (ledger.py)
   40  24x reserved
   64  float32[2**bits]  weights
    .  float32[2**bits]  sums of squared gradients (per-feature step sizes)

Readers (every filter process) mmap the file read-only and never lock: a
writer never changes a file in place, it writes a new one beside it and
renames it over the old, so a reader sees one whole model or the other.
Writers serialise on flock(model.lock). A full disk or a crash mid-write
leaves the old model untouched.
"""

import fcntl
import mmap
import os
import struct
import sys

from .model import Model

MAGIC = b"MFMODEL\0"
VERSION = 2      # 2: two feature families in the two halves of the table
HEADER = struct.Struct("<8sIIQQQ24x")
assert HEADER.size == 64


class ModelError(Exception):
    """The model file exists but can't be used; the text says why."""


def _check(path: str, head: bytes, size: int) -> tuple:
    if len(head) < HEADER.size:
        raise ModelError(f"{path}: truncated model file ({size} bytes)")
    magic, version, bits, spam, good, generation = HEADER.unpack_from(head)
    if magic != MAGIC:
        raise ModelError(f"{path}: not a mailfilter model (bad magic)")
    if version != VERSION:
        raise ModelError(f"{path}: model format version {version}, this mailfilter reads {VERSION}")
    if not 10 <= bits <= 26:
        raise ModelError(f"{path}: model claims 2**{bits} weights, which is out of range")
    expected = file_size(bits)
    if size != expected:
        raise ModelError(f"{path}: model file is {size} bytes, expected {expected} for 2**{bits} weights")
    return bits, spam, good, generation


def file_size(bits: int) -> int:
    return HEADER.size + 8 * (1 << bits)


def _model(buffer, bits, *counters) -> Model:
    if sys.byteorder != "little":   # pragma: no cover - all our targets are little-endian
        raise ModelError("big-endian hosts are not supported")
    n = 4 << bits
    view = memoryview(buffer)
    weights = view[HEADER.size:HEADER.size + n].cast("f")
    sq_grads = view[HEADER.size + n:HEADER.size + 2 * n].cast("f")
    return Model(bits, weights, sq_grads, *counters)


def empty(bits: int) -> Model:
    buf = bytearray(file_size(bits))
    HEADER.pack_into(buf, 0, MAGIC, VERSION, bits, 0, 0, 0)
    return _model(buf, bits)


def open_readonly(path: str, bits: int):
    """The model for scoring, mmapped. A missing file is an empty model."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return empty(bits)
    try:
        size = os.fstat(fd).st_size
        if size < HEADER.size:
            raise ModelError(f"{path}: truncated model file ({size} bytes)")
        mm = mmap.mmap(fd, size, access=mmap.ACCESS_READ)
    finally:
        os.close(fd)
    bits, spam, good, generation = _check(path, mm[:HEADER.size], size)
    return _model(mm, bits, spam, good, generation)


def load_copy(path: str, bits: int) -> Model:
    """The model as a private, writable copy (for learning)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return empty(bits)
    with os.fdopen(fd, "rb") as fh:
        data = bytearray(fh.read())
    bits, spam, good, generation = _check(path, bytes(data[:HEADER.size]), len(data))
    return _model(data, bits, spam, good, generation)


def save(path: str, model: Model) -> None:
    """Write the model beside path and rename it into place (0600)."""
    from .atomicfile import replace
    header = HEADER.pack(MAGIC, VERSION, model.bits, model.trained_spam, model.trained_good, model.generation)
    replace(path, (header, model.weights.cast("B"), model.sq_grads.cast("B")), 0o600)


class writer_lock:
    """Exclusive lock for read-modify-write of the model.

    A class, not @contextmanager: contextlib costs ~1 ms of every filter
    start-up, and this module is on that path.
    """

    def __init__(self, lock_path: str):
        self.lock_path = lock_path
        self.fd = None

    def __enter__(self):
        self.fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX)
        except BaseException:
            os.close(self.fd)
            raise
        return self

    def __exit__(self, *exc):
        os.close(self.fd)
        return False
