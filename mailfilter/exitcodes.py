"""Exit codes, from sysexits.h, as procmail and MTAs read them."""

OK = 0
USAGE = 64        # EX_USAGE: bad command line
DATAERR = 65      # EX_DATAERR: bad input data (corrupt delegation file, bad rules)
NOINPUT = 66      # EX_NOINPUT: an input file is missing or unreadable
UNAVAILABLE = 69  # EX_UNAVAILABLE: a tool or service needed is missing (journalctl, matplotlib)
NOUSER = 67       # EX_NOUSER: no such user (--user NAME)
SOFTWARE = 70     # EX_SOFTWARE: internal error
CANTCREAT = 73    # EX_CANTCREAT: cannot create an output file
IOERR = 74        # EX_IOERR: read/write error
TEMPFAIL = 75     # EX_TEMPFAIL: try again later; procmail and the MTA requeue
NOPERM = 77       # EX_NOPERM: not allowed (root on another user's state, --user as non-root)
CONFIG = 78       # EX_CONFIG: bad configuration
