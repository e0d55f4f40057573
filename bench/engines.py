"""The three filters under test, one class each, each run the way its users run it.

Every engine gets a fresh state directory, and exposes:
  reset()                 fresh, empty state
  run_online(...)         the TREC online protocol over the messages -> Outcome
                          (with a feedback: only what it reports is trained)
  classify_argv()         one classify as a new process (stdin = the message)
  filter_argv()           what procmail runs: the message in, the message with headers out
  model_bytes()           model size on disk
  native(score)           TREC score (higher = spammier) -> the engine's own unit
  native_thresholds()     its default verdict thresholds, in its own unit
"""

import glob
import math
import os
import re
import shutil
import subprocess
import sys
import time

from . import corpus as corpus_mod
from . import proc, protocol


class EngineError(RuntimeError):
    pass


def _first_line(argv):
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as err:
        return f"unknown ({err})"
    text = (out.stdout or out.stderr).strip()
    return text.splitlines()[0].strip() if text else "unknown"


class Engine:
    name = "engine"
    unit = "score"

    def __init__(self, home):
        self.home = os.path.abspath(home)

    def reset(self):
        shutil.rmtree(self.home, ignore_errors=True)
        os.makedirs(self.home)

    def run_online(self, messages, results_path, progress=True, feedback=None):
        outcome = protocol.run_per_message(self, messages, results_path, progress, feedback)
        outcome.commands = self.protocol_commands()
        return outcome

    def model_files(self):
        return []

    def model_bytes(self):
        return sum(os.path.getsize(p) for p in self.model_files() if os.path.exists(p))

    def native(self, score):
        return score

    def describe_model(self):
        return ", ".join(os.path.basename(p) for p in self.model_files())


class Mailfilter(Engine):
    """This project, through `mailfilter eval` (one process) and `mailfilter classify`."""

    name = "mailfilter"
    unit = "pR"

    def __init__(self, home, command=None):
        super().__init__(home)
        self.command = command or default_mailfilter_command()

    def version(self):
        return _first_line(self.command + ["--version"])

    def run_online(self, messages, results_path, progress=True, feedback=None):
        # An index of exactly these files (absent ones skipped, rewritten
        # copies for a scenario), beside the results.
        index = results_path + ".index"
        corpus_mod.write_index(index, messages)
        argv = self.command + ["eval", index, "--home", self.home, "--results", results_path, "--save"]
        if feedback is not None:
            argv += ["--feedback", str(feedback), "--seed", str(feedback.seed)]
        started = time.perf_counter()
        done = subprocess.run(argv, capture_output=True, text=True)
        seconds = time.perf_counter() - started
        if done.returncode != 0:
            raise EngineError(f"{' '.join(argv)} exited {done.returncode}: {done.stderr.strip()[-2000:]}")
        outcome = protocol.read_results(results_path, self.name)
        if len(outcome) != len(messages):
            raise EngineError(f"mailfilter eval wrote {len(outcome)} results for {len(messages)} messages")
        outcome.paths = [m.rel for m in messages]      # as the corpus index names them
        outcome.seconds = seconds
        outcome.commands = [" ".join(argv)]
        if progress:
            print("  mailfilter eval: " + " | ".join(done.stdout.strip().splitlines()), file=sys.stderr)
        return outcome

    def stale_files(self):
        """This checkout's mailfilter/*.py files that the installed package the
        command runs lacks or has different: [] when they match or the command
        runs the checkout itself. The venv holds a regular install (start-up
        cost), so after a pull the bench would measure the old code."""
        if len(self.command) != 1:
            return []
        try:
            with open(self.command[0], "rb") as fh:
                first = fh.readline()
        except OSError:
            return []
        if not first.startswith(b"#!"):
            return []
        interpreter = first[2:].split()[0].decode(errors="replace")
        where = subprocess.run([interpreter, "-I", "-c", "import mailfilter, os; print(os.path.dirname(mailfilter.__file__))"],
                               capture_output=True, text=True).stdout.strip()
        checkout = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "mailfilter")
        if not where or not os.path.isdir(where) or os.path.samefile(where, checkout):
            return []
        differ = []
        for root, _, files in os.walk(checkout):
            for name in files:
                if not name.endswith(".py"):
                    continue
                mine = os.path.join(root, name)
                rel = os.path.relpath(mine, checkout)
                try:
                    with open(mine, "rb") as a, open(os.path.join(where, rel), "rb") as b:
                        same = a.read() == b.read()
                except OSError:
                    same = False
                if not same:
                    differ.append(rel)
        return sorted(differ)

    def classify_argv(self):
        return self.command + ["classify", "--home", self.home]

    def filter_argv(self):
        return self.command + ["--home", self.home]

    def model_files(self):
        return [os.path.join(self.home, "model.mfm")]

    def native(self, score):
        return -score           # score = -pR

    def native_thresholds(self):
        if getattr(self, "_thresholds", None) is None:
            self._thresholds = _configured_thresholds(self.home)
        return self._thresholds

    def check_thresholds(self, outcome):
        """Make native_thresholds() agree with the verdicts eval actually gave.

        The bench imports mailfilter's config defaults, but the `mailfilter`
        it runs may be another build; if the verdicts contradict those
        defaults, use the thresholds the verdicts imply. Returns a note or None.
        """
        configured = _configured_thresholds(self.home)
        pr = [-x for x in outcome.scores]
        spam_t = _threshold_between([p for p, v in zip(pr, outcome.verdicts) if v == "SPAM"],
                                    [p for p, v in zip(pr, outcome.verdicts) if v != "SPAM"], upper_closed=False)
        good_t = _threshold_between([p for p, v in zip(pr, outcome.verdicts) if v != "GOOD"],
                                    [p for p, v in zip(pr, outcome.verdicts) if v == "GOOD"], upper_closed=True)
        implied = (spam_t[0], good_t[0])

        def fits(value, interval):
            # eval writes scores to 4 decimals: a message a hair below the
            # threshold and one a hair above it read back as the same pR.
            lo, hi, closed_hi = interval[1]
            lo, hi = lo - SCORE_ROUNDING, hi + SCORE_ROUNDING
            return value is not None and (lo <= value < hi if not closed_hi else lo < value <= hi)

        if configured and fits(configured[0], spam_t) and fits(configured[1], good_t):
            self._thresholds = configured
            return None
        self._thresholds = implied
        return (f"mailfilter's verdicts imply thresholds spam <= {implied[0]:g}, good >= {implied[1]:g} (pR), "
                f"not the imported config's {configured}; the threshold table uses the implied ones.")


# `mailfilter eval --results` prints score=%.4f: each pR read back is within this of the true one.
SCORE_ROUNDING = 0.5e-4


def _configured_thresholds(home):
    # What this checkout's mailfilter would use: defaults, system config, the home's config.
    try:
        from mailfilter.state import Config, parse_config, SYSTEM_CONFIG, CONFIG_NAME
        config = parse_config(SYSTEM_CONFIG, Config())
        config = parse_config(os.path.join(home, CONFIG_NAME), config)
        return config.spam_threshold, config.good_threshold
    except Exception:       # an incompatible core: fall back to what the verdicts imply
        return None


def _threshold_between(below, above, upper_closed):
    """(nicest value, (lo, hi, upper_closed)) separating two score sets.

    For the spam threshold, SPAM has pR <= t < the rest: t in [max(below), min(above)).
    For the good threshold, the rest < t <= GOOD: t in (max(below), min(above)].
    """
    lo = max(below) if below else float("-inf")
    hi = min(above) if above else float("inf")
    if lo == float("-inf") and hi == float("inf"):
        return None, (lo, hi, upper_closed)
    for digits in range(0, 5):      # fewest decimals first: the number a person would configure
        step = 10.0 ** -digits
        if upper_closed:
            candidate = math.ceil(lo / step + 1e-9) * step if lo != float("-inf") else math.floor(hi / step) * step
            if lo < candidate <= hi:
                return round(candidate, digits), (lo, hi, upper_closed)
        else:
            candidate = math.floor(hi / step - 1e-9) * step if hi != float("inf") else math.ceil(lo / step) * step
            if lo <= candidate < hi:
                return round(candidate, digits), (lo, hi, upper_closed)
    return (lo if not upper_closed else hi), (lo, hi, upper_closed)


class Bogofilter(Engine):
    """bogofilter: `-T` to classify, then `-s`/`-n` to register the true label."""

    name = "bogofilter"
    unit = "spamicity"

    def reset(self):
        super().reset()
        # An empty wordlist, so the first classify scores robx (as every later
        # unknown word does) instead of failing on a missing database.
        with open(os.devnull, "rb") as empty:
            subprocess.run(["bogoutil", "-l", os.path.join(self.home, "wordlist.db")], stdin=empty, check=True)
        self._cutoffs = self._read_cutoffs()

    def _read_cutoffs(self):
        # Whatever /etc/bogofilter.cf says (Debian: spam 0.99, ham 0.45).
        out = subprocess.run(["bogofilter", "-d", self.home, "-Q"], capture_output=True, text=True).stdout
        ham = re.search(r"^ham_cutoff\s*=\s*([0-9.eE+-]+)", out, re.M)
        spam = re.search(r"^spam_cutoff\s*=\s*([0-9.eE+-]+)", out, re.M)
        return (float(spam.group(1)) if spam else 0.99, float(ham.group(1)) if ham else 0.45)

    def version(self):
        return _first_line(["bogofilter", "-V"])

    def classify_argv(self):
        return ["bogofilter", "-d", self.home, "-T"]

    def filter_argv(self):
        # Passthrough with X-Bogosity header; -e: exit 0 for ham too, as in a procmail filter.
        return ["bogofilter", "-d", self.home, "-p", "-e"]

    def classify(self, path):
        run = proc.run(self.classify_argv(), path)
        # -T prints "S 0.999", "H 0.01" or "U 0.5"; exit 0/1/2, 3 on error.
        parts = run.stdout.decode("ascii", "replace").split()
        if run.returncode > 2 or len(parts) < 2:
            return 0.5, "UNSURE", False
        verdict = {"S": "SPAM", "H": "GOOD", "U": "UNSURE"}.get(parts[0], "UNSURE")
        return float(parts[1]), verdict, True

    def train(self, path, is_spam):
        run = proc.run(["bogofilter", "-d", self.home, "-s" if is_spam else "-n"], path, capture=False)
        if run.returncode != 0:
            raise EngineError(f"bogofilter register failed ({run.returncode}): {run.stderr.decode(errors='replace')}")

    def protocol_commands(self):
        return [f"bogofilter -d {self.home} -T < MSG", f"bogofilter -d {self.home} -s|-n < MSG"]

    def model_files(self):
        return [os.path.join(self.home, "wordlist.db")]

    def native_thresholds(self):
        if not hasattr(self, "_cutoffs"):       # a state reused without reset()
            self._cutoffs = self._read_cutoffs()
        return self._cutoffs        # (spam, ham): score >= spam is SPAM, <= ham is GOOD


class Crm114(Engine):
    """crm114's mailreaver.crm with its stock mailfilter.cf, in a state directory of its own."""

    name = "crm114"
    unit = "pR"
    SHARE = "/usr/share/crm114"
    # mailreaver inserts maillib.crm by absolute path; it runs ./mailtrainer.crm
    # (and that ./shuffle.crm) relative to the fileprefix.
    SCRIPTS = ("mailreaver.crm", "mailtrainer.crm", "maillib.crm", "shuffle.crm", "mailfilter.cf")
    CACHE_DIRS = ("texts", "prob_good", "prob_spam", "known_good", "known_spam", "empty")

    def reset(self):
        super().reset()
        for script in self.SCRIPTS:
            shutil.copy2(os.path.join(self.SHARE, script), self.home)
        for empty in ("rewrites.mfp", "priolist.mfp"):
            open(os.path.join(self.home, empty), "w").close()
        for sub in self.CACHE_DIRS:
            os.makedirs(os.path.join(self.home, "reaver_cache", sub))
        for css in ("spam.css", "nonspam.css"):
            with open(os.devnull, "rb") as empty:
                subprocess.run(["cssutil", "-b", "-r", css], cwd=self.home, stdin=empty,
                               stdout=subprocess.DEVNULL, check=True)

    def version(self):
        return _first_line(["crm", "-v"])

    def _base(self):
        return ["crm", "-u", self.home, "mailreaver.crm", f"--fileprefix={self.home}/"]

    def classify_argv(self):
        return self._base() + ["--stats_only"]

    def filter_argv(self):
        # The full mailreaver run procmail does: headers added, text cached for training.
        return self._base()

    def classify(self, path):
        run = proc.run(self.classify_argv(), path)
        try:
            pr = float(run.stdout.split()[0])
        except (IndexError, ValueError):
            return 0.0, "UNSURE", False
        spam_t, good_t = self.native_thresholds()
        verdict = "SPAM" if pr <= spam_t else "GOOD" if pr >= good_t else "UNSURE"
        return -pr, verdict, True

    def train(self, path, is_spam):
        # mailreaver caches the text and hands it to mailtrainer.crm, which trains
        # only if the message is not already beyond the thick threshold.
        run = proc.run(self._base() + ["--spam" if is_spam else "--good"], path, capture=False)
        if run.returncode != 0:
            raise EngineError(f"crm114 train failed ({run.returncode}): {run.stderr.decode(errors='replace')}")

    def protocol_commands(self):
        base = " ".join(self._base())
        return [f"{base} --stats_only < MSG", f"{base} --spam|--good < MSG"]

    def model_files(self):
        return [os.path.join(self.home, "spam.css"), os.path.join(self.home, "nonspam.css")]

    def cache_bytes(self):
        total = 0
        for path in glob.glob(os.path.join(self.home, "reaver_cache", "*", "*")):
            total += os.path.getsize(path)
        return total

    def native(self, score):
        return -score

    def native_thresholds(self):
        # mailfilter.cf: pR <= spam_threshold is SPAM, >= good_threshold is GOOD.
        if not hasattr(self, "_thresholds"):
            spam, good = -5.0, 5.0
            try:
                with open(os.path.join(self.home, "mailfilter.cf"), encoding="utf-8", errors="replace") as fh:
                    cf = fh.read()
                m = re.search(r"^:spam_threshold:\s*/([-+0-9.]+)/", cf, re.M)
                spam = float(m.group(1)) if m else spam
                m = re.search(r"^:good_threshold:\s*/([-+0-9.]+)/", cf, re.M)
                good = float(m.group(1)) if m else good
            except OSError:
                pass
            self._thresholds = (spam, good)
        return self._thresholds


def default_mailfilter_command():
    """The `mailfilter` users would run: the console script beside this Python
    (a venv), else on PATH, else this Python with the repo's package."""
    beside = os.path.join(os.path.dirname(sys.executable), "mailfilter")
    if os.access(beside, os.X_OK):
        return [beside]
    found = shutil.which("mailfilter")
    if found:
        return [found]
    # Not installed: run the package from this checkout. Children inherit
    # PYTHONPATH, so every engine process sees the same code.
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [repo, os.environ.get("PYTHONPATH")]))
    return [sys.executable, "-m", "mailfilter"]


ENGINES = {"mailfilter": Mailfilter, "bogofilter": Bogofilter, "crm114": Crm114}
