"""Exit codes, from sysexits.h, as procmail and MTAs read them."""

OK = 0
USAGE = 64        # EX_USAGE: bad command line
DATAERR = 65      # EX_DATAERR: bad input data (corrupt delegation file, bad rules)
NOINPUT = 66      # EX_NOINPUT: an input file is missing or unreadable
NOUSER = 67       # EX_NOUSER: no such user (--user NAME)
NOHOST = 68       # EX_NOHOST: a host name that does not resolve (relaytest)
UNAVAILABLE = 69  # EX_UNAVAILABLE: a tool, service or server needed is missing or unreachable
SOFTWARE = 70     # EX_SOFTWARE: internal error
CANTCREAT = 73    # EX_CANTCREAT: cannot create an output file
IOERR = 74        # EX_IOERR: read/write error
TEMPFAIL = 75     # EX_TEMPFAIL: try again later; procmail and the MTA requeue
PROTOCOL = 76     # EX_PROTOCOL: the remote side does not speak the protocol
NOPERM = 77       # EX_NOPERM: not allowed (root on another user's state, --user as non-root, a login refused)
CONFIG = 78       # EX_CONFIG: bad configuration
