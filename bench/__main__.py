"""`python -m bench`: mailfilter, bogofilter and crm114 side by side in one run."""

import argparse
import dataclasses
import json
import os
import re
import shlex
import statistics
import sys
import time

from . import anchors, latency, plots, report, scenarios, summary, thresholds
from . import corpus as corpus_mod
from . import engines as engines_mod
from . import install

HERE = os.path.dirname(os.path.abspath(__file__))

EPILOG = """\
what it does, per corpus and scenario:
  1. each engine starts from an empty state and runs the TREC online protocol
     over the index in order: classify a message, then train it with its true
     label (mailfilter via `mailfilter eval`, the peers one command each);
  2. accuracy: (1-ROCA)%, spam missed at 0.1% and 0.01% of ham misclassified,
     lam%, ham->SPAM %, spam->GOOD %, UNSURE % at each engine's default
     thresholds, both halves of the stream, (1-ROCA)% per window of messages,
     and a learning curve;
  3. latency (after the first scenario): each engine classifies the same sample
     of 5-20 KB messages as a new process per message, with its trained state,
     engines interleaved so the mailfilter/peer ratios hold on a noisy machine;
     peak RSS per process;
  4. writes OUT/REPORT.md (with the README's comparison table), OUT/results.json
     and PNG charts, and prints the comparison table. Per-message results and
     the hardest messages stay in WORK (git-ignored): some corpora may only be
     published as aggregate figures.

scenarios (--scenarios, default all three):
  plain         every message trained with its true label
  site-headers  every message first gets the headers a mailbox adds (Return-Path,
                X-Original-To, Delivered-To, a Received from the local MX with a
                delivery date from the message's Date) and a stale X-CRM114-*
                block; the copies are written once under WORK, the same bytes
                for every engine
  feedback      only messages the engine got wrong or marked UNSURE are trained,
                spam reported with probability 0.8, good mail with 0.2 (one
                seeded draw per message: the same reports for the same verdicts)

corpus: a directory with an index file of 'spam PATH' / 'ham PATH' lines
(paths relative to the index file). Files the index lists but the directory
lacks are skipped and counted in the report.
  bench/get_corpus.sh            # -> bench/corpus/spamassassin/
trec07p (TREC 2007 public spam corpus, research use only; not redistributable):
get it from https://plg.uwaterloo.ca/~gvcormac/treccorpus07/ after accepting
its usage agreement, unpack it, and point --corpus at the trec07p directory
with --index full/index.

--index pairs with --corpus in order (one --index for all corpora is fine).

examples:
  python -m bench --corpus bench/corpus/spamassassin --index index.shuffled
  python -m bench --corpus bench/corpus/spamassassin --index index.shuffled --limit 1000 --out /tmp/b
  python -m bench --corpus DIR --engines mailfilter,bogofilter --scenarios plain,feedback --no-latency
  # the issue-10 run: both corpora, every scenario, crm114 on trec07p's first 10,000
  nice python -m bench --corpus DIR/trec07p --index full/index \\
      --corpus bench/corpus/spamassassin --index index.shuffled --crm-limit 10000

A full run over trec07p and SpamAssassin with all scenarios took 101 minutes
on 2 busy cores, most of it the peers' per-message processes (bogofilter 13-25
minutes per trec07p pass, crm114 10-16 minutes per 10,000 messages); the report
says how long it took. Run it with the project's venv (.venv/bin/python -m bench ...)
so `mailfilter` is the installed console script, as procmail would run it.

Missing peers are installed with apt-get when run as root; otherwise the
bench says which Debian package to install.
"""


def parse_args(argv):
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__, epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--corpus", action="append", required=True, metavar="DIR",
                   help="corpus directory with an index file (repeat for several corpora)")
    p.add_argument("--index", action="append", metavar="NAME",
                   help="index file inside the corpus (default: index); give one per --corpus, in "
                        "the same order, or one for all (SpamAssassin: index.shuffled; trec07p: full/index)")
    p.add_argument("--limit", type=int, metavar="N", help="only the first N messages of each corpus")
    p.add_argument("--crm-limit", type=int, metavar="N",
                   help="crm114 only on the first N messages (it is the slow one); every engine is "
                        "then also compared on that same prefix")
    p.add_argument("--engines", default="mailfilter,bogofilter,crm114",
                   help="comma-separated subset of: %(default)s")
    p.add_argument("--scenarios", default=",".join(scenarios.SCENARIOS),
                   help="comma-separated subset of: %(default)s (the first one also gets the latency, "
                        "threshold and chart sections)")
    p.add_argument("--skip", default="", metavar="SCENARIO:ENGINE,...",
                   help="leave an engine out of one scenario, e.g. feedback:crm114 (the report says so)")
    p.add_argument("--window", type=int, default=10000, metavar="N",
                   help="(1-ROCA)%% per window of N messages, for corpora longer than that (default: %(default)s)")
    p.add_argument("--mailfilter", metavar="CMD",
                   help="how to run mailfilter (default: the installed `mailfilter`, else "
                        "`python3 -m mailfilter` from this checkout)")
    p.add_argument("--out", default=os.path.join(HERE, "results"), metavar="DIR",
                   help="where REPORT.md, results.json and the PNGs go (default: bench/results)")
    p.add_argument("--work", default=os.path.join(HERE, "work"), metavar="DIR",
                   help="engine state, rewritten copies and per-message results (default: bench/work, "
                        "git-ignored)")
    p.add_argument("--latency-sample", type=int, default=300, metavar="N",
                   help="messages in the latency sample (default: %(default)s)")
    p.add_argument("--latency-size", default="5000-20000", metavar="MIN-MAX",
                   help="message sizes for the latency sample, bytes (default: %(default)s)")
    p.add_argument("--no-latency", action="store_true", help="skip the latency and RSS measurements")
    p.add_argument("--no-filter-latency", action="store_true",
                   help="measure classify latency only, not the full procmail-style filter run")
    p.add_argument("--no-install", action="store_true", help="never apt-get missing peers")
    p.add_argument("--seed", type=int, default=1,
                   help="seed for the latency sample and the feedback draws (default: %(default)s)")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    args = p.parse_args(argv)
    args.engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    unknown = [e for e in args.engines if e not in engines_mod.ENGINES]
    if unknown or not args.engines:
        p.error(f"unknown engine(s) {unknown}; choose from {', '.join(engines_mod.ENGINES)}")
    try:
        args.scenarios = scenarios.parse(args.scenarios)
    except ValueError as err:
        p.error(str(err))
    args.skip = _parse_skip(p, args.skip, args.scenarios, args.engines)
    indexes = args.index or ["index"]
    if len(indexes) == 1:
        indexes = indexes * len(args.corpus)
    if len(indexes) != len(args.corpus):
        p.error(f"{len(args.index)} --index for {len(args.corpus)} --corpus: give one, or one per corpus")
    args.pairs = list(zip(args.corpus, indexes))
    m = re.fullmatch(r"(\d+)-(\d+)", args.latency_size)
    if not m:
        p.error("--latency-size wants MIN-MAX in bytes, e.g. 5000-20000")
    args.latency_size = (int(m.group(1)), int(m.group(2)))
    if args.window <= 0:
        p.error("--window must be positive")
    return args


def _parse_skip(p, text, chosen, engines):
    skip = set()
    names = [s.name for s in chosen]
    for part in filter(None, (x.strip() for x in text.split(","))):
        scenario, sep, engine = part.partition(":")
        if not sep or scenario not in names or engine not in engines:
            p.error(f"--skip {part!r}: want SCENARIO:ENGINE with a chosen scenario ({', '.join(names)}) "
                    f"and engine ({', '.join(engines)})")
        skip.add((scenario, engine))
    return skip


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


def new_feedback(args):
    from mailfilter.evaluate import Feedback
    return Feedback(scenarios.FEEDBACK_RATES["spam"], scenarios.FEEDBACK_RATES["good"], args.seed)


def bench_scenario(args, scenario, corpus, work, run, notes):
    """Every engine through one scenario; returns (ScenarioRun, {engine: Outcome}, engines)."""
    srun = report.ScenarioRun(scenario.name, scenario.title)
    if scenario.feedback:
        srun.feedback = dict(scenarios.FEEDBACK_RATES, seed=args.seed)
    scenario_work = os.path.join(work, scenario.name)
    os.makedirs(scenario_work, exist_ok=True)
    messages = corpus.messages
    if scenario.transform:
        log(args, f"bench: {scenario.name}: rewritten copies under {scenario_work}/corpus")
        messages = scenarios.materialise(corpus, messages, os.path.join(scenario_work, "corpus"),
                                         progress=not args.quiet)
    engines = make_engines(args, scenario_work)
    outcomes = {}
    for name, engine in engines.items():
        if (scenario.name, name) in args.skip:
            srun.skipped[name] = "left out with --skip"
            continue
        chosen = messages
        if name == "crm114" and args.crm_limit and args.crm_limit < len(chosen):
            chosen = chosen[:args.crm_limit]
            srun.limits[name] = len(chosen)
        log(args, f"bench: {corpus.name}: {scenario.name}: {name}: online protocol over {len(chosen)} messages")
        engine.reset()
        feedback = new_feedback(args) if scenario.feedback else None
        outcome = engine.run_online(chosen, os.path.join(scenario_work, f"{name}.results"),
                                    progress=not args.quiet, feedback=feedback)
        if len(chosen) < len(messages):
            outcome.label = f"{name} (first {len(chosen)})"
        outcomes[name] = outcome
        if isinstance(engine, engines_mod.Mailfilter):
            mismatch = engine.check_thresholds(outcome)
            if mismatch:
                notes.append(f"{corpus.name}, {scenario.name}: {mismatch}")
        srun.accuracy[name] = summary.accuracy(outcome)
        srun.halves[name] = summary.halves(outcome)
        if len(outcome) > args.window:
            srun.windows[name] = summary.windows(outcome, args.window)
        srun.commands[name] = outcome.commands
        run.units[name] = engine.unit
        if outcome.errors:
            notes.append(f"{corpus.name}, {scenario.name}: {name} failed to score {outcome.errors} messages "
                         f"(counted as UNSURE, score 0).")
    if srun.limits:
        srun.prefix = min(srun.limits.values())
        srun.prefix_accuracy = {name: summary.accuracy(o.prefix(srun.prefix)) for name, o in outcomes.items()}
    return srun, outcomes, engines


def measure_latency(args, run, corpus, engines):
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


def mailfilter_thresholds(run, outcome, engine):
    pr = [-s for s in outcome.scores]
    half = len(pr) // 2
    current = engine.native_thresholds()
    if current:
        run.thresholds["current defaults"] = thresholds.rates_at(pr, outcome.is_spam, *current)
    run.thresholds["recommended, all messages"] = thresholds.recommend(pr, outcome.is_spam)
    run.thresholds["recommended, second half"] = thresholds.recommend(pr[half:], outcome.is_spam[half:])
    # Limits met exactly on this corpus may not be met on the next: the same search with headroom.
    run.thresholds["with headroom (ham→SPAM ≤ 0.1%, UNSURE ≤ 4%)"] = thresholds.recommend(
        pr, outcome.is_spam, max_ham_as_spam_pct=0.1, max_unsure_pct=4.0)


def bench_corpus(args, directory, index_name, notes):
    corpus = corpus_mod.load(directory, index_name, args.limit)
    slug = slugify(corpus.name)
    work = os.path.join(args.work, slug)
    os.makedirs(work, exist_ok=True)
    run = report.CorpusRun(corpus.name, slug, corpus.index_path, len(corpus.messages), corpus.n_spam,
                           listed=corpus.listed, skipped=len(corpus.skipped),
                           anchors=anchors.for_corpus(directory, index_name), window_size=args.window)
    log(args, f"bench: {corpus.name}: {len(corpus.messages)} messages ({corpus.n_spam} spam)"
        + (f"; {len(corpus.skipped)} listed in the index are absent, skipped" if corpus.skipped else ""))
    if corpus.skipped:
        # Their names stay in the work directory: some corpora forbid publishing them.
        with open(os.path.join(work, "skipped.txt"), "w", encoding="utf-8") as fh:
            fh.write("\n".join(corpus.skipped) + "\n")
    os.makedirs(args.out, exist_ok=True)
    all_outcomes = {}
    for number, scenario in enumerate(args.scenarios):
        srun, outcomes, engines = bench_scenario(args, scenario, corpus, work, run, notes)
        run.scenarios[scenario.name] = srun
        all_outcomes[scenario.name] = outcomes
        if number:
            continue
        # The first scenario (plain, unless left out) is the one the cost, the
        # thresholds and the charts describe.
        ran = {name: e for name, e in engines.items() if name in outcomes}
        for name, engine in ran.items():
            run.model_bytes[name] = engine.model_bytes()
            run.model_files[name] = engine.describe_model()
            if isinstance(engine, engines_mod.Crm114):
                run.extra_state_bytes[name] = ("its reaver_cache of message texts", engine.cache_bytes())
        if not args.no_latency and ran:
            measure_latency(args, run, corpus, ran)
        if "mailfilter" in outcomes:
            mailfilter_thresholds(run, outcomes["mailfilter"], ran["mailfilter"])
        report.write_hardest(os.path.join(work, "hardest.md"), corpus.name,
                             {name: summary.hardest(o, ran[name].native) for name, o in outcomes.items()},
                             run.units)
        if ran:
            run.plots = plots.all_plots([outcomes[n] for n in ran], ran, args.out, slug, corpus.name)
    if len(all_outcomes) > 1:
        run.plots["scenarios"] = plots.scenario_roc(all_outcomes, args.out, slug, corpus.name)
    return run


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    started_wall = report.utc_now()
    started = time.perf_counter()
    install.ensure(args.engines, allow_install=not args.no_install)
    probes = make_engines(args, args.work)
    versions = {name: engine.version() for name, engine in probes.items()}
    notes = []
    if "mailfilter" in probes:
        stale = probes["mailfilter"].stale_files()
        if stale:
            note = (f"the installed `{' '.join(probes['mailfilter'].command)}` differs from this checkout's "
                    f"mailfilter/ in {len(stale)} file(s) ({', '.join(stale[:5])}{', ...' if len(stale) > 5 else ''}): "
                    f"these figures are the installed code's. Reinstall with `.venv/bin/python -m pip install .` "
                    f"(or `bash contrib/bootstrap.sh`) to measure the checkout.")
            notes.append(note)
            log(args, "bench: WARNING: " + note)
    runs = [bench_corpus(args, directory, index_name, notes) for directory, index_name in args.pairs]
    seconds = time.perf_counter() - started
    invocation = f"{_python_shown()} -m bench " + " ".join(shlex.quote(a) for a in argv)
    os.makedirs(args.out, exist_ok=True)
    report_path = os.path.join(args.out, "REPORT.md")
    report.write(report_path, runs, args.engines, invocation, versions, started_wall, seconds, notes)
    with open(os.path.join(args.out, "results.json"), "w", encoding="utf-8") as fh:
        json.dump({"invocation": invocation, "date": started_wall.isoformat(), "seconds": seconds,
                   "machine": report.machine_info(), "versions": versions, "notes": notes,
                   "scenarios": [s.name for s in args.scenarios],
                   "corpora": [_jsonable(r) for r in runs]}, fh, indent=1, default=str)
    print("\n" + report.comparison_table(runs, args.engines) + "\n")
    for run in runs:
        print(f"{run.name}: {run.n_messages} messages ({run.n_spam} spam)\n")
        print(report.headline(run, args.engines) + "\n")
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
    data["scenarios"] = {name: dict(s.__dict__) for name, s in run.scenarios.items()}
    data["anchors"] = dataclasses.asdict(run.anchors) if run.anchors else None
    data["thresholds"] = {k: (v.__dict__ if v else None) for k, v in run.thresholds.items()}
    return data


if __name__ == "__main__":
    sys.exit(main())
