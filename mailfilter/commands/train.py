"""`mailfilter train`: bulk training from Maildirs, mbox files or directories."""

import os
import random
import sys

from .. import exitcodes
from ..errors import MailfilterError
from . import common

EPILOG = """\
Each PATH may be a Maildir (its cur/ and new/ are read, not its subfolders:
~/Maildir is the INBOX), an mbox file, a single message file, or a directory
of such files. Spam and good messages
are interleaved in a fixed pseudo-random order, so the online learner never
sees a long run of one kind. Messages are read one at a time: any number of
them trains in bounded memory.

Each message is taught as `mailfilter learn` would (one already learned with
the same label is skipped); --passes N goes over the corpus again until a
pass finds nothing misclassified, at most N times. Everything is saved at
the end, in one commit; a `learn` that runs meanwhile waits for it.

examples:
  mailfilter train --spam ~/Maildir/.Junk --good ~/Maildir
  mailfilter train --spam spam.mbox --good ham.mbox --passes 5
  mailfilter train --user bob --spam /home/bob/Maildir/.Junk --good /home/bob/Maildir
                                                  (as root: runs as bob, files are bob's)

exit status: 0 saved, 64 bad usage, 65 the model can't be read (see the
message), 66 a PATH is missing, 67 no such --user, 75 could not save (full
disk?): nothing changed, 77 root on another user's state directory without
--user, 78 bad mailfilter.conf.
"""


def main(argv, prog) -> int:
    p = common.parser(prog, "Train the filter in bulk.", EPILOG)
    p.add_argument("--spam", nargs="+", default=[], metavar="PATH", help="spam sources")
    p.add_argument("--good", nargs="+", default=[], metavar="PATH", help="good-mail sources")
    p.add_argument("--passes", type=int, default=1, metavar="N",
                   help="repeat until nothing is misclassified, at most N passes (default 1)")
    p.add_argument("--seed", type=int, default=1, help="seed for the interleaving order")
    p.add_argument("--no-progress", action="store_true", help="no progress bar even on a terminal")
    common.user_option(p)
    args = p.parse_args(argv)
    if not args.spam and not args.good:
        p.error("give --spam PATH... and/or --good PATH...")
    if args.passes < 1:
        p.error("--passes must be at least 1")
    # Absolute before --user makes the working directory /.
    args.spam = [os.path.abspath(path) for path in args.spam]
    args.good = [os.path.abspath(path) for path in args.good]
    try:
        state, config = common.state_for_writing(args, prog, preload_modules=("tqdm",))
    except MailfilterError as err:
        return common.error_exit(err, prog)

    import sqlite3

    from .. import mailsource
    from ..learning import session_for, train
    from ..store import ModelError

    show = not args.no_progress and sys.stderr.isatty()
    bar = _bar(show, "listing", "msg")
    locations = []
    try:
        for is_spam, paths in ((True, args.spam), (False, args.good)):
            for path in paths:
                for location in mailsource.locate(path):
                    locations.append((location, is_spam))
                    bar.update(1)
    except OSError as err:
        bar.close()
        print(f"mailfilter train: {err.filename}: {err.strerror}", file=sys.stderr)
        return exitcodes.NOINPUT
    bar.close()
    random.Random(args.seed).shuffle(locations)

    bars = [_bar(show, "pass 1", "msg", len(locations))]

    def on_pass(report):
        bars[-1].close()
        print(f"pass {report.number}: {report.messages} messages, {report.mistakes} not classified right "
              f"before training, {report.taught} trained", file=sys.stderr)
        bars.append(_bar(show, f"pass {report.number + 1}", "msg", len(locations)))

    def read(location):
        try:
            return mailsource.read(location)
        except FileNotFoundError:
            # Moved away since it was listed (a live Maildir): nothing to teach.
            print(f"mailfilter train: {location.name}: vanished; skipped", file=sys.stderr)
            return None

    try:
        with session_for(state, config) as session:
            train(session, locations, read, args.passes,
                  on_message=lambda: bars[-1].update(1), on_pass=on_pass)
            model = session.model
            shared = getattr(session.store, "shared", False) and session.store.where
    except ModelError as err:
        print(f"mailfilter train: {err}", file=sys.stderr)
        return exitcodes.DATAERR
    except (OSError, sqlite3.Error) as err:
        # A full disk, in the ledger or the model: the old model stands.
        print(f"mailfilter train: could not save the model, nothing changed: {err}", file=sys.stderr)
        return exitcodes.TEMPFAIL
    finally:
        bars[-1].close()
    print(f"trained model saved: {f'the shared model at {shared}' if shared else state.model_path} "
          f"({model.trained_spam} spam, {model.trained_good} good trained so far)")
    _warn_one_class(model)
    return exitcodes.OK


def _warn_one_class(model) -> None:
    """A model that has seen only one kind calls nearly everything that kind."""
    missing = [(kind, option) for kind, option, count in (("spam", "--spam ~/Maildir/.Junk", model.trained_spam),
                                                          ("good mail", "--good ~/Maildir", model.trained_good))
               if count == 0]
    if len(missing) == 1:
        kind, option = missing[0]
        print(f"mailfilter train: warning: the model has learned no {kind} yet, so it can't tell the two "
              f"apart; train some too, e.g. mailfilter train {option}", file=sys.stderr)


class _NoBar:
    def update(self, n):
        pass

    def close(self):
        pass


def _bar(show, desc, unit, total=None):
    if not show:
        return _NoBar()
    from tqdm import tqdm
    return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr)
