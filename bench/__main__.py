"""`python -m bench`: mailfilter, bogofilter and crm114 side by side in one run."""

import argparse
import json
import os
import re
import shlex
import statistics
import sys
import time

from . import corpus as corpus_mod
from . import engines as engines_mod
from . import install, latency, plots, report, summary, thresholds

HERE = os.path.dirname(os.path.abspath(__file__))

EPILOG = """\
what it does, per corpus:
  1. each engine starts from an empty state and runs the TREC online protocol
     over the index in order: classify a message, then train it with its true
     label (mailfilter via `mailfilter eval`, the peers one command each);
  2. accuracy: (1-ROCA)%, lam%, ham->SPAM %, spam->GOOD %, UNSURE % at each
     engine's default thresholds, and a learning curve;
  3. latency: each engine classifies the same sample of 5-20 KB messages as a
     new process per message, with its trained state, engines interleaved so
     the mailfilter/peer ratios hold on a noisy machine; peak RSS per process;
  4. writes OUT/REPORT.md, OUT/results.json and PNG charts, and prints the
     headline table.

corpus: a directory with an index file of 'spam PATH' / 'ham PATH' lines
(paths relative to the directory). Get the SpamAssassin corpus with
  bench/get_corpus.sh            # -> bench/corpus/spamassassin/

examples:
  python -m bench --corpus bench/corpus/spamassassin --index index.shuffled
  python -m bench --corpus bench/corpus/spamassassin --index index.shuffled --limit 1000 --out /tmp/b
  python -m bench --corpus DIR --engines mailfilter,bogofilter --no-latency

A full SpamAssassin run (6046 messages) takes about 6 minutes on 2 quiet
cores, most of it crm114's per-message training. Run it with the project's
venv (.venv/bin/python -m bench ...) so `mailfilter` is the installed
console script, as procmail would run it.

Missing peers are installed with apt-get when run as root; otherwise the
bench says which Debian package to install.
"""


def parse_args(argv):
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__, epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--corpus", action="append", required=True, metavar="DIR",
                   help="corpus directory with an index file (repeat for several corpora)")
    p.add_argument("--index", default="index", metavar="NAME",
                   help="index file name inside each corpus (default: index; the SpamAssassin "
                        "benchmark order is index.shuffled)")
    p.add_argument("--limit", type=int, metavar="N", help="only the first N messages of each corpus")
    p.add_argument("--crm-limit", type=int, metavar="N",
                   help="crm114 only on the first N messages (it is the slow one); every engine is "
                        "then also compared on that same prefix")
    p.add_argument("--engines", default="mailfilter,bogofilter,crm114",
                   help="comma-separated subset of: %(default)s")
    p.add_argument("--mailfilter", metavar="CMD",
                   help="how to run mailfilter (default: the installed `mailfilter`, else "
                        "`python3 -m mailfilter` from this checkout)")
    p.add_argument("--out", default=os.path.join(HERE, "results"), metavar="DIR",
                   help="where REPORT.md, results.json and the PNGs go (default: bench/results)")
    p.add_argument("--work", default=os.path.join(HERE, "work"), metavar="DIR",
                   help="engine state and per-message results (default: bench/work, git-ignored)")
    p.add_argument("--latency-sample", type=int, default=300, metavar="N",
                   help="messages in the latency sample (default: %(default)s)")
    p.add_argument("--latency-size", default="5000-20000", metavar="MIN-MAX",
                   help="message sizes for the latency sample, bytes (default: %(default)s)")
    p.add_argument("--no-latency", action="store_true", help="skip the latency and RSS measurements")
    p.add_argument("--no-filter-latency", action="store_true",
                   help="measure classify latency only, not the full procmail-style filter run")
    p.add_argument("--no-install", action="store_true", help="never apt-get missing peers")
    p.add_argument("--seed", type=int, default=1, help="seed for the latency sample (default: %(default)s)")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    args = p.parse_args(argv)
    args.engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    unknown = [e for e in args.engines if e not in engines_mod.ENGINES]
    if unknown or not args.engines:
        p.error(f"unknown engine(s) {unknown}; choose from {', '.join(engines_mod.ENGINES)}")
    m = re.fullmatch(r"(\d+)-(\d+)", args.latency_size)
    if not m:
        p.error("--latency-size wants MIN-MAX in bytes, e.g. 5000-20000")
    args.latency_size = (int(m.group(1)), int(m.group(2)))
    return args


def slugify(name):
    return re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-").lower() or "corpus"


def log(args, text):
    if not args.quiet:
        print(text, file=sys.stderr, flush=True)


def make_engines(args, work):
    made = {}
    for name in args.engines:
        home = os.path.join(work, name)
        if name == "mailfilter":
            command = shlex.split(args.mailfilter) if args.mailfilter else None
            made[name] = engines_mod.Mailfilter(home, command)
        else:
            made[name] = engines_mod.ENGINES[name](home)
    return made


def bench_corpus(args, directory, notes):
    corpus = corpus_mod.load(directory, args.index, args.limit)
    slug = slugify(corpus.name)
    work = os.path.join(args.work, slug)
    os.makedirs(work, exist_ok=True)
    engines = make_engines(args, work)
    run = report.CorpusRun(corpus.name, slug, corpus.index_path, len(corpus.messages), corpus.n_spam)
    log(args, f"bench: {corpus.name}: {len(corpus.messages)} messages ({corpus.n_spam} spam)")

    outcomes = {}
    for name, engine in engines.items():
        messages = corpus.messages
        if name == "crm114" and args.crm_limit and args.crm_limit < len(messages):
            messages = messages[:args.crm_limit]
            run.limits[name] = len(messages)
        log(args, f"bench: {name}: online protocol over {len(messages)} messages")
        engine.reset()
        outcome = engine.run_online(corpus, messages, os.path.join(work, f"{name}.results"), progress=not args.quiet)
        if len(messages) < len(corpus.messages):
            outcome.label = f"{name} (first {len(messages)})"
        outcomes[name] = outcome
        if isinstance(engine, engines_mod.Mailfilter):
            mismatch = engine.check_thresholds(outcome)
            if mismatch:
                notes.append(f"{corpus.name}: {mismatch}")
        run.accuracy[name] = summary.accuracy(outcome)
        run.hardest[name] = summary.hardest(outcome, engine.native)
        run.units[name] = engine.unit
        run.commands[name] = outcome.commands
        run.model_bytes[name] = engine.model_bytes()
        run.model_files[name] = engine.describe_model()
        if isinstance(engine, engines_mod.Crm114):
            run.extra_state_bytes[name] = ("its reaver_cache of message texts", engine.cache_bytes())
        if outcome.errors:
            notes.append(f"{corpus.name}: {name} failed to score {outcome.errors} messages "
                         f"(counted as UNSURE, score 0).")

    if run.limits:
        run.prefix = min(run.limits.values())
        run.prefix_accuracy = {name: summary.accuracy(o.prefix(run.prefix)) for name, o in outcomes.items()}

    if not args.no_latency:
        sample = latency.pick_sample(corpus.messages, args.latency_sample, *args.latency_size, seed=args.seed)
        sizes = sorted(m.size for m in sample)
        run.sample = {"n": len(sample), "min_size": sizes[0], "max_size": sizes[-1],
                      "median_size": int(statistics.median(sizes)), "seed": args.seed}
        # The bare interpreter start-up: the floor under any Python filter's latency.
        # -I -S also skips site-packages set-up: what a lean entry point could save.
        extra = {"python start-up": [sys.executable, "-c", "pass"],
                 "python -I -S start-up": [sys.executable, "-I", "-S", "-c", "pass"]} if "mailfilter" in engines else {}
        modes = ["classify"] + ([] if args.no_filter_latency else ["filter"])
        # Other work on the machine slows long processes more than short ones, so the
        # report says how busy the machine was while the clocks ran.
        run.load["before latency"] = os.getloadavg()
        for mode in modes:
            log(args, f"bench: latency, {mode}, {len(sample)} messages x {len(engines)} engines")
            series = latency.measure(list(engines.values()), sample, mode,
                                     extra=extra if mode == "classify" else None, progress=not args.quiet)
            run.latency[mode] = {name: summary.latency(s) for name, s in series.items()}
            if "mailfilter" in series:
                mf = series["mailfilter"]
                run.ratios[mode] = {
                    peer: (mf.median_ms() / s.median_ms() if s.seconds and mf.seconds else float("nan"),
                           latency.paired_ratio(mf, s))
                    for peer, s in series.items() if peer in engines and peer != "mailfilter"}
        run.load["after latency"] = os.getloadavg()

    if "mailfilter" in outcomes:
        o = outcomes["mailfilter"]
        pr = [-s for s in o.scores]
        half = len(pr) // 2
        current = engines["mailfilter"].native_thresholds()
        if current:
            run.thresholds["current defaults"] = thresholds.rates_at(pr, o.is_spam, *current)
        run.thresholds["recommended, all messages"] = thresholds.recommend(pr, o.is_spam)
        run.thresholds["recommended, second half"] = thresholds.recommend(pr[half:], o.is_spam[half:])
        # Limits met exactly on this corpus may not be met on the next: the same search with headroom.
        run.thresholds["with headroom (ham→SPAM ≤ 0.1%, UNSURE ≤ 4%)"] = thresholds.recommend(
            pr, o.is_spam, max_ham_as_spam_pct=0.1, max_unsure_pct=4.0)

    os.makedirs(args.out, exist_ok=True)
    shown = [outcomes[n] for n in engines]
    run.plots = plots.all_plots(shown, engines, args.out, slug, corpus.name)
    return run


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    started_wall = report.utc_now()
    started = time.perf_counter()
    install.ensure(args.engines, allow_install=not args.no_install)
    versions = {name: engine.version() for name, engine in make_engines(args, args.work).items()}
    notes = []
    runs = [bench_corpus(args, directory, notes) for directory in args.corpus]
    seconds = time.perf_counter() - started
    invocation = f"{_python_shown()} -m bench " + " ".join(shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv))
    os.makedirs(args.out, exist_ok=True)
    report_path = os.path.join(args.out, "REPORT.md")
    report.write(report_path, runs, args.engines, invocation, versions, started_wall, seconds, notes)
    with open(os.path.join(args.out, "results.json"), "w", encoding="utf-8") as fh:
        json.dump({"invocation": invocation, "date": started_wall.isoformat(), "seconds": seconds,
                   "machine": report.machine_info(), "versions": versions, "notes": notes,
                   "corpora": [_jsonable(r) for r in runs]}, fh, indent=1, default=str)
    for run in runs:
        print(f"\n{run.name}: {run.n_messages} messages ({run.n_spam} spam)\n")
        print(report.headline(run, args.engines))
        for mode, ratios in run.ratios.items():
            for peer, (_, paired) in ratios.items():
                print(f"  {mode} latency, mailfilter / {peer}: {paired:.2f}x")
        rec = run.thresholds.get("recommended, all messages")
        if rec:
            print(f"  suggested mailfilter thresholds (pR): spam <= {rec.spam_threshold:g}, "
                  f"good >= {rec.good_threshold:g}")
    print(f"\nwrote {report_path} in {seconds / 60:.1f} min")
    return 0


def _python_shown():
    # The interpreter as the reader would type it: ".venv/bin/python" from the repo, else python3.
    rel = os.path.relpath(sys.executable)
    return rel if not rel.startswith("..") and os.sep in rel else "python3"


def _jsonable(run):
    data = dict(run.__dict__)
    data["thresholds"] = {k: (v.__dict__ if v else None) for k, v in run.thresholds.items()}
    return data


if __name__ == "__main__":
    sys.exit(main())
