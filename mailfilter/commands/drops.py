"""`mailfilter drops`: what krfilter's country rules dropped."""

import argparse

from ..usage import ArgumentParser

DESCRIPTION = """\
Report what `mailfilter krfilter` rules dropped: per country (from the same
RIR delegation data), per day, per source address (top N, with first and
last time seen and the busiest day, so bursts show) and per destination port.

Two kinds of figure, and the report says which is which:
  log samples    the kernel's LOG lines with krfilter's prefix ("krfilter: ",
                 written by krfilter --log): who and when, but the LOG rule is
                 rate-limited (6/minute by default), so they undercount;
  counter totals the rules' packet counters (--counters): every dropped SYN
                 since the rules were loaded, but no address and no time.
                 Per country with rules from `krfilter --per-country`.

FILEs are syslog files (kern.log and its rotations, gzipped or not; the
traditional and the RFC 3339 time stamp) or saved `journalctl -k -o json`
output; '-' reads stdin. --journal asks journald itself. With no FILE and
neither --journal nor --counters, /var/log/kern.log and its rotations are
read. Lines that are not ours are counted and skipped: other kernel
messages, LOG lines with another prefix ("krfilter-dmz: " is not
"krfilter: "), lines from another host under --host, and unrecognised ones
(the first few are quoted on stderr). The log is streamed: memory follows
the number of distinct addresses and days, not the size of the file."""

EPILOG = """\
examples:
  # the last week from the rotated logs, with the totals of the loaded rules
  mailfilter drops --since 2024-05-01 --counters /var/log/kern.log*

  # journald instead of files; a chart of drops per day per country
  mailfilter drops --journal --counters --chart drops.png

  # beside the spam that still got through: what to block next, what to lift
  mailfilter drops --journal --counters --with-sources ~/Maildir/.Junk --suggest 10

  # for a spreadsheet, or another program
  mailfilter drops --csv /var/log/kern.log > drops.csv
  mailfilter drops --json --counters-file saved-nft.json kern.log.1

  The watch-then-block loop: `mailfilter sources --suggest N` finds the
  countries, `mailfilter krfilter --log` blocks them, `mailfilter drops`
  shows the effect. Without --rir, krfilter's download cache is used.

times: --since/--until take YYYY-MM-DD or 'YYYY-MM-DD HH:MM[:SS]' in the
log's own local time; --until is exclusive. A traditional syslog stamp has
no year: it is taken from the file's modification time.

exit status: 0 ok, 64 bad option, 65 malformed delegation file or counter
file, 66 log, mail folder or delegation file missing, 69 journalctl or
matplotlib missing, or --counters with no rules loaded, 73 cannot write
the output or chart, 78 bad trust file.
"""


def _when(text):
    from ..net.droplog import parse_when
    try:
        return parse_when(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _percent(text):
    value = float(text)
    if not 0 < value <= 100:
        raise argparse.ArgumentTypeError("a percentage between 0 and 100")
    return value


def _positive(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("at least 1")
    return value


def main(argv, prog) -> int:
    import sys
    p = ArgumentParser(prog=prog, description=DESCRIPTION, epilog=EPILOG)
    p.add_argument("files", nargs="*", metavar="FILE",
                   help="kern.log-style or journal JSON log files, rotated/gzipped ok; '-' is stdin")
    src = p.add_argument_group("input")
    src.add_argument("--journal", action="store_true", help="read journald (journalctl -k -o json)")
    src.add_argument("--counters", action="store_true",
                     help="read the loaded rules' counters (nft -j list table inet NAME, iptables -L NAME -v -x)")
    src.add_argument("--counters-file", action="append", default=[], metavar="FILE",
                     help="saved `nft -j list ruleset` or `iptables -L NAME -v -x -n` output (repeatable)")
    src.add_argument("--name", default="krfilter",
                     help="krfilter --name of the rules: LOG prefix 'NAME: ', nft table, iptables chain (default %(default)s)")
    src.add_argument("--host", metavar="HOST", help="only lines logged by this host (a central log holds many)")
    src.add_argument("--since", type=_when, metavar="WHEN", help="from this time on (log time)")
    src.add_argument("--until", type=_when, metavar="WHEN", help="before this time (log time)")
    src.add_argument("--rir", action="append", default=[], metavar="FILE",
                     help="delegation file (repeatable); default: krfilter's download cache")
    src.add_argument("--cache", metavar="DIR", help="krfilter's download cache, if not the default")
    src.add_argument("--lenient", action="store_true", help="skip malformed delegation lines with a warning")
    out = p.add_argument_group("output")
    kind = out.add_mutually_exclusive_group()
    kind.add_argument("--json", dest="fmt", action="store_const", const="json", default="text",
                      help="the report as JSON")
    kind.add_argument("--csv", dest="fmt", action="store_const", const="csv",
                      help="one row per day, address and port (log) and per rule (counters)")
    out.add_argument("--top", type=_positive, default=20, metavar="N", help="addresses to list (default 20)")
    out.add_argument("-o", "--output", metavar="FILE", help="write the report here atomically (default stdout)")
    out.add_argument("--chart", metavar="PNG", help="also draw drops per day per country (needs matplotlib)")
    out.add_argument("--no-progress", action="store_true", help="no progress bar even on a terminal")
    loop = p.add_argument_group("closing the loop")
    loop.add_argument("--with-sources", action="append", default=[], metavar="SPAM",
                      help="put `mailfilter sources` on this spam Maildir/mbox beside the drops (repeatable)")
    loop.add_argument("--trust", action="append", default=[], metavar="CIDR",
                      help="as for `mailfilter sources`: your own relays, never the source")
    loop.add_argument("--trust-file", action="append", default=[], metavar="FILE",
                      help="file of trusted CIDRs, one per line, '#' comments")
    loop.add_argument("--countries", "-c", action="append", default=[], metavar="CC,CC",
                      help="the countries krfilter blocks (default: as the counters or the log show)")
    loop.add_argument("--preset", action="append", default=[], metavar="NAME",
                      help="the krfilter preset you block with (krfilter, v2, v3)")
    loop.add_argument("--suggest", type=_percent, metavar="N",
                      help="'consider blocking' countries with at least N%% of the spam (with --with-sources), "
                           "'consider lifting' blocked countries nothing came from")
    args = p.parse_args(argv)
    if args.since is not None and args.until is not None and args.until <= args.since:
        p.error("--until must be after --since")
    if (args.trust or args.trust_file) and not args.with_sources:
        p.error("--trust and --trust-file belong to --with-sources")
    from ..net.drops import run
    return run(files=args.files, journal=args.journal, counters=args.counters, counter_files=args.counters_file,
               rir_files=args.rir, cache_dir=args.cache, name=args.name, host=args.host, since=args.since,
               until=args.until, top=args.top, fmt=args.fmt, output=args.output, chart=args.chart,
               with_sources=args.with_sources, trust=args.trust, trust_files=args.trust_file,
               countries=args.countries, presets=args.preset, suggest=args.suggest, lenient=args.lenient,
               progress=not args.no_progress and sys.stderr.isatty())
