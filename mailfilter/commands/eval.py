"""`mailfilter eval INDEX`: TREC online evaluation in one process."""

import sys

from .. import exitcodes
from ..errors import ConfigError
from . import common

EPILOG = """\
INDEX has one line per message, in the order to process them:
  spam spam/00001.7848dde101aa985090474a91ec93fcf0
  ham easy_ham/00002.9c4069e25e1ef370c078db7ee85ff9ac
paths relative to the index file. Each message is classified, then trained
with its true label, exactly as `mailfilter learn` would (thick threshold).

--results FILE gets one line per message:
  PATH judge=spam score=7.31 verdict=SPAM
score is -pR, so higher is spammier (the TREC convention).

Without --home the run starts from an empty model and saves nothing
($MAILFILTER_HOME is deliberately not used: a benchmark must never touch a
user's model). With --home it starts from that model (and its
priolist.mfp); --save writes the final model back.

example:
  mailfilter eval corpus/index.shuffled --results /tmp/results.txt
"""


def main(argv, prog) -> int:
    p = common.parser(prog, "Run the TREC spam-track online protocol over an index of messages.", EPILOG)
    p.add_argument("index", help="index file: lines 'spam PATH' or 'ham PATH'")
    p.add_argument("--results", metavar="FILE", help="write per-message scores here")
    p.add_argument("--limit", type=int, metavar="N", help="only the first N messages")
    p.add_argument("--save", action="store_true", help="save the final model into --home")
    p.add_argument("--progress", action="store_true", help="show a progress bar (default on a terminal)")
    args = p.parse_args(argv)
    if args.save and not args.home:
        p.error("--save needs --home")

    from .. import evaluate, metrics, store
    from ..classifier import Classifier
    from ..learning import policy_for
    from ..state import Config

    try:
        entries = evaluate.read_index(args.index, args.limit)
    except OSError as err:
        print(f"mailfilter eval: {args.index}: {err.strerror}", file=sys.stderr)
        return exitcodes.NOINPUT
    except ValueError as err:
        print(f"mailfilter eval: {err}", file=sys.stderr)
        return exitcodes.DATAERR
    try:
        if args.home:
            state, config = common.state_and_config(args.home)
            classifier = Classifier.for_state(state, config, lambda e: print(e, file=sys.stderr),
                                              load=store.load_copy)
        else:
            config = Config()
            classifier = Classifier(config, store.empty(config.model_bits))
    except ConfigError as err:
        return common.config_error_exit(err)

    out = open(args.results, "w", encoding="utf-8") if args.results else None
    bar = None
    if args.progress or sys.stderr.isatty():
        from tqdm import tqdm
        bar = tqdm(total=len(entries), unit="msg", file=sys.stderr)

    def on_result(rel, is_spam, verdict):
        if out:
            out.write(f"{rel} judge={'spam' if is_spam else 'ham'} score={verdict.spamminess:.4f} verdict={verdict.label}\n")
        if bar:
            bar.update(1)

    try:
        result = evaluate.run(classifier, policy_for(config), entries, on_result)
    except OSError as err:
        print(f"mailfilter eval: {err}", file=sys.stderr)
        return exitcodes.NOINPUT
    finally:
        if out:
            out.close()
        if bar:
            bar.close()
    n = len(result.scores)
    n_spam = sum(result.is_spam)
    rates = metrics.verdict_rates(result.verdicts, result.is_spam)
    roca = metrics.one_minus_roca_percent(result.scores, result.is_spam)
    print(f"messages        {n} ({n_spam} spam, {n - n_spam} ham)")
    print(f"(1-ROCA)%       {roca:.4f}")
    print(f"ham as spam %   {rates['ham_as_spam_pct']:.2f}")
    print(f"spam as ham %   {rates['spam_as_ham_pct']:.2f}")
    print(f"unsure %        {rates['unsure_pct']:.2f} (ham {rates['ham_unsure_pct']:.2f}, spam {rates['spam_unsure_pct']:.2f})")
    print(f"messages/s      {n / result.seconds if result.seconds else 0:.0f}")
    if args.save:
        classifier.model.generation += 1
        try:
            with store.writer_lock(state.lock_path):
                store.save(state.model_path, classifier.model)
        except OSError as err:
            # A full disk: the old model stands (the save is atomic); say so
            # in one line and ask for a retry, as learn and train do.
            print(f"mailfilter eval: could not save the model: {err}", file=sys.stderr)
            return exitcodes.TEMPFAIL

    return exitcodes.OK
