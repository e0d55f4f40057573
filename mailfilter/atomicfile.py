"""Write a whole file or nothing.

The bytes go to a temporary file beside the target, are fsynced, and the
file is renamed over the target; then the directory is fsynced. A reader
(a filter process mmapping the model, iptables-restore in a timer, Postfix)
sees the old file or the new one, never half of one, and a failure (a full
disk, a crash) leaves the old file as it was.
"""

import os


def replace(path: str, chunks, mode: int = 0o600) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(directory, f".{os.path.basename(path)}.tmp.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, mode)
    try:
        with os.fdopen(fd, "wb") as fh:
            for chunk in chunks:
                fh.write(chunk)
            fh.flush()
            os.fchmod(fh.fileno(), mode)     # the umask must not decide who reads it
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    dfd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)
