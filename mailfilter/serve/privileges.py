"""Becoming a user for good: what a worker does before it opens any file
of that user's (as maildir-train's per-user processes do)."""

import os


class PrivilegeError(Exception):
    pass


def become(pw) -> None:
    """Drop to pw's uid, gid and supplementary groups, and check that root
    can't be regained. A no-op when we already are that user."""
    if os.geteuid() == pw.pw_uid and os.getuid() == pw.pw_uid:
        return
    os.setgroups(os.getgrouplist(pw.pw_name, pw.pw_gid))
    os.setgid(pw.pw_gid)
    os.setuid(pw.pw_uid)
    if pw.pw_uid != 0:
        try:
            os.setuid(0)
        except PermissionError:
            pass
        else:
            raise PrivilegeError(f"could regain root after dropping to {pw.pw_name}")
    if os.getuid() != pw.pw_uid or os.geteuid() != pw.pw_uid or os.getegid() != pw.pw_gid:
        raise PrivilegeError(f"failed to become {pw.pw_name}")
    os.environ["HOME"] = pw.pw_dir
    os.environ["USER"] = os.environ["LOGNAME"] = pw.pw_name
    os.environ.pop("MAILFILTER_HOME", None)
    try:
        os.chdir(pw.pw_dir)
    except OSError:
        os.chdir("/")
