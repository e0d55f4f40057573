"""`python -m bench.japanese`: is Japanese mail treated fairly? (issue 10, item 5)

A user's model learned mostly English mail (a corpus: SpamAssassin, or
trec07p) and then a few Japanese spam. Does their Japanese good mail still
come out GOOD, and new Japanese spam SPAM? The Japanese mail is
tests/fixtures/japanese (synthetic and labelled; its README says what each
case is). Everything runs through the command line of the checkout under
test, each in a private state directory:

  1. `mailfilter train --good HAM --spam SPAM` over the corpus, once;
  2. per run, a copy of that state taught the run's Japanese spam with
     `mailfilter learn --spam`, one process each, as a user reports mail;
  3. `mailfilter classify` of every other Japanese case, a process each,
     as procmail runs it; GOOD / UNSURE / SPAM counts and the pR spread.

Runs: "no seeds" (English only); "fixed seeds", the four in seed-spam.txt
that tests/test_japanese.py teaches; --rotations more sets of four drawn at
random (seeded), so the figure does not hang on which spam the user
happened to report; and "fixed + K good", where the user then also teaches
the first K Japanese good cases that were not GOOD (what the filter's
"Please train this message" asks for).

--code DIR runs another checkout (the previous learner, say) through its own
command line, so two versions compare on the same runs. Every Japanese case
reached you@example.com through one server, mx.example.com; by default that
server's Received line is added to every corpus message too, as the user's
own mailbox would have it, so the hop says nothing about language
(--no-site-hop leaves the corpus as it is).

    bench/get_corpus.sh
    python -m bench.japanese --corpus bench/corpus/spamassassin --code /work/lab/baseline --code .
    python -m bench.japanese --corpus /work/corpora/trec07p/full --index index.present

trec07p is for research use only: its messages are copied to a temporary
directory and deleted; only counts are printed (and, with --json, the
verdicts on the Japanese cases).
"""

import argparse
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(REPO, "tests", "fixtures", "japanese")
SEED_LIST = os.path.join(FIXTURES, "seed-spam.txt")
_STATUS = re.compile(r"^(SPAM|GOOD|UNSURE) \( ([-+]?[0-9.]+) \)")
_FROM_DOMAIN = re.compile(rb"^From:[^\n]*?@([A-Za-z0-9.-]+)", re.M | re.I)


def cases():
    """(good paths, spam paths, fixed seed paths), sorted."""
    def listing(folder):
        path = os.path.join(FIXTURES, folder)
        return sorted(os.path.join(path, n) for n in os.listdir(path) if n.endswith(".eml"))
    good, spam = listing("good"), listing("spam")
    with open(SEED_LIST, encoding="utf-8") as fh:
        names = [line.split("#")[0].strip() for line in fh]
    seeds = [os.path.join(FIXTURES, "spam", n) for n in names if n]
    missing = [s for s in seeds if s not in spam]
    if missing:
        raise SystemExit(f"bench.japanese: {SEED_LIST} names cases that are not there: {missing}")
    return good, spam, seeds


def site_hop(raw: bytes, number: int) -> bytes:
    """raw with the Received line mx.example.com writes for you@example.com
    on top (tests/fixtures/japanese/mailkit.received)."""
    m = _FROM_DOMAIN.search(raw[:20000])
    helo = m.group(1).decode("ascii", "replace").lower() if m else "unknown"
    hop = (f"Received: from {helo} ({helo} [198.51.100.{number % 250 + 1}])\n\tby mx.example.com (Postfix) "
           f"with ESMTP id 4Q{number:012d}\n\tfor <you@example.com>; Mon, 01 Jul 2024 12:00:00 +0900\n")
    # A leading mbox "From " line stays first.
    if raw.startswith(b"From "):
        end = raw.find(b"\n") + 1
        return raw[:end] + hop.encode("ascii") + raw[end:]
    return hop.encode("ascii") + raw


def stage_corpus(corpus_dir, index_name, limit, workdir, add_hop):
    """workdir/ham, workdir/spam: the corpus's messages, as symlinks, or as
    copies with the site hop added. Returns (ham count, spam count)."""
    sys.path.insert(0, REPO)
    from mailfilter.evaluate import read_index
    entries = read_index(os.path.join(corpus_dir, index_name), limit)
    counts = {True: 0, False: 0}
    for folder in ("ham", "spam"):
        os.makedirs(os.path.join(workdir, folder))
    for number, (is_spam, _, path) in enumerate(entries):
        if not os.path.exists(path):
            continue                # trec07p's absent messages
        target = os.path.join(workdir, "spam" if is_spam else "ham", f"{number:06d}")
        if add_hop:
            with open(path, "rb") as src, open(target, "wb") as dst:
                dst.write(site_hop(src.read(), number))
        else:
            os.symlink(path, target)
        counts[is_spam] += 1
    return counts[False], counts[True]


def _env(code):
    """The environment to run `code`'s mailfilter in (with cwd=code: `-m`
    puts the working directory first on the path)."""
    env = dict(os.environ)
    env.pop("MAILFILTER_HOME", None)
    env["PYTHONPATH"] = code
    return env


def train(code, home, ham_dir, spam_dir, seeds, order_seed):
    args = [sys.executable, "-m", "mailfilter", "train", "--home", home, "--no-progress",
            "--seed", str(order_seed), "--good", ham_dir, "--spam", spam_dir, *seeds]
    done = subprocess.run(args, env=_env(code), cwd=code, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"bench.japanese: train failed ({code}): {done.stderr.strip()}")


def classify(code, home, path):
    with open(path, "rb") as fh:
        done = subprocess.run([sys.executable, "-m", "mailfilter", "classify", "--home", home],
                              stdin=fh, env=_env(code), cwd=code, capture_output=True, text=True)
    m = _STATUS.match(done.stdout)
    if done.returncode or not m:
        raise SystemExit(f"bench.japanese: classify {path} failed: {done.stdout}{done.stderr}")
    return m.group(1), float(m.group(2))


def version_of(code):
    try:
        commit = subprocess.run(["git", "-C", code, "rev-parse", "--short", "HEAD"],
                                capture_output=True, text=True).stdout.strip()
    except OSError:
        commit = ""
    return commit or os.path.basename(code.rstrip("/"))


def learn(code, home, path, is_spam):
    with open(path, "rb") as fh:
        done = subprocess.run([sys.executable, "-m", "mailfilter", "learn", "--home", home, "-q",
                               "--spam" if is_spam else "--good"],
                              stdin=fh, env=_env(code), cwd=code, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"bench.japanese: learn {path} failed ({code}): {done.stderr.strip()}")


def run_one(code, base_home, seeds, taught_good, tests_good, tests_spam, tmp):
    """A copy of the English-trained state, taught `seeds` as spam and
    `taught_good` as good (`mailfilter learn`, one process each, as a user
    reports mail), then every test case classified."""
    home = os.path.join(tmp, "home")
    shutil.rmtree(home, ignore_errors=True)
    shutil.copytree(base_home, home)
    for path in seeds:
        learn(code, home, path, True)
    for path in taught_good:
        learn(code, home, path, False)
    result = {"good": {}, "spam": {}}
    for group, paths in (("good", tests_good), ("spam", tests_spam)):
        for path in paths:
            result[group][os.path.basename(path)] = classify(code, home, path)
    shutil.rmtree(home)
    return result


def counts(verdicts):
    out = {"GOOD": 0, "UNSURE": 0, "SPAM": 0}
    for label, _ in verdicts.values():
        out[label] += 1
    return out


def median(values):
    values = sorted(values)
    half = len(values) // 2
    return values[half] if len(values) % 2 else (values[half - 1] + values[half]) / 2


def row(version, name, result, n_good, n_spam):
    g, s = counts(result["good"]), counts(result["spam"])
    good_prs = [pr for _, pr in result["good"].values()]
    spam_prs = [pr for _, pr in result["spam"].values()]
    return (f"{version:<10} {name:<15} | {g['GOOD']:>5}/{n_good:<4} {g['UNSURE']:>6} {g['SPAM']:>4} "
            f"{min(good_prs):>7.2f} {median(good_prs):>7.2f} | "
            f"{s['SPAM']:>9}/{n_spam:<4} {s['UNSURE']:>6} {s['GOOD']:>4} {median(spam_prs):>7.2f}")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.japanese", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="examples:\n"
                                            "  python -m bench.japanese --corpus bench/corpus/spamassassin\n"
                                            "  python -m bench.japanese --corpus bench/corpus/spamassassin "
                                            "--code /work/lab/baseline --code .\n\n"
                                            "The module's docstring and README ('Japanese and other charsets') "
                                            "say what is measured.")
    parser.add_argument("--corpus", required=True, help="a corpus directory with an index (bench/get_corpus.sh)")
    parser.add_argument("--index", default="index", help="index file in the corpus (default: index)")
    parser.add_argument("--limit", type=int, help="only the first N messages of the index")
    parser.add_argument("--code", action="append", default=[],
                        help="a mailfilter checkout to run (repeatable; default: this one)")
    parser.add_argument("--rotations", type=int, default=4,
                        help="random seed sets besides the fixed one (default 4)")
    parser.add_argument("--teach-good", type=int, default=2, metavar="K",
                        help="also a run where the user, after the fixed seeds, teaches the first K "
                             "Japanese good cases that were not GOOD (default 2; 0: no such run)")
    parser.add_argument("--no-site-hop", dest="site_hop", action="store_false",
                        help="leave the corpus messages as they are")
    parser.add_argument("--json", help="write every verdict here")
    args = parser.parse_args(argv)
    codes = [os.path.abspath(c) for c in (args.code or [REPO])]
    good, spam, fixed = cases()
    rng = random.Random(10)
    seed_sets = [("no seeds", []), ("fixed seeds", fixed)]
    for k in range(args.rotations):
        seed_sets.append((f"random seeds {k + 1}", sorted(rng.sample(spam, len(fixed)))))

    started = time.time()
    out = {"corpus": os.path.abspath(args.corpus), "index": args.index, "limit": args.limit,
           "site_hop": args.site_hop, "runs": []}
    with tempfile.TemporaryDirectory(prefix="bench-japanese-") as tmp:
        ham_n, spam_n = stage_corpus(os.path.abspath(args.corpus), args.index, args.limit, tmp, args.site_hop)
        print(f"English training: {ham_n} ham, {spam_n} spam ({args.corpus}, {args.index}"
              f"{f', first {args.limit}' if args.limit else ''}; site hop {'added' if args.site_hop else 'not added'})")
        print(f"Japanese cases: {len(good)} good, {len(spam)} spam; each run teaches {len(fixed)} of the spam "
              f"(`mailfilter learn`) and classifies the rest")
        print()
        header = (f"{'mailfilter':<10} {'run':<15} | {'good: GOOD':>10} {'UNSURE':>6} {'SPAM':>4} "
                  f"{'min pR':>7} {'med pR':>7} | {'new spam: SPAM':>14} {'UNSURE':>6} {'GOOD':>4} {'med pR':>7}")
        print(header)
        print("-" * len(header))
        for code in codes:
            version = version_of(code)
            base = os.path.join(tmp, "english")
            os.makedirs(base)
            train(code, base, os.path.join(tmp, "ham"), os.path.join(tmp, "spam"), [], 1)
            runs = []
            for name, seeds in seed_sets:
                tests_spam = [s for s in spam if s not in seeds]
                result = run_one(code, base, seeds, [], good, tests_spam, tmp)
                print(row(version, name, result, len(good), len(tests_spam)), flush=True)
                runs.append({"code": code, "version": version, "run": name,
                             "seeds": [os.path.basename(p) for p in seeds], "taught_good": [], **result})
            if args.teach_good:
                fixed_run = runs[1]["good"]
                taught = [p for p in good if fixed_run[os.path.basename(p)][0] != "GOOD"][:args.teach_good]
                tests_good = [p for p in good if p not in taught]
                tests_spam = [s for s in spam if s not in fixed]
                result = run_one(code, base, fixed, taught, tests_good, tests_spam, tmp)
                name = f"fixed + {len(taught)} good"
                print(row(version, name, result, len(tests_good), len(tests_spam)), flush=True)
                runs.append({"code": code, "version": version, "run": name,
                             "seeds": [os.path.basename(p) for p in fixed],
                             "taught_good": [os.path.basename(p) for p in taught], **result})
            shutil.rmtree(base)
            out["runs"].extend(runs)
        print()
        for run in out["runs"]:
            if run["run"] != "fixed seeds":
                continue
            wrong_good = [f"{n} {lab} ({pr:+.2f})" for n, (lab, pr) in sorted(run["good"].items()) if lab != "GOOD"]
            wrong_spam = [f"{n} {lab} ({pr:+.2f})" for n, (lab, pr) in sorted(run["spam"].items()) if lab != "SPAM"]
            print(f"{run['version']}, fixed seeds: good not GOOD: {', '.join(wrong_good) or 'none'}")
            print(f"{run['version']}, fixed seeds: new spam not SPAM: {', '.join(wrong_spam) or 'none'}")
    print(f"\n{time.time() - started:.0f} s")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(out, fh, indent=1, ensure_ascii=False)


if __name__ == "__main__":
    main()
