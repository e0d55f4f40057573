"""`mailfilter command-secret`: the password of command mail (training by forwarding)."""

import sys

from .. import exitcodes
from ..errors import ConfigError
from . import common

EPILOG = """\
Command mail trains the filter from any mail client, POP3 and phone
included: forward a message to your own address, as an attachment, with the
subject

    command SECRET spam          (or: good, undo)

and the filter learns it and puts a short report in your INBOX instead of
the command mail. `command SECRET maxprio -REGEX`, `minprio +REGEX` and
`delprio REGEX` edit your priolist.mfp. See README "Training by mail".

This command prints your SECRET, making one (20 random letters and digits)
and writing it to mailfilter.conf as `command_secret = ...` if there is
none. Mail without the right secret is ordinary mail: never learned, never
answered.

examples:
  mailfilter command-secret            show the secret (make one if needed)
  mailfilter command-secret --new      replace it; the old one stops working

exit status: 0 done, 64 bad usage, 73 could not write mailfilter.conf,
78 mailfilter.conf is not valid as it is (nothing changed).
"""


def main(argv, prog) -> int:
    p = common.parser(prog, "Show (or make) the secret of command mail.", EPILOG)
    p.add_argument("--new", action="store_true", help="make a new secret, replacing the old one")
    args = p.parse_args(argv)
    from ..commandmail import ensure_secret
    from ..state import open_state
    state = open_state(args.home)
    try:
        secret, created, problem = ensure_secret(state, new=args.new)
    except ConfigError as err:
        return common.config_error_exit(err)
    except OSError as err:
        print(f"mailfilter command-secret: could not write {state.config_path}: {err.strerror or err}",
              file=sys.stderr)
        return exitcodes.CANTCREAT
    if problem:
        print(f"mailfilter command-secret: {state.config_path}: {problem}; make a new one with --new",
              file=sys.stderr)
    where = "new, written to" if created else "in"
    print(f"your command-mail secret ({where} {state.config_path}):\n\n    {secret}\n\n"
          f"To train from any mail client, forward a message to yourself as an attachment\n"
          f"with the subject:\n\n    command {secret} spam      (or good, or undo)")
    return exitcodes.OK
