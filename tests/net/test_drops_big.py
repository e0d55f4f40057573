"""`mailfilter drops` streams: a 1 GB kern.log, generated on the fly into
its stdin, read within MAX_RSS_MB of peak RSS (GNU time, as
tests/test_hostile.py measures the filter), and every line accounted for.

The log is what a busy host's kern.log looks like: two thirds krfilter LOG
lines from a pool of ADDRESSES sources (CN, KR and unlisted, IPv4 and IPv6)
over 28 days, the rest other tools' LOG lines and kernel chatter. Memory
may follow the distinct (day, address, port) triples (here at most
28 x 3000 x 3), never the size of the file.
"""

import os
import random

import pytest

from hostile import run_measured
from conftest import MAILFILTER, env_for, need

pytestmark = pytest.mark.slow

MAX_RSS_MB = 100
SIZE = 1 << 30
ADDRESSES = 3000
DAYS = 28
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DOC_RIR = os.path.join(REPO, "tests", "fixtures", "drops", "delegated-doc-extended")

MONTHS = "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split()
TAIL = (" LEN=60 TOS=0x00 PREC=0x00 TTL=49 ID=4242 DF PROTO=TCP SPT=51234 DPT={port} WINDOW=64240 "
        "RES=0x00 SYN URGP=0\n")


def pool():
    """ADDRESSES sources: CN and KR (documentation space, fixture RIR file), and 'JP'."""
    r = random.Random(17)
    out = []
    for i in range(ADDRESSES):
        kind = i % 4
        if kind == 0:
            out.append(("CN", f"198.51.100.{r.randrange(0, 128)}"))
        elif kind == 1:
            out.append(("KR", f"198.51.100.{r.randrange(128, 256)}"))
        elif kind == 2:
            out.append(("CN", "2001:0db8:0086:0000:0000:0000:%04x:%04x" % (r.randrange(65536), i)))
        else:
            out.append(("JP", f"192.0.2.{r.randrange(192, 256)}"))
    return out


def big_log(size, counts=None):
    """Chunks of about 1 MiB making `size` bytes of kern.log; counts[cc] gets
    the krfilter lines written per country, counts['lines'] every line."""
    counts = counts if counts is not None else {}
    sources = pool()
    r = random.Random(5)
    written, second = 0, 0
    per_day = size // DAYS + 1
    while written < size:
        day = min(written // per_day, DAYS - 1)
        stamp_day = f"{MONTHS[1 + day // 28]} {1 + day % 28:2d}"
        lines = []
        for _ in range(4000):
            second = (second + 7) % 86400
            stamp = f"{stamp_day} {second // 3600:02d}:{second // 60 % 60:02d}:{second % 60:02d} mx kernel: "
            pick = r.random()
            if pick < 0.66:
                cc, src = sources[r.randrange(ADDRESSES)]
                counts[cc] = counts.get(cc, 0) + 1
                dst = "2001:0db8:0000:0000:0000:0000:0000:0025" if ":" in src else "192.0.2.25"
                lines.append(f"{stamp}[ 8123.000001] krfilter: IN=eth0 OUT= MAC=52:54:00:12:34:56:52:54:00:65:43:21:08:00 "
                             f"SRC={src} DST={dst}" + TAIL.format(port=(25, 587, 465)[pick < 0.05 and 1 or 0]))
            elif pick < 0.85:
                lines.append(f"{stamp}[ 8123.000002] [UFW BLOCK] IN=eth0 OUT= MAC=52:54:00:12:34:56:52:54:00:65:43:21:08:00 "
                             f"SRC=192.0.2.200 DST=192.0.2.25" + TAIL.format(port=22))
            else:
                lines.append(f"{stamp}[ 8123.000003] EXT4-fs (sda1): re-mounted. Opts: errors=remount-ro. Quota mode: none.\n")
        counts["lines"] = counts.get("lines", 0) + len(lines)
        chunk = "".join(lines).encode()
        written += len(chunk)
        yield chunk


def test_a_gigabyte_of_kern_log_in_bounded_memory():
    need("time")
    counts = {}
    env = env_for(None)
    env["TZ"] = "UTC"
    run = run_measured(MAILFILTER + ["drops", "--rir", DOC_RIR, "--json", "--top", "5", "-"],
                       big_log(SIZE, counts), env)
    assert run.returncode == 0, run.stderr
    assert run.in_len >= SIZE
    import json
    doc = json.loads(run.head)
    lines = doc["log"]["lines"]
    assert lines["read"] == counts["lines"]
    assert {c["country"]: c["drops"] for c in doc["log"]["countries"]} == {
        cc: n for cc, n in counts.items() if cc != "lines"}
    assert lines["unrecognised"] == 0
    assert run.maxrss_kb < MAX_RSS_MB * 1024, f"peak RSS {run.maxrss_kb // 1024} MB for {SIZE >> 20} MB of log"
