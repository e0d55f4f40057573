"""`mailfilter sources`: which countries and networks your spam comes from."""

import argparse

from ..usage import ArgumentParser

DESCRIPTION = """\
Count where your spam comes from, to decide what (if anything) to block with
`mailfilter krfilter`.

For each message in the Maildirs, mbox files or directories given, the
Received: headers are read from the newest down and the first client address
that is neither private, loopback, nor one you --trust is taken as the relay
that handed the message to you. Headers below that one are never believed:
the relay could have written them. Each header is read as your MTA writes
it (Postfix, Exim, Sendmail, qmail, Dovecot), so a client's made-up HELO
name cannot hide its address. The relay is mapped to its country with the
same RIR delegation files krfilter uses (--rir, or --fetch them), then
counted by country and by /24 (IPv6: /48), with each share of the total.

With --suggest N it prints the krfilter command for the countries that sent
at least N percent of the spam; give --ham with your good mail to be warned
about countries that send you ham too."""

EPILOG = """\
examples:
  # a month of caught spam, against APNIC's and LACNIC's data
  mailfilter sources --rir delegated-apnic-latest --rir delegated-lacnic-extended-latest \\
      ~/Maildir/.Junk

  # your own relays and your backup MX are not the spammer's
  mailfilter sources --trust 203.0.113.0/28 --trust 2001:db8:25::/48 ~/Maildir/.Junk

  # which countries pass 5%, and would blocking them lose good mail?
  mailfilter sources --suggest 5 --ham ~/Maildir/cur ~/Maildir/.Junk
  # then: mailfilter krfilter --countries <the suggested list> ...

  # no delegation files yet: download the five registries' (MD5-verified)
  mailfilter sources --fetch ~/Maildir/.Junk

  Without --rir or --fetch, the files krfilter --fetch keeps in its cache are used.
  "??" is an address none of the loaded files delegates (load more registries).

exit status: 0 ok, 64 bad option, 65 malformed delegation file or MD5
mismatch, 66 mail folder or delegation file missing, 75 download failed
(try later), 78 bad trust file.
"""


def _percent(text):
    value = float(text)
    if not 0 < value <= 100:
        raise argparse.ArgumentTypeError("a percentage between 0 and 100")
    return value


def main(argv, prog) -> int:
    p = ArgumentParser(prog=prog, description=DESCRIPTION, epilog=EPILOG)
    p.add_argument("spam", nargs="+", metavar="SPAM", help="Maildir, mbox file or directory of spam")
    p.add_argument("--ham", action="append", default=[], metavar="FOLDER",
                   help="good mail, for the same report and the --suggest warning (repeatable)")
    p.add_argument("--rir", action="append", default=[], metavar="FILE",
                   help="delegation file (repeatable); default: krfilter's download cache")
    p.add_argument("--fetch", action="store_true",
                   help="download the registries' files into the cache first, as krfilter --fetch does")
    p.add_argument("--url", action="append", default=[], metavar="URL",
                   help="with --fetch: this file instead of the five registries' (repeatable; URL.md5 must exist)")
    p.add_argument("--cache", metavar="DIR", help="krfilter's download cache, if not the default")
    p.add_argument("--trust", action="append", default=[], metavar="CIDR",
                   help="your own hosts and relays you trust, never counted as the source (repeatable)")
    p.add_argument("--trust-file", action="append", default=[], metavar="FILE",
                   help="file of trusted CIDRs, one per line, '#' comments")
    p.add_argument("--top", type=int, default=20, metavar="N", help="networks to list (default 20)")
    p.add_argument("--suggest", type=_percent, metavar="N",
                   help="print the krfilter --countries line for countries with at least N%% of the spam")
    p.add_argument("--lenient", action="store_true", help="skip malformed delegation lines with a warning")
    args = p.parse_args(argv)
    if args.url and not args.fetch:
        p.error("--url needs --fetch")
    from ..net.sources import run
    return run(args.spam, args.ham, args.rir, args.cache, args.trust, args.trust_file,
               args.top, args.suggest, args.lenient, args.fetch, args.url)
