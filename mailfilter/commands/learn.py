"""`mailfilter learn --spam|--good`: teach one message."""

import sys

from .. import exitcodes
from ..errors import ConfigError, MailfilterError
from . import common

EPILOG = """\
The message's own X-CRM114-* headers are ignored, so a delivered copy trains
exactly like the original. Learning a message again with the same label
changes nothing; with the other label it corrects the model (the message is
trained until it is classified the new way).

examples:
  mailfilter learn --spam < missed-spam.eml
  mailfilter learn --good < false-positive.eml
  mailfilter learn --user bob --spam < bobs-spam.eml       (as root, for bob)

exit status: 0 learned (or already known), 64 bad usage, 65 the model can't
be read (see the message), 66 no message on standard input, 67 no such
--user, 75 could not save (full disk?): nothing changed, 77 root on another
user's state directory without --user, 78 bad mailfilter.conf.
"""


def main(argv, prog) -> int:
    p = common.parser(prog, "Teach the filter one message, read on stdin.", EPILOG)
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument("--spam", action="store_true", help="the message is spam")
    group.add_argument("--good", action="store_true", help="the message is good mail (ham)")
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing on success")
    common.user_option(p)
    args = p.parse_args(argv)
    import os

    from ..rawmail import read_digested
    size = 0

    def read(n):
        nonlocal size
        chunk = os.read(0, n)
        size += len(chunk)
        return chunk

    # Only what learning uses is held (the header block and 256 KiB of
    # body); the rest streams through the ledger's digest of the whole.
    reader, digest = read_digested(read)
    if not reader.prefix.strip():
        # `learn --spam < /dev/null`, or a script whose pipe broke: teaching
        # "nothing" would record a real ledger row and nudge the model.
        print(f"{prog}: no message on standard input (got {size} bytes); nothing learned",
              file=sys.stderr)
        return exitcodes.NOINPUT
    try:
        state, config = common.state_for_writing(args, prog)
    except MailfilterError as err:
        return common.error_exit(err, prog)
    import sqlite3

    from ..learning import learn_messages
    from ..log import report
    from ..store import ModelError
    try:
        (result,) = learn_messages(state, config, [(reader.classified, args.spam, digest)])
    except ConfigError as err:          # a shared store's settings, read on first use
        return common.config_error_exit(err)
    except ModelError as err:
        report(f"{err}; not learned")
        return exitcodes.DATAERR
    except (OSError, sqlite3.Error) as err:
        # A full disk fails in the ledger (SQLite) as often as in the model
        # save: either way the old model stands, and 75 asks for a retry.
        report(f"could not save what was learned: {err}")
        return exitcodes.TEMPFAIL
    if not args.quiet:
        from ..classifier import format_pr
        if result.action == "skipped":
            print(f"already learned as {result.label}; nothing changed (pR {format_pr(result.pr_before)})")
        else:
            print(f"{result.action} as {result.label}: pR {format_pr(result.pr_before)} -> {format_pr(result.pr_after)}")
    return exitcodes.OK
