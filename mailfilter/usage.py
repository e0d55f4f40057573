"""The command-line parser every mailfilter and maildir-train command uses.

One class so that one rule holds everywhere: a usage error exits 64
(EX_USAGE), as sysexits.h and the README say, not argparse's 2. Imported
only by commands that need argparse; the filter's fast path never does
(argparse with gettext and locale costs ~5 ms of start-up).
"""

import argparse
import sys

from . import exitcodes


class ArgumentParser(argparse.ArgumentParser):
    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message):
        self.print_usage(sys.stderr)
        self.exit(exitcodes.USAGE, f"{self.prog}: error: {message}\n")
