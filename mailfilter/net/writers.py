"""One function per output format: Blocklist + Options -> the file's text.

Every file starts with comments saying where it came from (files, serials,
countries, prefix counts). Nothing time-dependent goes in, so the same data
gives byte-identical output and the daily refresh can tell "changed" by cmp.

Firewall formats only ever drop (or reject) new inbound TCP connections from
listed sources; everything else they hand back untouched to the rest of the
admin's firewall. Each file loads in one atomic step: iptables-restore and
nft -f are transactions, and the ipset file fills a fresh set and swaps it in.
"""

import re
from dataclasses import dataclass

from .. import __version__

FORMATS = {
    "ipset": "ipset restore file: both sets, filled aside and swapped in (recommended)",
    "ipset-iptables": "iptables-restore rules that use the IPv4 set (load once, after the ipset file)",
    "ipset-ip6tables": "ip6tables-restore rules that use the IPv6 set",
    "iptables": "iptables-restore script, one rule per IPv4 prefix",
    "ip6tables": "ip6tables-restore script, one rule per IPv6 prefix",
    "nft": "nft -f file: table inet with interval sets for both families",
    "cidr": "plain list of CIDRs, IPv4 then IPv6",
    "postfix": "Postfix check_client_access cidr: table",
}

MULTIPORT_MAX = 15      # iptables multiport takes at most 15 ports

# Every text an option puts into a rule file is checked against what that
# file's syntax allows, so no value can end a line and start a rule of its
# own (a newline in --postfix-action added a `0.0.0.0/0 OK` line).
# ASCII only: str.isalnum() also passes letters no firewall tool accepts.
# A letter first: nft reads a table name that starts with a digit as a
# number, and iptables-restore one that starts with '-' as an option.
# 20 keeps NAME-DROP within iptables' 28-character chain names.
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,19}\Z")
# What both `iptables -m limit --limit` and nft's `limit rate` read; iptables
# refuses more than 10,000 per unit.
_RATE = re.compile(r"([1-9][0-9]{0,4})/(second|minute|hour|day)\Z")
# access(5) results a blocklist may use: they refuse, hold or flag the
# client. OK, RELAY, PERMIT and an all-numerical result accept the mail.
_ACTIONS = {"REJECT", "DEFER", "DEFER_IF_REJECT", "DEFER_IF_PERMIT", "DISCARD", "HOLD",
            "WARN", "INFO", "DUNNO", "FILTER", "REDIRECT", "BCC", "PREPEND"}
_ACCEPTING = {"OK", "RELAY", "PERMIT"}
_ACTION_TEXT = re.compile(r"[ -~]+\Z")           # one line of printable ASCII
_REPLY_CODE = re.compile(r"[45][0-9][0-9]\Z")
_DIGITS = re.compile(r"[0-9]+\Z")


def check_name(text: str) -> str:
    if not _NAME.match(text):
        raise ValueError(f"{text!r}: an ASCII letter, then letters, digits, - and _, at most 20 characters")
    return text


def check_log_rate(text: str) -> str:
    m = _RATE.match(text)
    if not m or int(m.group(1)) > 10000:
        raise ValueError(f"{text!r}: expected N/second, N/minute, N/hour or N/day, N from 1 to 10000")
    return text


def check_postfix_action(text: str) -> str:
    """One access(5) result that refuses (or flags) the client, on one line."""
    if not _ACTION_TEXT.match(text) or not text.strip():
        raise ValueError(f"{text!r}: one line of printable ASCII, e.g. 'REJECT 5.7.1 go away'")
    text = text.strip()
    words = text.split()
    word = words[0].upper()
    if word in _ACCEPTING or (_DIGITS.match(word) and len(words) == 1):
        raise ValueError(f"{text!r}: {words[0]} accepts the mail; a blocklist wants REJECT, DEFER, "
                         "4NN/5NN text, DISCARD or HOLD (see access(5))")
    if word not in _ACTIONS and not _REPLY_CODE.match(word):
        raise ValueError(f"{text!r}: {words[0]!r} is not an access(5) action that refuses mail (REJECT, "
                         "DEFER, 4NN/5NN text, DISCARD, HOLD, WARN, ...)")
    return text


@dataclass
class Options:
    name: str = "krfilter"          # ipset set names NAME4/NAME6, nft table, iptables chain NAME.upper()
    reject: bool = False            # REJECT with a TCP reset instead of a silent DROP
    ports: tuple = ()               # only these destination ports; () = all
    log: bool = False
    log_rate: str = "6/minute"
    per_country: bool = False       # one set (nft, ipset) or prefix run (iptables) per country, each
                                    # with its own counted rule, so `mailfilter drops --counters`
                                    # can tell the countries apart
    postfix_action: str = "REJECT 5.7.1 mail from your network is not accepted here"

    def __post_init__(self):
        # Here too, not only in the command's argument parsing: a caller of
        # the library gets the same guarantee. ValueError names the value.
        check_name(self.name)
        check_log_rate(self.log_rate)
        self.postfix_action = check_postfix_action(self.postfix_action)
        self.ports = tuple(self.ports)
        if any(not isinstance(p, int) or not 1 <= p <= 65535 for p in self.ports):
            raise ValueError(f"{self.ports!r}: ports are numbers 1-65535")

    @property
    def chain(self):
        return self.name.upper()


def comment_text(text) -> str:
    """text made safe for a '#' comment line: anything not printable (a
    newline or CR in a file name, an undecodable byte's surrogate) becomes
    a visible escape, so the comment can't end early or break the encoding."""
    text = str(text)
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else
                   (f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}" if ord(c) < 0x10000
                    else f"\\U{ord(c):08x}") for c in text)


def _header(bl, fmt, load_hint, comment="#"):
    c = comment
    lines = [f"{c} Generated by mailfilter {__version__} krfilter --format {fmt}; regenerate, do not edit.",
             f"{c} {FORMATS[fmt]}",
             f"{c} Load: {load_hint}",
             f"{c} Sources:"]
    # describe() holds the file's name and its header's registry and serial:
    # text from outside, the only text here that options did not check.
    lines += [f"{c}   {comment_text(d.describe())}" for d in bl.sources]
    lines.append(f"{c} Countries: {' '.join(bl.countries)}")
    for cc in bl.countries:
        n4, n6 = bl.per_country.get(cc, (0, 0))
        lines.append(f"{c}   {cc}: {_n(n4, 'IPv4 prefix')}, {_n(n6, 'IPv6 prefix')} (merged)")
    if bl.allow:
        lines.append(f"{c} Never blocked (allow-list): {' '.join(str(n) for n in bl.allow)}")
    lines.append(f"{c} Total after merging across countries: {len(bl.v4)} IPv4, {len(bl.v6)} IPv6 prefixes")
    return lines


PER_COUNTRY_NOTE = "# Per country (--per-country): one counted rule each, never merged across countries"


def _n(count, noun):
    return f"{count} {noun}{'' if count == 1 else 'es'}"


def _iptables_script(bl, opts, fmt, load_hint, rules):
    """An iptables-restore script: chain set-up, `rules` jumping to NAME-DROP, the drop chain."""
    chain, drop = opts.chain, f"{opts.chain}-DROP"
    lines = _header(bl, fmt, load_hint) + ([PER_COUNTRY_NOTE] if opts.per_country else [])
    lines += ["*filter",
              f":{chain} - [0:0]",
              f":{drop} - [0:0]",
              # RETURN, not ACCEPT: this chain only drops; whatever it lets
              # through, the rest of INPUT still judges (fail2ban and the like).
              f"-A {chain} -i lo -j RETURN",
              f"-A {chain} -m conntrack --ctstate ESTABLISHED,RELATED -j RETURN",
              f"-A {chain} ! -p tcp -j RETURN",
              f"-A {chain} -p tcp ! --syn -j RETURN"]
    if opts.ports:
        lines.append(f"-A {chain} -p tcp -m multiport ! --dports {','.join(map(str, opts.ports))} -j RETURN")
    lines += [f"-A {chain} {match} -j {drop}" for match in rules]
    if opts.log:
        lines.append(f'-A {drop} -m limit --limit {opts.log_rate} --limit-burst 10 '
                     f'-j LOG --log-prefix "{opts.name}: " --log-level info')
    lines.append(f"-A {drop} -p tcp -j REJECT --reject-with tcp-reset" if opts.reject else f"-A {drop} -j DROP")
    lines.append("COMMIT")
    return "\n".join(lines) + "\n"


def _tool(family):
    return "iptables" if family == 4 else "ip6tables"


def _hook_hint(tool, opts):
    return (f"{tool}-restore --noflush < FILE; then once: "
            f"{tool} -C INPUT -j {opts.chain} 2>/dev/null || {tool} -I INPUT -j {opts.chain}")


def _nets(bl, opts, family):
    """The prefixes to list: merged across countries, or, with --per-country,
    each country's own in turn, so each prefix (and its counter) belongs to one."""
    if opts.per_country:
        return [n for cc in bl.countries for n in bl.by_country[cc][family == 6]]
    return bl.v4 if family == 4 else bl.v6


def iptables(bl, opts, family=4):
    tool = _tool(family)
    nets = _nets(bl, opts, family)
    return _iptables_script(bl, opts, tool, _hook_hint(tool, opts), [f"-s {n}" for n in nets])


def ip6tables(bl, opts):
    return iptables(bl, opts, family=6)


def _maxelem(n):
    # The kernel refuses `create -exist` on a live set whose maxelem differs,
    # so keep it constant (2^20) unless the set could really outgrow it.
    size = 1 << 20
    while size < 2 * n:
        size <<= 1
    return size


def _hashsize(n):
    size = 1024
    while size < n:
        size <<= 1
    return size


def _ipset_names(bl, opts, family):
    """[(set name, prefixes)]: NAME4 / NAME6, or NAME4-CC per country."""
    base = f"{opts.name}{family}"
    if opts.per_country:
        return [(f"{base}-{cc}", bl.by_country[cc][family == 6]) for cc in bl.countries]
    return [(base, bl.v4 if family == 4 else bl.v6)]


def ipset(bl, opts):
    lines = _header(bl, "ipset", "ipset restore -file FILE; rules once: mailfilter krfilter "
                                 "--format ipset-iptables | iptables-restore --noflush (and ipset-ip6tables)")
    if opts.per_country:
        lines.append(PER_COUNTRY_NOTE)
    for family, (live, nets) in [(f, pair) for f in ("inet", "inet6")
                                 for pair in _ipset_names(bl, opts, 4 if f == "inet" else 6)]:
        new = f"{live}-new"
        params = f"hash:net family {family} hashsize {_hashsize(len(nets))} maxelem {_maxelem(len(nets))}"
        lines += [f"create {live} {params} -exist",
                  f"create {new} {params} -exist",
                  f"flush {new}"]
        lines += [f"add {new} {n}" for n in nets]
        # swap is atomic: packets see the old set or the new one, never a half-filled one.
        lines += [f"swap {new} {live}", f"destroy {new}"]
    return "\n".join(lines) + "\n"


def _ipset_rules(bl, opts, family):
    tool = _tool(family)
    return _iptables_script(bl, opts, f"ipset-{tool}", f"after the ipset file: {_hook_hint(tool, opts)}",
                            [f"-m set --match-set {name} src" for name, _ in _ipset_names(bl, opts, family)])


def ipset_iptables(bl, opts):
    return _ipset_rules(bl, opts, 4)


def ipset_ip6tables(bl, opts):
    return _ipset_rules(bl, opts, 6)


def _nft_set(name, kind, nets):
    lines = [f"\tset {name} {{", f"\t\ttype {kind}", "\t\tflags interval"]
    if nets:
        body = ",\n\t\t\t".join(str(n) for n in nets)
        lines.append(f"\t\telements = {{\n\t\t\t{body}\n\t\t}}")
    lines.append("\t}")
    return lines


def nft(bl, opts):
    t = opts.name
    lines = _header(bl, "nft", "nft -f FILE (one transaction: the old table is replaced whole)")
    if opts.per_country:
        lines.append(PER_COUNTRY_NOTE)
    # Declaring then deleting the table makes the file work whether or not it
    # is loaded already, and the whole file is still one transaction.
    lines += [f"table inet {t}", f"delete table inet {t}", f"table inet {t} {{"]
    if opts.per_country:
        for cc in bl.countries:
            lines += _nft_set(f"block4_{cc}", "ipv4_addr", bl.by_country[cc][0])
            lines += _nft_set(f"block6_{cc}", "ipv6_addr", bl.by_country[cc][1])
    else:
        lines += _nft_set("block4", "ipv4_addr", bl.v4)
        lines += _nft_set("block6", "ipv6_addr", bl.v6)
    verdict = "reject with tcp reset" if opts.reject else "drop"
    log = f'limit rate {opts.log_rate} log prefix "{t}: " level info' if opts.log else ""
    # accept in this base chain ends only this chain: other chains on the
    # input hook still see the packet, like RETURN in the iptables formats.
    lines += ["\tchain input {",
              "\t\ttype filter hook input priority filter - 10; policy accept;",
              '\t\tiif "lo" accept',
              "\t\tct state established,related accept",
              "\t\tmeta l4proto != tcp accept",
              "\t\ttcp flags & (fin | syn | rst | ack) != syn accept"]
    if opts.ports:
        lines.append(f"\t\ttcp dport != {{ {', '.join(map(str, opts.ports))} }} accept")
    if opts.per_country:
        # Each country's rule counts and hands over to one `blocked` chain, so
        # the LOG rate limit stays one for all, as in the iptables formats.
        for cc in bl.countries:
            lines += [f"\t\tip saddr @block4_{cc} counter goto blocked",
                      f"\t\tip6 saddr @block6_{cc} counter goto blocked"]
        lines += ["\t}", "\tchain blocked {"]
        if log:
            lines.append(f"\t\t{log}")
        lines += [f"\t\t{verdict}", "\t}", "}"]
        return "\n".join(lines) + "\n"
    if log:
        lines += [f"\t\tip saddr @block4 {log}", f"\t\tip6 saddr @block6 {log}"]
    # `counter`: nft counts only where asked, and the drop rules' totals are
    # what `mailfilter drops --counters` reports (the LOG lines are samples).
    lines += [f"\t\tip saddr @block4 counter {verdict}", f"\t\tip6 saddr @block6 counter {verdict}", "\t}", "}"]
    return "\n".join(lines) + "\n"


def cidr(bl, opts):
    lines = _header(bl, "cidr", "any tool that reads one CIDR per line ('#' comments)")
    lines += [str(n) for n in bl.v4] + [str(n) for n in bl.v6]
    return "\n".join(lines) + "\n"


def postfix(bl, opts):
    lines = _header(bl, "postfix", "smtpd_client_restrictions = ... check_client_access cidr:/etc/postfix/FILE; "
                                   "postfix reload (cidr tables need no postmap)")
    action = opts.postfix_action
    lines += [f"{n}\t{action}" for n in bl.v4] + [f"{n}\t{action}" for n in bl.v6]
    return "\n".join(lines) + "\n"


WRITERS = {
    "ipset": ipset, "ipset-iptables": ipset_iptables, "ipset-ip6tables": ipset_ip6tables,
    "iptables": iptables, "ip6tables": ip6tables, "nft": nft, "cidr": cidr, "postfix": postfix,
}
