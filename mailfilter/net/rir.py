"""RIR statistics files: parse, verify against the published .md5, download
into a cache.

The format is the RIR Statistics Exchange Format, as APNIC, ARIN, RIPE NCC,
LACNIC and AFRINIC publish it daily:

    version|registry|serial|records|startdate|enddate|UTCoffset
    registry|*|type|*|count|summary
    registry|cc|type|start|value|date|status[|opaque-id[|extensions...]]

Only allocated/assigned ipv4/ipv6 records are kept, as integer ranges per
country, so merging later never has to parse an address again.
"""

import hashlib
import os
import re
import socket
import tempfile
import urllib.request
from dataclasses import dataclass, field

_IPV4, _IPV6 = socket.AF_INET, socket.AF_INET6
_STATUSES = {"allocated", "assigned", "available", "reserved"}
_COUNTED = {"allocated", "assigned"}
_CC = re.compile(r"[A-Z]{2}\Z")
_DATE = re.compile(r"[0-9]{8}\Z")
_VERSION = re.compile(r"2(\.[0-9]+)?\Z")
# The format's numbers are ASCII digits and nothing else. int() alone would
# also take "1_024", "+256", " 256" and Arabic-Indic digits, and str.isdigit()
# takes "²", on which int() then raises. Twenty digits are more than any
# count or prefix length needs, and keep int() far from its 4,300-digit limit.
_NUMBER = re.compile(r"[0-9]{1,20}\Z")
_V4_ALL, _V6_ALL = 1 << 32, 1 << 128


def _number(text):
    """The non-negative integer text spells in ASCII digits, else None."""
    return int(text) if _NUMBER.match(text) else None


class DelegationError(Exception):
    """A problem in one file, at one line: str() is `path:LINE: what`."""

    def __init__(self, path, lineno, message):
        super().__init__(f"{path}:{lineno}: {message}" if lineno else f"{path}: {message}")
        self.path, self.lineno, self.message = path, lineno, message
        self.whole_space = isinstance(message, _WholeSpace)


class _WholeSpace(str):
    """The error text for a record that covers a whole address family: the
    one malformation that parse(force=True) accepts."""


@dataclass
class Delegation:
    path: str
    version: str = ""
    registry: str = ""
    serial: str = ""
    enddate: str = ""
    records: int = 0
    skipped: int = 0                           # malformed lines passed over by --lenient
    v4: dict = field(default_factory=dict)     # cc -> [(first, last), ...]
    v6: dict = field(default_factory=dict)

    @property
    def countries(self) -> set:
        return set(self.v4) | set(self.v6)

    def describe(self) -> str:
        return (f"{os.path.basename(self.path)}: {self.registry} version {self.version}, "
                f"serial {self.serial}, data up to {self.enddate}, {self.records} records")


def _record(f, v4, v6, force=False):
    """Check one record's fields and file it; returns an error text or None.

    A counted record covering a whole address family is refused unless
    force: no registry delegates that, and one blocked country would then
    block every address, the admin's own SSH session included."""
    if len(f) < 7:
        return f"expected at least 7 '|'-separated fields, found {len(f)}"
    registry, cc, kind, start, value, date, status = f[:7]
    if not registry:
        return "empty registry field"
    if status not in _STATUSES:
        return f"unknown status {status!r} (expected allocated, assigned, available or reserved)"
    if cc and not _CC.match(cc):
        return f"bad country code {cc!r} (expected two capital letters or empty)"
    if date and not _DATE.match(date):
        return f"bad date {date!r} (expected YYYYMMDD or empty)"
    counted = status in _COUNTED and cc
    if kind == "ipv4":
        try:
            first = int.from_bytes(socket.inet_pton(_IPV4, start), "big")
        except OSError:
            first = None
        count = _number(value)
        if first is None or count is None:
            return f"bad ipv4 start {start!r} or host count {value!r}"
        if count < 1 or first + count > _V4_ALL:
            return f"ipv4 host count {value} out of range for start {start}"
        if counted and count == _V4_ALL and not force:
            return _WholeSpace(f"{cc} record covers every IPv4 address (0.0.0.0/0): {_EVERYTHING}")
        if counted:
            v4.setdefault(cc, []).append((first, first + count - 1))
    elif kind == "ipv6":
        try:
            first = int.from_bytes(socket.inet_pton(_IPV6, start), "big")
        except OSError:
            first = None
        plen = _number(value)
        if first is None or plen is None:
            return f"bad ipv6 start {start!r} or prefix length {value!r}"
        if not 0 <= plen <= 128:
            return f"ipv6 prefix length {value} out of range 0..128"
        size = 1 << (128 - plen)
        if first & (size - 1):
            return f"ipv6 start {start} is not on a /{plen} boundary"
        if counted and size == _V6_ALL and not force:
            return _WholeSpace(f"{cc} record covers every IPv6 address (::/0): {_EVERYTHING}")
        if counted:
            v6.setdefault(cc, []).append((first, first + size - 1))
    elif kind == "asn":
        if _number(start) is None or _number(value) is None:
            return f"bad asn start {start!r} or count {value!r}"
    else:
        return f"unknown type {kind!r} (expected asn, ipv4 or ipv6)"
    return None


_EVERYTHING = ("no registry delegates that, and blocking it would cut off every client, "
               "your own SSH session included")


def parse(path: str, lenient: bool = False, warn=None, force: bool = False) -> Delegation:
    """Read one delegation file. Raises DelegationError (file:line) on the
    first malformed line, or OSError; with lenient, malformed lines are
    counted in .skipped and reported through warn(message). A record that
    covers a whole address family counts as malformed unless force."""
    d = Delegation(path)
    summaries = {}
    counts = {}
    header = False
    # latin-1 never fails to decode, so a stray byte becomes a field error
    # with a line number instead of a UnicodeDecodeError without one.
    with open(path, encoding="latin-1", newline="") as fh:
        for lineno, line in enumerate(fh, 1):
            line = line.rstrip("\r\n")
            if not line or line[0] == "#":
                continue
            f = line.split("|")
            if not header:
                if not _VERSION.match(f[0]) or len(f) < 7 or _number(f[3]) is None:
                    raise DelegationError(path, lineno, "not an RIR statistics file: expected a version line "
                                          "'2|registry|serial|records|startdate|enddate|UTCoffset' (version 2 or 2.3), "
                                          f"found {line[:60]!r}")
                d.version, d.registry, d.serial, d.enddate = f[0], f[1], f[2], f[5]
                expected, header_line = int(f[3]), lineno
                header = True
                continue
            if len(f) == 6 and f[1] == "*" and f[5] == "summary":
                if _number(f[4]) is None:
                    error = f"bad summary count {f[4]!r}"
                else:
                    summaries[f[2]] = (_number(f[4]), lineno)
                    continue
            else:
                d.records += 1
                counts[f[2] if len(f) > 2 else ""] = counts.get(f[2] if len(f) > 2 else "", 0) + 1
                error = _record(f, d.v4, d.v6, force)
                if error is None:
                    continue
            if not lenient:
                raise DelegationError(path, lineno, error)
            d.skipped += 1
            if warn:
                warn(f"{path}:{lineno}: {error}; skipped (--lenient)")
    if not header:
        raise DelegationError(path, 0, "no version line: empty or not an RIR statistics file")
    # The counts in the header and summaries are how a truncated copy shows.
    problems = []
    if d.records != expected:
        problems.append((header_line, f"header says {expected} records, file has {d.records} (truncated?)"))
    for kind, (n, lineno) in sorted(summaries.items()):
        if counts.get(kind, 0) != n:
            problems.append((lineno, f"summary says {n} {kind} records, file has {counts.get(kind, 0)}"))
    for lineno, problem in problems:
        if not lenient:
            raise DelegationError(path, lineno, problem)
        if warn:
            warn(f"{path}:{lineno}: {problem} (--lenient)")
    return d


# --- .md5 verification ------------------------------------------------------

_MD5_BSD = re.compile(r"MD5 ?\((?P<name>[^)]*)\) ?= ?(?P<hash>[0-9a-fA-F]{32})\Z")
_MD5_SUM = re.compile(r"(?P<hash>[0-9a-fA-F]{32})(?:[ \t]+\*?(?P<name>\S.*))?\Z")


class ChecksumError(Exception):
    pass


def expected_md5(text: str, name: str, where: str) -> str:
    """The hash for `name` in a .md5 file: BSD `MD5 (name) = hash` or
    md5sum `hash  name` (one or several lines), or a bare hash."""
    found = []
    for lineno, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        m = _MD5_BSD.match(line) or _MD5_SUM.match(line)
        if not m:
            raise ChecksumError(f"{where}:{lineno}: not an MD5 line "
                                f"(expected 'MD5 (name) = hash' or 'hash  name'): {line[:80]!r}")
        listed = m.group("name")
        if listed is None or os.path.basename(listed.strip()) == name:
            return m.group("hash").lower()
        found.append(listed)
    raise ChecksumError(f"{where}: no MD5 for {name}" + (f" (it lists {', '.join(found)})" if found else ""))


def md5_of(path: str) -> str:
    h = hashlib.md5()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# --- download cache --------------------------------------------------------

# Where the five RIRs publish; overridable with --url. The .md5 sits next to each.
DEFAULT_URLS = (
    "https://ftp.apnic.net/stats/apnic/delegated-apnic-extended-latest",
    "https://ftp.arin.net/pub/stats/arin/delegated-arin-extended-latest",
    "https://ftp.ripe.net/pub/stats/ripencc/delegated-ripencc-extended-latest",
    "https://ftp.lacnic.net/pub/stats/lacnic/delegated-lacnic-extended-latest",
    "https://ftp.afrinic.net/pub/stats/afrinic/delegated-afrinic-extended-latest",
)


class FetchError(Exception):
    """Download failed (network: try later) or did not verify (bad data)."""

    def __init__(self, message, bad_data=False):
        super().__init__(message)
        self.bad_data = bad_data


def _get(url: str, dest_fd: int, timeout: float) -> None:
    with urllib.request.urlopen(url, timeout=timeout) as resp, os.fdopen(dest_fd, "wb", closefd=False) as out:
        while True:
            block = resp.read(1 << 16)
            if not block:
                break
            out.write(block)
        out.flush()
        os.fsync(dest_fd)


def fetch(url: str, cache_dir: str, timeout: float = 60.0) -> tuple[str, bool]:
    """Download url and url.md5 into cache_dir; install the file only if it
    verifies, so a bad download never replaces the previous good copy.
    Returns (path, changed)."""
    name = os.path.basename(urllib.request.urlparse(url).path)
    if not name:
        raise FetchError(f"{url}: URL names no file")
    os.makedirs(cache_dir, exist_ok=True)
    final = os.path.join(cache_dir, name)
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", dir=cache_dir)
    try:
        try:
            _get(url, fd, timeout)
            with urllib.request.urlopen(url + ".md5", timeout=timeout) as resp:
                md5_text = resp.read(1 << 16).decode("ascii", "replace")
        except (OSError, ValueError) as err:
            raise FetchError(f"{url}: download failed: {err}") from None
        finally:
            os.close(fd)
        try:
            want = expected_md5(md5_text, name, url + ".md5")
        except ChecksumError as err:
            raise FetchError(str(err), bad_data=True) from None
        got = md5_of(tmp)
        if got != want:
            kept = "kept the previous copy" if os.path.exists(final) else "no previous copy to keep"
            raise FetchError(f"{url}: MD5 mismatch: got {got}, {url}.md5 says {want}; {kept} {final}",
                             bad_data=True)
        changed = not os.path.exists(final) or md5_of(final) != got
        os.chmod(tmp, 0o644)
        os.replace(tmp, final)
        tmp = None
        dir_fd = os.open(cache_dir, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        return final, changed
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
