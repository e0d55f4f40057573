"""The kernel's LOG lines that krfilter's rules write, read from syslog files
(kern.log, rotated and gzipped too) or from journald's JSON export.

One line is ours when its message starts with our prefix ("krfilter: ", the
--log-prefix krfilter --log writes) followed by the netfilter log fields:

    krfilter: IN=eth0 OUT= MAC=... SRC=198.51.100.7 DST=192.0.2.25 LEN=60 ...
        PROTO=TCP SPT=51234 DPT=25 WINDOW=64240 RES=0x00 SYN URGP=0

Files are read line by line as bytes, so a 1 GB kern.log costs no more
memory than a small one; only lines that contain "IN=" are parsed further,
and a line is decoded to text only once it is known to be ours.

Times are the log's own wall-clock times ("seconds since 1970 as if the
local time were UTC"), so a day is the day the admin sees in the log, and
--since/--until are read the same way. journald's UTC microseconds are
turned into local time with the machine's time zone (TZ).
"""

import calendar
import gzip
import io
import ipaddress
import json
import os
import re
import sys
import time
from dataclasses import dataclass, field

_MONTHS = {m.encode(): i for i, m in enumerate(
    "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split(), 1)}

# rsyslog's traditional format (Debian 12's default) and its RFC 3339 one.
_TRADITIONAL = re.compile(rb"([A-Z][a-z]{2}) ([ \d]?\d) (\d\d):(\d\d):(\d\d) (\S+) ")
_RFC3339 = re.compile(rb"(\d{4})-(\d\d)-(\d\d)[T ](\d\d):(\d\d):(\d\d)(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d)? (\S+) ")
# After the host: the program tag ("kernel:"), then the kernel's own uptime
# stamp "[ 1234.567890] " when printk.time is on.
_KERNEL_TAG = re.compile(rb"kernel: (?:\[\s*\d+\.\d+\] )?")
# A netfilter log message: the prefix (anything, even empty), then IN= OUT=.
_NETFILTER = re.compile(rb"(.*?)IN=\S* OUT=\S* ")
# journald writes a MESSAGE that is not UTF-8 as an array of byte values.
_BYTES_MESSAGE = re.compile(rb'"MESSAGE"\s*:\s*\[')
_FIELDS = re.compile(rb" SRC=(\S+) DST=(\S+) .*? PROTO=(\w+)(?: SPT=(\d+) DPT=(\d+))?")

GZIP_MAGIC = b"\x1f\x8b"
REPORT_EXAMPLES = 3         # unrecognised lines quoted in the warning


@dataclass
class LineStats:
    """What happened to every line read, so nothing is skipped silently."""
    read: int = 0
    ours: int = 0
    outside_period: int = 0     # ours, but before --since or after --until
    other_prefix: int = 0       # a netfilter LOG line of another rule or tool
    other_host: int = 0         # ours, but logged by a host other than --host
    other: int = 0              # any other log line (not a netfilter LOG line)
    unrecognised: int = 0       # not a syslog/journal line, or ours but unparsable
    hosts: set = field(default_factory=set)
    examples: list = field(default_factory=list)   # "file:line: why"

    def unknown(self, where, why):
        self.unrecognised += 1
        if len(self.examples) < REPORT_EXAMPLES:
            self.examples.append(f"{where}: {why}")

    def as_dict(self):
        return {k: getattr(self, k) for k in ("read", "ours", "outside_period", "other_prefix",
                                                "other_host", "other", "unrecognised")}


class Address:
    """One source address, parsed once however often it shows up."""
    __slots__ = ("text", "ip")

    def __init__(self, ip):
        self.ip = ip
        self.text = str(ip)


def open_log(path):
    """A binary stream of the log's lines: '-' is stdin; gzip is recognised by
    its magic bytes, not its name (logrotate's kern.log.2.gz, or a copy)."""
    raw = sys.stdin.buffer if path == "-" else open(path, "rb")
    buffered = raw if hasattr(raw, "peek") else io.BufferedReader(raw)
    if buffered.peek(2)[:2] == GZIP_MAGIC:
        return gzip.GzipFile(fileobj=buffered, mode="rb")
    return buffered


def wall_seconds(year, month, day, hh, mm, ss):
    return calendar.timegm((year, month, day, hh, mm, ss, 0, 0, 0))


def parse_when(text):
    """--since/--until: 'YYYY-MM-DD', 'YYYY-MM-DD HH:MM[:SS]' (or with T), in log time."""
    text = text.strip()
    for fmt in ("%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M", "%Y-%m-%d"):
        try:
            return calendar.timegm(time.strptime(text, fmt))
        except ValueError:
            continue
    raise ValueError(f"{text!r} is not a date: use YYYY-MM-DD or 'YYYY-MM-DD HH:MM[:SS]'")


class Reader:
    """Reads log files and hands each of our drops to `sink(when, address, dport, proto)`.

    `prefix` is the LOG prefix as krfilter writes it ("NAME: "). A LOG line
    with any other prefix is another rule's, even one that merely starts the
    same ("krfilter-dmz: " is not "krfilter: "). `host`, when given, keeps
    only lines logged by that host (a central log server holds many).
    """

    def __init__(self, prefix, sink, host=None, since=None, until=None, progress=None):
        self.prefix = prefix.encode()
        self.sink = sink
        self.host = host.encode() if host else None
        self.since, self.until = since, until
        self.progress = progress
        self.stats = LineStats()
        self._addresses = {}
        self._days = {}             # (month, day) bytes -> midnight, in wall seconds, for this file

    # -- one file --------------------------------------------------------------

    def read(self, path, reference_time=None):
        """Every line of one file (or '-'). reference_time dates the
        traditional format's year-less stamps: the file's mtime, else now."""
        name = "stdin" if path == "-" else path
        if reference_time is None:
            reference_time = time.time() if path == "-" else os.stat(path).st_mtime
        self._reference = time.localtime(reference_time)
        self._days.clear()
        with open_log(path) as stream:
            first = stream.peek(1)[:1] if hasattr(stream, "peek") else b""
            if first == b"{":
                self._read_journal(stream, name)
            else:
                self._read_syslog(stream, name)

    def read_journal_stream(self, stream, name):
        self._read_journal(stream, name)

    def _tick(self, lineno):
        if self.progress and not lineno & 0xFFFF:
            self.progress()

    def _read_syslog(self, stream, name):
        stats, prefix, netfilter, syslog_line = self.stats, self.prefix, _NETFILTER.match, self._syslog_header
        for lineno, line in enumerate(stream, 1):
            stats.read += 1
            self._tick(lineno)
            if b"IN=" not in line:
                # Not a netfilter line: counted, but only checked for being a
                # log line at all (the cheap start-of-line match).
                if _TRADITIONAL.match(line) or _RFC3339.match(line) or not line.strip():
                    stats.other += 1
                else:
                    stats.unknown(f"{name}:{lineno}", "not a syslog line")
                continue
            head = syslog_line(line)
            if head is None:
                stats.unknown(f"{name}:{lineno}", "not a syslog line")
                continue
            when, host, rest = head
            tag = _KERNEL_TAG.match(line, rest)
            nf = tag and netfilter(line, tag.end())
            if not nf:
                stats.other += 1
                continue
            if nf.group(1) != prefix:
                stats.other_prefix += 1
                continue
            self._ours(when, host, line, nf.end(), f"{name}:{lineno}")

    def _syslog_header(self, line):
        """(wall seconds, host, offset after the host) or None."""
        m = _TRADITIONAL.match(line)
        if m:
            midnight = self._days.get((m.group(1), m.group(2)))
            if midnight is None:
                midnight = self._midnight(m.group(1), m.group(2))
                if midnight is None:
                    return None
            when = midnight + int(m.group(3)) * 3600 + int(m.group(4)) * 60 + int(m.group(5))
            return when, m.group(6), m.end()
        m = _RFC3339.match(line)
        if m:
            try:
                when = wall_seconds(*(int(g) for g in m.groups()[:6]))
            except (ValueError, OverflowError):
                return None
            return when, m.group(7), m.end()
        return None

    def _midnight(self, month_name, day_text):
        """The year-less stamp's midnight: the reference year, unless that
        would put it after the reference (then it was last year's December)."""
        month = _MONTHS.get(month_name)
        try:
            day = int(day_text)
            ref = self._reference
            midnight = wall_seconds(ref.tm_year, month, day, 0, 0, 0)
            if midnight > wall_seconds(ref.tm_year, ref.tm_mon, ref.tm_mday, 0, 0, 0) + 86400:
                midnight = wall_seconds(ref.tm_year - 1, month, day, 0, 0, 0)
        except (TypeError, ValueError, OverflowError):
            return None
        if time.gmtime(midnight).tm_mday != day:        # Feb 30 and the like
            return None
        self._days[(month_name, day_text)] = midnight
        return midnight

    def _read_journal(self, stream, name):
        """`journalctl -k -o json`: one JSON object per line. Only lines that
        can be netfilter log lines are decoded at all."""
        stats, prefix = self.stats, self.prefix
        for lineno, line in enumerate(stream, 1):
            stats.read += 1
            self._tick(lineno)
            if b"IN=" not in line and not _BYTES_MESSAGE.search(line):
                if line.startswith(b"{"):
                    stats.other += 1
                elif line.strip():
                    stats.unknown(f"{name}:{lineno}", "not a journal JSON line")
                else:
                    stats.other += 1
                continue
            try:
                entry = json.loads(line)
                message = entry["MESSAGE"]
                if isinstance(message, list):              # journald's form for non-UTF-8 text
                    message = bytes(message)
                elif isinstance(message, str):
                    message = message.encode("utf-8", "surrogateescape")
                else:
                    raise TypeError("MESSAGE is neither text nor bytes")
                when = _local_wall(int(entry["__REALTIME_TIMESTAMP"]) / 1e6)
                host = str(entry.get("_HOSTNAME", "")).encode()
            except (ValueError, KeyError, TypeError, AttributeError) as err:
                stats.unknown(f"{name}:{lineno}", f"not a journal JSON line ({type(err).__name__}: {err})")
                continue
            if entry.get("_TRANSPORT", "kernel") != "kernel":
                stats.other += 1                            # a user process quoting a LOG line
                continue
            nf = _NETFILTER.match(message)
            if not nf:
                stats.other += 1
                continue
            if nf.group(1) != prefix:
                stats.other_prefix += 1
                continue
            self._ours(when, host, message, nf.end(), f"{name}:{lineno}")

    # -- one line of ours ------------------------------------------------------

    def _ours(self, when, host, text, pos, where):
        stats = self.stats
        if self.host is not None and host != self.host:
            stats.other_host += 1
            return
        m = _FIELDS.search(text, pos - 1)
        if not m:
            stats.unknown(where, "our prefix, but no SRC=/DST=/PROTO= fields")
            return
        address = self._address(m.group(1))
        if address is None:
            stats.unknown(where, f"bad source address {m.group(1).decode(errors='replace')!r}")
            return
        if (self.since is not None and when < self.since) or (self.until is not None and when >= self.until):
            stats.outside_period += 1
            return
        stats.ours += 1
        stats.hosts.add(host)
        dport = int(m.group(5)) if m.group(5) else None
        self.sink(when, address, dport, m.group(3).decode("ascii"))

    def _address(self, raw):
        address = self._addresses.get(raw)
        if address is None:
            try:
                # The kernel prints IPv6 uncompressed (2001:0db8:0000:...): one spelling.
                address = Address(ipaddress.ip_address(raw.decode("ascii")))
            except (ValueError, UnicodeDecodeError):
                return None
            self._addresses[raw] = address
        return address


def _local_wall(epoch):
    t = time.localtime(epoch)
    return calendar.timegm(t)
