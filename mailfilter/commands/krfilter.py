"""`mailfilter krfilter`: country-blocking rules from RIR delegation files."""

import argparse

from ..usage import ArgumentParser


DESCRIPTION = """\
Block new inbound TCP connections from whole countries, krfilter-style, using
the Regional Internet Registries' daily delegation files (RIR Statistics
Exchange Format, versions 2 and 2.3, plain and extended).

Reads the FILEs given; with --fetch, first downloads the five registries'
files (or --url ones) into the cache, installing each only if it matches its
published .md5; with neither, reads what the cache holds. Only allocated and
assigned records count. Each country's ranges are merged into the fewest
CIDRs, IPv4 and IPv6 apart, and the allow-list is cut out of them.

The firewall formats drop (or --reject) only new inbound TCP connections
(SYN) from listed sources, optionally only to --ports. Loopback, established
and related traffic (so your own outbound connections and their replies),
and everything else go on to the rest of your firewall untouched. Output is
the same bytes for the same data (no timestamps), so a refresh job can
reload only when the file changed."""

EPILOG = """\
formats:
{formats}

presets: krfilter = CN,KP,KR;  v2 = krfilter + HK,ID,IN,TW;  v3 = v2 + RU

examples:
  # recommended: one hash lookup per SYN instead of thousands of rules
  mailfilter krfilter --preset krfilter delegated-apnic-latest -o /etc/krfilter.ipset
  ipset restore -file /etc/krfilter.ipset
  mailfilter krfilter --preset krfilter --ports 25,587,465 --format ipset-iptables \\
      delegated-apnic-latest | iptables-restore --noflush
  iptables -C INPUT -j KRFILTER 2>/dev/null || iptables -I INPUT -j KRFILTER

  # nftables, both families in one transaction
  mailfilter krfilter --countries CN,KR --allow 203.0.113.0/24 --format nft \\
      delegated-apnic-latest -o /etc/nftables.d/krfilter.nft && nft -f /etc/nftables.d/krfilter.nft

  # Postfix only: reject at SMTP time instead of in the firewall
  mailfilter krfilter --preset v2 --format postfix --fetch -o /etc/postfix/krfilter.cidr
  #   main.cf: smtpd_client_restrictions = check_client_access cidr:/etc/postfix/krfilter.cidr

  # which countries are in the data, and how much of each
  mailfilter krfilter --list-countries delegated-apnic-latest

  contrib/krfilter-refresh.timer runs this daily and reloads only on change.

Data that would block every address (a record covering 0.0.0.0/0 or ::/0,
or countries that add up to it) is refused unless --force: it would lock you
out of your own server.

exit status: 0 ok, 64 bad option or country, 65 malformed file, MD5
mismatch (the previous good download is kept) or data that blocks every
address, 66 input missing, 73 cannot write output, 75 download failed (try
later), 78 bad allow file.
"""


def _ports(text):
    ports = []
    for item in text.split(","):
        item = item.strip()
        if not item.isdigit() or not 1 <= int(item) <= 65535:
            raise argparse.ArgumentTypeError(f"{item!r} is not a port number 1-65535")
        ports.append(int(item))
    from ..net.writers import MULTIPORT_MAX
    if len(ports) > MULTIPORT_MAX:
        raise argparse.ArgumentTypeError(f"at most {MULTIPORT_MAX} ports (iptables multiport)")
    return tuple(ports)


def _checked(check):
    """An argparse type from a writers.check_* function: its ValueError
    becomes a usage error (exit 64) naming the option."""
    def convert(text):
        try:
            return check(text)
        except ValueError as err:
            raise argparse.ArgumentTypeError(str(err)) from None
    convert.__name__ = check.__name__.replace("check_", "")
    return convert


def main(argv, prog) -> int:
    from ..net import writers
    from ..net.countries import PRESETS
    formats = "\n".join(f"  {name:<16} {text}" for name, text in writers.FORMATS.items())
    p = ArgumentParser(prog=prog, description=DESCRIPTION, epilog=EPILOG.format(formats=formats))
    p.add_argument("files", nargs="*", metavar="FILE", help="delegation files (delegated-*-latest)")
    src = p.add_argument_group("input")
    src.add_argument("--fetch", action="store_true",
                     help="download the registries' files into --cache first (verified against .md5)")
    src.add_argument("--url", action="append", default=[], metavar="URL",
                     help="download this file instead of the five RIRs' (repeatable; URL.md5 must exist)")
    src.add_argument("--cache", metavar="DIR",
                     help="download cache (default /var/cache/mailfilter/rir as root, else ~/.cache/mailfilter/rir)")
    src.add_argument("--lenient", action="store_true",
                     help="skip malformed lines with a warning instead of stopping")
    src.add_argument("--force", action="store_true",
                     help="accept data that blocks every address (0.0.0.0/0 or ::/0), "
                          "which is refused by default: it would lock you out")
    sel = p.add_argument_group("selection")
    sel.add_argument("--countries", "-c", action="append", default=[], metavar="CC,CC",
                     help="ISO 3166 codes to block, e.g. KR,CN (repeatable)")
    sel.add_argument("--preset", action="append", default=[], choices=list(PRESETS),
                     help="a well-known country set (combines with --countries)")
    sel.add_argument("--allow", action="append", default=[], metavar="CIDR",
                     help="never block this network, e.g. your office abroad (repeatable, comma lists ok)")
    sel.add_argument("--allow-file", action="append", default=[], metavar="FILE",
                     help="file of CIDRs never to block, one per line, '#' comments")
    sel.add_argument("--list-countries", action="store_true",
                     help="print the country codes in the data with record counts, and exit")
    out = p.add_argument_group("output")
    out.add_argument("--format", "-f", choices=list(writers.FORMATS), default="ipset")
    out.add_argument("--output", "-o", metavar="FILE", help="write here atomically (default stdout)")
    out.add_argument("--reject", action="store_true", help="REJECT with a TCP reset instead of DROP")
    out.add_argument("--ports", type=_ports, default=(), metavar="25,587",
                     help="block only connections to these ports (default: all ports)")
    out.add_argument("--log", action="store_true", help="LOG blocked SYNs, rate-limited")
    out.add_argument("--log-rate", default=writers.Options.log_rate, metavar="RATE",
                     type=_checked(writers.check_log_rate),
                     help="log at most RATE: N/second, N/minute, N/hour or N/day (default 6/minute)")
    out.add_argument("--per-country", action="store_true",
                     help="one set (or prefix run) and one counted rule per country, for `mailfilter drops --counters`")
    out.add_argument("--name", default=writers.Options.name, type=_checked(writers.check_name),
                     help="ipset sets NAME4/NAME6, nft table NAME, iptables chain NAME in capitals "
                          "(an ASCII letter, then letters, digits, - and _; at most 20)")
    out.add_argument("--postfix-action", default=writers.Options.postfix_action, metavar="TEXT",
                     type=_checked(writers.check_postfix_action),
                     help="access(5) result for --format postfix: REJECT, DEFER, 4NN/5NN text, DISCARD, "
                          "HOLD, WARN... (default %(default)r)")
    out.add_argument("-q", "--quiet", action="store_true", help="no summary on stderr")
    args = p.parse_args(argv)
    if not (args.countries or args.preset or args.list_countries):
        p.error("choose what to block: --countries CC,CC or --preset krfilter|v2|v3 (or --list-countries)")
    from ..net.krfilter import run
    options = writers.Options(name=args.name, reject=args.reject, ports=args.ports, log=args.log,
                              log_rate=args.log_rate, postfix_action=args.postfix_action,
                              per_country=args.per_country)
    return run(files=args.files, fetch=args.fetch, urls=args.url, cache_dir=args.cache, lenient=args.lenient,
               countries=args.countries, presets=args.preset, allow=args.allow, allow_files=args.allow_file,
               fmt=args.format, output=args.output, options=options, list_countries=args.list_countries,
               quiet=args.quiet, force=args.force)
