"""`mailfilter stats [--user NAME] [--json]`: what a user's filter learned and did."""

import sys

from .. import exitcodes
from ..errors import MailfilterError
from . import common

DESCRIPTION = """\
Show what one user's filter has learned and done: the model (generation,
age, size), the messages trained per class, the verdicts the filter (or
`mailfilter serve`) gave, in all and this month, and the newest learns
with their date, label, sender's domain and subject. It only reads."""

EPILOG = """\
Like `sa-learn --dump magic` and `rspamc stat`. "trained" counts the
messages in the ledger by the label they have now; "updates of the model"
counts every teaching (train passes and corrections count again). Verdicts
are counted by the pipe filter and by serve, one byte per message in verdicts-YYYY-MM
(UTC months) in the state directory; delete old months at will.

--json prints the same as one JSON object, for monitoring: model (with
generation, mtime, age_seconds, size), trained {spam, good}, model_updates,
verdicts {total, months} with spam/good/unsure/failed/command counts,
recent [{time, trained_at, label, subject, sender_domain, digest,
pr_before}], problems [].

examples:
  mailfilter stats
  mailfilter stats --user alice                  (as root)
  mailfilter stats --user alice --json | jq .verdicts.total

exit status: 0 shown, 64 bad usage, 66 no state directory yet, 67 no such
--user, 77 --user of someone else when not root, 78 bad mailfilter.conf.
"""


def main(argv, prog) -> int:
    p = common.parser(prog, DESCRIPTION, EPILOG)
    p.add_argument("--user", metavar="NAME",
                   help="whose stats (default: yours); as root any user's")
    p.add_argument("--json", action="store_true", help="one JSON object, for monitoring")
    p.add_argument("--recent", type=int, default=10, metavar="N",
                   help="how many of the newest learns to list (default %(default)s)")
    args = p.parse_args(argv)
    if args.recent < 0:
        p.error("--recent must be 0 or more")
    import os
    import pwd

    from ..privileges import account
    from ..state import default_home, resolve_home
    from ..stats import show
    try:
        if args.user:
            pw = pwd.getpwnam(account(args.user).user)
            if os.geteuid() not in (0, pw.pw_uid):
                raise MailfilterError(f"--user {args.user}: only root can look at another user's "
                                      f"stats", exitcodes.NOPERM)
            home = os.path.abspath(args.home) if args.home else default_home(pw.pw_dir)
        else:
            home = resolve_home(args.home)
        # Reading only, root included: the -wal/-shm files a read of the
        # ledger may leave are given to the ledger's owner by SQLite itself
        # (tests/test_stats.py), so a user's next learn is not locked out.
        sys.stdout.write(show(home, args.recent, args.json))
    except MailfilterError as err:
        return common.error_exit(err, prog)
    return exitcodes.OK
