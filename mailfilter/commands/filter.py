"""`mailfilter [filter]`: the pipe filter procmail and maildrop run per message.

Whatever happens inside, the message goes out: on any internal failure it
is passed through with `X-CRM114-Status: UNSURE ( 0.00 )` and a notice, the
cause is logged, and we exit 0 (pipeline.py). Only a failure to read or
*write* the message exits non-zero: 75 (EX_TEMPFAIL), so procmail/the MTA
keeps it and retries.
"""

import os

from .. import exitcodes
from ..log import report
from . import common

EPILOG = """\
output headers (CRM114 mailreaver's form, so existing recipes keep working):
  X-CRM114-Version: mailfilter VERSION
  X-CRM114-CacheID: sfid-HEX          content id, used by the Maildir trainer
  X-CRM114-Status: SPAM ( -23.45 )    or GOOD / UNSURE; pR = log10(P(good)/P(spam))
  X-CRM114-Notice: Please train this message.      (UNSURE only)
Any X-CRM114-* headers already in the message are removed first.

exit status:
  0   message written (also when classification failed: see the log)
  75  the message could not be read or written; procmail will retry (EX_TEMPFAIL)
  with --exit-code: 0 spam, 1 good, 2 unsure (bogofilter's convention)

example ~/.procmailrc:
  :0fw
  | mailfilter
  :0:
  * ^X-CRM114-Status: SPAM
  .Junk/
"""


def main(argv, prog) -> int:
    quick = common.quick_options(argv)
    if quick is not None:
        return run(quick["home"], stats_only=quick["stats_only"], exit_code=quick["exit_code"])
    p = common.parser(prog, "Read one message on stdin and write it to stdout with "
                      "X-CRM114-* headers added.", EPILOG)
    p.add_argument("--stats-only", action="store_true",
                   help="print only the status value, e.g. 'SPAM ( -12.34 )', not the message")
    p.add_argument("--exit-code", action="store_true",
                   help="exit 0 for spam, 1 for good, 2 for unsure")
    args = p.parse_args(argv)
    return run(args.home, stats_only=args.stats_only, exit_code=args.exit_code)


def run(home, stats_only=False, exit_code=False) -> int:
    from ..pipeline import filter_stream, user_classifier, user_commands
    try:
        outcome = filter_stream(lambda n: os.read(0, n), lambda data: common.write_all(1, data),
                                user_classifier(home), status_only=stats_only, commands=user_commands(home))
    except OSError as err:
        report(f"could not pass the message on ({err.strerror or err}); exit 75 so it is retried")
        return exitcodes.TEMPFAIL
    try:                          # for `mailfilter stats`; the message is out already
        from ..verdicts import count
        count(home, outcome)
    except Exception:  # noqa: BLE001 - counting must never cost a delivery
        pass
    if exit_code:
        return {"SPAM": 0, "GOOD": 1}.get(outcome.verdict.label, 2)
    return exitcodes.OK
