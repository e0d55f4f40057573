"""`mailfilter shared`: the model shared by several mail hosts on Redis."""

import json

from .. import exitcodes
from ..errors import MailfilterError
from . import common

EPILOG = """\
With `store = redis://HOST:PORT/DB` (or rediss://, unix:///PATH?db=N) in
mailfilter.conf, every state directory naming the same store shares one
model: the global weights, learnt from every user of every host, and each
user's own weights in the same table (see README "Several mail hosts").

actions:
  info            the store, its generation, size and users, this user's
                  ledger, learns queued here while Redis was down (JSON)
  replay          apply those queued learns now, in order (any learn does
                  it first anyway)
  export FILE     the whole shared model and every ledger, to FILE (0600)
  import FILE     load an export into an empty store (--replace: over the
                  model it holds); the salt comes along, so users keep their
                  personal weights
  reset           empty the shared model (weights, counters, every ledger)
                  and start one of this release's features: after an
                  upgrade that changed them, then `mailfilter rebuild` for
                  every user on every host. Before the upgrade: replay each
                  host's queued learns, export a backup

examples:
  mailfilter shared info
  mailfilter shared export /var/backups/mailfilter-shared.mfx
  mailfilter shared import --replace /var/backups/mailfilter-shared.mfx
  mailfilter shared reset                            (then on every host: mailfilter rebuild --user NAME)

exit status: 0 done, 64 bad usage, 65 an export file that is not one,
66 no such FILE, 69 Redis unreachable, 75 a reset that learns kept
interrupting (nothing reset: run it again), 78 no `store =` in
mailfilter.conf or a bad one.
"""


def main(argv, prog) -> int:
    p = common.parser(prog, "Inspect, back up, restore the model shared on Redis.", EPILOG)
    p.add_argument("action", choices=("info", "replay", "export", "import", "reset"))
    p.add_argument("file", nargs="?", help="the export file (export, import)")
    p.add_argument("--replace", action="store_true", help="import over an existing shared model")
    args = p.parse_args(argv)
    if args.action in ("export", "import") and not args.file:
        p.error(f"{args.action} needs a FILE")
    from ..sharedadmin import run
    try:
        state, config = common.state_and_config(args.home)
        answer = run(state, config, args.action, args.file, args.replace)
    except MailfilterError as err:
        return common.error_exit(err, prog)
    print(json.dumps(answer, indent=1, sort_keys=True))
    return exitcodes.OK
