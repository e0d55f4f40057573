"""`mailfilter submission`: Postfix submission (587) and submissions (465) set-up."""

import argparse

from ..usage import ArgumentParser

DESCRIPTION = """\
Set up Postfix so your own users can send mail from anywhere, even behind
ISPs that block outbound port 25 (OP25B): `submission` on port 587 with
STARTTLS required (RFC 6409) and `submissions` on port 465 with implicit TLS
(RFC 8314, recommended). Both accept mail only from clients that logged in
with SASL over TLS, and reject everything else, so they are never an open
relay:

  syslog_name=postfix/submission(s)      smtpd_tls_security_level=encrypt
  smtpd_tls_wrappermode=yes (465 only)   smtpd_sasl_auth_enable=yes
  smtpd_tls_auth_only=yes                milter_macro_daemon_name=ORIGINATING
  smtpd_client_restrictions, smtpd_relay_restrictions and
  smtpd_recipient_restrictions = permit_sasl_authenticated,reject

By default nothing is changed: it prints the `postconf -M` / `postconf -P`
commands and the master.cf diff they make (computed by running them on a
scratch copy). With --apply it runs them through postconf itself, after a
backup (master.cf.mailfilter-DATE); a second run finds nothing to do. A
master.cf that Postfix cannot read, or that defines a service twice, is
refused. A listener already on port 587 or 465 is edited under its own name,
however master.cf spells it (smtps, ssmtp, 465, 127.0.0.1:submission), never
duplicated. It also checks that Postfix can resolve the service names
(known_tcp_ports, /etc/services) and main.cf (TLS certificate), and says
what is missing.

AUTH must be able to check passwords, or nobody can use these ports. It
looks at what Postfix will use (smtpd_sasl_type and smtpd_sasl_path, from
the services or main.cf) and warns when that cannot work: for Dovecot, a
missing auth socket, one Postfix may not open, or no PLAIN/LOGIN on it; for
Cyrus (Postfix's default), no smtpd.conf (then it knows no users) or no
saslauthd socket. --sasl dovecot writes the Postfix side of Dovecot SASL on
both services (smtpd_sasl_type=dovecot, smtpd_sasl_path=private/auth); the
Dovecot side goes in its 10-master.conf:

  service auth {
    unix_listener /var/spool/postfix/private/auth {
      mode = 0660
      user = postfix
      group = postfix
    }
  }"""

EPILOG = """\
examples:
  mailfilter submission                       # show what would change in /etc/postfix
  mailfilter submission --apply && postfix check && postfix reload
  mailfilter submission --config-dir /etc/postfix-out --apply
  mailfilter submission --chroot n            # the chroot column (default: as smtp/inet)
  mailfilter submission --sasl dovecot --apply # logins checked by Dovecot
  # then, from another machine:
  mailfilter relaytest mail.example.org --port 587,465 --user alice

exit status: 0 ok (or nothing to do), 66 configuration directory, main.cf or
master.cf missing, 73 cannot write, 78 master.cf refused or postconf failed
(master.cf is restored from the backup).
"""


def main(argv, prog) -> int:
    p = ArgumentParser(prog=prog, description=DESCRIPTION, epilog=EPILOG)
    p.add_argument("--config-dir", "-c", metavar="DIR",
                   help="Postfix configuration directory (default /etc/postfix)")
    p.add_argument("--apply", action="store_true", help="change master.cf (after a backup) instead of printing")
    p.add_argument("--chroot", choices=["y", "n", "-"],
                   help="master.cf chroot column for the new services (default: the same as smtp/inet)")
    p.add_argument("--sasl", choices=["dovecot"],
                   help="check logins with Dovecot: writes smtpd_sasl_type/smtpd_sasl_path on both services")
    p.add_argument("--services-file", default="/etc/services", metavar="FILE", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    from ..net.submission import run
    return run(config_dir=args.config_dir or "/etc/postfix", explicit_dir=bool(args.config_dir),
               apply=args.apply, chroot=args.chroot, services_file=args.services_file, sasl=args.sasl)
