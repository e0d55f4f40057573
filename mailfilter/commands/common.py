"""Options and plumbing shared by the per-user subcommands."""

import os
import sys

from .. import exitcodes
from ..errors import ConfigError, MailfilterError
from ..state import open_state, resolve_home


def parser(prog: str, description: str, epilog: str = ""):
    from ..usage import ArgumentParser     # not at the top: the filter's fast path never needs it
    p = ArgumentParser(prog=prog, description=description, epilog=epilog)
    p.add_argument("--home", metavar="DIR",
                   help="state directory (model, mailfilter.conf, priolist.mfp); "
                        "default $MAILFILTER_HOME, else ~/.local/share/mailfilter")
    return p


def state_and_config(home):
    """(state, config) or raise ConfigError with a file:line message."""
    state = open_state(home)
    return state, state.load_config()


def user_option(p) -> None:
    p.add_argument("--user", metavar="NAME",
                   help="as root: do it as this user, in their state directory, so what is "
                        "written is theirs (as maildir-train does)")


def state_for_writing(args, prog, preload_modules=()):
    """(state, config) for a command that writes the state directory.

    With --user NAME, root becomes NAME first (relative paths in args must
    be made absolute before: the working directory becomes /). Run as root
    on another user's directory without it, MailfilterError (77) with the
    line to type instead: a model root writes there is unreadable to the
    user's filter. Raises ConfigError for a bad mailfilter.conf.
    """
    from ..privileges import act_as, refuse_foreign
    home = resolve_home(args.home) if args.home else None
    if getattr(args, "user", None):
        act_as(args.user, modules=preload_modules)
    home = home or resolve_home(None)
    refuse_foreign(home, prog)
    return state_and_config(home)


def config_error_exit(err: ConfigError) -> int:
    from ..log import report
    report(str(err))
    return exitcodes.CONFIG


def error_exit(err: MailfilterError, prog: str) -> int:
    """The exit status of a command stopped by err, its line said: a bad
    mailfilter.conf to the log as well (the admin looks there when mail
    stops being filtered), anything else to stderr."""
    if isinstance(err, ConfigError):
        return config_error_exit(err)
    print(f"{prog}: {err}", file=sys.stderr)
    return err.code


def write_all(fd: int, data) -> None:
    """os.write until done; raises OSError on failure (EPIPE, ENOSPC, ...)."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def read_stdin() -> bytes:
    chunks = []
    while True:
        chunk = os.read(0, 1 << 16)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def quick_options(argv):
    """The options procmail and maildrop pass, parsed without argparse.

    argparse (with gettext, locale and shutil, which it imports as soon as an
    argument is added) costs ~5 ms of a ~30 ms run. Anything else, --help
    included, goes to argparse.
    """
    options = {"home": None, "stats_only": False, "exit_code": False}
    args = list(argv)
    while args:
        arg = args.pop(0)
        if arg == "--stats-only":
            options["stats_only"] = True
        elif arg == "--exit-code":
            options["exit_code"] = True
        elif arg == "--home" and args and not args[0].startswith("-"):
            options["home"] = args.pop(0)
        elif arg.startswith("--home=") and len(arg) > 7:
            options["home"] = arg[7:]
        else:
            return None
    return options
