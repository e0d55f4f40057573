"""`mailfilter classify`: print the verdict for one message, nothing else."""

import os

from ..rawmail import MessageReader
from . import common
from .filter import classify_prefix


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
    reader = MessageReader(lambda n: os.read(0, n))
    block = reader.read_prefix()
    verdict, _, _ = classify_prefix(home, reader.prefix, block)
    for _ in reader.chunks():
        pass
    print(verdict.status)
    return 0
