"""`mailfilter rebuild`: teach a new model from the training cache."""

import sys

from .. import exitcodes
from ..errors import MailfilterError
from . import common

EPILOG = """\
A model is a table of hashed features, so when an upgrade changes the
features (the tokenizer), the old model can't be read any more: the filter
then marks mail `UNSURE ( 0.00 )` and logs "model written by features vN,
this is vM: run `mailfilter rebuild`". rebuild starts an empty model and
teaches it, oldest first, every message kept in the training cache
(cache.sqlite in the state directory: what you taught, newest
cache_max_messages / cache_max_mb of it, see mailfilter.conf). The ledger
is rewritten to match. A `learn` meanwhile waits for it.

Messages taught before the cache existed, or pushed out of it by newer
ones, are not in it: retrain them with `mailfilter train`.

A model shared on Redis (`store = redis://...`) is not started empty: it
holds every host's and user's learning. The cache is taught into it
instead, skipping what its ledger already holds. After a feature change,
empty it once with `mailfilter shared reset`, then run rebuild for every
user on every host (README "Several mail hosts").

examples:
  mailfilter rebuild
  mailfilter rebuild --user bob                       (as root, for bob)

exit status: 0 rebuilt, 64 bad usage, 66 the cache is empty (nothing to
rebuild from), 67 no such --user, 75 could not save (full disk?): nothing
changed, 77 root on another user's state directory without --user, 78 bad
mailfilter.conf.
"""


def main(argv, prog) -> int:
    p = common.parser(prog, "Teach a new model from the messages kept in the training cache.", EPILOG)
    p.add_argument("--no-progress", action="store_true", help="no progress bar even on a terminal")
    common.user_option(p)
    args = p.parse_args(argv)
    try:
        state, config = common.state_for_writing(args, prog)
    except MailfilterError as err:
        return common.error_exit(err, prog)
    import sqlite3

    from ..learning import rebuild
    try:
        done = rebuild(state, config, progress=not args.no_progress and sys.stderr.isatty())
    except (OSError, sqlite3.Error) as err:
        print(f"mailfilter rebuild: could not save the model, nothing changed: {err}", file=sys.stderr)
        return exitcodes.TEMPFAIL
    if done is None:
        print(f"mailfilter rebuild: the training cache in {state.home} is empty; nothing to rebuild from "
              f"(retrain with `mailfilter train`)", file=sys.stderr)
        return exitcodes.NOINPUT
    if done.shared:
        print(f"taught {done.taught} of {done.cached} cached messages into the shared model at {done.where} "
              f"(it held the rest already)")
    else:
        print(f"rebuilt {done.where} from {done.cached} cached messages")
    return exitcodes.OK
