"""Acting for another account: become it for good, or refuse and say how.

A model that root writes into a user's state directory belongs to root,
mode 0600, and that user's filter can no longer read it: all their mail
turns UNSURE. So every command that writes a state directory either runs as
the directory's owner (`--user NAME`, and each per-user process of
maildir-train, drop to that account with `become`) or, run as root on
someone else's directory, refuses with one line saying what to type
instead (`refuse_foreign`). The daemon's per-user workers `become` their
user the same way. One implementation for the core commands, the trainer
and the daemon; nothing here is on the per-message path.
"""

import errno
import importlib
import os
import pkgutil
import pwd

from . import exitcodes
from .errors import MailfilterError


class Account:
    """The few fields of a password entry that acting as someone needs."""
    __slots__ = ("user", "uid", "gid", "home")

    def __init__(self, user: str, uid: int, gid: int, home: str):
        self.user, self.uid, self.gid, self.home = user, uid, gid, home


def account(name: str) -> Account:
    try:
        pw = pwd.getpwnam(name)
    except KeyError:
        raise MailfilterError(f"no such user {name!r}", exitcodes.NOUSER) from None
    return Account(pw.pw_name, pw.pw_uid, pw.pw_gid, pw.pw_dir)


def become(who: Account) -> None:
    """Become the account for good: groups, gid, then uid. Verified.

    Then HOME, USER and LOGNAME are theirs (so the default state directory
    is theirs), $MAILFILTER_HOME is dropped, the umask is 077 and the
    working directory / (root's may not be readable to them).
    """
    if os.geteuid() == 0 and who.uid != 0:
        os.setgroups([])
        os.initgroups(who.user, who.gid)
        os.setgid(who.gid)
        os.setuid(who.uid)
        try:
            os.setuid(0)
        except PermissionError:
            pass
        else:                                   # pragma: no cover - would be a kernel bug
            raise SystemExit("could regain root after setuid; refusing to continue")
        if os.getgid() != who.gid or os.getegid() != who.gid:
            raise PermissionError(errno.EPERM, f"could not take {who.user}'s group (gid {who.gid})")
    if os.geteuid() != who.uid or os.getuid() != who.uid:
        raise PermissionError(errno.EPERM, f"running as uid {os.geteuid()}, cannot act as "
                              f"{who.user} (uid {who.uid}); run as root")
    os.environ.update(HOME=who.home, USER=who.user, LOGNAME=who.user)
    os.environ.pop("MAILFILTER_HOME", None)
    os.umask(0o077)
    os.chdir("/")


def act_as(name: str, packages=("mailfilter",), modules=()) -> Account:
    """`--user NAME`: as root, preload and become NAME; as NAME, nothing to
    do; as anyone else, MailfilterError (77) saying root is needed."""
    who = account(name)
    if os.geteuid() == who.uid:
        return who
    if os.geteuid() != 0:
        me = pwd.getpwuid(os.geteuid()).pw_name
        raise MailfilterError(f"--user {name}: only root can act for another user (you are {me})",
                              exitcodes.NOPERM)
    preload(packages, modules)
    become(who)
    return who


def _owner_of(path: str):
    """(uid, the path that decided it): the owner of path, or of the nearest
    existing directory above it, which is where it would be created."""
    probe = os.path.abspath(path)
    while True:
        try:
            return os.stat(probe).st_uid, probe
        except FileNotFoundError:
            parent = os.path.dirname(probe)
            if parent == probe:
                return 0, probe
            probe = parent


def refuse_foreign(home: str, command: str, advice: str = None) -> None:
    """As root, refuse to write a state directory that is another user's.

    command is what the admin typed, for the advice line; advice, if
    given, replaces that line ({name} is the owner's name).
    """
    if os.geteuid() != 0:
        return
    uid, decided_by = _owner_of(home)
    if uid == 0:
        return
    try:
        name = pwd.getpwuid(uid).pw_name
    except KeyError:
        name = None
    whose = name or f"uid {uid}"
    where = (f"{home} belongs to {whose}" if decided_by == os.path.abspath(home) else
             f"{home} would be made in {decided_by}, which belongs to {whose}")
    how = (advice.format(name=name) if advice and name else
           f"add --user {name}: {command} --user {name} ..." if name else
           f"run it as uid {uid}, e.g. setpriv --reuid={uid} --regid=GID --init-groups {command} ...")
    raise MailfilterError(f"{where}: files root writes there would be root's, and {whose}'s filter "
                          f"could not read them; {how}", exitcodes.NOPERM)


def preload(packages=("mailfilter",), modules=()) -> None:
    """Import now everything that could be imported after become(): every
    module of our packages, and the other modules named (tqdm for train).

    After setuid the process may no longer be able to read the Python
    installation (a pyenv under /root, for instance), and an import that
    fails there would not fail loudly: a missing codec silently makes a
    message look different from what the filter saw, and a missing module
    refused every message. So, still root, import every codec, every module
    of our packages (found by walking them, so no hand-kept list can
    drift), and run one whole learn in a scratch state directory, which
    also loads what our modules import only inside functions (sqlite3,
    atomicfile's helpers, the lazily compiled regexes). Takes ~0.5 s.
    """
    import encodings
    for module in pkgutil.iter_modules(encodings.__path__):
        try:
            importlib.import_module(f"encodings.{module.name}")
        except Exception:       # platform codecs (mbcs, oem) don't import here
            pass
    for package in (importlib.import_module(name) for name in packages):
        for module in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            if module.name.endswith("__main__"):
                continue
            importlib.import_module(module.name)
    for name in modules:
        importlib.import_module(name)
    _learn_once()


def _learn_once() -> None:
    import shutil
    import tempfile

    from .learning import learn_messages
    from .state import Config, State
    sample = ("Subject: =?ISO-2022-JP?B?GyRCJUYlOSVIGyhC?=\nContent-Type: text/plain; "
              "charset=utf-8\n\n\u65e5\u672c\u8a9e\u306e\u30c6\u30b9\u30c8 http://example.com/a\n").encode()
    scratch = tempfile.mkdtemp(prefix="mailfilter-preload-")
    try:
        learn_messages(State(scratch), Config(model_bits=10), [(sample, True)])
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
