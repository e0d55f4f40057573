"""`mailfilter milter`: X-CRM114-* headers at SMTP time, for Postfix."""

from ..errors import MailfilterError
from . import common

EPILOG = """\
The milter asks `mailfilter serve` (its --spamd socket) to classify each
message, deletes any X-CRM114-* header the message came with and adds the
same X-CRM114-* lines the pipe filter writes. Whose model: the recipient's
account when the message has exactly one recipient and --recipient-map
maps it, else --site-user's. If the daemon can't be reached the message is
marked UNSURE ( 0.00 ) with a notice and the cause is logged; it is never
held up. Nothing is rejected unless --reject-above is given.

/etc/postfix/main.cf:
  smtpd_milters = inet:127.0.0.1:11332
  non_smtpd_milters = $smtpd_milters
  milter_default_action = accept         # mail flows when the milter is down
  milter_protocol = 6

recipient map (--recipient-map FILE), one entry a line:
  alice@example.org   alice              # that address: alice's model
  @example.org        *                  # any address there: its local part
                                         # is the account (bob+x@ -> bob)

the daemon must let the milter's account ask for any user's model:
  mailfilter serve --trusted-user mailfilter

examples:
  mailfilter milter --listen inet:127.0.0.1:11332 --site-user mailfilter
  mailfilter milter --listen unix:/run/mailfilter/milter.sock --spamd /run/mailfilter/spamd.sock \\
      --recipient-map /etc/mailfilter/recipients --reject-above 20

exit status: 0 stopped by SIGTERM, 64 bad usage, 66 the map can't be read,
69 the listen address is taken, 78 a bad line in the map.
"""


def main(argv, prog) -> int:
    p = common.parser(prog, "A Postfix milter that adds the X-CRM114-* headers at SMTP time, "
                      "classifying through `mailfilter serve`.", EPILOG)
    p.add_argument("--listen", default="inet:127.0.0.1:11332", metavar="SPEC",
                   help="inet:HOST:PORT or unix:PATH, as in smtpd_milters (default inet:127.0.0.1:11332)")
    p.add_argument("--spamd", default="/run/mailfilter/spamd.sock", metavar="SOCKET",
                   help="the daemon: a Unix socket path or HOST:PORT (default /run/mailfilter/spamd.sock)")
    p.add_argument("--site-user", metavar="NAME",
                   help="account whose model classifies mail not mapped to one user "
                        "(default: the account the milter runs as)")
    p.add_argument("--recipient-map", metavar="FILE", help="recipient address -> account lines")
    p.add_argument("--reject-above", type=float, metavar="SCORE",
                   help="refuse (550) SPAM whose score (-pR) is at least SCORE; default: never refuse")
    p.add_argument("--timeout", type=float, default=30.0, metavar="SECONDS",
                   help="how long to wait for the daemon (default 30)")
    args = p.parse_args(argv)
    from ..log import report
    from ..serve import milter
    try:
        settings = milter.Settings(args.spamd, args.site_user or _me(), milter.RecipientMap(args.recipient_map),
                                   args.reject_above, args.timeout)
        return milter.run(args.listen, settings)
    except MailfilterError as err:
        report(str(err))
        return err.code


def _me() -> str:
    import os
    import pwd
    return pwd.getpwuid(os.geteuid()).pw_name
