"""`mailfilter eval INDEX`: TREC online evaluation in one process."""

import sys

from .. import exitcodes
from ..errors import MailfilterError
from . import common

EPILOG = """\
INDEX has one line per message, in the order to process them:
  spam spam/00001.7848dde101aa985090474a91ec93fcf0
  ham easy_ham/00002.9c4069e25e1ef370c078db7ee85ff9ac
paths relative to the index file. Each message is classified, then trained
with its true label, exactly as `mailfilter learn` would (thick threshold).

--results FILE gets one line per message:
  PATH judge=spam score=7.31 verdict=SPAM
score is -pR, so higher is spammier (the TREC convention). With --feedback
each line also says whether the message was trained: trained=1 or trained=0.

--feedback spam=P,good=P trains only what a user would report: the messages
the filter got wrong or marked UNSURE, each spam reported with probability P
for spam, each good message with P for good. --seed fixes the draws (one per
message), so the same verdicts always give the same reports.

Without --home the run starts from an empty model and saves nothing
($MAILFILTER_HOME is deliberately not used: a benchmark must never touch a
user's model). With --home it starts from that model (and its
priolist.mfp); --save writes the final model back.

--spamd SOCKET runs the same protocol through `mailfilter serve` (REPORT,
then TELL for each message), on the model the daemon gives --user: start it
on an empty state directory to compare with a plain run; the results file
is then byte-identical.

examples:
  mailfilter eval corpus/index.shuffled --results /tmp/results.txt
  mailfilter serve --socket /tmp/e.sock --home /tmp/empty &
  mailfilter eval corpus/index.shuffled --spamd /tmp/e.sock --results /tmp/daemon.txt
  mailfilter eval corpus/index.shuffled --feedback spam=0.8,good=0.2 --seed 1
"""


def main(argv, prog) -> int:
    p = common.parser(prog, "Run the TREC spam-track online protocol over an index of messages.", EPILOG)
    p.add_argument("index", help="index file: lines 'spam PATH' or 'ham PATH'")
    p.add_argument("--results", metavar="FILE", help="write per-message scores here")
    p.add_argument("--limit", type=int, metavar="N", help="only the first N messages")
    p.add_argument("--save", action="store_true", help="save the final model into --home")
    p.add_argument("--progress", action="store_true", help="show a progress bar (default on a terminal)")
    p.add_argument("--spamd", metavar="SOCKET",
                   help="classify and train through `mailfilter serve` at SOCKET (or HOST:PORT)")
    p.add_argument("--user", metavar="NAME", help="with --spamd: whose model (spamc's -u)")
    p.add_argument("--feedback", metavar="spam=P,good=P",
                   help="train only reported errors and UNSUREs, each with its class's probability")
    p.add_argument("--seed", type=int, default=1, help="seed for --feedback's draws (default: %(default)s)")
    args = p.parse_args(argv)
    if args.save and not args.home:
        p.error("--save needs --home")
    if args.spamd and (args.home or args.save):
        p.error("--spamd uses the daemon's model: no --home or --save")
    if args.user and not args.spamd:
        p.error("--user needs --spamd")
    if args.feedback and args.spamd:
        p.error("--feedback runs in this process: not with --spamd")

    from .. import evaluate, metrics
    feedback = None
    if args.feedback:
        try:
            feedback = evaluate.Feedback.parse(args.feedback, args.seed)
        except ValueError as err:
            p.error(f"--feedback {args.feedback}: {err}")
    from ..classifier import Classifier
    from ..learning import session_for
    from ..state import Config
    from ..store import ModelError, empty

    try:
        entries = evaluate.read_index(args.index, args.limit)
    except OSError as err:
        print(f"mailfilter eval: {args.index}: {err.strerror}", file=sys.stderr)
        return exitcodes.NOINPUT
    except ValueError as err:
        print(f"mailfilter eval: {err}", file=sys.stderr)
        return exitcodes.DATAERR
    try:
        if args.save:
            state, config = common.state_for_writing(args, prog)
        elif args.home:
            state, config = common.state_and_config(args.home)
        else:
            config = Config()
    except MailfilterError as err:
        return common.error_exit(err, prog)

    out = open(args.results, "w", encoding="utf-8") if args.results else None
    bar = None
    if args.progress or sys.stderr.isatty():
        from tqdm import tqdm
        bar = tqdm(total=len(entries), unit="msg", file=sys.stderr)

    def on_result(rel, is_spam, verdict, trained=True):
        if out:
            out.write(f"{rel} judge={'spam' if is_spam else 'ham'} score={verdict.spamminess:.4f} verdict={verdict.label}"
                      + (f" trained={int(trained)}\n" if feedback else "\n"))
        if bar:
            bar.update(1)

    def evaluate_with(classifier, session=None):
        result = evaluate.run(classifier, entries, on_result, session, feedback)
        if bar:
            bar.close()
        _print_report(result, metrics, feedback)      # before the commit: a failed save still reports
        return result

    import sqlite3
    try:
        if args.spamd:
            from ..serve import remote_eval
            result = remote_eval.run(args.spamd, args.user, entries, on_result)
            if bar:
                bar.close()
            _print_report(result, metrics)
        elif args.save:
            # The run is a training session: it holds the writer lock from
            # the first message to the commit, so a `learn` meanwhile waits
            # and then builds on this model instead of being overwritten.
            with session_for(state, config) as session:
                classifier = Classifier(config, session.model, _user_rules(state))
                evaluate_with(classifier, session)
        elif args.home:
            from ..store import open_store
            # A private copy: this run teaches it and throws it away.
            model = open_store(state, config).open_for_reading().copy()
            evaluate_with(Classifier(config, model, _user_rules(state)))
        else:
            evaluate_with(Classifier(config, empty(config.model_bits)))
    except ModelError as err:
        print(f"mailfilter eval: {err}", file=sys.stderr)
        return exitcodes.DATAERR
    except MailfilterError as err:          # a message file of the index can't be read
        print(f"mailfilter eval: {err}", file=sys.stderr)
        return err.code
    except (OSError, sqlite3.Error) as err:
        # A full disk: the old model stands (the commit is atomic); say so
        # in one line and ask for a retry, as learn and train do.
        print(f"mailfilter eval: could not save the model: {err}", file=sys.stderr)
        return exitcodes.TEMPFAIL
    finally:
        if out:
            out.close()
    return exitcodes.OK


def _user_rules(state):
    from ..rules import load
    rule_list, errors = load(state.rules_path)
    for error in errors:
        print(error, file=sys.stderr)
    return rule_list


def _print_report(result, metrics, feedback=None):
    n = len(result.scores)
    n_spam = sum(result.is_spam)
    rates = metrics.verdict_rates(result.verdicts, result.is_spam)
    roca = metrics.one_minus_roca_percent(result.scores, result.is_spam)
    lines = [
        f"messages        {n} ({n_spam} spam, {n - n_spam} ham)",
        f"(1-ROCA)%       {roca:.4f}",
        f"ham as spam %   {rates['ham_as_spam_pct']:.2f}",
        f"spam as ham %   {rates['spam_as_ham_pct']:.2f}",
        f"unsure %        {rates['unsure_pct']:.2f} (ham {rates['ham_unsure_pct']:.2f}, "
        f"spam {rates['spam_unsure_pct']:.2f})",
        f"messages/s      {n / result.seconds if result.seconds else 0:.0f}",
    ]
    if feedback:
        trained = sum(result.trained)
        lines.append(f"trained         {trained} ({100.0 * trained / n if n else 0:.2f}%), feedback {feedback}")
    try:
        sys.stdout.write("\n".join(lines) + "\n")
        sys.stdout.flush()
    except OSError as err:
        # `eval --save | head`: the reader left; the run is still saved.
        print(f"mailfilter eval: could not print the report: {err.strerror or err}", file=sys.stderr)
