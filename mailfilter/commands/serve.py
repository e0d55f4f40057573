"""`mailfilter serve`: the resident filter, speaking spamd's protocol to spamc."""

from .. import exitcodes
from ..errors import MailfilterError
from . import common

EPILOG = """\
The client is the stock spamc (Debian package spamc). Every spamc command
works: plain spamc (PROCESS: the message with X-CRM114-* headers, byte for
byte what `mailfilter` writes on a pipe), -c (CHECK: prints score/threshold,
exits 1 for SPAM), -y (SYMBOLS), -r/-R (REPORT), --headers (HEADERS),
-K (PING), -L spam|ham (TELL: learns, like `mailfilter learn`).
The score spamc shows is -pR, the threshold -spam_threshold (4.0 by default).

whose model:
  as root (a whole server): spamc -u USER gets USER's state directory, the
  one USER's pipe filter uses (~USER/.local/share/mailfilter), and only
  USER, root and --trusted-user accounts may ask for it (the client's uid
  comes from the kernel). Each user's model is read and written by a
  worker process running as that user.
  --home DIR, or not root: that one state directory, for the account the
  daemon runs as (and root, and --trusted-user accounts) only.

if the daemon is down, plain spamc passes the message on unchanged (exit
0); with -x it fails instead, and the recipe can fall back to the pipe
filter (contrib/procmailrc-spamc, contrib/maildroprc-spamc):

~/.procmailrc:
  :0fw
  | spamc -x -U /run/mailfilter/spamd.sock -s 52428800
  :0 efw
  | mailfilter
  :0 e
  { EXITCODE=75 HOST }
  :0:
  * ^X-CRM114-Status: SPAM
  .Junk/

examples:
  mailfilter serve                                   # as root, /run/mailfilter/spamd.sock
  mailfilter serve --listen 127.0.0.1:783 --trusted-user mailfilter
  mailfilter serve --socket /tmp/me.sock --home ~/.mailfilter
  spamc -U /run/mailfilter/spamd.sock -c < message   # prints 23.4/4.0, exits 1 for spam
  spamc -U /run/mailfilter/spamd.sock -L spam < missed-spam.eml

Under systemd, socket activation (contrib/mailfilter-serve.socket) replaces
--socket and --listen. SIGTERM: finish what is in hand and exit 0. SIGHUP:
restart the workers (models reload by themselves when they change).

exit status: 0 stopped by SIGTERM, 64 bad usage, 69 another daemon has the
socket or the port is taken, 73 the socket can't be created, 78 bad config.
"""


def main(argv, prog) -> int:
    p = common.parser(prog, "Serve classification and learning to spamc over a Unix socket "
                      "(and loopback TCP), one worker process per user.", EPILOG)
    p.add_argument("--socket", metavar="PATH", action="append", default=[],
                   help="Unix socket to listen on (default /run/mailfilter/spamd.sock); repeatable")
    p.add_argument("--listen", metavar="HOST:PORT", action="append", default=[],
                   help="also listen on loopback TCP, e.g. 127.0.0.1:783; repeatable")
    p.add_argument("--trusted-user", metavar="NAME", action="append", default=[],
                   help="an account that may ask for any user's model (the milter's); repeatable")
    p.add_argument("--workers-per-user", type=int, metavar="N",
                   help="worker processes per model at most (default: the number of CPUs)")
    p.add_argument("--max-workers", type=int, default=64, metavar="N",
                   help="worker processes in all; idle ones make room (default 64)")
    p.add_argument("--idle-timeout", type=float, default=600.0, metavar="SECONDS",
                   help="an idle worker exits after this long (default 600)")
    p.add_argument("--socket-mode", default="666", metavar="OCTAL",
                   help="permissions of the Unix socket (default 666: who gets which model "
                        "is decided by the client's uid)")
    args = p.parse_args(argv)
    try:
        mode = int(args.socket_mode, 8)
    except ValueError:
        p.error(f"--socket-mode {args.socket_mode!r}: expected octal, e.g. 660")
    for name in ("workers_per_user", "max_workers"):
        value = getattr(args, name)
        if value is not None and value < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    from ..log import report
    from ..serve.server import serve
    try:
        return serve(args.socket, args.listen, args.home, args.trusted_user, args.workers_per_user,
                     args.max_workers, args.idle_timeout, mode)
    except MailfilterError as err:
        report(str(err))
        return err.code
    except KeyboardInterrupt:
        return exitcodes.OK
