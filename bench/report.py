"""REPORT.md and the headline table: what was measured, how, on what machine."""

import datetime
import math
import os
import platform
import subprocess
from dataclasses import dataclass, field


@dataclass
class CorpusRun:
    """Everything measured on one corpus."""
    name: str
    slug: str
    index_path: str
    n_messages: int
    n_spam: int
    accuracy: dict = field(default_factory=dict)          # engine -> summary.accuracy()
    prefix: int = 0                                       # set when an engine ran on fewer messages
    prefix_accuracy: dict = field(default_factory=dict)   # engine -> summary.accuracy() on that prefix
    limits: dict = field(default_factory=dict)            # engine -> its own message limit
    latency: dict = field(default_factory=dict)           # mode -> engine -> summary.latency()
    ratios: dict = field(default_factory=dict)            # mode -> peer -> (ratio of medians, paired median)
    sample: dict = field(default_factory=dict)            # latency sample: n, sizes
    model_bytes: dict = field(default_factory=dict)
    model_files: dict = field(default_factory=dict)
    extra_state_bytes: dict = field(default_factory=dict)  # e.g. crm114's text cache: not model, still disk
    thresholds: dict = field(default_factory=dict)        # name -> thresholds.Choice (mailfilter pR)
    hardest: dict = field(default_factory=dict)           # engine -> summary.hardest()
    units: dict = field(default_factory=dict)             # engine -> its score's unit
    load: dict = field(default_factory=dict)              # when -> (1, 5, 15 min load average)
    plots: dict = field(default_factory=dict)
    commands: dict = field(default_factory=dict)          # engine -> [command lines]


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


def headline(run: CorpusRun, engines) -> str:
    """The one table people read: accuracy and cost side by side."""
    rows = ["| engine | messages | (1-ROCA)% | lam% | ham→SPAM % | spam→GOOD % | UNSURE % (ham / spam) "
            "| classify ms median / p95 | mailfilter ÷ engine | train+classify msg/s | peak RSS MB | model MB |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    lat = run.latency.get("classify", {})
    for name in engines:
        a = run.accuracy.get(name)
        if not a:
            continue
        l = lat.get(name, {})
        ratio = run.ratios.get("classify", {}).get(name)
        ratio_s = "1" if name == "mailfilter" else (f"{ratio[1]:.2f}" if ratio else "n/a")
        rows.append(
            f"| {a['label']} | {a['messages']} | {_f(a['one_minus_roca_pct'], 3)} | {_f(a['lam_pct'])} "
            f"| {_f(a['ham_as_spam_pct'])} | {_f(a['spam_as_ham_pct'])} "
            f"| {_f(a['unsure_pct'])} ({_f(a['ham_unsure_pct'])} / {_f(a['spam_unsure_pct'])}) "
            f"| {_f(l.get('median_ms'), 1)} / {_f(l.get('p95_ms'), 1)} | {ratio_s} "
            f"| {_f(a['msgs_per_s'], 0)} | {_f(l.get('peak_rss_mb'), 1)} | {_mb(run.model_bytes.get(name))} |")
    return "\n".join(rows)


def _accuracy_table(acc, engines):
    rows = ["| engine | messages (spam / ham) | (1-ROCA)% | lam% | ham→SPAM % | spam→GOOD % "
            "| UNSURE % all | UNSURE % of ham | UNSURE % of spam | engine errors |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name in engines:
        a = acc.get(name)
        if a:
            rows.append(f"| {a['label']} | {a['messages']} ({a['spam']} / {a['ham']}) | {_f(a['one_minus_roca_pct'], 4)} "
                        f"| {_f(a['lam_pct'], 3)} | {_f(a['ham_as_spam_pct'])} | {_f(a['spam_as_ham_pct'])} "
                        f"| {_f(a['unsure_pct'])} | {_f(a['ham_unsure_pct'])} | {_f(a['spam_unsure_pct'])} | {a['errors']} |")
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
        "Every number below was measured in this run; rerun the command to reproduce.",
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
        "## How it is measured",
        "",
        "- **Protocol**: TREC spam-track online, immediate feedback. For each message in index order the engine "
        "classifies it, then is trained with the true label the way its users train it: mailfilter with "
        "`mailfilter eval` (one process, same code path as `learn`), bogofilter `-T` then `-s`/`-n` "
        "(every message registered), crm114 `mailreaver.crm --stats_only` then `--spam`/`--good` "
        "(mailreaver hands the text to mailtrainer.crm, whose thick threshold decides whether to train). "
        "Each engine starts from an empty state.",
        "- **(1-ROCA)%**: exact area above the ROC curve of the online scores (Mann-Whitney, ties count half); "
        "lower is better. Score = -pR for mailfilter and crm114, spamicity for bogofilter "
        "(`-T` prints 6 significant digits, so bogofilter has ties near 0 and 1).",
        "- **ham→SPAM %, spam→GOOD %, UNSURE %**: verdicts at each engine's own defaults "
        "(mailfilter: its config defaults; bogofilter: Debian's /etc/bogofilter.cf, spam_cutoff 0.99, "
        "ham_cutoff 0.45; crm114: stock mailfilter.cf, pR ≤ -5 SPAM, ≥ +5 GOOD). "
        "UNSURE is counted apart, not as an error.",
        "- **lam%**: TREC logistic average of the ham and spam misclassification rates, on where mail ends up "
        "with the usual recipe: only SPAM goes to the junk folder, UNSURE is delivered. Rates get TREC's "
        "half-a-message smoothing, (errors + 0.5) / (n + 1).",
        "- **Latency**: a new process per message, stdin = the message file, reaped with wait4(); the same "
        "sample of typical-size messages for every engine, with the state each engine has after the online run. "
        "Engines run back to back on each message, in an order that rotates, so ratios hold on a noisy machine. "
        "`mailfilter ÷ peer` is the median of per-message time ratios (>1: mailfilter is slower).",
        "- **Peak RSS**: `/usr/bin/time -f %M` (GNU time) around the same classify commands, on the first 30 "
        "sample messages, in a pass apart from the timing runs. Not our own wait4(): Linux carries the "
        "parent's resident size into a child's ru_maxrss at exec, and the bench's Python is 60+ MB.",
        "- **Throughput**: messages / wall time of the whole online run (classify + train). The peers spawn "
        "their commands per message (that is their interface); mailfilter runs in one process.",
        "- **Model size**: the model files on disk after the run.",
        "",
    ]
    if notes:
        md += ["## Notes on this run", ""] + [f"- {n}" for n in notes] + [""]
    for run in runs:
        md += [f"## Corpus: {run.name}", "",
               f"{run.n_messages} messages ({run.n_spam} spam, {run.n_messages - run.n_spam} ham), "
               f"in the order of `{run.index_path}`.", ""]
        for name, limit in run.limits.items():
            md.append(f"- {name} ran on the first {limit} messages only (its own limit, `--crm-limit {limit}`); "
                      f"the same-prefix table compares every engine on those messages.")
        md += ["", "### Headline", "", headline(run, engines), "",
               "### Accuracy (online, each engine on all the messages it ran)", "",
               _accuracy_table(run.accuracy, engines), ""]
        if run.prefix:
            md += [f"### Accuracy on the same first {run.prefix} messages", "",
                   _accuracy_table(run.prefix_accuracy, engines), ""]
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
        if run.hardest:
            md += ["### Hardest messages", "",
                   "The ham each engine scored spammiest and the spam it scored hammiest, online "
                   "(position = place in the stream). These are what (1-ROCA)% is made of.", "",
                   "<details><summary>show</summary>", "",
                   "| engine | true class | position | message | score | verdict |",
                   "|---|---|---:|---|---:|---|"]
            for name, worst in run.hardest.items():
                for cls in ("ham", "spam"):
                    for r in worst[cls]:
                        md.append(f"| {name} | {cls} | {r['position']} | `{r['path']}` "
                                  f"| {run.units.get(name, '')} {r['score']:.4g} | {r['verdict']} |")
            md += ["", "</details>", ""]
        if run.plots:
            md += ["### Charts", ""]
            for kind, title in (("roc", "ROC curves"), ("histograms", "Score histograms"),
                                ("learning", "Learning curves")):
                if kind in run.plots:
                    md.append(f"![{title}]({run.plots[kind]})\n")
        md += ["### Commands each engine ran", ""]
        for name, cmds in run.commands.items():
            md.append(f"- {name}: " + "; ".join(f"`{c}`" for c in cmds))
        md.append("")
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("\n".join(md))


def utc_now():
    return datetime.datetime.now(datetime.timezone.utc)
