"""The packet counters of krfilter's rules: the totals the rate-limited log
cannot give.

    nft -j list table inet NAME      the `counter` on each drop rule; per
                                     country with `krfilter --per-country`
                                     (sets block4_CC/block6_CC), else one per
                                     family (sets block4/block6)
    iptables -L NAME -v -x -n        every rule counts in iptables: the jumps
    ip6tables -L NAME -v -x -n       to NAME-DROP, one per prefix (--format
                                     iptables) or per set (ipset formats;
                                     per country with --per-country)

A row's country is the set's suffix (block4_KR, krfilter4-KR), "*" for a
set that holds every country, or None for a prefix rule: the caller maps the
prefix with the RIR data.
"""

import json
import re
import shutil
import subprocess
from dataclasses import dataclass


@dataclass
class Row:
    source: str         # "nft inet krfilter", "iptables KRFILTER", ...
    match: str          # "@block4_KR", "10.99.64.0/18", "set krfilter4"
    family: int
    country: str | None
    packets: int
    bytes: int


@dataclass
class Counters:
    rows: list
    sources: list       # what was read, for the report
    logged: int | None = None   # packets the LOG rule wrote (iptables counts it), if known


class CounterError(Exception):
    pass


def _set_country(set_name, base):
    """block4_KR -> KR, krfilter6-CN -> CN, block4 / krfilter4 -> '*'."""
    for sep in ("_", "-"):
        stem = f"{base}{sep}"
        if set_name.startswith(stem) and re.fullmatch(r"[A-Z]{2}", set_name[len(stem):]):
            return set_name[len(stem):]
    return "*"


def parse_nft(text, name):
    """Counters of table inet NAME from `nft -j list ...` output."""
    try:
        doc = json.loads(text)
        items = doc["nftables"]
    except (ValueError, KeyError, TypeError) as err:
        raise CounterError(f"not nft JSON output ({err})") from None
    rows = []
    for item in items:
        rule = item.get("rule") if isinstance(item, dict) else None
        if not rule or rule.get("table") != name or rule.get("family") != "inet":
            continue
        set_name, family, counter = None, None, None
        for expr in rule.get("expr", ()):
            match = expr.get("match")
            if match and isinstance(match.get("right"), str) and match["right"].startswith("@"):
                payload = match.get("left", {}).get("payload", {})
                if payload.get("field") == "saddr":
                    set_name = match["right"][1:]
                    family = 6 if payload.get("protocol") == "ip6" else 4
            if "counter" in expr and isinstance(expr["counter"], dict):
                counter = expr["counter"]
        if set_name and counter is not None:
            rows.append(Row(f"nft inet {name}", f"@{set_name}", family,
                            _set_country(set_name, f"block{family}"),
                            int(counter.get("packets", 0)), int(counter.get("bytes", 0))))
    return rows


_IPT_ROW = re.compile(r"\s*(\d+)\s+(\d+)\s+(\S+)\s+(.*)")
_MATCH_SET = re.compile(r"match-set (\S+) src")


def parse_iptables(text, name, tool="iptables"):
    """(rows, logged) from `iptables -L NAME -v -x -n` (or the whole -L output):
    the jumps to NAME-DROP in chain NAME, and the LOG rule in NAME-DROP."""
    chain, drop = name.upper(), f"{name.upper()}-DROP"
    rows, logged, current = [], None, None
    for line in text.splitlines():
        if line.startswith("Chain "):
            current = line.split()[1]
            continue
        m = _IPT_ROW.match(line)
        if not m or current not in (chain, drop):
            continue
        packets, nbytes, target, rest = int(m.group(1)), int(m.group(2)), m.group(3), m.group(4).split()
        if current == drop:
            if target == "LOG":
                logged = (logged or 0) + packets
            continue
        if target != drop:
            continue
        # prot opt in out source destination [matches...]; old ip6tables leaves opt blank.
        addrs = [i for i, tok in enumerate(rest) if "/" in tok or tok.count(".") == 3 or ":" in tok]
        if len(addrs) < 2:
            continue
        source = rest[addrs[0]]
        family = 6 if ":" in source else 4
        extra = " ".join(rest[addrs[1] + 1:])
        ms = _MATCH_SET.search(extra)
        if ms:
            rows.append(Row(f"{tool} {chain}", f"set {ms.group(1)}", family,
                            _set_country(ms.group(1), f"{name}{family}"), packets, nbytes))
        else:
            rows.append(Row(f"{tool} {chain}", source, family, None, packets, nbytes))
    return rows, logged


def parse_saved(text, name, where):
    """A saved copy of either tool's output (--counters-file), told apart by its first character."""
    if text.lstrip().startswith("{"):
        return Counters(parse_nft(text, name), [f"{where} (nft)"])
    rows, logged = parse_iptables(text, name)
    if not rows and f"Chain {name.upper()}" not in text:
        raise CounterError(f"neither `nft -j list` JSON nor `iptables -L {name.upper()} -v -x -n` output")
    return Counters(rows, [f"{where} (iptables)"], logged)


def _run(argv):
    try:
        res = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    except OSError as err:
        return None, f"{argv[0]}: {err.strerror or err}"
    except subprocess.TimeoutExpired:
        return None, f"{' '.join(argv)}: no answer in 60 s"
    if res.returncode != 0:
        return None, f"{' '.join(argv)}: {res.stderr.strip() or f'exit {res.returncode}'}"
    return res.stdout, None


def read_live(name):
    """Counters of whatever krfilter rules are loaded: (Counters, notes).
    A tool that is missing or has no such table/chain adds a note, not an error."""
    rows, sources, notes, logged = [], [], [], None
    if shutil.which("nft"):
        out, err = _run(["nft", "-j", "list", "table", "inet", name])
        if out is not None:
            rows += parse_nft(out, name)
            sources.append(f"nft -j list table inet {name}")
        else:
            notes.append(err)
    else:
        notes.append("nft: not installed")
    for tool in ("iptables", "ip6tables"):
        if not shutil.which(tool):
            notes.append(f"{tool}: not installed")
            continue
        out, err = _run([tool, "-L", name.upper(), "-v", "-x", "-n"])
        if out is None:
            notes.append(err)
            continue
        found, tool_logged = parse_iptables(out, name, tool)
        rows += found
        sources.append(f"{tool} -L {name.upper()} -v -x -n")
        out, _ = _run([tool, "-L", f"{name.upper()}-DROP", "-v", "-x", "-n"])
        if out is not None:
            _, tool_logged = parse_iptables(out, name, tool)
            if tool_logged is not None:
                logged = (logged or 0) + tool_logged
    return Counters(rows, sources, logged), notes
