"""The resident filter measured: spamc -> `mailfilter serve`, and the milter in Postfix.

    .venv/bin/python -m bench.serve --corpus /path/to/trec07p

One paired run, on the trec07p messages (never committed; research use):
  * latency: for each sampled message (5-20 KB, not in the training set),
    back to back in a rotating order: spamc to the daemon (PROCESS, the
    whole message back), bogofilter -p (passthrough with its header) cold,
    and the pipe filter (`mailfilter`) cold; spawn-to-reaped wall time of
    each process (bench/proc.py). Ratios are medians of per-message ratios.
  * throughput: 8 clients, each a shell loop running one spamc per message,
    over N messages; messages/s = N / wall time. CPU per message of the
    daemon (server + workers, from /proc) and of the clients (RUSAGE_CHILDREN)
    says where the time goes.
  * memory: RSS and PSS of the server and its workers after the throughput
    run, and how much of the RSS is the mmap'd model.
  * milter: messages sent by SMTP from 8 connections to a private Postfix
    (tests/postfix_lab.py), delivered by virtual(8) into a Maildir;
    messages/s until the last is delivered, with the milter and without it.

Writes bench/results/serve.json and bench/results/SERVE.md.
"""

import argparse
import json
import os
import platform
import random
import shutil
import signal
import smtplib
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

from . import proc
from .latency import percentile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PY = sys.executable
RESULTS = os.path.join(REPO, "bench", "results")


def env():
    e = dict(os.environ)
    e["PYTHONPATH"] = REPO + os.pathsep + e.get("PYTHONPATH", "")
    e.pop("MAILFILTER_HOME", None)
    return e


def read_index(corpus):
    """[(is_spam, absolute path)] in trec07p's order, present files only."""
    index = os.path.join(corpus, "full", "index")
    base = os.path.dirname(index)
    out = []
    with open(index) as fh:
        for line in fh:
            label, path = line.split()
            path = os.path.normpath(os.path.join(base, path))
            if os.path.exists(path):
                out.append((label == "spam", path))
    return out


def train(work, entries):
    """A mailfilter model (TREC protocol, eval --save) and a bogofilter
    database (every message registered) on the same messages."""
    home = os.path.join(work, "mailfilter")
    index = os.path.join(work, "train.index")
    with open(index, "w") as fh:
        for is_spam, path in entries:
            fh.write(f"{'spam' if is_spam else 'ham'} {path}\n")
    subprocess.run([PY, "-m", "mailfilter", "eval", index, "--home", home, "--save"],
                   check=True, env=env(), stdout=subprocess.DEVNULL)
    bogo = os.path.join(work, "bogofilter")
    os.makedirs(bogo)
    for flag, wanted in (("-s", True), ("-n", False)):
        paths = [p for s, p in entries if s == wanted]
        for i in range(0, len(paths), 1000):
            subprocess.run(["bogofilter", "-d", bogo, flag, "-B"] + paths[i:i + 1000], check=True)
    return home, bogo


class Daemon:
    def __init__(self, work, home):
        self.socket = os.path.join(work, "spamd.sock")
        self.proc = subprocess.Popen([PY, "-m", "mailfilter", "serve", "--socket", self.socket, "--home", home],
                                     env=env(), stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, "serve.log"), "ab"),
                                     start_new_session=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with socket.socket(socket.AF_UNIX) as s:
                    s.connect(self.socket)
                    s.sendall(b"PING SPAMC/1.5\r\n\r\n")
                    if s.recv(64).startswith(b"SPAMD/1.5 0 PONG"):
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("mailfilter serve did not start")

    def pids(self):
        out = [self.proc.pid]
        for pid in os.listdir("/proc"):
            if pid.isdigit():
                try:
                    with open(f"/proc/{pid}/stat") as fh:
                        if int(fh.read().rsplit(")", 1)[1].split()[1]) == self.proc.pid:
                            out.append(int(pid))
                except OSError:
                    pass
        return out

    def cpu_seconds(self):
        total = 0.0
        tick = os.sysconf("SC_CLK_TCK")
        for pid in self.pids():
            try:
                with open(f"/proc/{pid}/stat") as fh:
                    fields = fh.read().rsplit(")", 1)[1].split()
                total += (int(fields[11]) + int(fields[12])) / tick
            except OSError:
                pass
        return total

    def memory(self):
        """{pid: (rss_kb, pss_kb, model_rss_kb)} for the server and workers."""
        out = {}
        for pid in self.pids():
            rss = pss = model = 0
            current_is_model = False
            try:
                with open(f"/proc/{pid}/smaps") as fh:
                    for line in fh:
                        if line[0] in "0123456789abcdef" and "-" in line.split()[0]:
                            current_is_model = line.rstrip().endswith("model.mfm")
                        elif line.startswith("Rss:"):
                            kb = int(line.split()[1])
                            rss += kb
                            if current_is_model:
                                model += kb
                        elif line.startswith("Pss:"):
                            pss += int(line.split()[1])
            except OSError:
                continue
            out[pid] = (rss, pss, model)
        return out

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=60)


def latency(daemon, home, bogo, sample, warmup=5):
    commands = {
        "spamc -> serve": ["spamc", "-U", daemon.socket, "-s", "52428800"],
        # PING is answered by the server alone: spamc's own start-up plus the round trip.
        "spamc -K (PING)": ["spamc", "-U", daemon.socket, "-K"],
        "bogofilter -p": ["bogofilter", "-d", bogo, "-p"],
        "pipe filter": [PY, "-m", "mailfilter", "--home", home],
    }
    names = list(commands)
    seconds = {n: [] for n in names}
    for path in sample[:warmup]:
        for n in names:
            proc.run(commands[n], path, capture=False, env=env())
    for i, path in enumerate(sample):
        for k in range(len(names)):
            name = names[(i + k) % len(names)]
            run = proc.run(commands[name], path, capture=False, env=env())
            if run.returncode not in (0, 1, 2):
                raise RuntimeError(f"{name} exited {run.returncode}: {run.stderr[:300]!r}")
            seconds[name].append(run.seconds)
    return seconds


def throughput(daemon, paths, clients=8):
    parts = [paths[i::clients] for i in range(clients)]
    lists = []
    for i, part in enumerate(parts):
        name = os.path.join(os.path.dirname(daemon.socket), f"client{i}.list")
        with open(name, "w") as fh:
            fh.write("\n".join(part) + "\n")
        lists.append(name)
    loop = f'while read f; do spamc -U {daemon.socket} -s 52428800 < "$f" > /dev/null || exit 1; done < "$1"'
    cpu_before = daemon.cpu_seconds()
    children_before = os.times()
    started = time.perf_counter()
    procs = [subprocess.Popen(["sh", "-c", loop, "sh", name]) for name in lists]
    codes = [p.wait() for p in procs]
    wall = time.perf_counter() - started
    children_after = os.times()
    if any(codes):
        raise RuntimeError(f"a client failed: {codes}")
    client_cpu = (children_after.children_user - children_before.children_user
                  + children_after.children_system - children_before.children_system)
    return {"messages": len(paths), "clients": clients, "seconds": wall, "per_second": len(paths) / wall,
            "daemon_cpu_ms_per_message": 1000 * (daemon.cpu_seconds() - cpu_before) / len(paths),
            "client_cpu_ms_per_message": 1000 * client_cpu / len(paths)}


def in_process_rate(home, paths):
    """Messages/s of pipeline.filter_bytes in one process, one core: the classifier's own cost."""
    code = ("import sys,time\nfrom mailfilter.pipeline import filter_bytes, user_classifier\n"
            "c=user_classifier(sys.argv[1])();paths=sys.argv[2:]\n"
            "data=[open(p,'rb').read() for p in paths]\nt=time.process_time()\n"
            "for d in data: filter_bytes(d, lambda: c)\nprint(len(data)/(time.process_time()-t))\n")
    out = subprocess.run([PY, "-c", code, home] + paths, capture_output=True, text=True, env=env(), check=True)
    return float(out.stdout)


def milter_rate(work, home, paths, clients=8):
    sys.path.insert(0, os.path.join(REPO, "tests"))
    from conftest import free_port
    from postfix_lab import milter_settings, on_loopback
    results = {}
    messages = [open(p, "rb").read() for p in paths]
    for with_milter in (True, False):
        daemon = Daemon(tempfile.mkdtemp(dir=work), home) if with_milter else None
        milter_proc = None
        milter = None
        if with_milter:
            port = free_port()
            milter = f"inet:127.0.0.1:{port}"
            milter_proc = subprocess.Popen([PY, "-m", "mailfilter", "milter", "--listen", milter, "--spamd", daemon.socket],
                                           env=env(), stderr=subprocess.DEVNULL)
            for _ in range(300):
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    time.sleep(0.05)
        postfix = on_loopback(milter_settings(milter) if milter else None).start()
        try:
            master = postfix.master_pid()
            cpu_before = {"postfix": _tree_cpu(master), "milter": _tree_cpu(milter_proc.pid) if milter_proc else 0.0,
                          "daemon": daemon.cpu_seconds() if daemon else 0.0}
            started = time.perf_counter()
            threads = [threading.Thread(target=_smtp_client, args=(postfix.port, messages[i::clients]))
                       for i in range(clients)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            delivered = postfix.wait_for("alice", len(messages), timeout=600)
            seconds = time.perf_counter() - started
            marked = sum(1 for m in delivered if m.count(b"\nX-CRM114-Status:") == 1)
            cpu = {"postfix": _tree_cpu(master), "milter": _tree_cpu(milter_proc.pid) if milter_proc else 0.0,
                   "daemon": daemon.cpu_seconds() if daemon else 0.0}
            per_message = {k: 1000 * (cpu[k] - cpu_before[k]) / len(messages) for k in cpu}
            results["with milter" if with_milter else "without milter"] = {
                "messages": len(messages), "seconds": seconds, "per_second": len(messages) / seconds,
                "with our header once": marked, "cpu_ms_per_message": per_message}
        finally:
            postfix.close()
            if milter_proc:
                milter_proc.terminate()
                milter_proc.wait()
            if daemon:
                daemon.stop()
    return results


def _tree_cpu(pid) -> float:
    """CPU seconds of pid, its reaped children and its live ones (Postfix's
    master reaps every daemon it started, so their time ends up here)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for child in [pid] + _children(pid):
        try:
            with open(f"/proc/{child}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12]) + (int(fields[13]) + int(fields[14]) if child == pid else 0)) / tick
    return total


def _children(pid):
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    if int(fh.read().rsplit(")", 1)[1].split()[1]) == pid:
                        out.append(int(entry))
            except OSError:
                pass
    return out


def _smtp_client(port, messages):
    with smtplib.SMTP("127.0.0.1", port, timeout=120) as smtp:
        for data in messages:
            data = data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
            smtp.sendmail("bench@example.net", ["alice@example.org"], data)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--corpus", default="/work/corpora/trec07p", help="trec07p directory (full/index, data/)")
    p.add_argument("--train", type=int, default=5000, help="messages to train both filters on")
    p.add_argument("--latency", type=int, default=200, help="messages in the latency sample")
    p.add_argument("--throughput", type=int, default=8000, help="messages through 8 spamc clients")
    p.add_argument("--milter", type=int, default=2000, help="messages through Postfix (0: skip)")
    p.add_argument("--out", default=RESULTS)
    args = p.parse_args(argv)

    entries = read_index(args.corpus)
    work = tempfile.mkdtemp(prefix="mf-bench-serve-")
    os.chmod(work, 0o755)
    try:
        print(f"training both filters on {args.train} messages", file=sys.stderr)
        home, bogo = train(work, entries[:args.train])
        rest = [p for _, p in entries[args.train:]]
        sizes = [(p, os.path.getsize(p)) for p in rest[:20000]]
        typical = [p for p, size in sizes if 5000 <= size <= 20000]
        sample = random.Random(1).sample(typical, args.latency)
        daemon = Daemon(work, home)
        try:
            print("latency", file=sys.stderr)
            lat = latency(daemon, home, bogo, sample)
            print("throughput", file=sys.stderr)
            tput = throughput(daemon, rest[:args.throughput])
            memory = daemon.memory()
        finally:
            daemon.stop()
        print("in-process rate", file=sys.stderr)
        rate = in_process_rate(home, rest[:2000])
        milter = milter_rate(work, home, rest[:args.milter]) if args.milter else {}
    finally:
        shutil.rmtree(work, ignore_errors=True)

    names = list(lat)

    def paired(a, b):
        return statistics.median(x / y for x, y in zip(lat[a], lat[b]))
    result = {
        "machine": {"cpus": os.cpu_count(), "processor": platform.processor() or platform.machine(),
                    "python": platform.python_version(), "load_before": os.getloadavg()},
        "corpus": {"trained": args.train, "latency_sample": len(sample)},
        "latency_ms": {n: {"median": 1000 * statistics.median(lat[n]), "p95": 1000 * percentile(lat[n], 95)}
                       for n in names},
        "latency_ratio": {"spamc/bogofilter": paired("spamc -> serve", "bogofilter -p"),
                          "spamc/pipe filter": paired("spamc -> serve", "pipe filter"),
                          "pipe filter/bogofilter": paired("pipe filter", "bogofilter -p")},
        "throughput": tput,
        "in_process_msgs_per_s_one_core": rate,
        "memory_kb": {str(pid): dict(zip(("rss", "pss", "model_rss"), v)) for pid, v in memory.items()},
        "milter": milter,
    }
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "serve.json"), "w") as fh:
        json.dump(result, fh, indent=2)
    with open(os.path.join(args.out, "SERVE.md"), "w") as fh:
        fh.write(report(result))
    print(report(result))


def report(r) -> str:
    lat, ratio, t = r["latency_ms"], r["latency_ratio"], r["throughput"]
    mem = r["memory_kb"]
    rss = sum(v["rss"] for v in mem.values())
    pss = sum(v["pss"] for v in mem.values())
    model = sum(v["model_rss"] for v in mem.values())
    lines = [
        "# The resident filter: spamc -> mailfilter serve, and the milter",
        "",
        f"One paired run (`python -m bench.serve`), {r['machine']['cpus']} cores, "
        f"load average before {r['machine']['load_before'][0]:.1f}; trec07p, both filters trained on "
        f"the first {r['corpus']['trained']} messages; {r['corpus']['latency_sample']} messages of 5-20 KB "
        "from the rest for latency.",
        "",
        "| one message, new client process each | median ms | p95 ms |",
        "|---|---:|---:|",
    ]
    for name, v in lat.items():
        lines.append(f"| {name} | {v['median']:.2f} | {v['p95']:.2f} |")
    lines += [
        "",
        f"- spamc -> serve ÷ bogofilter -p (median of per-message ratios): **{ratio['spamc/bogofilter']:.2f}**",
        f"- spamc -> serve ÷ pipe filter: **{ratio['spamc/pipe filter']:.2f}**",
        f"- pipe filter ÷ bogofilter -p: {ratio['pipe filter/bogofilter']:.2f}",
        "",
        f"Throughput, {t['clients']} concurrent spamc clients (a shell loop each), {t['messages']} messages: "
        f"**{t['per_second']:.0f} msg/s**; CPU per message: daemon {t['daemon_cpu_ms_per_message']:.2f} ms, "
        f"clients (sh + spamc) {t['client_cpu_ms_per_message']:.2f} ms. The classifier alone, in one process: "
        f"{r['in_process_msgs_per_s_one_core']:.0f} msg/s per core. At that CPU cost, both cores to "
        f"ourselves would carry {2000 / (t['daemon_cpu_ms_per_message'] + t['client_cpu_ms_per_message']):.0f} msg/s.",
        "",
        f"Memory after that run, server + {len(mem) - 1} workers: RSS {rss / 1024:.1f} MB, of which the mmap'd "
        f"model {model / 1024:.1f} MB; RSS without the model {(rss - model) / 1024:.1f} MB; PSS (shared pages "
        f"counted once) {pss / 1024:.1f} MB.",
        "",
    ]
    for name, v in r.get("milter", {}).items():
        cpu = v["cpu_ms_per_message"]
        total = sum(cpu.values())
        lines.append(f"- Postfix {name}: {v['messages']} messages by SMTP from 8 connections, delivered in "
                     f"{v['seconds']:.1f} s: **{v['per_second']:.0f} msg/s**; with our header once: "
                     f"{v['with our header once']}. CPU per message: Postfix {cpu['postfix']:.2f} ms, "
                     f"milter {cpu['milter']:.2f} ms, daemon {cpu['daemon']:.2f} ms; all of 2 cores would "
                     f"carry {2000 / total:.0f} msg/s at that cost.")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
