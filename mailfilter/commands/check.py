"""`mailfilter check [--user NAME]`: what is wrong with one user's set-up, and the fix."""

import os
import sys

from .. import exitcodes
from . import common

DESCRIPTION = """\
Look at one user's set-up the way mail reaches it and print one line per
finding; a problem comes with the command that fixes it. It reads only, so
it is safe on a live server. Looked at, in order: whether Postfix hands mail
to procmail or maildrop, the recipe that calls mailfilter (owner, mode, and
whether `mailfilter` is on procmail's and maildrop's PATH), the state
directory and who owns it and its files, mailfilter.conf, the model (its
feature version, what it was taught), the Maildir, the learn folders and
the trainer's config, and where failures are logged. When Postfix hands
mail to Dovecot's LMTP, Dovecot's Sieve set-up is looked at instead of a
recipe; when Dovecot trains with IMAPSieve, that instead of the trainer."""

EPILOG = """\
examples:
  mailfilter check                      # your own set-up
  mailfilter check --user alice         # as root: alice's
  mailfilter check --user alice --maildir /var/vmail/example.org/alice/Maildir \\
                   --home /var/vmail/example.org/alice/mailfilter

exit status: 0 nothing to fix, 1 something to fix (the lines starting with
"problem:"), 64 bad usage, 67 no such user, 77 --user of someone else when
not root.
"""


def main(argv, prog) -> int:
    p = common.parser(prog, DESCRIPTION, EPILOG)
    p.add_argument("--user", metavar="NAME",
                   help="whose set-up (default: yours); as root any user's")
    p.add_argument("--maildir", metavar="DIR", help="the user's Maildir (default ~NAME/Maildir)")
    p.add_argument("--trainer-config", metavar="FILE", default="/etc/mailfilter/maildir-train.conf",
                   help="maildir-train's config, to see if the user is listed (default %(default)s)")
    p.add_argument("--dovecot-config", metavar="FILE", default="/etc/dovecot/dovecot.conf",
                   help="Dovecot's config, asked with doveconf whether Dovecot delivers through "
                        "mailfilter or trains it with IMAPSieve (default %(default)s)")
    args = p.parse_args(argv)
    import pwd

    from ..check import Target, run
    from ..errors import MailfilterError
    from ..privileges import account
    from ..state import default_home, resolve_home
    try:
        if args.user:
            pw = pwd.getpwnam(account(args.user).user)
            if os.geteuid() not in (0, pw.pw_uid):
                print(f"{prog}: --user {args.user}: only root can look at another user's files",
                      file=sys.stderr)
                return exitcodes.NOPERM
            home = os.path.abspath(args.home) if args.home else default_home(pw.pw_dir)
        else:
            pw = pwd.getpwuid(os.geteuid())
            home = resolve_home(args.home)
    except MailfilterError as err:
        print(f"{prog}: {err}", file=sys.stderr)
        return err.code
    maildir = os.path.abspath(os.path.expanduser(args.maildir)) if args.maildir else \
        os.path.join(pw.pw_dir, "Maildir")
    findings = run(Target(pw, home, maildir, as_user=bool(args.user), trainer_config=args.trainer_config,
                          dovecot_config=args.dovecot_config))
    for finding in findings:
        print(finding.line())
    problems = sum(not f.ok for f in findings)
    print(f"{problems} problem{'s' if problems != 1 else ''} for {pw.pw_name}" if problems
          else f"nothing to fix for {pw.pw_name}")
    return 1 if problems else exitcodes.OK
