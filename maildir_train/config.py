"""Who to train for: the multi-user config file, and the one-user defaults.

Format (/etc/mailfilter/maildir-train.conf), one mailbox per line:

    # NAME  [key=value ...]
    *       layout=auto spam-folder=Junk      # defaults for every line below and above
    alice
    bob     spam-action=delete
    carol@example.org  user=vmail  maildir=/var/vmail/example.org/carol/Maildir
                                   home=/var/vmail/example.org/carol/mailfilter

NAME is a system user, unless user=SYSUSER says which account owns the
Maildir (virtual mailboxes all owned by vmail); then NAME is only the name in
the logs and maildir= and home= are required. Keys:

    user=         the account whose uid/gid we run as      (default: NAME)
    maildir=      the Maildir root                         (default: ~user/Maildir)
    home=         the mailfilter state directory           (default: as for mailfilter,
                                                              ~user/.local/share/mailfilter)
    layout=       maildir++, fs or auto                    (default: auto)
    spam-folder=  where learned spam goes                  (default: Junk)
    spam-action=  move (to spam-folder) or delete          (default: move)

A leading ~ in a path is the account's home directory. A line ending in a
backslash continues on the next. Errors are reported as `file:line: what`.
"""

import os
import pwd
from dataclasses import dataclass

from mailfilter.errors import ConfigError
from mailfilter.state import default_home

from .maildir import check_folder_name

LAYOUT_CHOICES = ("maildir++", "fs", "auto")
SPAM_ACTIONS = ("move", "delete")
KEYS = ("user", "maildir", "home", "layout", "spam-folder", "spam-action")


@dataclass
class Mailbox:
    """One user's trainer settings."""
    name: str                 # for logs
    user: str                 # the account we run as
    uid: int
    gid: int
    account_home: str         # the account's home directory (HOME)
    maildir: str
    home: str                 # mailfilter state directory
    layout: str = "auto"
    spam_folder: str = "Junk"
    spam_action: str = "move"


def _expand(path: str, account_home: str) -> str:
    if path == "~" or path.startswith("~/"):
        path = account_home + path[1:]
    return os.path.abspath(path)


def check_value(key: str, value: str) -> str:
    """The value, normalised; ValueError with a message if it is not allowed."""
    if key == "layout" and value not in LAYOUT_CHOICES:
        raise ValueError(f"layout must be one of {', '.join(LAYOUT_CHOICES)}, got {value!r}")
    if key == "spam-action" and value not in SPAM_ACTIONS:
        raise ValueError(f"spam-action must be move or delete, got {value!r}")
    if key == "spam-folder":
        return check_folder_name(value)
    if key in ("maildir", "home") and not (value.startswith("/") or value.startswith("~")):
        raise ValueError(f"{key} must be an absolute path (or start with ~), got {value!r}")
    if not value:
        raise ValueError(f"{key} needs a value")
    return value


def mailbox(name, settings: dict) -> Mailbox:
    """Resolve one entry against the password database. Raises ValueError."""
    user = settings.get("user", name)
    try:
        pw = pwd.getpwnam(user)
    except KeyError:
        raise ValueError(f"no such user {user!r}" + ("" if "user" in settings else
                         " (for a virtual mailbox, say user=ACCOUNT maildir=... home=...)")) from None
    if user != name and not ("maildir" in settings and "home" in settings):
        raise ValueError(f"{name}: user={user} needs maildir= and home= too "
                         "(virtual mailboxes must not share ~{user}/Maildir)")
    return Mailbox(
        name=name, user=user, uid=pw.pw_uid, gid=pw.pw_gid, account_home=pw.pw_dir,
        maildir=_expand(settings.get("maildir", "~/Maildir"), pw.pw_dir),
        home=_expand(settings["home"], pw.pw_dir) if "home" in settings else default_home(pw.pw_dir),
        layout=settings.get("layout", "auto"),
        spam_folder=settings.get("spam-folder", "Junk"),
        spam_action=settings.get("spam-action", "move"))


def _logical_lines(text: str):
    """(first line number, text) with comments stripped and backslash continuations joined."""
    pending, start = "", 0
    for number, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].rstrip()
        if not pending:
            start = number
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        pending += line
        if pending.strip():
            yield start, pending.strip()
        pending = ""
    if pending.strip():
        yield start, pending.strip()


def read_config(path: str, defaults: dict = None) -> list:
    """The Mailboxes a config file lists. Raises ConfigError."""
    try:
        with open(path, "rb") as fh:
            text = fh.read().decode("utf-8", "replace")
    except OSError as err:
        raise ConfigError(f"{path}: cannot read: {err.strerror}") from None
    entries, star = [], dict(defaults or {})
    star_line = None
    for number, line in _logical_lines(text):
        where = f"{path}:{number}"
        name, *pairs = line.split()
        settings = {}
        for pair in pairs:
            key, sep, value = pair.partition("=")
            if not sep:
                raise ConfigError(f"{where}: expected key=value, got {pair!r}")
            if key not in KEYS:
                raise ConfigError(f"{where}: unknown key {key!r} (known: {', '.join(KEYS)})")
            if key in settings:
                raise ConfigError(f"{where}: {key} given twice")
            try:
                settings[key] = check_value(key, value)
            except ValueError as err:
                raise ConfigError(f"{where}: {err}") from None
        if name == "*":
            if star_line:
                raise ConfigError(f"{where}: a second '*' line (the first is line {star_line})")
            if "user" in settings or "maildir" in settings or "home" in settings:
                raise ConfigError(f"{where}: '*' sets defaults for layout, spam-folder and "
                                  "spam-action only")
            star.update(settings)
            star_line = number
            continue
        entries.append((where, name, settings))
    if not entries:
        raise ConfigError(f"{path}: no mailboxes listed (one user name per line)")
    result, seen_names, seen_dirs, seen_homes = [], {}, {}, {}
    for where, name, settings in entries:
        try:
            box = mailbox(name, {**star, **settings})
        except ValueError as err:
            raise ConfigError(f"{where}: {err}") from None
        if name in seen_names:
            raise ConfigError(f"{where}: {name} is listed twice (first at {seen_names[name]})")
        if box.maildir in seen_dirs:
            raise ConfigError(f"{where}: Maildir {box.maildir} is already trained for "
                              f"{seen_dirs[box.maildir]}")
        if box.home in seen_homes:
            raise ConfigError(f"{where}: state directory {box.home} is already used by "
                              f"{seen_homes[box.home]}")
        seen_names[name] = where
        seen_dirs[box.maildir] = seen_homes[box.home] = f"{name} ({where})"
        result.append(box)
    return result
