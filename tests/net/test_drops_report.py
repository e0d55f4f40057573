"""`mailfilter drops` on recorded logs (tests/fixtures/drops, see its README):
rotated and gzipped kern.log, journald JSON, saved counters, spam beside.

The expected figures are the fixture plan's (make_fixtures.py PLAN), worked
out by hand here, host "mx":
    198.51.100.7    CN  port 25   398 on 03-03 from 02:00:00 every 10 s, 2 on 03-04
    198.51.100.20   CN  port 587  1 a day, 03-01 .. 03-05, at 12:00
    198.51.100.200  KR  port 25   12 on 03-02; port 465  3 on 03-06
    2001:db8:82::5  KR  port 25   4 on 03-05        2001:db8:86::7  CN  2 on 03-06
    192.0.2.77      ??  port 25   1 on 03-02
  = CN 407, KR 19, ?? 1: 427 drops. The backup MX "mx2" adds 6 (CN) under
    the same prefix; 10 UFW and 5 "krfilter-dmz: " lines are others'.
"""

import gzip
import json
import os
import shutil
import struct
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIX = os.path.join(REPO, "tests", "fixtures")
DROPS = os.path.join(FIX, "drops")
DOC_RIR = os.path.join(DROPS, "delegated-doc-extended")
RIR = ["--rir", DOC_RIR]
SPAM_RIR = ["--rir", os.path.join(FIX, "rir", "delegated-apnic-sample"),
            "--rir", os.path.join(FIX, "rir", "delegated-lacnic-extended-sample")]
LOGS = ["kern.log.2.gz", "kern.log.1", "kern.log"]
MTIME = 1709855999          # 2024-03-07 23:59:59 UTC: dates the year-less stamps
ENV = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""), TZ="UTC")

PLAN_DAYS = {"2024-03-01": {"CN": 1}, "2024-03-02": {"CN": 1, "KR": 12, "??": 1},
             "2024-03-03": {"CN": 399}, "2024-03-04": {"CN": 3},
             "2024-03-05": {"CN": 1, "KR": 4}, "2024-03-06": {"CN": 2, "KR": 3}}


def drops(*args, stdin=None):
    return subprocess.run([sys.executable, "-m", "mailfilter", "drops", *map(str, args)],
                          capture_output=True, text=True, env=ENV, timeout=120, input=stdin)


@pytest.fixture
def logs(tmp_path):
    """Copies of the recorded logs with the mtime the plan dates them by."""
    paths = []
    for name in LOGS + ["journal.json"]:
        dst = tmp_path / name
        shutil.copyfile(os.path.join(DROPS, name), dst)
        os.utime(dst, (MTIME, MTIME))
        paths.append(dst)
    return {"kern": paths[:3], "journal": paths[3], "dir": tmp_path}


def as_json(res):
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


def test_rotated_and_gzipped_kern_log(logs):
    doc = as_json(drops(*RIR, "--json", "--host", "mx", *logs["kern"]))
    log = doc["log"]
    assert log["drops"] == 427
    assert [(c["country"], c["drops"], c["addresses"]) for c in log["countries"]] == [
        ("CN", 407, 3), ("KR", 19, 2), ("??", 1, 1)]
    assert {d["day"]: d["countries"] for d in log["days"]} == PLAN_DAYS
    top = log["addresses"][0]
    assert top["address"] == "198.51.100.7" and top["country"] == "CN" and top["drops"] == 400
    assert top["days"] == {"2024-03-03": 398, "2024-03-04": 2}
    assert top["busiest_day"] == {"day": "2024-03-03", "drops": 398}
    assert (top["first_seen"], top["last_seen"]) == ("2024-03-03 02:00:00", "2024-03-04 09:01:00")
    # The kernel's uncompressed IPv6 (2001:0db8:0082:...) is reported in the usual form.
    v6 = {a["address"]: a for a in log["addresses"] if ":" in a["address"]}
    assert v6["2001:db8:82::5"]["country"] == "KR" and v6["2001:db8:86::7"]["last_seen"] == "2024-03-06 23:59:30"
    assert log["ports"] == [{"port": 25, "drops": 419}, {"port": 587, "drops": 5}, {"port": 465, "drops": 3}]
    # Every line is accounted for; nothing of another's is counted as ours.
    lines = log["lines"]
    assert (lines["other_prefix"], lines["other_host"], lines["unrecognised"], lines["other"]) == (15, 6, 3, 30)
    assert lines["read"] == sum(v for k, v in lines.items() if k != "read")
    assert "198.51.100.9" not in json.dumps(doc) and "192.0.2.200" not in json.dumps(doc)
    assert doc["counters"] is None and "samples" in log["note"]


def test_journal_json_gives_the_same_drops(logs):
    kern = as_json(drops(*RIR, "--json", "--host", "mx", *logs["kern"]))
    journal = as_json(drops(*RIR, "--json", "--host", "mx", logs["journal"]))
    for key in ("countries", "days", "addresses", "ports", "drops", "first_seen", "last_seen"):
        assert journal["log"][key] == kern["log"][key], key
    # The journal has no garbage lines, only the cut-short entry and the fieldless one.
    assert journal["log"]["lines"]["unrecognised"] == 2


def test_unrecognised_lines_are_counted_and_quoted(logs):
    res = drops(*RIR, "--host", "mx", *logs["kern"])
    assert res.returncode == 0
    assert "skipped 3 unrecognised lines" in res.stderr
    assert "kern.log.1:" in res.stderr and "our prefix, but no SRC=/DST=/PROTO= fields" in res.stderr
    assert "3 unrecognised" in res.stdout and "15 LOG lines with another prefix" in res.stdout


def test_another_hosts_lines_are_not_ours_unless_asked(logs):
    everyone = as_json(drops(*RIR, "--json", *logs["kern"]))
    assert everyone["log"]["drops"] == 427 + 6 and everyone["log"]["hosts"] == ["mx", "mx2"]
    res = drops(*RIR, *logs["kern"])
    assert "hosts: mx, mx2 (--host NAME keeps one)" in res.stdout
    mx2 = as_json(drops(*RIR, "--json", "--host", "mx2", *logs["kern"]))
    assert [(a["address"], a["drops"]) for a in mx2["log"]["addresses"]] == [("198.51.100.8", 6)]
    # A different krfilter --name is a different prefix.
    dmz = as_json(drops(*RIR, "--json", "--name", "krfilter-dmz", *logs["kern"]))
    assert [(a["address"], a["drops"]) for a in dmz["log"]["addresses"]] == [("198.51.100.9", 5)]


def test_since_until_in_log_time(logs):
    doc = as_json(drops(*RIR, "--json", "--host", "mx", "--since", "2024-03-03", "--until", "2024-03-05",
                        *logs["kern"]))
    assert {d["day"]: d["countries"] for d in doc["log"]["days"]} == {
        "2024-03-03": {"CN": 399}, "2024-03-04": {"CN": 3}}
    assert doc["log"]["lines"]["outside_period"] == 427 - 402
    assert doc["period"] == {"since": "2024-03-03 00:00:00", "until": "2024-03-05 00:00:00"}
    doc = as_json(drops(*RIR, "--json", "--host", "mx", "--since", "2024-03-03 02:30", "--until",
                        "2024-03-03 02:31", *logs["kern"]))
    assert doc["log"]["drops"] == 6          # 02:30:00 .. 02:30:50, every 10 s


def test_traditional_stamp_year_comes_from_the_file_and_turns_over(tmp_path):
    """kern.log.1 written across New Year, last touched on Jan 1st."""
    line = ("{} mx kernel: [ 5.000000] krfilter: IN=eth0 OUT= MAC= SRC=198.51.100.7 DST=192.0.2.25 "
            "LEN=60 TOS=0x00 PREC=0x00 TTL=49 ID=1 DF PROTO=TCP SPT=40000 DPT=25 WINDOW=64240 RES=0x00 SYN URGP=0\n")
    log = tmp_path / "kern.log.1"
    log.write_text(line.format("Dec 31 23:59:59") + line.format("Jan  1 00:00:01"))
    os.utime(log, (1735689700, 1735689700))           # 2025-01-01 00:01:40 UTC
    doc = as_json(drops(*RIR, "--json", log))
    assert [d["day"] for d in doc["log"]["days"]] == ["2024-12-31", "2025-01-01"]


def test_stdin_and_a_gzip_file_named_anything(logs, tmp_path):
    plain = (logs["dir"] / "kern.log.1").read_bytes()
    odd = tmp_path / "archive.bin"
    odd.write_bytes(gzip.compress(plain))
    os.utime(odd, (MTIME, MTIME))
    a = as_json(drops(*RIR, "--json", "--host", "mx", odd))
    assert a["log"]["days"] == [{"day": "2024-03-03", "drops": 399, "countries": {"CN": 399}},
                                {"day": "2024-03-04", "drops": 3, "countries": {"CN": 3}}]
    # stdin has no mtime (a year-less stamp would get this year): the RFC 3339 file has its own.
    current = (logs["dir"] / "kern.log").read_text()
    b = as_json(drops(*RIR, "--json", "--host", "mx", "-", stdin=current))
    assert b["log"]["days"] == [{"day": "2024-03-05", "drops": 5, "countries": {"CN": 1, "KR": 4}},
                                {"day": "2024-03-06", "drops": 5, "countries": {"CN": 2, "KR": 3}}]
    assert b["inputs"]["logs"] == ["-"]


def test_csv_rows_add_up(logs):
    import csv
    res = drops(*RIR, "--csv", "--host", "mx", "--counters-file", os.path.join(DROPS, "nft-per-country.json"),
                *logs["kern"])
    assert res.returncode == 0, res.stderr
    rows = list(csv.DictReader(res.stdout.splitlines()))
    log = [r for r in rows if r["figure"] == "log-sample"]
    counted = [r for r in rows if r["figure"] == "counter-total"]
    assert sum(int(r["drops"]) for r in log) == 427
    assert sum(int(r["drops"]) for r in log if r["country"] == "KR") == 19
    burst = [r for r in log if r["address"] == "198.51.100.7" and r["day"] == "2024-03-03"]
    assert [(r["port"], r["drops"]) for r in burst] == [("25", "398")]
    assert {r["address"]: int(r["drops"]) for r in counted} == {
        "@block4_CN": 5210, "@block6_CN": 40, "@block4_KR": 1033, "@block6_KR": 12, "@block4_KP": 0, "@block6_KP": 0}


def test_counters_say_they_are_totals_and_the_log_samples(logs):
    res = drops(*RIR, "--host", "mx", "--counters-file", os.path.join(DROPS, "nft-per-country.json"), *logs["kern"])
    out = res.stdout
    assert "log figures are samples" in out and "counter figures are totals" in out
    table = out.split("by country:")[1].split("\n\n")[0].splitlines()
    assert table[0].split() == ["blocked", "log", "samples", "counters", "(total)"]
    rows = {line.split()[0]: line.split()[1:] for line in table[1:] if line.startswith("  ") and "(" not in line}
    assert rows["CN"] == ["yes", "407", "5250"] and rows["KR"] == ["yes", "19", "1045"]
    assert rows["KP"] == ["yes", "0", "0"] and rows["??"] == ["no", "1", "-"]
    assert rows["total"] == ["427", "6295"]
    # One set for every country: a total, and the report says why there is no split.
    res = drops(*RIR, "--counters-file", os.path.join(DROPS, "iptables-L.txt"))
    assert "all (one set)" in res.stdout and "6295" in res.stdout and "krfilter --per-country" in res.stdout
    assert "LOG rule wrote 433 log lines" in res.stdout


def test_with_sources_and_suggestions_close_the_loop(logs):
    res = drops(*RIR, *SPAM_RIR, "--host", "mx", "--counters-file", os.path.join(DROPS, "nft-per-country.json"),
                "--with-sources", os.path.join(FIX, "sources", "spam"), "--trust", "192.0.2.0/28",
                "--suggest", "10", *logs["kern"])
    assert res.returncode == 0, res.stderr
    beside = res.stdout.split("spam sources beside the drops")[1].split("\n\n")[0]
    assert "10 spam messages, 8 with an external relay" in beside
    lines = {line.split()[0]: line for line in beside.splitlines()[1:]}
    assert "blocked, yet still in your spam" in lines["CN"] and "blocked, yet still in your spam" in lines["KR"]
    assert "blocked, but never sent anything" in lines["KP"]
    assert "not blocked, sends spam" in lines["BR"]
    suggestions = res.stdout.split("suggestions:")[1]
    assert "consider blocking BR: 1 of 8 spam messages (12.5%) came from BR, which is not blocked" in suggestions
    assert "consider lifting KP: no drop from KP in the log or the counters" in suggestions
    assert "then: mailfilter krfilter --countries CN,KR,BR ..." in suggestions
    assert "consider lifting CN" not in suggestions and "consider blocking CN" not in suggestions


def test_blocked_countries_given_and_nothing_to_suggest(logs):
    res = drops(*RIR, "--host", "mx", "--countries", "CN,KR", "--suggest", "10", *logs["kern"])
    assert "(blocked countries from --countries/--preset)" in res.stdout
    assert "  none: " in res.stdout and "give --with-sources SPAMDIR" in res.stdout
    res = drops(*RIR, "--countries", "XX", *logs["kern"])
    assert res.returncode == 64 and "XX" in res.stderr


@pytest.fixture(scope="module")
def schema():
    with open(os.path.join(DROPS, "report.schema.json")) as fh:
        return json.load(fh)


@pytest.mark.parametrize("args", [
    ["--host", "mx", "LOGS"],
    ["--counters-file", os.path.join(DROPS, "iptables-L.txt")],
    ["--host", "mx", "--counters-file", os.path.join(DROPS, "nft-per-country.json"), *SPAM_RIR,
     "--with-sources", os.path.join(FIX, "sources", "spam"), "--trust", "192.0.2.0/28", "--suggest", "10",
     "--since", "2024-03-02", "--top", "3", "LOGS"],
], ids=["log", "counters", "everything"])
def test_json_validates_against_the_schema(logs, schema, args):
    import jsonschema
    args = [a for arg in args for a in (logs["kern"] if arg == "LOGS" else [arg])]
    doc = as_json(drops(*RIR, "--json", *args))
    jsonschema.validate(doc, schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
    # The schema itself bites: a report missing its note on samples is refused.
    if doc["log"]:
        broken = json.loads(json.dumps(doc))
        broken["log"]["note"] = "totals"
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(broken, schema)


def png_size(data):
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_chart_renders_an_800_by_400_png(logs, tmp_path):
    chart = tmp_path / "drops.png"
    res = drops(*RIR, "--host", "mx", "--chart", chart, *logs["kern"])
    assert res.returncode == 0, res.stderr
    data = chart.read_bytes()
    assert png_size(data) == (800, 400)
    assert len(data) > 5000          # bars, axes and labels, not an empty canvas


def test_without_matplotlib_the_report_works_and_the_chart_says_how(logs, tmp_path):
    """No second venv: matplotlib is made unimportable in the child (a None
    entry in sys.modules makes `import matplotlib` raise ImportError)."""
    code = ("import sys; sys.modules['matplotlib'] = None; from mailfilter.cli import main; "
            "sys.exit(main(sys.argv[1:]))")
    base = [sys.executable, "-c", code, "drops", *RIR, "--host", "mx", *map(str, logs["kern"])]
    res = subprocess.run(base, capture_output=True, text=True, env=ENV, timeout=120)
    assert res.returncode == 0 and "by country:" in res.stdout, res.stderr
    chart = tmp_path / "c.png"
    res = subprocess.run(base + ["--chart", str(chart)], capture_output=True, text=True, env=ENV, timeout=120)
    assert res.returncode == 69 and "pip install 'mailfilter[chart]'" in res.stderr
    assert res.stdout == "" and not chart.exists()


def test_bad_input_exit_codes(logs, tmp_path):
    res = drops(*RIR, tmp_path / "nope.log")
    assert res.returncode == 66 and "nope.log: no such log file" in res.stderr
    bad = tmp_path / "counters.txt"
    bad.write_text("hello\n")
    res = drops(*RIR, "--counters-file", bad)
    assert res.returncode == 65 and f"{bad}: neither" in res.stderr
    cut = tmp_path / "kern.log.3.gz"
    cut.write_bytes(gzip.compress((logs["dir"] / "kern.log.1").read_bytes())[:2000])
    res = drops(*RIR, cut)
    assert res.returncode == 65 and f"{cut}: cannot read" in res.stderr and res.stdout == ""
    res = drops(*RIR, "--since", "yesterday", logs["kern"][0])
    assert res.returncode == 64 and "not a date" in res.stderr
    res = drops(*RIR, "--since", "2024-03-05", "--until", "2024-03-01", logs["kern"][0])
    assert res.returncode == 64
    res = drops("--cache", tmp_path / "empty", logs["kern"][0])
    assert res.returncode == 66 and "none cached" in res.stderr
    res = drops(*RIR, "--chart", tmp_path / "c.png", "--counters-file", os.path.join(DROPS, "iptables-L.txt"))
    assert res.returncode == 64 and "only the log has" in res.stderr


def test_help_teaches():
    res = drops("--help")
    assert res.returncode == 0
    for word in ("examples:", "--journal", "--counters", "samples", "totals", "exit status", "watch-then-block"):
        assert word in res.stdout, word


def test_journal_option_asks_journalctl_for_the_period(logs, tmp_path):
    """A stand-in journalctl (a mock, said plainly): the real one runs here,
    but with no journald to write a journal there is nothing for it to read.
    The stand-in records its arguments and prints the recorded journal JSON,
    as `journalctl -k -o json` would."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    args_file = tmp_path / "args"
    fake = bin_dir / "journalctl"
    fake.write_text(f"#!/bin/sh\nprintf '%s\\n' \"$@\" > {args_file}\nexec cat {logs['journal']}\n")
    fake.chmod(0o755)
    env = dict(ENV, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    res = subprocess.run([sys.executable, "-m", "mailfilter", "drops", *RIR, "--json", "--host", "mx", "--journal",
                          "--since", "2024-03-03", "--until", "2024-03-05"],
                         capture_output=True, text=True, env=env, timeout=120)
    doc = as_json(res)
    assert args_file.read_text().split("\n")[:-1] == [
        "-k", "-o", "json", "--no-pager", "--since", "2024-03-03 00:00:00", "--until", "2024-03-05 00:00:00"]
    assert doc["inputs"]["logs"] == ["journalctl -k -o json"]
    assert [d["day"] for d in doc["log"]["days"]] == ["2024-03-03", "2024-03-04"]
    # journalctl failing is not an empty report.
    fake.write_text("#!/bin/sh\necho 'Failed to open journal: Permission denied' >&2\nexit 2\n")
    res = subprocess.run([sys.executable, "-m", "mailfilter", "drops", *RIR, "--journal"],
                         capture_output=True, text=True, env=env, timeout=120)
    assert res.returncode == 69 and "Permission denied" in res.stderr and res.stdout == ""
