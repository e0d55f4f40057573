"""Options and plumbing shared by the per-user subcommands."""

import os

from .. import exitcodes
from ..state import ConfigError, open_state


def parser(prog: str, description: str, epilog: str = ""):
    import argparse     # not at the top: the filter's fast path never needs it
    p = argparse.ArgumentParser(prog=prog, description=description, epilog=epilog,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--home", metavar="DIR",
                   help="state directory (model, mailfilter.conf, priolist.mfp); "
                        "default $MAILFILTER_HOME, else ~/.mailfilter")
    return p


def state_and_config(home):
    """(state, config) or raise ConfigError with a file:line message."""
    state = open_state(home)
    return state, state.load_config()


def config_error_exit(err: ConfigError) -> int:
    from ..log import report
    report(str(err))
    return exitcodes.CONFIG


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
