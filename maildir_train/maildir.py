"""One user's Maildir, touched safely: folders, message files, flags, moves.

Every path below the Maildir root is opened relative to a directory file
descriptor with O_NOFOLLOW, so no symbolic link is ever followed, wherever
it is planted (a folder, cur/, a message). The caller has already dropped to
the user's uid; on top of what the kernel enforces we refuse any file or
directory the user does not own, so a file someone else placed (or root
hard-linked) into the user's learn folder is never read or moved.

Hard links: Dovecot copies a message between folders of one Maildir by
hard-linking it (maildir_copy_with_hardlinks, on by default), so a message
IMAP-COPYed into learn-spam has st_nlink 2 and that is normal. A link count
above one is therefore accepted when the user owns the file: the user could
read it anyway, and we only read it as the user. A link to another user's
file fails the owner check; the kernel's protected_hardlinks stops users from
making such links in the first place.

Layouts (as Dovecot names them), for a folder called Junk:
    maildir++   ~/Maildir/.Junk/{cur,new,tmp}     (Dovecot's and Courier's default)
    fs          ~/Maildir/Junk/{cur,new,tmp}      (mail_location = maildir:~/Maildir:LAYOUT=fs)
INBOX is the root itself in both.
"""

import ctypes
import errno
import fcntl
import os
import socket
import stat
import time

from mailfilter.rawmail import read_digested

SUBDIRS = ("cur", "new", "tmp")
INBOX = "INBOX"
DIR_MODE = 0o700

_OPEN_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# O_NONBLOCK: a FIFO planted in a learn folder must not hang the trainer.
_OPEN_FILE = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC


class Refused(Exception):
    """A file or directory we will not touch; the text says why."""


class Busy(Exception):
    """The file is still open for writing (a plain cp into new/): look again later."""


def check_folder_name(name: str) -> str:
    """A one-level folder name as the user sees it ('Junk'); '.Junk' is accepted too.

    Only names that are the same on disk in both layouts: no hierarchy
    separators, and no '&' (IMAP's modified UTF-7 would need it escaped).
    """
    bare = name[1:] if name.startswith(".") else name
    if (not bare or bare in (".", "..") or bare.upper() == INBOX
            or any(c in bare for c in "/.&") or not bare.isprintable() or not bare.isascii()):
        raise ValueError(f"folder name {name!r}: use one plain ASCII name such as Junk "
                         "(no '/', '.' inside, '&', and not INBOX)")
    return bare


def folder_dirname(folder: str, layout: str) -> str:
    """The folder's directory name inside the Maildir root ('' for INBOX)."""
    if folder == INBOX:
        return ""
    return "." + folder if layout == "maildir++" else folder


def detect_layout(root: str) -> str:
    """fs if the root holds plain-named folders (a dir with cur/), else maildir++."""
    try:
        entries = list(os.scandir(root))
    except OSError:
        return "maildir++"
    plain = dotted = 0
    for entry in entries:
        if entry.name in SUBDIRS or not entry.is_dir(follow_symlinks=False):
            continue
        if os.path.isdir(os.path.join(root, entry.name, "cur")):
            if entry.name.startswith("."):
                dotted += 1
            else:
                plain += 1
    return "fs" if plain > dotted else "maildir++"


def _check_owner(fd: int, uid: int, what: str) -> os.stat_result:
    st = os.fstat(fd)
    if st.st_uid != uid:
        raise Refused(f"{what} is owned by uid {st.st_uid}, not {uid}")
    return st


def open_dir(name: str, uid: int, dir_fd=None) -> int:
    """Open a directory without following a symlink, owned by uid. Caller closes."""
    try:
        fd = os.open(name, _OPEN_DIR, dir_fd=dir_fd)
    except OSError as err:
        if err.errno in (errno.ELOOP, errno.ENOTDIR):
            raise Refused(f"{name} is a symbolic link or not a directory") from None
        raise
    try:
        _check_owner(fd, uid, name)
    except BaseException:
        os.close(fd)
        raise
    return fd


class Maildir:
    """The Maildir root of one user, opened once per scan (closed by close())."""

    def __init__(self, root: str, layout: str, uid: int):
        self.root = root
        self.layout = layout
        self.uid = uid
        self.fd = open_dir(root, uid)
        self._folders = {}

    def close(self) -> None:
        for fds in self._folders.values():
            for fd in fds.values():
                os.close(fd)
        self._folders.clear()
        os.close(self.fd)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def display(self, folder: str, sub: str, name: str) -> str:
        """Short form for logs: '.Junk/cur/NAME', 'cur/NAME' for INBOX (see shown)."""
        return "/".join(p for p in (folder_dirname(folder, self.layout), sub, shown(name)) if p)

    def ensure_folder(self, folder: str) -> bool:
        """Create the folder (cur, new, tmp, maildirfolder) if missing. True if created."""
        created = False
        dirname = folder_dirname(folder, self.layout)
        parent = self.fd
        if dirname:
            created = _mkdir(dirname, parent)
            parent = open_dir(dirname, self.uid, dir_fd=self.fd)
        try:
            for sub in SUBDIRS:
                created |= _mkdir(sub, parent)
            if dirname:
                # Dovecot and Courier mark every non-INBOX Maildir folder with this file.
                try:
                    os.close(os.open("maildirfolder", os.O_WRONLY | os.O_CREAT | os.O_EXCL
                                     | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=parent))
                except FileExistsError:
                    pass
        finally:
            if parent != self.fd:
                os.close(parent)
        return created

    def subdir(self, folder: str, sub: str) -> int:
        """A cached fd for folder/sub (cur or new), opened safely."""
        fds = self._folders.setdefault(folder, {})
        if sub not in fds:
            dirname = folder_dirname(folder, self.layout)
            if dirname:
                parent = open_dir(dirname, self.uid, dir_fd=self.fd)
                try:
                    fds[sub] = open_dir(sub, self.uid, dir_fd=parent)
                finally:
                    os.close(parent)
            else:
                fds[sub] = open_dir(sub, self.uid, dir_fd=self.fd)
        return fds[sub]

    def list(self, folder: str, sub: str) -> list:
        """(name, inode) of the messages in folder/sub, oldest first (Maildir names start with time)."""
        fd = self.subdir(folder, sub)
        with os.scandir(fd) as it:
            return sorted((e.name, e.inode()) for e in it if not e.name.startswith("."))


def _mkdir(name: str, dir_fd: int) -> bool:
    try:
        os.mkdir(name, DIR_MODE, dir_fd=dir_fd)
        return True
    except FileExistsError:
        return False


def read_message(dir_fd: int, name: str, uid: int):
    """(what learning reads of a message file, the whole message's digest),
    or None if it vanished.

    Holds only what `mailfilter learn` classifies on: the header block and
    the first CLASSIFY_BODY_BYTES of body (MessageReader.classified), so a
    200 MB message costs no more memory than a small one; the rest is read
    and hashed as it streams (rawmail.message_digest, the ledger's key).
    Raises Refused for a symlink, a non-regular file (a socket, a FIFO), or
    a file the user does not own, readable or not (a hard link root made
    to another user's 0600 file): those can't become readable by waiting.
    """
    try:
        fd = os.open(name, _OPEN_FILE, dir_fd=dir_fd)
    except FileNotFoundError:
        return None
    except OSError as err:
        if err.errno == errno.ELOOP:
            raise Refused("symbolic link") from None
        # A socket can't be opened (ENXIO), another user's 0600 file can't
        # be read (EACCES): they used to be retried for ever, a warning each
        # time, and `--once` exited 75 on every run.
        try:
            st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        except OSError:
            raise err from None
        if not stat.S_ISREG(st.st_mode):
            raise Refused("not a regular file") from None
        if st.st_uid != uid:
            raise Refused(f"owned by uid {st.st_uid}, not {uid}") from None
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise Refused("not a regular file")
        if st.st_uid != uid:
            raise Refused(f"owned by uid {st.st_uid}, not {uid}")
        if _open_for_writing(fd):
            raise Busy(name)
        reader, digest = read_digested(lambda n: os.read(fd, n))
        return reader.classified, digest
    finally:
        os.close(fd)


def shown(name: str) -> str:
    """A file name fit for one log line: a newline in it once injected log
    lines, and a non-UTF-8 one made the syslog handler drop the line. Bytes
    that are not UTF-8 show as \\xNN, control characters escaped."""
    text = os.fsencode(name).decode("utf-8", "backslashreplace")
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


def _open_for_writing(fd: int) -> bool:
    """Does any process hold this file open for writing?

    An IMAP server writes in tmp/ and renames, but a user or script may copy
    straight into new/; we must not learn (and move) half a message. A read
    lease is refused with EAGAIN exactly when the file is open for writing.
    Where leases are unavailable (NFS, leases disabled) we can't tell: no.
    """
    try:
        fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_RDLCK)
    except OSError as err:
        return err.errno == errno.EAGAIN
    fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_UNLCK)
    return False


def split_info(name: str):
    """'base:2,FLAGS' -> ('base', ':2,FLAGS'); a name from new/ has no info: ('base', '')."""
    colon = name.find(":")
    return (name, "") if colon < 0 else (name[:colon], name[colon:])


def cur_name(name: str) -> str:
    """The name a message gets in cur/: its flags kept; ':2,' added if it had no info."""
    base, info = split_info(name)
    return name if info else base + ":2,"


_counter = 0


def unique_base() -> str:
    """A fresh Maildir base name: time.MusecPpidQn.host (the Maildir spec's recipe)."""
    global _counter
    _counter += 1
    now = time.time()
    host = socket.gethostname().replace("/", "\\057").replace(":", "\\072")
    return f"{int(now)}.M{int(now * 1e6) % 1000000}P{os.getpid()}Q{_counter}.{host}"


# renameat2(RENAME_NOREPLACE): an atomic rename that fails instead of
# replacing an existing file. Not in the os module; glibc has had it since 2.28.
_RENAME_NOREPLACE = 1
try:
    _libc = ctypes.CDLL(None, use_errno=True)
    _renameat2 = _libc.renameat2
    _renameat2.argtypes = (ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint)
    _renameat2.restype = ctypes.c_int
except (OSError, AttributeError):   # pragma: no cover - old libc
    _renameat2 = None


def _rename_noreplace(src_fd: int, src: str, dst_fd: int, dst: str) -> None:
    """Move src to dst; FileExistsError if dst exists. Never replaces a file."""
    if _renameat2 is not None:
        if _renameat2(src_fd, os.fsencode(src), dst_fd, os.fsencode(dst), _RENAME_NOREPLACE) == 0:
            return
        err = ctypes.get_errno()
        if err not in (errno.EINVAL, errno.ENOSYS):     # EINVAL: this filesystem lacks it
            raise OSError(err, os.strerror(err), src, None, dst)
    # Fallback: link() fails rather than replace; then drop the old name. If we
    # die between the two, the retry finds dst is the same file and just unlinks.
    try:
        os.link(src, dst, src_dir_fd=src_fd, dst_dir_fd=dst_fd, follow_symlinks=False)
    except FileExistsError:
        a = os.stat(src, dir_fd=src_fd, follow_symlinks=False)
        b = os.stat(dst, dir_fd=dst_fd, follow_symlinks=False)
        if (a.st_dev, a.st_ino) != (b.st_dev, b.st_ino):
            raise
    os.unlink(src, dir_fd=src_fd)


def move(src_fd: int, name: str, dst_fd: int) -> str:
    """Move a message into a cur/ directory, atomically, never replacing a file.

    Keeps the name (and so the flags) unless it is taken; then the message
    gets a fresh base name with the same flags. Returns the new name. Raises
    FileNotFoundError if the message is gone, other OSError if the move fails.
    """
    target = cur_name(name)
    for _ in range(100):
        try:
            _rename_noreplace(src_fd, name, dst_fd, target)
            return target
        except FileExistsError:
            target = unique_base() + split_info(cur_name(name))[1]
    raise OSError(errno.EEXIST, "no free name in the destination", name)
