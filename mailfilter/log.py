"""Trouble reports: to stderr (procmail's LOGFILE) and to syslog, mail facility.

The syslog module is a thin C wrapper, cheap enough for the per-message path;
`logging` is not needed there.
"""

import sys
import syslog

_opened = False


def report(message: str, priority: int = syslog.LOG_ERR) -> None:
    global _opened
    try:
        sys.stderr.write(f"mailfilter: {message}\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass
    try:
        if not _opened:
            syslog.openlog("mailfilter", syslog.LOG_PID, syslog.LOG_MAIL)
            _opened = True
        syslog.syslog(priority, message)
    except OSError:
        pass


def warning(message: str) -> None:
    report(message, syslog.LOG_WARNING)


def info(message: str) -> None:
    report(message, syslog.LOG_INFO)


def reopen() -> None:
    """Close the syslog connection; the next report opens it again, with
    the mail facility (a forked worker must not share its parent's)."""
    global _opened
    syslog.closelog()
    _opened = False
