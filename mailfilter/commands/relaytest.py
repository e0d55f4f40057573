"""`mailfilter relaytest`: is my mail server an open relay?"""

import argparse
import re

from ..usage import ArgumentParser

DESCRIPTION = """\
Speak SMTP to HOST the way a relay abuser would, and report every attempt:
what was sent, the server's reply, and whether it relayed.

On each port it tries a foreign sender to a foreign recipient, then the
classic tricks: your own domain or the empty sender <> as the sender, the
percent hack (user%foreign@yourdomain), bang paths (foreign!user@yourdomain),
quoted local parts ("user@foreign"@yourdomain), source routes
(@yourdomain:user@foreign), [IP] literals, odd case and trailing dots. It does
so before and after STARTTLS (port 465: TLS from the start), once with its own
name in EHLO and once claiming the server's own host name. The first line of
each block is a control, postmaster@yourdomain, which the server should
accept: if it refuses even that, it is turning this client away and its
other refusals prove little.

An accepted RCPT is the verdict: DATA is never sent, every transaction ends
with RSET and every session with QUIT, so nothing is queued even on an open
relay. It is polite: one session at a time, --delay between attempts, at most
--max-connections sessions, and no more refusals per session than Postfix
tolerates before it starts slowing a client down.

Run it from outside: a test from an address in the server's mynetworks
proves nothing. When HOST is this machine it says so; then --netns (as root)
runs the attempts from a throw-away network namespace joined by a veth pair,
on a documentation address (203.0.113.0/24, 2001:db8::/32) nobody trusts.

For the submission ports (after `mailfilter submission --apply`), --user
logs in after STARTTLS (465: TLS) and checks that a foreign recipient is
accepted then, and refused before. The password comes from --password-file,
$MAILFILTER_RELAYTEST_PASSWORD or a prompt, and is only ever sent over TLS
to a certificate that verifies (--cafile for your own CA or a self-signed
certificate).

Use real addresses for a conclusive test on a production server: a server
that checks the sender's or recipient's domain in DNS refuses example.com
for that reason alone (the reply says so)."""

EPILOG = """\
examples:
  mailfilter relaytest mail.example.org --domain example.org
  mailfilter relaytest mail.example.org --port 25 --json > relay.json
  mailfilter relaytest mail.example.org --netns      # on that server itself, as root
  mailfilter relaytest mail.example.org --port 587,465 --user alice --cafile /etc/ssl/certs/mail.pem
  mailfilter relaytest mail.example.org --from-address me@gmail.com --to-address me@outlook.com

exit status: 0 nothing relayed; 1 something relayed (an open relay);
64 bad option; 66 --password-file or --cafile missing; 68 HOST does not
resolve; 69 a port could not be reached; 75 a temporary error (a 4xx that
stopped a test, a timeout, the connection limit, DNS down); 76 the server
does not speak SMTP; 77 the login failed, or --netns without root.
"""

_ADDRESS = re.compile(r"[^\s<>@\"]+@[A-Za-z0-9.-]+")
_DOMAIN = re.compile(r"[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*")


def _ports(text):
    ports, tls = [], []
    for item in text.split(","):
        number, _, suffix = item.strip().partition("/")
        if not number.isdigit() or not 0 < int(number) < 65536 or suffix not in ("", "tls"):
            raise argparse.ArgumentTypeError(f"{item!r}: a port number, or NUMBER/tls for TLS from the start")
        ports.append(int(number))
        if suffix:
            tls.append(int(number))
    return ports, tls


def _address(text):
    if not _ADDRESS.fullmatch(text):
        raise argparse.ArgumentTypeError(f"{text!r}: give a plain address, user@domain")
    return text


def _domain(text):
    if not _DOMAIN.fullmatch(text) or "." not in text:
        raise argparse.ArgumentTypeError(f"{text!r}: give a domain name, such as example.org")
    return text


def _seconds(text):
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must not be negative")
    return value


def _timeout(text):
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be more than 0")
    return value


def _positive(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def main(argv, prog) -> int:
    p = ArgumentParser(prog=prog, description=DESCRIPTION, epilog=EPILOG)
    p.add_argument("host", metavar="HOST", help="the mail server: a name or an address")
    p.add_argument("--port", type=_ports, default=([25, 587, 465], []), metavar="LIST",
                   help="ports, comma-separated (default 25,587,465; 465 and NUMBER/tls use TLS "
                        "from the start)")
    p.add_argument("--domain", type=_domain, metavar="DOMAIN",
                   help="your mail domain (default: from the server's greeting, mail.example.org "
                        "-> example.org)")
    p.add_argument("--from-address", type=_address, default="relaytest@example.net", metavar="ADDR",
                   help="the foreign sender (default relaytest@example.net)")
    p.add_argument("--to-address", type=_address, default="relaytest@example.com", metavar="ADDR",
                   help="the foreign recipient (default relaytest@example.com)")
    p.add_argument("--helo", metavar="NAME", help="this client's name in EHLO (default: this host's FQDN)")
    p.add_argument("--user", metavar="NAME", help="also log in as NAME and check that mail is accepted then")
    p.add_argument("--password-file", metavar="FILE", help="the password for --user (its first line)")
    p.add_argument("--cafile", metavar="FILE",
                   help="trust this CA or certificate when logging in (default: the system's CAs)")
    p.add_argument("--netns", action="store_true",
                   help="test this machine from a throw-away network namespace (root)")
    p.add_argument("--json", action="store_true", help="the whole report as JSON on stdout")
    p.add_argument("--delay", type=_seconds, default=0.5, metavar="SECONDS",
                   help="pause between attempts (default 0.5)")
    p.add_argument("--max-connections", type=_positive, default=50, metavar="N",
                   help="at most N sessions in all (default 50; one at a time)")
    p.add_argument("--timeout", type=_timeout, default=30.0, metavar="SECONDS",
                   help="for connecting and for each reply (default 30)")
    args = p.parse_args(argv)
    if args.password_file and not args.user:
        p.error("--password-file needs --user")
    from ..net.relaytest import run
    ports, tls_ports = args.port
    return run(args.host, ports=ports, tls_ports=tls_ports, domain=args.domain,
               from_address=args.from_address, to_address=args.to_address, helo=args.helo,
               user=args.user, password_file=args.password_file, cafile=args.cafile,
               use_netns=args.netns, as_json=args.json, delay=args.delay,
               max_connections=args.max_connections, timeout=args.timeout)
