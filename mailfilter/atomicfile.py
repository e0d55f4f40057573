"""Write a whole file or nothing.

The bytes go to a temporary file beside the target, are fsynced, and the
file is renamed over the target; then the directory is fsynced. A reader
(a filter process mmapping the model, iptables-restore in a timer, Postfix)
sees the old file or the new one, never half of one, and a failure (a full
disk, a crash) leaves the old file as it was.

The temporary file is made by mkstemp: a name nobody can predict, created
with O_EXCL (so never a file or symlink someone else put there first) and
mode 0600 until we fchmod it. A predictable name opened without O_EXCL let a
user who pre-created it in a shared sticky directory own root's firewall
file, and write rules into it before it was loaded.
"""

import os


def replace(path: str, chunks, mode: int = 0o600, durable: bool = True) -> None:
    """durable=False skips both fsyncs: for a cache that can be fetched again
    (a shared store's local copy), whose loss in a crash costs nothing but
    whose fsync of 8 MiB would cost every refresh."""
    # Here, not at the top: tempfile pulls in shutil, random, bz2 and lzma,
    # ~4 ms that the pipe filter (which imports the store, never writes)
    # must not pay.
    import tempfile
    directory = os.path.dirname(os.path.abspath(path))
    # ".tmp." in the name: the tests and an admin's `ls` recognise our leftovers.
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.tmp.", dir=directory)
    try:
        with os.fdopen(fd, "wb") as fh:
            for chunk in chunks:
                fh.write(chunk)
            fh.flush()
            os.fchmod(fh.fileno(), mode)     # the umask must not decide who reads it
            if durable:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    if not durable:
        return
    dfd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)
