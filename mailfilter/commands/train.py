"""`mailfilter train`: bulk training from Maildirs, mbox files or directories."""

import random
import sys

from .. import exitcodes
from ..errors import ConfigError
from . import common

EPILOG = """\
Each PATH may be a Maildir (its cur/ and new/ are read), an mbox file, a
single message file, or a directory of such files. Spam and good messages
are interleaved in a fixed pseudo-random order, so the online learner never
sees a long run of one kind.

Training is on error or near-error (the thick threshold, learn_margin in
mailfilter.conf), like CRM114's mailtrainer. --passes N repeats the corpus
until a pass makes no mistake, at most N times.

examples:
  mailfilter train --spam ~/Maildir/.Junk --good ~/Maildir
  mailfilter train --spam spam.mbox --good ham.mbox --passes 5
"""


def main(argv, prog) -> int:
    p = common.parser(prog, "Train the filter in bulk.", EPILOG)
    p.add_argument("--spam", nargs="+", default=[], metavar="PATH", help="spam sources")
    p.add_argument("--good", nargs="+", default=[], metavar="PATH", help="good-mail sources")
    p.add_argument("--passes", type=int, default=1, metavar="N",
                   help="repeat until nothing is misclassified, at most N passes (default 1)")
    p.add_argument("--seed", type=int, default=1, help="seed for the interleaving order")
    p.add_argument("--no-progress", action="store_true", help="no progress bar even on a terminal")
    args = p.parse_args(argv)
    if not args.spam and not args.good:
        p.error("give --spam PATH... and/or --good PATH...")
    if args.passes < 1:
        p.error("--passes must be at least 1")
    try:
        state, config = common.state_and_config(args.home)
    except ConfigError as err:
        return common.config_error_exit(err)

    import sqlite3

    from .. import mailsource, store
    from ..classifier import Classifier, label_for
    from ..learning import commit, policy_for
    from ..ledger import Ledger
    from ..rawmail import content_digest, strip_our_headers

    corpus = []
    try:
        for is_spam, paths in ((True, args.spam), (False, args.good)):
            for path in paths:
                for name, raw in mailsource.messages(path):
                    corpus.append((is_spam, name, strip_our_headers(raw)))
    except OSError as err:
        print(f"mailfilter train: {err.filename}: {err.strerror}", file=sys.stderr)
        return exitcodes.NOINPUT
    random.Random(args.seed).shuffle(corpus)
    policy = policy_for(config)
    show = not args.no_progress and sys.stderr.isatty()
    with store.writer_lock(state.lock_path):
        try:
            model = store.load_copy(state.model_path, config.model_bits)
        except store.ModelError as err:
            print(f"mailfilter train: {err}", file=sys.stderr)
            return exitcodes.DATAERR
        classifier = Classifier(config, model)
        prepared = []
        for is_spam, name, raw in corpus:
            prepared.append((is_spam, classifier.features(raw)[1], content_digest(raw)))
        for number in range(1, args.passes + 1):
            mistakes = trained = 0
            items = prepared
            if show:
                from tqdm import tqdm
                items = tqdm(prepared, desc=f"pass {number}", unit="msg", file=sys.stderr)
            for is_spam, ids, _ in items:
                if label_for(model.pr(ids), config) != ("SPAM" if is_spam else "GOOD"):
                    mistakes += 1
                if model.learn(ids, is_spam, policy):
                    trained += 1
            print(f"pass {number}: {len(prepared)} messages, {mistakes} not classified right before "
                  f"training, {trained} trained", file=sys.stderr)
            if mistakes == 0:
                break
        try:
            ledger = Ledger(state.ledger_path, model.generation)
            try:
                commit(state, model, ledger,
                       [(digest, "spam" if is_spam else "good", None) for is_spam, _, digest in prepared])
            finally:
                ledger.close()
        except (OSError, sqlite3.Error) as err:
            # A full disk, in the ledger or the model: the old model stands.
            print(f"mailfilter train: could not save the model, nothing changed: {err}", file=sys.stderr)
            return exitcodes.TEMPFAIL
    print(f"trained model saved: {state.model_path} "
          f"({model.trained_spam} spam, {model.trained_good} good trained so far)")
    return exitcodes.OK
