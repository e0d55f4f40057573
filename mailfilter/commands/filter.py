"""`mailfilter [filter]`: the pipe filter procmail and maildrop run per message.

Whatever happens inside, the message goes out: on any internal failure it
is passed through with `X-CRM114-Status: UNSURE ( 0.00 )` and a notice, the
cause is logged, and we exit 0. Only a failure to *write* the message exits
non-zero: 75 (EX_TEMPFAIL), so procmail/the MTA keeps it and retries.
"""

import os

from .. import __version__, exitcodes
from ..log import report
from ..rawmail import MessageReader, content_digest, rewrite_header
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
  75  the message could not be written; procmail will retry (EX_TEMPFAIL)
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


def classify_prefix(home, prefix, block):
    """(verdict, digest, notice). Never raises: failures give UNSURE 0.00."""
    notice = None
    digest = None
    try:
        # Imports inside the try: a broken install (say, a missing mmh3 under
        # another python) must still deliver the mail.
        from ..classifier import Classifier
        digest = content_digest(prefix)
        state, config = common.state_and_config(home)
        classifier = Classifier.for_state(state, config, report)
        verdict = classifier.classify(prefix, block)
    except Exception as err:  # noqa: BLE001 - every failure must still deliver the mail
        report(f"message passed through unclassified: {type(err).__name__}: {err}")
        verdict = _failed_verdict()
        notice = "mailfilter could not classify this message; see the mail log."
    return verdict, digest, notice


class _failed_verdict:
    """UNSURE ( 0.00 ), needing nothing from modules that may have failed to import."""
    label = "UNSURE"
    pr = 0.0
    status = "UNSURE ( 0.00 )"
    rule = None


def status_lines(verdict, digest, notice) -> list:
    lines = [b"X-CRM114-Version: mailfilter " + __version__.encode()]
    if digest:
        lines.append(b"X-CRM114-CacheID: sfid-" + digest[:16].encode())
    lines.append(b"X-CRM114-Status: " + verdict.status.encode())
    if notice:
        lines.append(b"X-CRM114-Notice: " + notice.encode())
    elif verdict.label == "UNSURE":
        lines.append(b"X-CRM114-Notice: Please train this message.")
    return lines


def run(home, stats_only=False, exit_code=False) -> int:
    reader = MessageReader(lambda n: os.read(0, n))
    try:
        block = reader.read_prefix()
    except OSError as err:
        report(f"cannot read the message on stdin: {err}")
        return exitcodes.TEMPFAIL
    prefix = reader.prefix
    verdict, digest, notice = classify_prefix(home, prefix, block)
    try:
        if stats_only:
            common.write_all(1, verdict.status.encode() + b"\n")
            for _ in reader.chunks():
                pass
        else:
            try:
                head = rewrite_header(prefix, block, status_lines(verdict, digest, notice))
            except Exception as err:  # noqa: BLE001
                report(f"could not add headers, passing the message through as is: {err}")
                head = prefix
            common.write_all(1, head)
            for chunk in reader.chunks():
                common.write_all(1, chunk)
    except OSError as err:
        report(f"could not write the message ({err.strerror or err}); exit 75 so it is retried")
        return exitcodes.TEMPFAIL
    if exit_code:
        return {"SPAM": 0, "GOOD": 1}.get(verdict.label, 2)
    return exitcodes.OK
