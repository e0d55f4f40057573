"""REPORT.md and the headline table: what was measured, how, on what machine."""

import datetime
import math
import os
import platform
import subprocess
from dataclasses import dataclass, field

from . import summary

SPAM_MISSED = [summary.spam_missed_key(h) for h in summary.HAM_POINTS_PCT]
# Issue 10's targets for the scenarios, relative to the plain run.
SITE_HEADERS_MAX_RATIO = 1.10
FEEDBACK_MAX_HAM_AS_SPAM_PCT = 0.1


@dataclass
class ScenarioRun:
    """Every engine through one scenario on one corpus."""
    name: str
    title: str
    accuracy: dict = field(default_factory=dict)          # engine -> summary.accuracy()
    halves: dict = field(default_factory=dict)            # engine -> [accuracy of 1st half, of 2nd half]
    windows: dict = field(default_factory=dict)           # engine -> [(start, (1-ROCA)%)]
    prefix: int = 0                                       # set when an engine ran on fewer messages
    prefix_accuracy: dict = field(default_factory=dict)   # engine -> summary.accuracy() on that prefix
    limits: dict = field(default_factory=dict)            # engine -> its own message limit
    skipped: dict = field(default_factory=dict)           # engine -> why it did not run
    commands: dict = field(default_factory=dict)          # engine -> [command lines]
    feedback: dict = field(default_factory=dict)          # rates and seed, for the feedback scenario


@dataclass
class CorpusRun:
    """Everything measured on one corpus."""
    name: str
    slug: str
    index_path: str
    n_messages: int
    n_spam: int
    listed: int = 0                                       # index entries read (within --limit)
    skipped: int = 0                                      # of those, files absent from the corpus
    anchors: object = None                                # anchors.CorpusAnchors, or None
    scenarios: dict = field(default_factory=dict)         # scenario name -> ScenarioRun, in run order
    window_size: int = 0                                  # messages per (1-ROCA)% window
    latency: dict = field(default_factory=dict)           # mode -> engine -> summary.latency()
    ratios: dict = field(default_factory=dict)            # mode -> peer -> (ratio of medians, paired median)
    sample: dict = field(default_factory=dict)            # latency sample: n, sizes
    model_bytes: dict = field(default_factory=dict)
    model_files: dict = field(default_factory=dict)
    extra_state_bytes: dict = field(default_factory=dict)  # e.g. crm114's text cache: not model, still disk
    thresholds: dict = field(default_factory=dict)        # name -> thresholds.Choice (mailfilter pR)
    units: dict = field(default_factory=dict)             # engine -> its score's unit
    load: dict = field(default_factory=dict)              # when -> (1, 5, 15 min load average)
    plots: dict = field(default_factory=dict)

    @property
    def primary(self) -> ScenarioRun:
        """The first scenario run (plain, unless it was left out): the headline."""
        return next(iter(self.scenarios.values()))

    @property
    def accuracy(self):
        return self.primary.accuracy


def machine_info() -> dict:
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = ""
    try:
        with open("/proc/meminfo") as fh:
            kb = int(fh.readline().split()[1])
            mem = f"{kb / 1024 / 1024:.1f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "memory": mem, "kernel": platform.release(),
            "os": _os_name(), "python": platform.python_version()}


def _os_name():
    try:
        with open("/etc/os-release") as fh:
            for line in fh:
                if line.startswith("PRETTY_NAME="):
                    return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return platform.system()


def git_revision(repo):
    try:
        rev = subprocess.run(["git", "-C", repo, "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", repo, "status", "--porcelain", "--untracked-files=no", "mailfilter"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return rev + (" (mailfilter/ has uncommitted changes)" if dirty else "") if rev else "unknown"
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"


def _f(value, digits=2):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.{digits}f}"


def _mb(n):
    if n is None:
        return "n/a"
    mb = n / 1048576
    return f"{mb:.2f}" if mb < 10 else f"{mb:.1f}"


def _pct(value, digits=2):
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}%"


def _ratio(value, plain):
    """value ÷ plain, for 'relative to the plain run'; None when plain is 0 or missing."""
    if value is None or plain is None or math.isnan(value) or math.isnan(plain) or plain == 0:
        return None
    return value / plain


def _times(value, plain):
    r = _ratio(value, plain)
    return f"{r:.2f}×" if r is not None else ("= plain" if value == plain else "n/a (plain is 0)")


def headline(run: CorpusRun, engines) -> str:
    """The one table people read: accuracy and cost side by side (the first scenario)."""
    rows = ["| engine | messages | (1-ROCA)% | spam missed at 0.1% ham misclassified | at 0.01% | lam% "
            "| ham→SPAM % | spam→GOOD % | UNSURE % (ham / spam) "
            "| classify ms median / p95 | mailfilter ÷ engine | train+classify msg/s | peak RSS MB | model MB |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    lat = run.latency.get("classify", {})
    for name in engines:
        a = run.accuracy.get(name)
        if not a:
            continue
        l = lat.get(name, {})
        ratio = run.ratios.get("classify", {}).get(name)
        ratio_s = "1" if name == "mailfilter" else (f"{ratio[1]:.2f}" if ratio else "n/a")
        rows.append(
            f"| {a['label']} | {a['messages']} | {_f(a['one_minus_roca_pct'], 4)} "
            f"| {_f(a[SPAM_MISSED[0]])} | {_f(a[SPAM_MISSED[1]])} | {_f(a['lam_pct'])} "
            f"| {_f(a['ham_as_spam_pct'], 3)} | {_f(a['spam_as_ham_pct'])} "
            f"| {_f(a['unsure_pct'])} ({_f(a['ham_unsure_pct'])} / {_f(a['spam_unsure_pct'])}) "
            f"| {_f(l.get('median_ms'), 1)} / {_f(l.get('p95_ms'), 1)} | {ratio_s} "
            f"| {_f(a['msgs_per_s'], 0)} | {_f(l.get('peak_rss_mb'), 1)} | {_mb(run.model_bytes.get(name))} |")
    return "\n".join(rows)


def _accuracy_table(acc, engines):
    rows = ["| engine | messages (spam / ham) | trained | (1-ROCA)% | spam missed at 0.1% / 0.01% ham | lam% "
            "| ham→SPAM % | spam→GOOD % | UNSURE % all | UNSURE % of ham | UNSURE % of spam | engine errors |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name in engines:
        a = acc.get(name)
        if a:
            rows.append(f"| {a['label']} | {a['messages']} ({a['spam']} / {a['ham']}) | {_pct(a['trained_pct'], 1)} "
                        f"| {_f(a['one_minus_roca_pct'], 4)} | {_f(a[SPAM_MISSED[0]])} / {_f(a[SPAM_MISSED[1]])} "
                        f"| {_f(a['lam_pct'], 3)} | {_f(a['ham_as_spam_pct'], 3)} | {_f(a['spam_as_ham_pct'])} "
                        f"| {_f(a['unsure_pct'])} | {_f(a['ham_unsure_pct'])} | {_f(a['spam_unsure_pct'])} | {a['errors']} |")
    return "\n".join(rows)


def _target(scenario, a, plain, halves):
    """Whether issue 10's target for this scenario holds for this row; '' when it has none."""
    if scenario == "site-headers" and plain:
        ok = all(_within(a[k], plain[k]) for k in ("one_minus_roca_pct", "ham_as_spam_pct"))
        return f"{'met' if ok else 'not met'} (≤ {SITE_HEADERS_MAX_RATIO:.2f}× plain)"
    if scenario == "feedback" and halves:
        first, second = halves[0]["ham_as_spam_pct"], halves[1]["ham_as_spam_pct"]
        ok = a["ham_as_spam_pct"] <= FEEDBACK_MAX_HAM_AS_SPAM_PCT and second <= first
        return f"{'met' if ok else 'not met'} (ham→SPAM ≤ {FEEDBACK_MAX_HAM_AS_SPAM_PCT}%, not rising)"
    return ""


def _within(value, plain):
    if value is None or plain is None or math.isnan(value) or math.isnan(plain):
        return False
    return value <= plain * SITE_HEADERS_MAX_RATIO + 1e-12


def scenario_table(run: CorpusRun, engines) -> str:
    """Every scenario, every engine: the figures and their ratio to the same engine's plain run."""
    plain = run.scenarios.get("plain")
    rows = ["| scenario | engine | trained | (1-ROCA)% | × plain | ham→SPAM % | × plain "
            "| ham→SPAM % 1st half / 2nd half | spam→GOOD % | UNSURE % | spam missed at 0.1% / 0.01% ham "
            "| issue 10's target |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for sname, srun in run.scenarios.items():
        for name in engines:
            if name in srun.skipped:
                rows.append(f"| {sname} | {name} | not run: {srun.skipped[name]} | | | | | | | | | |")
                continue
            a = srun.accuracy.get(name)
            if not a:
                continue
            base = plain.accuracy.get(name) if plain and sname != "plain" else None
            h = srun.halves.get(name)
            halves = f"{_f(h[0]['ham_as_spam_pct'], 3)} / {_f(h[1]['ham_as_spam_pct'], 3)}" if h else "n/a"
            rows.append(
                f"| {sname} | {a['label']} | {_pct(a['trained_pct'], 1)} | {_f(a['one_minus_roca_pct'], 4)} "
                f"| {_times(a['one_minus_roca_pct'], base['one_minus_roca_pct']) if base else ''} "
                f"| {_f(a['ham_as_spam_pct'], 3)} "
                f"| {_times(a['ham_as_spam_pct'], base['ham_as_spam_pct']) if base else ''} "
                f"| {halves} | {_f(a['spam_as_ham_pct'])} | {_f(a['unsure_pct'])} "
                f"| {_f(a[SPAM_MISSED[0]])} / {_f(a[SPAM_MISSED[1]])} | {_target(sname, a, base, h)} |")
    return "\n".join(rows)


def _halves_table(run, engines):
    rows = ["| scenario | engine | half | messages | (1-ROCA)% | ham→SPAM % (count) | spam→GOOD % | UNSURE % | trained |",
            "|---|---|---|---:|---:|---:|---:|---:|---:|"]
    for sname, srun in run.scenarios.items():
        for name in engines:
            for label, a in zip(("1st", "2nd"), srun.halves.get(name, [])):
                rows.append(f"| {sname} | {name} | {label} | {a['messages']} | {_f(a['one_minus_roca_pct'], 4)} "
                            f"| {_f(a['ham_as_spam_pct'], 3)} ({a['ham_as_spam']}) | {_f(a['spam_as_ham_pct'])} "
                            f"| {_f(a['unsure_pct'])} | {_pct(a['trained_pct'], 1)} |")
    return "\n".join(rows)


def _window_table(run, engines, size):
    starts = sorted({start for srun in run.scenarios.values() for w in srun.windows.values() for start, _ in w})
    anchors = run.anchors.windows if run.anchors and run.anchors.window_size == size else {}
    starts = sorted(set(starts) | {start for w in anchors.values() for start, _ in w})
    if not starts:
        return ""
    head = "| engine | scenario | " + " | ".join(_k(s) for s in starts) + " |"
    rows = [head, "|---|---|" + "---:|" * len(starts)]
    for sname, srun in run.scenarios.items():
        for name in engines:
            w = dict(srun.windows.get(name, []))
            if w:
                rows.append(f"| {srun.accuracy[name]['label']} | {sname} | "
                            + " | ".join(_f(w.get(s), 4) if s in w else "" for s in starts) + " |")
    for label, values in anchors.items():
        w = dict(values)
        rows.append(f"| *{label}* | *anchor, not this run* | "
                    + " | ".join(f"*{w[s]:.4f}*" if s in w else "" for s in starts) + " |")
    return "\n".join(rows)


def _k(n):
    return f"{n // 1000}k" if n and n % 1000 == 0 else str(n)


def _anchor_table(run, engines):
    a = run.anchors
    rows = ["| | (1-ROCA)% | spam missed at 0.1% ham misclassified | at 0.01% | good mail → SPAM at defaults |",
            "|---|---:|---:|---:|---:|"]
    for name in engines:
        m = run.accuracy.get(name)
        if m:
            rows.append(f"| **{m['label']}, measured in this run** | **{_f(m['one_minus_roca_pct'], 4)}** "
                        f"| **{_pct(m[SPAM_MISSED[0]])}** | **{_pct(m[SPAM_MISSED[1]])}** "
                        f"| **{_pct(m['ham_as_spam_pct'], 3)}** |")

    def cell(value, digits=2, pct=True, prefix=""):
        if value is None:
            return "—"
        return prefix + (f"{value:g}%" if pct else f"{value:.{digits}f}")

    for row in a.rows:
        roca = cell(row.one_minus_roca_pct, 4, pct=False) if row.one_minus_roca_pct is not None else (row.note or "—")
        rows.append(f"| *anchor:* {row.label}{' (' + row.note + ')' if row.note and row.one_minus_roca_pct is not None else ''} "
                    f"| {roca} | {cell(row.spam_missed_at_01_pct)} | {cell(row.spam_missed_at_001_pct)} "
                    f"| {cell(row.ham_as_spam_pct)} |")
    if a.goal:
        g = a.goal
        rows.append(f"| *{g.label}*{' (' + g.note + ')' if g.note else ''} "
                    f"| {cell(g.one_minus_roca_pct, 4, pct=False, prefix='≤ ')} "
                    f"| {cell(g.spam_missed_at_01_pct, prefix='≤ ')} | {cell(g.spam_missed_at_001_pct, prefix='≤ ')} "
                    f"| {cell(g.ham_as_spam_pct, prefix='≤ ')} |")
    return "\n".join(rows)


def comparison_table(runs, engines) -> str:
    """The README's comparison table: one column per corpus and engine, the
    scenario rows below the plain figures, all from this one run."""
    columns = []        # (run, engine)
    for run in runs:
        for name in engines:
            if name in run.accuracy:
                columns.append((run, name))
    if not columns:
        return ""

    def header(run, name):
        return f"{run.name.split(' (')[0]}: {run.accuracy[name]['label']}"

    rows = ["| | " + " | ".join(header(r, n) for r, n in columns) + " |",
            "|---|" + "---:|" * len(columns)]

    def row(label, cell):
        rows.append(f"| {label} | " + " | ".join(cell(r, n) for r, n in columns) + " |")

    def acc(run, name, key, fmt):
        a = run.accuracy.get(name)
        return fmt(a[key]) if a else "—"

    row("messages (spam / ham)", lambda r, n: f"{r.accuracy[n]['messages']} ({r.accuracy[n]['spam']} / {r.accuracy[n]['ham']})")
    row("(1-ROCA)%, lower is better", lambda r, n: acc(r, n, "one_minus_roca_pct", lambda v: _f(v, 4)))
    row("spam missed at 0.1% of ham misclassified (TREC h=.1%)", lambda r, n: acc(r, n, SPAM_MISSED[0], _pct))
    row("spam missed at 0.01% of ham misclassified (the ham tail)", lambda r, n: acc(r, n, SPAM_MISSED[1], _pct))
    row("good mail marked SPAM at default thresholds", lambda r, n: acc(r, n, "ham_as_spam_pct", lambda v: _pct(v, 3)))
    row("spam marked GOOD", lambda r, n: acc(r, n, "spam_as_ham_pct", _pct))
    row("UNSURE", lambda r, n: acc(r, n, "unsure_pct", lambda v: _pct(v, 1)))
    names = []
    for run in runs:
        names += [s for s in run.scenarios if s not in names]
    for sname in names:
        if all(run.primary.name == sname for run in runs):
            continue

        def scen(r, n, key, digits, pct, sname=sname):
            srun = r.scenarios.get(sname)
            if not srun or n not in srun.accuracy:
                return "not run" if srun and n in srun.skipped else "—"
            value = srun.accuracy[n][key]
            base = r.scenarios["plain"].accuracy.get(n) if "plain" in r.scenarios and sname != "plain" else None
            text = _pct(value, digits) if pct else _f(value, digits)
            return text + (f" ({_times(value, base[key])})" if base else "")

        row(f"{sname}: (1-ROCA)% (× plain)", lambda r, n, s=scen: s(r, n, "one_minus_roca_pct", 4, False))
        row(f"{sname}: good mail marked SPAM (× plain)", lambda r, n, s=scen: s(r, n, "ham_as_spam_pct", 3, True))
        if any(sname in r.scenarios and r.scenarios[sname].feedback for r in runs):
            def halves(r, n, sname=sname):
                srun = r.scenarios.get(sname)
                h = srun.halves.get(n) if srun else None
                return f"{_pct(h[0]['ham_as_spam_pct'], 3)} / {_pct(h[1]['ham_as_spam_pct'], 3)}" if h else "—"

            def trained(r, n, sname=sname):
                srun = r.scenarios.get(sname)
                a = srun.accuracy.get(n) if srun else None
                return _pct(a["trained_pct"], 1) if a else "—"

            row(f"{sname}: good mail marked SPAM, 1st half / 2nd half", halves)
            row(f"{sname}: messages trained", trained)
    if any(r.latency for r in runs):
        row("classify, new process per message (median)",
            lambda r, n: f"{_f(r.latency.get('classify', {}).get(n, {}).get('median_ms'), 1)} ms")
        row("peak RSS / model on disk",
            lambda r, n: f"{_f(r.latency.get('classify', {}).get(n, {}).get('peak_rss_mb'), 0)} MB / "
                         f"{_mb(r.model_bytes.get(n))} MB")
    else:
        row("model on disk", lambda r, n: f"{_mb(r.model_bytes.get(n))} MB")
    return "\n".join(rows)


def _latency_section(run, engines):
    out = []
    titles = {"classify": "Classify only (`mailfilter classify`, `bogofilter -T`, `mailreaver.crm --stats_only`)",
              "filter": "As procmail runs it: message in, message with headers out "
                        "(`mailfilter`, `bogofilter -p -e`, full `mailreaver.crm` run, which also caches the text)"}
    for mode, series in run.latency.items():
        out.append(f"**{titles.get(mode, mode)}**\n")
        out.append("| command | runs | median ms | p95 ms | peak RSS MB (max / median) | errors |")
        out.append("|---|---:|---:|---:|---:|---:|")
        for name, l in series.items():
            out.append(f"| {name}: `{l['argv']}` | {l['runs']} | {_f(l['median_ms'], 1)} | {_f(l['p95_ms'], 1)} "
                       f"| {_f(l['peak_rss_mb'], 1)} / {_f(l['median_rss_mb'], 1)} | {l['errors']} |")
        for name, l in series.items():
            if l["errors"]:
                out.append(f"\n{name} failed {l['errors']} times; first: `{l['first_error']}`")
        ratios = run.ratios.get(mode, {})
        if ratios:
            out.append("")
            for peer, (of_medians, paired) in ratios.items():
                out.append(f"- mailfilter ÷ {peer}: **{_f(paired)}×** (median of per-message ratios; "
                           f"ratio of medians {_f(of_medians)}×)")
        out.append("")
    return "\n".join(out)


def _threshold_section(run):
    t = run.thresholds
    if not t:
        return ""
    lines = ["| thresholds (pR) | ham→SPAM % | spam→GOOD % | UNSURE % all | UNSURE % of ham | UNSURE % of spam |",
             "|---|---:|---:|---:|---:|---:|"]
    for name, c in t.items():
        if c is None:
            lines.append(f"| {name}: no pair meets both limits | | | | | |")
            continue
        lines.append(f"| {name}: spam ≤ {c.spam_threshold:g}, good ≥ {c.good_threshold:g} | {_f(c.ham_as_spam_pct)} "
                     f"| {_f(c.spam_as_ham_pct)} | {_f(c.unsure_pct)} | {_f(c.ham_unsure_pct)} | {_f(c.spam_unsure_pct)} |")
    return "\n".join(lines)


def write(path, runs, engines, invocation, versions, started, seconds, notes):
    info = machine_info()
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    md = [
        "# mailfilter benchmark: mailfilter vs bogofilter vs crm114",
        "",
        f"Generated by `bench/` on {started:%Y-%m-%d %H:%M} UTC in {seconds / 60:.1f} minutes. "
        "Every number below was measured in this run, except the rows marked *anchor*; "
        "rerun the command to reproduce.",
        "",
        "```",
        invocation,
        "```",
        "",
        f"- Machine: {info['cpu']}, {info['cores']} cores, {info['memory']} RAM; {info['os']}, "
        f"Linux {info['kernel']}, Python {info['python']}",
        f"- mailfilter: {versions.get('mailfilter', 'n/a')}, git {git_revision(repo)}",
        f"- bogofilter: {versions.get('bogofilter', 'n/a')}; crm114: {versions.get('crm114', 'n/a')}",
        "",
        "## The comparison table",
        "",
        "Each column is one engine on one corpus, from an empty state, in this one run (the README's table). "
        "Scenario rows give the same engine on the same messages, with its ratio to its plain run.",
        "",
        comparison_table(runs, engines),
        "",
        "## How it is measured",
        "",
        "- **Protocol**: TREC spam-track online, immediate feedback. For each message in index order the engine "
        "classifies it, then is trained with the true label the way its users train it: mailfilter with "
        "`mailfilter eval` (one process, same code path as `learn`), bogofilter `-T` then `-s`/`-n` "
        "(every message registered), crm114 `mailreaver.crm --stats_only` then `--spam`/`--good` "
        "(mailreaver hands the text to mailtrainer.crm, whose thick threshold decides whether to train). "
        "Each engine starts from an empty state, in each scenario.",
        "- **Scenarios**: *plain* is the protocol above. *site-headers* runs it on copies of the messages "
        "that carry what a mailbox adds on delivery: Postfix local(8)'s `Return-Path`, `X-Original-To` "
        "and `Delivered-To`, a `Received` from the site's MX with a delivery date (the message's own `Date` "
        "plus a few seconds, else a clock advancing a minute per message), and a stale `X-CRM114-Version` "
        "and `X-CRM114-Status` of ours whose verdict is random, unrelated to the class; the copies "
        "are written once in the work directory, so every engine reads the same bytes. *feedback* trains "
        "only what a user reports: messages the engine got wrong or marked UNSURE, spam with probability "
        "0.8, good mail with 0.2, one seeded draw per message (`mailfilter.evaluate.Feedback`, used by "
        "`mailfilter eval --feedback` and by the bench's loop for the peers alike: the same verdicts give "
        "the same reports). *× plain* is the scenario's figure over the same engine's plain figure on the "
        "same messages.",
        "- **(1-ROCA)%**: exact area above the ROC curve of the online scores (Mann-Whitney, ties count half); "
        "lower is better. Score = -pR for mailfilter and crm114, spamicity for bogofilter "
        "(`-T` prints 6 significant digits, so bogofilter has ties near 0 and 1).",
        "- **Spam missed at 0.1% (0.01%) of ham misclassified**: the same ROC curve read at one point, "
        "TREC's *h=.1%*: the spam let through by the threshold that misclassifies that share of the ham, "
        "the curve linear between the thresholds on either side "
        "(`mailfilter.metrics.spam_missed_at_ham_percent`). At 0.01% it reads the ham tail: on 25,220 ham "
        "the threshold sits among the 3 good messages scored spammiest.",
        "- **ham→SPAM %, spam→GOOD %, UNSURE %**: verdicts at each engine's own defaults "
        "(mailfilter: its config defaults; bogofilter: Debian's /etc/bogofilter.cf, spam_cutoff 0.99, "
        "ham_cutoff 0.45; crm114: stock mailfilter.cf, pR ≤ -5 SPAM, ≥ +5 GOOD). "
        "UNSURE is counted apart, not as an error.",
        "- **lam%**: TREC logistic average of the ham and spam misclassification rates, on where mail ends up "
        "with the usual recipe: only SPAM goes to the junk folder, UNSURE is delivered. Rates get TREC's "
        "half-a-message smoothing, (errors + 0.5) / (n + 1).",
        "- **Halves and windows**: the same figures on the first and second half of the stream, and "
        "(1-ROCA)% per window of messages, each scored on its own: where in the stream an engine loses ground.",
        "- **Latency**: a new process per message, stdin = the message file, reaped with wait4(); the same "
        "sample of typical-size messages for every engine, with the state each engine has after the first "
        "scenario's run. Engines run back to back on each message, in an order that rotates, so ratios hold "
        "on a noisy machine. `mailfilter ÷ peer` is the median of per-message time ratios (>1: mailfilter is "
        "slower).",
        "- **Peak RSS**: `/usr/bin/time -f %M` (GNU time) around the same classify commands, on the first 30 "
        "sample messages, in a pass apart from the timing runs. Not our own wait4(): Linux carries the "
        "parent's resident size into a child's ru_maxrss at exec, and the bench's Python is 60+ MB.",
        "- **Throughput**: messages / wall time of the whole online run (classify + train). The peers spawn "
        "their commands per message (that is their interface); mailfilter runs in one process.",
        "- **Model size**: the model files on disk after the first scenario's run.",
        "- **Aggregate figures only**: no message, file name or judgement of a corpus appears here (trec07p's "
        "terms allow research use only). Per-message results and the hardest messages stay in the bench's "
        "work directory.",
        "",
    ]
    if notes:
        md += ["## Notes on this run", ""] + [f"- {n}" for n in notes] + [""]
    for run in runs:
        md += [f"## Corpus: {run.name}", "",
               f"{run.n_messages} messages ({run.n_spam} spam, {run.n_messages - run.n_spam} ham), "
               f"in the order of `{run.index_path}`.", ""]
        if run.skipped:
            md.append(f"- {run.skipped} of the {run.listed} messages the index lists are absent from the "
                      f"corpus directory and were skipped.")
        for sname, srun in run.scenarios.items():
            for name, limit in srun.limits.items():
                md.append(f"- {sname}: {name} ran on the first {limit} messages only (its own limit, "
                          f"`--crm-limit {limit}`); the same-prefix table compares every engine on those "
                          f"messages.")
            for name, why in srun.skipped.items():
                md.append(f"- {sname}: {name} did not run ({why}).")
        md += ["", f"### Headline ({run.primary.name})", "", headline(run, engines), ""]
        if run.anchors:
            caution = ("" if run.n_messages == run.anchors.messages else
                       f" This run has {run.n_messages} messages, the anchors {run.anchors.messages}: "
                       f"they do not compare.")
            md += ["### Next to the anchors", "",
                   f"Rows in *italics* are anchors, **not measured in this run**: {run.anchors.source}.{caution}", "",
                   _anchor_table(run, engines), ""]
        md += ["### Scenarios", "", scenario_table(run, engines), "",
               "### Both halves of the stream", "", _halves_table(run, engines), ""]
        size = run.window_size
        windows = _window_table(run, engines, size) if size else ""
        if windows:
            md += [f"### (1-ROCA)% per window of {size} messages", "",
                   "Each window scored on its own (the last one may be shorter).", "", windows, ""]
        for sname, srun in run.scenarios.items():
            md += [f"### Accuracy, {sname}: {srun.title}", "", _accuracy_table(srun.accuracy, engines), ""]
            if srun.prefix:
                md += [f"Same first {srun.prefix} messages:", "", _accuracy_table(srun.prefix_accuracy, engines), ""]
        if run.latency:
            s = run.sample
            md += ["### Latency and memory, one process per message", "",
                   f"Sample: {s.get('n')} messages, {s.get('min_size')}–{s.get('max_size')} bytes "
                   f"(median {s.get('median_size')}), seed {s.get('seed')}. "
                   + "Load average (1/5/15 min) " + ", ".join(
                       f"{when}: {' / '.join(f'{x:.2f}' for x in load)}" for when, load in run.load.items())
                   + f" on {os.cpu_count()} cores; other work on the machine slows the longer-running "
                   "processes most, so compare ratios from runs on a quiet machine.", "",
                   _latency_section(run, engines)]
        md += ["### Model size on disk", "", "| engine | files | MB |", "|---|---|---:|"]
        for name in engines:
            if name in run.model_bytes:
                md.append(f"| {name} | {run.model_files.get(name, '')} | {_mb(run.model_bytes[name])} |")
        for name, (what, n) in run.extra_state_bytes.items():
            md.append(f"\n{name} also keeps {what}: {_mb(n)} MB after this run (not counted as model).")
        md.append("")
        if run.thresholds:
            md += ["### mailfilter thresholds: what the online scores support", "",
                   "Verdicts recomputed from mailfilter's online pR for other thresholds. The recommended pair "
                   "lets the least spam through as GOOD with ham→SPAM ≤ 0.2% and UNSURE ≤ 5% of all mail "
                   "(the filter issue's targets). The second-half row uses only messages 50–100%, "
                   "when the model has seen some mail.", "",
                   _threshold_section(run), ""]
        if run.plots:
            md += ["### Charts", ""]
            for kind, title in (("roc", "ROC curves, log scales"), ("scenarios", "ROC curves per scenario"),
                                ("histograms", "Score histograms"), ("learning", "Learning curves")):
                if kind in run.plots:
                    md.append(f"![{title}]({run.plots[kind]})\n")
        md += ["### Commands each engine ran", ""]
        for sname, srun in run.scenarios.items():
            for name, cmds in srun.commands.items():
                md.append(f"- {sname}, {name}: " + "; ".join(f"`{c}`" for c in cmds))
        md.append("")
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("\n".join(md))


def write_hardest(path, corpus_name, hardest, units):
    """The ham each engine scored spammiest and the spam it scored hammiest,
    to the work directory only: they name messages, which some corpora's
    terms forbid publishing."""
    md = [f"# Hardest messages: {corpus_name}", "",
          "Online, first scenario; position = place in the stream. Not for publication.", "",
          "| engine | true class | position | message | score | verdict |", "|---|---|---:|---|---:|---|"]
    for name, worst in hardest.items():
        for cls in ("ham", "spam"):
            for r in worst[cls]:
                md.append(f"| {name} | {cls} | {r['position']} | `{r['path']}` "
                          f"| {units.get(name, '')} {r['score']:.4g} | {r['verdict']} |")
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("\n".join(md) + "\n")


def utc_now():
    return datetime.datetime.now(datetime.timezone.utc)
