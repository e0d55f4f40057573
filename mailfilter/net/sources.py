"""Where does the spam come from? The first external relay of each message,
mapped to a country with the RIR delegation data, counted by country and /24.

The first external relay is the last address we can believe: reading the
Received: headers from the newest (added by our own server) down, every hop
whose client is our own or trusted is passed over, and the first client that
is not is the host that handed the message to us. Anything below it can be
forged by that host, so it is never looked at. Each field is read by
received.py, which a hostile HELO name cannot mislead.
"""

import bisect
import ipaddress
import os
from collections import Counter
from dataclasses import dataclass, field

from .. import exitcodes
from ..errors import InputError
from ..mailsource import messages
from ..rawmail import scan_header
from . import addresslist
from .received import UNREADABLE, client_address

# Never a relay on the Internet: ours, or not routable. Exactly these blocks
# (not ipaddress's is_private, which also covers documentation space).
_ALWAYS_TRUSTED = [ipaddress.ip_network(n) for n in (
    "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
    "172.16.0.0/12", "192.168.0.0/16", "::1/128", "::/128", "fc00::/7", "fe80::/10",
)]


def _trusted_network(item):
    return ipaddress.ip_network(item, strict=False)


def received_fields(raw: bytes) -> list:
    """The message's Received fields, newest first, as raw bytes. The header
    is found as the filter finds it (rawmail: LF, CRLF or CR lines, an mbox
    From_ line, no blank line at all)."""
    block = scan_header(raw)
    return [raw[f.start:f.end] for f in block.fields if f.name.lower() == b"received"]


def first_external(addresses, trusted):
    """(address, None) or (None, why), from the client addresses of the
    Received fields, newest first (None for a hop without a client)."""
    seen_any = False
    for addr in addresses:
        if addr is None:
            continue                        # local pickup, LMTP over a socket: no client to judge
        if addr is UNREADABLE:
            return None, "a Received header whose client address can't be read"
        seen_any = True
        if addr.version == 6 and addr.ipv4_mapped:
            addr = addr.ipv4_mapped
        if any(addr in net for net in trusted):
            continue
        return addr, None
    return None, ("only trusted hops" if seen_any else "no client address in Received headers")


class CountryLookup:
    def __init__(self, delegations):
        from .sets import country_index
        self.tables = country_index(delegations)
        self.starts = [[row[0] for row in table] for table in self.tables]

    def __call__(self, addr) -> str:
        i = 0 if addr.version == 4 else 1
        n = int(addr)
        pos = bisect.bisect_right(self.starts[i], n) - 1
        if pos >= 0:
            first, last, cc = self.tables[i][pos]
            if first <= n <= last:
                return cc
        return "??"


@dataclass
class Tally:
    messages: int = 0
    countries: Counter = field(default_factory=Counter)
    networks: Counter = field(default_factory=Counter)   # (network, cc)
    unknown: Counter = field(default_factory=Counter)    # reason -> messages without a relay

    @property
    def relays(self):
        return sum(self.countries.values())


def tally(paths, lookup, trusted) -> Tally:
    t = Tally()
    for path in paths:
        for _name, raw in messages(path):
            t.messages += 1
            fields = received_fields(raw)
            if not fields:
                t.unknown["no Received header"] += 1
                continue
            # Lazily: reading stops at the first untrusted client.
            addr, why = first_external((client_address(f) for f in fields), trusted)
            if addr is None:
                t.unknown[why] += 1
                continue
            cc = lookup(addr)
            t.countries[cc] += 1
            net = ipaddress.ip_network(f"{addr}/{24 if addr.version == 4 else 48}", strict=False)
            t.networks[(net, cc)] += 1
    return t


def _pct(n, total):
    return f"{100.0 * n / total:5.1f}%" if total else "    -"


def countries_over(spam: Tally, percent: float) -> list:
    """The countries that sent at least `percent` of the spam, most first;
    never "??" (no country to block). `sources --suggest` and `drops --suggest`
    both decide with this."""
    total = spam.relays
    ranked = sorted(spam.countries.items(), key=lambda kv: (-kv[1], kv[0]))
    return [cc for cc, n in ranked if cc != "??" and total and 100.0 * n / total >= percent]


def _trusted_hops(trust=(), trust_files=()):
    """Never the source: the always-trusted blocks plus --trust and
    --trust-file's; raises InputError."""
    return _ALWAYS_TRUSTED + addresslist.load(trust, trust_files, _trusted_network, "--trust", "trust")


def _check_folders(paths):
    for path in paths:
        if not os.path.exists(path):
            raise InputError(f"{path}: no such Maildir, mbox or directory", exitcodes.NOINPUT)


def _read_tally(paths, lookup, trusted) -> Tally:
    try:
        return tally(paths, lookup, trusted)
    except OSError as err:
        raise InputError(f"cannot read mail: {err}", exitcodes.NOINPUT) from None


def load_spam(paths, lookup, trust=(), trust_files=()):
    """The spam tally for `paths`, with `--trust` as sources reads it; raises InputError."""
    trusted = _trusted_hops(trust, trust_files)
    _check_folders(paths)
    return _read_tally(paths, lookup, trusted)


def render(spam: Tally, ham: Tally | None, top: int, suggest: float | None, sources: str):
    """The report text, plus the warnings to log."""
    out, warnings = [], []
    total = spam.relays
    out.append(f"{spam.messages} spam messages, {total} with an external relay "
               f"(countries from {sources})")
    for why, n in sorted(spam.unknown.items()):
        out.append(f"  {n} without one: {why}")
    if ham:
        out.append(f"{ham.messages} ham messages, {ham.relays} with an external relay")
    out.append("")
    out.append("by country:" + ("                 ham" if ham else ""))
    by_count = sorted(spam.countries.items(), key=lambda kv: (-kv[1], kv[0]))
    ham_only = sorted((cc, 0) for cc in (ham.countries if ham else ()) if cc not in spam.countries)
    for cc, n in by_count + ham_only:
        line = f"  {cc}  {n:7d}  {_pct(n, total)}"
        if ham:
            h = ham.countries.get(cc, 0)
            line += f"   {h:7d}  {_pct(h, ham.relays)}"
        out.append(line)
    out.append("")
    out.append(f"by network (IPv4 /24, IPv6 /48), top {top}:")
    ranked = sorted(spam.networks.items(), key=lambda kv: (-kv[1], kv[0][0].version, kv[0][0]))
    for (net, cc), n in ranked[:top]:
        out.append(f"  {str(net):<22} {cc}  {n:7d}  {_pct(n, total)}")
    if suggest is not None:
        chosen = countries_over(spam, suggest)
        out.append("")
        if chosen:
            out.append(f"suggested (countries sending at least {suggest:g}% of the spam):")
            out.append(f"  mailfilter krfilter --countries {','.join(chosen)}")
        else:
            out.append(f"no country sends at least {suggest:g}% of the spam; nothing to suggest")
        for cc in chosen:
            h = ham.countries.get(cc, 0) if ham else 0
            if h:
                warnings.append(f"warning: {cc} also sent {h} of your {ham.relays} ham messages "
                                f"({100.0 * h / ham.relays:.1f}%); blocking {cc} refuses them too")
        out += [f"  {w}" for w in warnings]
        if ham is None and chosen:
            out.append("  (give --ham FOLDER to see whether these countries also send you ham)")
    return "\n".join(out) + "\n", warnings


def run(spam_paths, ham_paths=(), rir_files=(), cache_dir=None, trust=(), trust_files=(),
        top=20, suggest=None, lenient=False, fetch=False, urls=()) -> int:
    import sys

    from ..log import report, warning
    from . import inputs

    try:
        trusted = _trusted_hops(trust, trust_files)
        _check_folders(list(spam_paths) + list(ham_paths))
        delegations = inputs.load(rir_files, fetch=fetch, urls=urls, cache_dir=cache_dir, lenient=lenient,
                                  warn=warning, files_hint="give --rir FILE")
        lookup = CountryLookup(delegations)
        spam = _read_tally(spam_paths, lookup, trusted)
        ham = _read_tally(ham_paths, lookup, trusted) if ham_paths else None
    except InputError as err:
        report(str(err))
        return err.code
    # File names go on stdout: a newline can't start a report line of its
    # own, and a name that is not UTF-8 can't crash a strict-UTF-8 stdout.
    from .writers import comment_text
    names = ", ".join(comment_text(os.path.basename(d.path)) for d in delegations)
    text, warnings = render(spam, ham, top, suggest, names)
    sys.stdout.write(text)
    for w in warnings:
        warning(w)
    return exitcodes.OK
