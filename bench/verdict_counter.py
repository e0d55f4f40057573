"""What counting verdicts costs the pipe filter (mailfilter/verdicts.py).

    .venv/bin/python -m bench.verdict_counter [--runs N]

Three figures:
1. verdicts.record() alone, on ext4 (a directory beside the checkout's
   tmp) and on tmpfs: microseconds per call.
2. A whole filter process per message, as procmail runs it, with and
   without counting, paired and alternated message by message (a burst of
   load on a shared machine hits both alike): median times and the median
   of the paired differences. "without" runs the same filter with
   verdicts.count replaced by a no-op (sitecustomize on PYTHONPATH), so
   only the counting differs.
3. Many appenders at once: P processes x K records into one file; the byte
   count must be exactly P*K (nothing lost or torn).

Prints the figures; nothing is written outside a temporary directory.
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from mailfilter import verdicts  # noqa: E402

NO_COUNT = "import mailfilter.verdicts as v\nv.count = lambda home, outcome: None\n"
APPENDER = ("import sys; sys.path.insert(0, %r)\nfrom mailfilter.verdicts import record\n"
            "for _ in range(%d): record(%r, 'SPAM')\n")


def per_call(directory, calls=20000):
    started = time.perf_counter()
    for _ in range(calls):
        verdicts.record(directory, "GOOD")
    return (time.perf_counter() - started) / calls * 1e6


def filter_runs(work, runs):
    sample = os.path.join(REPO, "mailfilter", "samples", "inbox", "1-good.eml")
    home = os.path.join(work, "state")
    nocount = os.path.join(work, "nocount")
    os.makedirs(nocount)
    with open(os.path.join(nocount, "sitecustomize.py"), "w") as fh:
        fh.write(NO_COUNT)
    # Compiled modules, as an installed mailfilter has them (pip compiles
    # them): without, every run would compile its imports from source.
    base = dict(os.environ, MAILFILTER_HOME=home, PYTHONPYCACHEPREFIX=os.path.join(work, "pycache"))
    base.pop("PYTHONDONTWRITEBYTECODE", None)
    envs = {"with": dict(base, PYTHONPATH=REPO),
            "without": dict(base, PYTHONPATH=nocount + os.pathsep + REPO)}
    subprocess.run([sys.executable, "-m", "mailfilter", "train", "--spam",
                    os.path.join(REPO, "mailfilter", "samples", "train", "spam"), "--good",
                    os.path.join(REPO, "mailfilter", "samples", "train", "good"), "--no-progress"],
                   env=envs["with"], check=True, capture_output=True)
    times = {"with": [], "without": []}
    with open(sample, "rb") as fh:
        data = fh.read()
    for name in envs:                     # warm-up: compile, fill the page cache
        subprocess.run([sys.executable, "-m", "mailfilter"], input=data, env=envs[name], check=True,
                       capture_output=True)
    for i in range(runs):
        order = ("with", "without") if i % 2 == 0 else ("without", "with")
        for name in order:
            started = time.perf_counter()
            subprocess.run([sys.executable, "-m", "mailfilter"], input=data, env=envs[name],
                           check=True, capture_output=True)
            times[name].append(time.perf_counter() - started)
    counted = sum(verdicts.counts(home)["total"].values())
    return times, counted


def concurrent(directory, processes=8, each=5000):
    procs = [subprocess.Popen([sys.executable, "-c", APPENDER % (REPO, each, directory)])
             for _ in range(processes)]
    for proc in procs:
        proc.wait()
    total = sum(verdicts.counts(directory)["total"].values())
    return total, processes * each


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=200, help="filter runs of each kind (default 200)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="mf-vc-", dir=os.path.join(REPO, ".")) as disk, \
            tempfile.TemporaryDirectory(prefix="mf-vc-", dir="/dev/shm") as shm:
        print(f"record(): {per_call(disk):.1f} us per call on {disk} (disk), "
              f"{per_call(shm):.1f} us on tmpfs")
        times, counted = filter_runs(disk, args.runs)
        med = {k: statistics.median(v) * 1000 for k, v in times.items()}
        diffs = [(a - b) * 1000 for a, b in zip(times["with"], times["without"])]
        print(f"filter process, {args.runs} runs each: median {med['with']:.2f} ms counting, "
              f"{med['without']:.2f} ms not; median paired difference {statistics.median(diffs):+.2f} ms "
              f"({statistics.median(diffs) / med['without'] * 100:+.1f}%); counted {counted} verdicts")
        os.makedirs(os.path.join(shm, "many"))
        got, want = concurrent(os.path.join(shm, "many"))
        print(f"8 processes x 5000 appends at once: {got} bytes counted, {want} expected")


if __name__ == "__main__":
    main()
