"""`mailfilter drops`: what krfilter's country rules stopped, by country,
day, source address and port, and what to block or lift next.

Two kinds of figure, never mixed up in the report:
  * log samples: krfilter's LOG rule is rate-limited (6/minute, burst 10 in
    iptables, 5 in nft), so the log shows WHO and WHEN but undercounts;
  * counter totals: the rules' packet counters (nft `counter`, iptables'
    own) count every dropped SYN since the rules were loaded, but know no
    address and no time.

The log is streamed (droplog); memory follows the distinct (day, address,
port) triples seen, not the size of the log.
"""

import csv
import io
import ipaddress
import os
import sys
import time
from collections import Counter, defaultdict

from .. import exitcodes
from ..errors import InputError
from ..log import report, warning
from . import countries as countries_mod
from . import dropcounters, droplog, inputs

SCHEMA_VERSION = 1
LOG_NOTE = ("log figures are samples: krfilter's LOG rule is rate-limited (--log-rate, default "
            "6/minute), so they show who and when, and undercount; totals are the counters'")
COUNTER_NOTE = "counter figures are totals: every dropped SYN since the rules were loaded (or zeroed)"
CHART_SIZE = (8.0, 4.0, 100)        # inches and dpi: an 800 x 400 PNG
CHART_HINT = ("--chart needs matplotlib, which is not installed: "
              "pip install 'mailfilter[chart]' (into the same environment as mailfilter)")


def day_text(day):
    return time.strftime("%Y-%m-%d", time.gmtime(day * 86400))


def time_text(when):
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(when))


class Tally:
    """The log's drops, kept as (day, address, port) -> count plus each
    address's first and last time: everything else is summed from these."""

    def __init__(self, lookup):
        self.lookup = lookup
        self.cells = Counter()
        self.span = {}              # address text -> [first, last]
        self.country = {}           # address text -> cc

    def add(self, when, address, dport, proto):
        text = address.text
        self.cells[(when // 86400, text, dport)] += 1
        span = self.span.get(text)
        if span is None:
            self.span[text] = [when, when]
            self.country[text] = self.lookup(address.ip)
        elif when < span[0]:
            span[0] = when
        elif when > span[1]:
            span[1] = when

    @property
    def total(self):
        return sum(self.cells.values())


# -- the report as data (the JSON), from which the table is printed -----------------

def _by_country_log(tally):
    rows = defaultdict(lambda: {"drops": 0, "addresses": set(), "first": None, "last": None})
    for (_day, addr, _port), n in tally.cells.items():
        row = rows[tally.country[addr]]
        row["drops"] += n
        row["addresses"].add(addr)
    for addr, (first, last) in tally.span.items():
        row = rows[tally.country[addr]]
        row["first"] = first if row["first"] is None else min(row["first"], first)
        row["last"] = last if row["last"] is None else max(row["last"], last)
    return rows


def _counter_country(row, lookup):
    if row.country is not None:
        return row.country
    try:
        net = ipaddress.ip_network(row.match, strict=False)
    except ValueError:
        return "??"
    first, last = lookup(net[0]), lookup(net[-1])
    return first if first == last else "??"


def build(tally, stats, counters, lookup, top, inputs_used, rir_names, since, until,
          blocked_given=None, spam=None, suggest=None):
    """The whole report as one JSON-ready dict."""
    doc = {"schema": SCHEMA_VERSION,
           "period": {"since": time_text(since) if since is not None else None,
                      "until": time_text(until) if until is not None else None},
           "inputs": {**inputs_used, "rir": rir_names},
           "log": None, "counters": None, "countries": [], "sources": None, "suggestions": []}
    log_countries = {}
    if tally is not None:
        per_country = _by_country_log(tally)
        log_countries = {cc: row["drops"] for cc, row in per_country.items()}
        days = defaultdict(Counter)
        ports = Counter()
        addr_days = defaultdict(Counter)
        for (day, addr, port), n in tally.cells.items():
            days[day][tally.country[addr]] += n
            ports[port] += n
            addr_days[addr][day] += n
        addr_total = {addr: sum(c.values()) for addr, c in addr_days.items()}
        ranked = sorted(addr_total, key=lambda a: (-addr_total[a], ipaddress.ip_address(a).version,
                                                   ipaddress.ip_address(a)))
        spans = list(tally.span.values())
        doc["log"] = {
            "note": LOG_NOTE,
            "lines": stats.as_dict(),
            "hosts": sorted(h.decode("utf-8", "replace") for h in stats.hosts),
            "drops": tally.total,
            "first_seen": time_text(min(s[0] for s in spans)) if spans else None,
            "last_seen": time_text(max(s[1] for s in spans)) if spans else None,
            "countries": [{"country": cc, "drops": row["drops"], "addresses": len(row["addresses"]),
                           "first_seen": time_text(row["first"]), "last_seen": time_text(row["last"])}
                          for cc, row in sorted(per_country.items(), key=lambda kv: (-kv[1]["drops"], kv[0]))],
            "days": [{"day": day_text(day), "drops": sum(c.values()), "countries": dict(sorted(c.items()))}
                     for day, c in sorted(days.items())],
            "addresses": [{"address": addr, "country": tally.country[addr], "drops": addr_total[addr],
                           "first_seen": time_text(tally.span[addr][0]),
                           "last_seen": time_text(tally.span[addr][1]),
                           "days": {day_text(d): n for d, n in sorted(addr_days[addr].items())},
                           "busiest_day": _busiest(addr_days[addr])}
                          for addr in ranked[:top]],
            "addresses_total": len(addr_total),
            "ports": [{"port": port, "drops": n}
                      for port, n in sorted(ports.items(), key=lambda kv: (-kv[1], kv[0] is None, kv[0] or 0))],
        }
    counter_countries = {}
    if counters is not None:
        for row in counters.rows:
            cc = _counter_country(row, lookup)
            counter_countries[cc] = counter_countries.get(cc, 0) + row.packets
        doc["counters"] = {
            "note": COUNTER_NOTE,
            "read": counters.sources,
            "rules": [{"source": r.source, "match": r.match, "family": r.family,
                       "country": _counter_country(r, lookup), "packets": r.packets, "bytes": r.bytes}
                      for r in counters.rows],
            "total": sum(r.packets for r in counters.rows),
            "per_country": any(cc not in ("*", "??") for cc in counter_countries),
            "logged": counters.logged,
        }

    # Which countries are blocked: as the admin says, else as the per-country
    # counters show (zeros included), else as far as the log shows.
    if blocked_given:
        blocked, blocked_from = list(blocked_given), "--countries/--preset"
    elif counters is not None and any(cc not in ("*", "??") for cc in counter_countries):
        blocked, blocked_from = (sorted(cc for cc in counter_countries if cc not in ("*", "??")),
                                 "the per-country counters")
    else:
        blocked, blocked_from = sorted(cc for cc in log_countries if cc != "??"), "the log"
    doc["blocked"] = {"countries": blocked, "from": blocked_from}

    names = set(blocked) | set(log_countries) | {cc for cc in counter_countries if cc != "*"}
    if spam is not None:
        names |= set(spam.countries)
    for cc in sorted(names, key=lambda c: (-log_countries.get(c, 0), -counter_countries.get(c, 0),
                                           -(spam.countries.get(c, 0) if spam else 0), c)):
        doc["countries"].append({
            "country": cc, "blocked": cc in blocked,
            "log_drops": log_countries.get(cc, 0) if tally is not None else None,
            "counter_packets": counter_countries.get(cc),
            "spam": spam.countries.get(cc, 0) if spam is not None else None})
    if spam is not None:
        doc["sources"] = {"messages": spam.messages, "with_relay": spam.relays,
                          "without_relay": dict(sorted(spam.unknown.items())),
                          "countries": [{"country": cc, "spam": n}
                                        for cc, n in sorted(spam.countries.items(), key=lambda kv: (-kv[1], kv[0]))]}
    if suggest is not None:
        doc["suggestions"] = _suggestions(doc, blocked, spam, suggest)
    return doc


def _busiest(per_day):
    day, n = max(per_day.items(), key=lambda kv: (kv[1], -kv[0]))
    return {"day": day_text(day), "drops": n}


def _suggestions(doc, blocked, spam, percent):
    """sources' --suggest rule for blocking, plus its mirror for lifting: a
    blocked country that nothing was dropped from (log, and per-country
    counters where there are any) and that sent none of the spam."""
    from .sources import countries_over
    out = []
    if spam is not None:
        total = spam.relays
        for cc in countries_over(spam, percent):
            if cc not in blocked:
                n = spam.countries[cc]
                out.append({"action": "block", "country": cc,
                            "reason": f"{n} of {total} spam messages ({100.0 * n / total:.1f}%) came from {cc}, "
                                      f"which is not blocked"})
    rows = {row["country"]: row for row in doc["countries"]}
    for cc in blocked:
        row = rows.get(cc, {})
        if row.get("log_drops") or row.get("counter_packets") or row.get("spam"):
            continue
        seen = [what for what, key in (("the log", "log_drops"), ("the counters", "counter_packets"))
                if row.get(key) is not None]
        if not seen:
            continue
        why = f"no drop from {cc} in {' or '.join(seen)}"
        if spam is not None:
            why += " and none of the spam came from it"
        out.append({"action": "lift", "country": cc, "reason": why + "; the rule only risks refusing good mail"})
    return out


# -- renderers --------------------------------------------------------------------------

def render_text(doc, top):
    out = []
    log, counters = doc["log"], doc["counters"]
    period = doc["period"]
    if period["since"] or period["until"]:
        out.append(f"period: {period['since'] or 'start'} .. {period['until'] or 'end'} (log time; until is exclusive)")
    if log is not None:
        lines = log["lines"]
        names = ", ".join(doc["inputs"]["logs"]) or "-"
        out.append(f"log: {names}: {lines['read']} lines, {log['drops']} drops logged by {doc['inputs']['name']!r}"
                   + (f", {log['first_seen']} .. {log['last_seen']}" if log["first_seen"] else ""))
        skipped = [(lines["other"], "other log lines"), (lines["other_prefix"], "LOG lines with another prefix"),
                   (lines["other_host"], "from other hosts"), (lines["outside_period"], "outside the period"),
                   (lines["unrecognised"], "unrecognised")]
        out.append("  skipped: " + ", ".join(f"{n} {what}" for n, what in skipped))
        if len(log["hosts"]) > 1:
            out.append(f"  hosts: {', '.join(log['hosts'])} (--host NAME keeps one)")
        out.append(f"  note: {LOG_NOTE}")
    if counters is not None:
        out.append(f"counters: {'; '.join(counters['read']) or 'none loaded'}")
        out.append(f"  note: {COUNTER_NOTE}")
        if counters["logged"] is not None:
            out.append(f"  iptables' LOG rule wrote {counters['logged']} log lines; the rest were dropped unlogged")
        if any(r["country"] == "*" for r in counters["rules"]):
            out.append("  one set holds every country, so its counter is one total "
                       "(krfilter --per-country counts each country)")
    out.append(f"countries from: {', '.join(doc['inputs']['rir'])}")
    out.append("")

    rows = doc["countries"]
    has_spam = doc["sources"] is not None
    head = "by country:   blocked  log samples  counters (total)" + ("     spam" if has_spam else "")
    out.append(head)
    for row in rows:
        line = (f"  {row['country']:<10}  {'yes' if row['blocked'] else 'no':<7}  {_cell(row['log_drops']):>11}"
                f"  {_cell(row['counter_packets']):>16}")
        if has_spam:
            line += f"  {_cell(row['spam']):>7}"
        out.append(line)
    if counters is not None:
        one_set = sum(r["packets"] for r in counters["rules"] if r["country"] == "*")
        if any(r["country"] == "*" for r in counters["rules"]):
            out.append(f"  {'all (one set)':<21}  {'':>11}  {one_set:>16}")
        out.append(f"  {'total':<10}  {'':<7}  {_cell(log['drops'] if log else None):>11}  {counters['total']:>16}")
    out.append(f"  (blocked countries from {doc['blocked']['from']})")

    if log is not None and log["drops"]:
        ccs = [c["country"] for c in log["countries"]]
        out.append("")
        out.append("by day (log samples):")
        out.append("  day         " + "".join(f"{cc:>8}" for cc in ccs) + "   total")
        for day in log["days"]:
            out.append(f"  {day['day']}  " + "".join(f"{day['countries'].get(cc, 0):>8}" for cc in ccs)
                       + f"  {day['drops']:>6}")
        out.append("")
        width = max([len(a["address"]) for a in log["addresses"]] + [7])
        shown = len(log["addresses"])
        out.append(f"by source address, top {shown} of {log['addresses_total']} (log samples):"
                   if shown < log["addresses_total"] else f"by source address, all {shown} (log samples):")
        out.append(f"  {'address':<{width}}  cc    drops  days  busiest day       first seen           last seen")
        for a in log["addresses"]:
            busiest = f"{a['busiest_day']['day']} ({a['busiest_day']['drops']})"
            out.append(f"  {a['address']:<{width}}  {a['country']:<3} {a['drops']:>7}  {len(a['days']):>4}  "
                       f"{busiest:<16}  {a['first_seen']}  {a['last_seen']}")
        out.append("")
        out.append("by destination port (log samples):")
        for p in log["ports"]:
            out.append(f"  {p['port'] if p['port'] is not None else '-':>5}  {p['drops']:>7}")
        out.append("")
        out.append("first and last seen, by country (log samples):")
        for c in log["countries"]:
            noun = "address" if c["addresses"] == 1 else "addresses"
            out.append(f"  {c['country']:<3} {c['addresses']:>5} {noun:<9}  {c['first_seen']} .. {c['last_seen']}")

    if doc["sources"] is not None:
        s = doc["sources"]
        out.append("")
        out.append(f"spam sources beside the drops ({s['messages']} spam messages, {s['with_relay']} with an "
                   f"external relay, counted as `mailfilter sources` counts them):")
        for row in rows:
            if row["spam"] is None:
                continue
            dropped = bool(row["log_drops"] or row["counter_packets"])
            if row["blocked"] and row["spam"]:
                state = "blocked, yet still in your spam (another MX? a port --ports leaves open? spam older than the block?)"
            elif row["blocked"]:
                state = "blocked, dropped, no spam" if dropped else "blocked, but never sent anything"
            elif row["spam"]:
                state = "not blocked, sends spam"
            else:
                state = "not blocked"
            out.append(f"  {row['country']:<3} {row['spam']:>6} spam  {state}")

    return "\n".join(out) + "\n"


def render_suggestions(doc, percent):
    out = ["", "suggestions:"]
    if not doc["suggestions"]:
        out.append(f"  none: no unblocked country sends at least {percent:g}% of the spam, "
                   "and every blocked one was seen")
    for s in doc["suggestions"]:
        out.append(f"  consider {'blocking' if s['action'] == 'block' else 'lifting'} {s['country']}: {s['reason']}")
    if doc["sources"] is None:
        out.append("  (give --with-sources SPAMDIR for 'consider blocking' lines)")
    if doc["suggestions"]:
        lift = {s["country"] for s in doc["suggestions"] if s["action"] == "lift"}
        keep = [cc for cc in doc["blocked"]["countries"] if cc not in lift]
        keep += [s["country"] for s in doc["suggestions"] if s["action"] == "block"]
        if keep:
            out.append(f"  then: mailfilter krfilter --countries {','.join(keep)} ...")
        else:
            out.append("  then: nothing left to block; remove krfilter's rules")
    return "\n".join(out) + "\n"


def _cell(value):
    return "-" if value is None else str(value)


CSV_FIELDS = ["figure", "day", "country", "address", "port", "drops", "first_seen", "last_seen"]


def render_csv(tally, doc):
    """One flat table: a row per (day, address, port) from the log, and a
    row per rule counter; `figure` says which is which."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_FIELDS)
    if tally is not None:
        for (day, addr, port), n in sorted(tally.cells.items(),
                                           key=lambda kv: (kv[0][0], tally.country[kv[0][1]], -kv[1], kv[0][1],
                                                           kv[0][2] or 0)):
            first, last = tally.span[addr]
            w.writerow(["log-sample", day_text(day), tally.country[addr], addr, "" if port is None else port, n,
                        time_text(first), time_text(last)])
    if doc["counters"] is not None:
        for r in doc["counters"]["rules"]:
            w.writerow(["counter-total", "", r["country"], r["match"], "", r["packets"], "", ""])
    return buf.getvalue()


def render_chart(doc):
    """PNG bytes: drops per day per country (log samples), stacked bars."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    import datetime
    log = doc["log"]
    # Every day from the first to the last, so a quiet day shows as a gap.
    logged = {d["day"]: d["countries"] for d in log["days"]}
    days = []
    if logged:
        day, last = (datetime.date.fromisoformat(d) for d in (min(logged), max(logged)))
        while day <= last:
            days.append(day.isoformat())
            day += datetime.timedelta(days=1)
    per_day = [logged.get(day, {}) for day in days]
    ccs = [c["country"] for c in log["countries"]]
    shown = ccs[:8]
    width, height, dpi = CHART_SIZE
    fig, ax = plt.subplots(figsize=(width, height), dpi=dpi)
    bottom = [0] * len(days)
    series = [(cc, [counts.get(cc, 0) for counts in per_day]) for cc in shown]
    if len(ccs) > len(shown):
        series.append(("other", [sum(n for cc, n in counts.items() if cc not in shown) for counts in per_day]))
    for label, values in series:
        ax.bar(range(len(days)), values, bottom=bottom, label=label)
        bottom = [b + v for b, v in zip(bottom, values)]
    step = max(1, len(days) // 10)
    ax.set_xticks(range(0, len(days), step))
    ax.set_xticklabels(days[::step], rotation=30, ha="right", fontsize=8)
    ax.set_ylim(0, max(bottom + [1]) * 1.1)         # room above the highest day
    ax.set_ylabel("dropped SYNs logged")
    ax.set_title(f"{doc['inputs']['name']} drops per day by country (log samples, rate-limited)", fontsize=10)
    if series:
        ax.legend(fontsize=8, loc="upper left")
    fig.subplots_adjust(bottom=0.22)
    out = io.BytesIO()
    fig.savefig(out, format="png", dpi=dpi)
    plt.close(fig)
    return out.getvalue()


# -- the command ------------------------------------------------------------------------

DEFAULT_LOG = "/var/log/kern.log"


def default_logs(path=DEFAULT_LOG):
    """kern.log and its rotations, oldest first: kern.log.N(.gz) by N descending."""
    import glob
    import re
    found = []
    for p in glob.glob(path + ".*"):
        m = re.fullmatch(re.escape(path) + r"\.(\d+)(\.gz)?", p)
        if m:
            found.append((int(m.group(1)), p))
    paths = [p for _, p in sorted(found, reverse=True)]
    if os.path.exists(path):
        paths.append(path)
    return paths


def _journal(reader, since, until):
    import subprocess
    argv = ["journalctl", "-k", "-o", "json", "--no-pager"]
    if since is not None:
        argv += ["--since", time_text(since)]
    if until is not None:
        argv += ["--until", time_text(until)]
    try:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    except OSError as err:
        raise InputError(f"journalctl: {err.strerror or err}; read a log file instead (FILE)",
                         exitcodes.UNAVAILABLE) from None
    with proc:
        reader.read_journal_stream(proc.stdout, "journalctl")
        err = proc.stderr.read().decode(errors="replace").strip()
    if proc.returncode not in (0, 1) or (proc.returncode == 1 and "No journal files" not in err):
        raise InputError(f"{' '.join(argv)}: {err or f'exit {proc.returncode}'}", exitcodes.UNAVAILABLE)


def run(files=(), journal=False, counters=False, counter_files=(), rir_files=(), cache_dir=None,
        name="krfilter", host=None, since=None, until=None, top=20, fmt="text", output=None,
        chart=None, with_sources=(), trust=(), trust_files=(), countries=(), presets=(),
        suggest=None, lenient=False, progress=False) -> int:
    try:
        return _run(files, journal, counters, counter_files, rir_files, cache_dir, name, host, since, until,
                    top, fmt, output, chart, with_sources, trust, trust_files, countries, presets, suggest,
                    lenient, progress)
    except InputError as err:
        report(str(err))
        return err.code


def _run(files, journal, counters, counter_files, rir_files, cache_dir, name, host, since, until,
         top, fmt, output, chart, with_sources, trust, trust_files, countries, presets, suggest,
         lenient, progress):
    from .sources import CountryLookup, load_spam

    files = list(files)
    if not (files or journal or counters or counter_files):
        files = default_logs()
        if not files:
            raise InputError(f"no log named and no {DEFAULT_LOG}: name log files (FILE, '-' for stdin), "
                             "or use --journal or --counters", exitcodes.NOINPUT)
    for path in files:
        if path != "-" and not os.path.isfile(path):
            raise InputError(f"{path}: no such log file", exitcodes.NOINPUT)
    if chart is not None:
        try:
            import matplotlib  # noqa: F401  (checked before reading a 1 GB log, not after)
        except ImportError:
            raise InputError(CHART_HINT, exitcodes.UNAVAILABLE) from None
        if not (files or journal):
            raise InputError("--chart draws drops per day, which only the log has: name a log or use --journal",
                             exitcodes.USAGE)

    delegations = inputs.load(rir_files, cache_dir=cache_dir, lenient=lenient, warn=warning)
    lookup = CountryLookup(delegations)
    blocked_given = None
    if countries or presets:
        present = set().union(*(d.countries for d in delegations))
        blocked_given = countries_mod.choose(countries, presets, present,
                                             ", ".join(os.path.basename(d.path) for d in delegations))
    spam = load_spam(with_sources, lookup, trust, trust_files) if with_sources else None

    tally = stats = None
    if files or journal:
        tally = Tally(lookup)
        bar = None
        if progress:
            from tqdm import tqdm
            bar = tqdm(unit=" lines", unit_scale=True, file=sys.stderr)
        reader = droplog.Reader(f"{name}: ", tally.add, host=host, since=since, until=until,
                                progress=(lambda: bar.update(0x10000)) if bar else None)
        try:
            for path in files:
                try:
                    reader.read(path)
                except (OSError, EOFError) as err:     # gzip's EOFError: a truncated .gz
                    raise InputError(f"{path}: cannot read: {getattr(err, 'strerror', None) or err}",
                                     exitcodes.NOINPUT if isinstance(err, (FileNotFoundError, PermissionError))
                                     else exitcodes.DATAERR) from None
            if journal:
                _journal(reader, since, until)
        finally:
            if bar:
                bar.close()
        stats = reader.stats
        if stats.unrecognised:
            warning(f"skipped {stats.unrecognised} unrecognised lines, e.g. " + "; ".join(stats.examples))

    found = None
    if counters or counter_files:
        rows, sources_read, logged = [], [], None
        for path in counter_files:
            try:
                with open(path, encoding="utf-8", errors="replace") as fh:
                    saved = dropcounters.parse_saved(fh.read(), name, path)
            except OSError as err:
                raise InputError(f"{path}: cannot read: {err.strerror or err}", exitcodes.NOINPUT) from None
            except dropcounters.CounterError as err:
                raise InputError(f"{path}: {err}", exitcodes.DATAERR) from None
            rows += saved.rows
            sources_read += saved.sources
            logged = saved.logged if logged is None else logged + (saved.logged or 0)
        if counters:
            live, notes = dropcounters.read_live(name)
            rows += live.rows
            sources_read += live.sources
            if live.logged is not None:
                logged = (logged or 0) + live.logged
            if not live.sources:
                message = (f"no krfilter rules named {name!r} are loaded (nft table inet {name}, "
                           f"iptables chain {name.upper()}): " + "; ".join(notes))
                if not (files or journal or counter_files):
                    raise InputError(message, exitcodes.UNAVAILABLE)
                warning(message)
        found = dropcounters.Counters(rows, sources_read, logged)

    inputs_used = {"name": name, "logs": files + (["journalctl -k -o json"] if journal else []),
                   "counters": found.sources if found is not None else []}
    rir_names = [os.path.basename(d.path) for d in delegations]
    doc = build(tally, stats, found, lookup, top, inputs_used, rir_names, since, until,
                blocked_given, spam, suggest)

    if chart is not None:
        from ..atomicfile import replace
        try:
            replace(chart, (render_chart(doc),), 0o644)
        except OSError as err:
            raise InputError(f"{chart}: cannot write: {err.strerror or err}", exitcodes.CANTCREAT) from None

    if fmt == "json":
        import json
        text = json.dumps(doc, indent=2) + "\n"
    elif fmt == "csv":
        text = render_csv(tally, doc)
    else:
        text = render_text(doc, top)
        if suggest is not None:
            text += render_suggestions(doc, suggest)
    if output in (None, "-"):
        sys.stdout.write(text)
        sys.stdout.flush()
    else:
        from ..atomicfile import replace
        try:
            replace(output, (text.encode("utf-8"),), 0o644)
        except OSError as err:
            raise InputError(f"{output}: cannot write: {err.strerror or err}", exitcodes.CANTCREAT) from None
    return exitcodes.OK
