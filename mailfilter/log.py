"""Trouble reports: to stderr (procmail's LOGFILE) and to syslog, mail facility;
to a file in the state directory when syslog can't be reached.

The syslog module is a thin C wrapper, cheap enough for the per-message path;
`logging` is not needed there. libc's syslog() drops a line silently when
nothing listens on /dev/log (a container, a chroot, rsyslog stopped), so
whether syslog can be reached is found out by connecting to it, once per
process and only when there is something to report: a message that
classifies fine costs nothing here.

report() returns where the line can be read, so the X-CRM114-Notice of a
message that could not be classified names the place (pipeline.py).
"""

import os
import sys
import syslog
import time

SYSLOG_SOCKET = "/dev/log"
LOG_NAME = "mailfilter.log"
# The fallback file is renamed to mailfilter.log.1 past this size: a broken
# model logs one line (~200 bytes) per message, so 1 MiB is ~5000 messages.
MAX_LOG_BYTES = 1 << 20
IN_SYSLOG = "the mail log (syslog, facility mail)"

_opened = False
_reachable = None           # syslog reachable? found out on the first report
_fallback_dir = None        # the state directory, once a command knows it


def use_state_directory(path: str) -> None:
    """Where failures go when syslog can't be reached: path/mailfilter.log."""
    global _fallback_dir
    _fallback_dir = path


def fallback_path(state_dir: str) -> str:
    return os.path.join(state_dir, LOG_NAME)


def syslog_reachable() -> bool:
    """True if something accepts datagrams (or a stream) on /dev/log."""
    import socket
    for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
        sock = socket.socket(socket.AF_UNIX, kind)
        try:
            sock.connect(SYSLOG_SOCKET)
            return True
        except OSError:
            continue
        finally:
            sock.close()
    return False


def _to_file(message: str):
    """Append one line to the state directory's log; its path, or None."""
    if not _fallback_dir:
        return None
    path = fallback_path(_fallback_dir)
    line = f"{time.strftime('%Y-%m-%d %H:%M:%S')} mailfilter[{os.getpid()}]: {message}\n"
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = None
    try:
        fd = os.open(path, flags, 0o600)
        if os.fstat(fd).st_size > MAX_LOG_BYTES:
            os.close(fd)
            fd = None
            os.replace(path, path + ".1")
            fd = os.open(path, flags, 0o600)
        os.write(fd, line.encode("utf-8", "replace"))
    except OSError:
        return None
    finally:
        if fd is not None:
            os.close(fd)
    return path


def report(message: str, priority: int = syslog.LOG_ERR):
    """Log one line. Returns where it can be read: IN_SYSLOG, the fallback
    file's path, or None (only stderr, i.e. procmail's LOGFILE if set)."""
    global _opened, _reachable
    try:
        sys.stderr.write(f"mailfilter: {message}\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass
    if _reachable is None:
        try:
            _reachable = syslog_reachable()
        except OSError:
            _reachable = False
    if _reachable:
        try:
            if not _opened:
                syslog.openlog("mailfilter", syslog.LOG_PID, syslog.LOG_MAIL)
                _opened = True
            syslog.syslog(priority, message)
            return IN_SYSLOG
        except OSError:
            pass
    return _to_file(message)


def warning(message: str):
    return report(message, syslog.LOG_WARNING)


def info(message: str):
    return report(message, syslog.LOG_INFO)


def reopen() -> None:
    """Close the syslog connection; the next report opens it again, with
    the mail facility (a forked worker must not share its parent's)."""
    global _opened
    syslog.closelog()
    _opened = False
