"""The model file: a versioned header, then the weight tables, mmap-able.

Layout (little-endian):
    0  8s  magic  b"MFMODEL\\0"
    8  I   format version (this layout)
   12  I   bits: the file holds 2**bits float32 weights
   16  Q   messages trained as spam
   24  Q   messages trained as good
   32  Q   generation: +1 per commit, matched against the ledger
   40  I   feature version: which tokenizer wrote it (features.py)
   44  I   CRC-32 of that tokenizer's settings text (features.SPEC)
   48  16x reserved
   64  float32[2**bits]  weights
    .  float32[2**bits]  sums of squared gradients (per-feature step sizes)

Why the feature identity is in the file: a model is a table of hashed
feature ids, and ids hashed by another tokenizer (another n-gram size,
another word limit) would be silently misread as ours: plausible scores,
wrong ones. So a model written by other features is refused with one line
telling the user to rebuild it (rspamd's statfiles record their tokenizer
for the same reason). Format 2 files (before the version was recorded)
were all written by features version 1.

Readers mmap the file read-only and never lock: a writer never changes a
file in place, it writes a new one beside it and renames it over the old,
so a reader sees one whole model or the other.
"""

import math
import mmap
import os
import struct
import sys
import zlib

from ..model import Model

MAGIC = b"MFMODEL\0"
FORMAT = 3      # 3: records the feature version; 2: two families, no version
_READABLE_FORMATS = (2, 3)
HEADER = struct.Struct("<8sIIQQQII16x")
assert HEADER.size == 64


class ModelError(Exception):
    """The model file exists but can't be used; the text says why, in one line."""


class FeatureIdentity:
    """Which tokenizer a model's ids come from: its version and settings text."""
    __slots__ = ("version", "crc")

    def __init__(self, version: int, spec: str):
        self.version = version
        self.crc = zlib.crc32(spec.encode())


def file_size(bits: int) -> int:
    return HEADER.size + 8 * (1 << bits)


def _check(path: str, head: bytes, size: int, features: FeatureIdentity) -> tuple:
    if len(head) < HEADER.size:
        raise ModelError(f"{path}: truncated model file ({size} bytes)")
    magic, fmt, bits, spam, good, generation, feature_version, crc = HEADER.unpack_from(head)
    if magic != MAGIC:
        raise ModelError(f"{path}: not a mailfilter model (bad magic)")
    if fmt not in _READABLE_FORMATS:
        raise ModelError(f"{path}: model file format {fmt}, this mailfilter reads "
                         f"{'/'.join(map(str, _READABLE_FORMATS))}")
    if fmt == 2:
        feature_version, crc = 1, None
    if feature_version != features.version or (crc is not None and crc != features.crc):
        written = f"v{feature_version}" + ("" if feature_version != features.version else " with other settings")
        raise ModelError(f"{path}: model written by features {written}, this is v{features.version}: "
                         f"run `mailfilter rebuild`")
    if not 10 <= bits <= 26:
        raise ModelError(f"{path}: model claims 2**{bits} weights, which is out of range")
    expected = file_size(bits)
    if size != expected:
        raise ModelError(f"{path}: model file is {size} bytes, expected {expected} for 2**{bits} weights")
    return bits, spam, good, generation


def _model(buffer, bits, *counters) -> Model:
    if sys.byteorder != "little":   # pragma: no cover - all our targets are little-endian
        raise ModelError("big-endian hosts are not supported")
    n = 4 << bits
    view = memoryview(buffer)
    weights = view[HEADER.size:HEADER.size + n].cast("f")
    sq_grads = view[HEADER.size + n:HEADER.size + 2 * n].cast("f")
    return Model(bits, weights, sq_grads, *counters)


def empty(bits: int) -> Model:
    return _model(bytearray(file_size(bits)), bits)


def _open(path: str):
    """A read-only fd on the regular file at path, or None if there is none.
    Never follows a symlink; a FIFO or device is refused without blocking."""
    from ..state import NotRegular, open_regular
    try:
        return open_regular(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return None
    except NotRegular:
        raise ModelError(f"{path}: not a regular file") from None


def map_readonly(path: str, bits: int, features: FeatureIdentity) -> Model:
    """The model for scoring, mmapped. A missing file is an empty model."""
    fd = _open(path)
    if fd is None:
        return empty(bits)
    try:
        size = os.fstat(fd).st_size
        if size < HEADER.size:
            raise ModelError(f"{path}: truncated model file ({size} bytes)")
        mm = mmap.mmap(fd, size, access=mmap.ACCESS_READ)
    finally:
        os.close(fd)
    return _model(mm, *_check(path, mm[:HEADER.size], size, features))


def read_copy(path: str, bits: int, features: FeatureIdentity) -> Model:
    """The model as a private, writable copy (for learning)."""
    fd = _open(path)
    if fd is None:
        return empty(bits)
    with os.fdopen(fd, "rb") as fh:
        data = bytearray(fh.read())
    model = _model(data, *_check(path, bytes(data[:HEADER.size]), len(data), features))
    if not all_finite(model):
        raise ModelError(f"{path}: the model holds infinite or NaN weights; "
                         f"run `mailfilter rebuild` (or remove the file to start afresh)")
    return model


def all_finite(model: Model) -> bool:
    """No weight or step-size sum is infinite or NaN. A float32 sum in
    double can't overflow (2**26 * 3.4e38 < 1.8e308), so the sum is finite
    exactly when every value is. 38 ms for a 2**20 model: paid by learn,
    which copies the whole file anyway, and at every commit; the filter
    instead refuses a non-finite score (classifier.py) at no cost."""
    return math.isfinite(sum(model.weights)) and math.isfinite(sum(model.sq_grads))


def read_generation(path: str) -> int:
    """The committed generation, from the header alone (0: no model yet)."""
    fd = _open(path)
    if fd is None:
        return 0
    try:
        head = os.pread(fd, HEADER.size, 0)
    finally:
        os.close(fd)
    if len(head) < HEADER.size or head[:8] != MAGIC:
        return 0
    return HEADER.unpack_from(head)[5]


def chunks(model: Model, features: FeatureIdentity):
    """The file's bytes, in pieces, for atomicfile.replace. A model with a
    non-finite value is never written (ModelError)."""
    if not all_finite(model):
        raise ModelError("refusing to save a model with infinite or NaN weights; the old one stays")
    header = HEADER.pack(MAGIC, FORMAT, model.bits, model.trained_spam, model.trained_good,
                         model.generation, features.version, features.crc)
    return (header, model.weights.cast("B"), model.sq_grads.cast("B"))


def read_header(path: str) -> dict:
    """The header's fields, unchecked but for the magic (for `stats`):
    format, bits, trained_spam, trained_good, generation, feature_version,
    feature_crc (None for format 2). {"error": why} when unreadable."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(HEADER.size)
    except OSError as err:
        return {"error": f"{path}: {err.strerror or err}"}
    if len(head) < HEADER.size:
        return {"error": f"{path}: truncated model file ({len(head)} bytes)"}
    magic, fmt, bits, spam, good, generation, feature_version, crc = HEADER.unpack_from(head)
    if magic != MAGIC:
        return {"error": f"{path}: not a mailfilter model (bad magic)"}
    if fmt == 2:
        feature_version, crc = 1, None
    return {"format": fmt, "bits": bits, "trained_spam": spam, "trained_good": good,
            "generation": generation, "feature_version": feature_version, "feature_crc": crc}
