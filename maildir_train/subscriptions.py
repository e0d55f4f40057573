"""Subscribe folders so IMAP clients show them: Dovecot's and Courier's files.

Dovecot keeps `subscriptions` in the Maildir root: one mailbox name per line,
optionally after a "V\\t2\\n\\n" header (version 2 tab-separates hierarchy
levels; our one-level names are the same in both versions). It updates the
file under a dotlock, `subscriptions.lock`, which it then renames over the
file; we do the same, so neither of us loses the other's change.

Courier keeps `courierimapsubscribed` with names like INBOX.learn-spam. We
only add to it when it exists: creating it on a Dovecot server would be clutter.
"""

import errno
import os
import time

DOVECOT = "subscriptions"
COURIER = "courierimapsubscribed"
# Dovecot treats a lock file older than this as stale (SUBSCRIPTION_FILE_CHANGE_TIMEOUT).
STALE_LOCK_SECONDS = 30


def subscribe(root_fd: int, folders, uid: int) -> list:
    """Add folders to both files, idempotently. Returns the names newly added."""
    added = _add(root_fd, DOVECOT, list(folders), uid, create=True)
    _add(root_fd, COURIER, [f"INBOX.{f}" for f in folders], uid, create=False)
    return added


def _read(root_fd: int, name: str, uid: int):
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=root_fd)
    except FileNotFoundError:
        return None
    with os.fdopen(fd, "rb") as fh:
        if os.fstat(fh.fileno()).st_uid != uid:
            raise PermissionError(errno.EPERM, f"{name} is not owned by uid {uid}")
        return fh.read()


def _add(root_fd: int, name: str, wanted: list, uid: int, create: bool) -> list:
    data = _read(root_fd, name, uid)
    if data is None and not create:
        return []
    missing = _missing(data or b"", wanted)
    if not missing:
        return []
    lock = name + ".lock"
    fd = _take_lock(root_fd, lock)
    if fd is None:
        return []        # someone else is writing it; the next start tries again
    try:
        # Re-read under the lock: Dovecot may have changed it meanwhile.
        data = _read(root_fd, name, uid) or b""
        if data and not data.endswith(b"\n"):
            data += b"\n"
        missing = _missing(data, wanted)
        with os.fdopen(fd, "wb", closefd=False) as fh:
            fh.write(data + b"".join(m.encode() + b"\n" for m in missing))
            fh.flush()
            os.fsync(fh.fileno())
        os.rename(lock, name, src_dir_fd=root_fd, dst_dir_fd=root_fd)
        return missing
    except BaseException:
        try:
            os.unlink(lock, dir_fd=root_fd)
        except OSError:
            pass
        raise
    finally:
        os.close(fd)


def _missing(data: bytes, wanted: list) -> list:
    have = set(data.decode("utf-8", "replace").split("\n"))
    return [w for w in wanted if w not in have]


def _take_lock(root_fd: int, lock: str):
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        return os.open(lock, flags, 0o600, dir_fd=root_fd)
    except FileExistsError:
        pass
    try:
        age = time.time() - os.stat(lock, dir_fd=root_fd, follow_symlinks=False).st_mtime
    except FileNotFoundError:
        age = STALE_LOCK_SECONDS
    if age < STALE_LOCK_SECONDS:
        return None
    try:
        os.unlink(lock, dir_fd=root_fd)
        return os.open(lock, flags, 0o600, dir_fd=root_fd)
    except (FileNotFoundError, FileExistsError):
        return None
