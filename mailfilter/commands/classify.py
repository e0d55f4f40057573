"""`mailfilter classify`: print the verdict for one message, nothing else."""

import os

from .. import exitcodes
from ..log import report
from . import common


def main(argv, prog) -> int:
    quick = common.quick_options(argv)
    if quick is not None and not quick["stats_only"] and not quick["exit_code"]:
        return run(quick["home"])
    p = common.parser(prog, "Print '<SPAM|GOOD|UNSURE> ( <pR> )' for the message on stdin.",
                      "pR = log10(P(good)/P(spam)): positive is good, negative is spam.\n"
                      "A forced verdict from priolist.mfp prints as ( +999.99 ) or ( -999.99 ).\n\n"
                      "example:\n  mailfilter classify < message.eml\n  SPAM ( -7.31 )")
    args = p.parse_args(argv)
    return run(args.home)


def run(home) -> int:
    from ..pipeline import filter_stream, user_classifier
    try:
        filter_stream(lambda n: os.read(0, n), lambda data: common.write_all(1, data),
                      user_classifier(home), status_only=True)
    except OSError as err:
        report(f"could not read the message or print its verdict: {err.strerror or err}")
        return exitcodes.TEMPFAIL
    return exitcodes.OK
