"""`mailfilter drops` against a real kernel: krfilter's rules (with --log)
loaded in a test namespace, real TCP SYNs from listed and unlisted
addresses through the veth pair, and the report's counts equal to the SYNs
that were sent.

Which figure is compared: the COUNTERS. The kernel writes a LOG line from a
network namespace other than the first only when the host has
net.netfilter.nf_log_all_netns=1; it is 0 here (and by default), and it is
the host's setting, which a test must not change. So the namespace's LOG
lines never reach any log we could read. Where the sysctl is 1, the test
also reads the kernel log (dmesg) and compares the log samples too; the
assertion message says which was used.
"""

import json
import os
import re
import subprocess
import sys

import pytest

from netns_lab import Lab, need

pytestmark = pytest.mark.root

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TESTNET = os.path.join(REPO, "tests", "fixtures", "rir", "delegated-testnet-extended")
ALLOW = ["--allow", "10.99.100.0/24", "--allow", "2001:db8:64:100::/64"]
ENV = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""), TZ="UTC")

# SYNs per source. The connect gives up after 0.3 s, well before the first
# retransmission (1 s), so one connect is exactly one SYN.
SENT = {"kr4": 3, "cn4": 2, "cn_tail4": 1, "kr6": 2, "cn6": 1,
        "unlisted4": 2, "kr_allowed4": 2, "after_cn4": 1, "unlisted6": 1, "kr_allowed6": 1}
DROPPED = {"KR": 3 + 2, "CN": 2 + 1 + 1}          # unlisted and allow-listed ones connect


def krfilter(tmp_path, fmt, *extra, name):
    out = tmp_path / f"{fmt}.rules"
    res = subprocess.run([sys.executable, "-m", "mailfilter", "krfilter", "-q", "--countries", "KR,CN", *ALLOW,
                          "--log", "--log-rate", "100/second", "--name", name, "--format", fmt, "-o", str(out),
                          *extra, TESTNET], capture_output=True, text=True, env=ENV, timeout=60)
    assert res.returncode == 0, res.stderr
    return out


def send_syns(lab, families="46"):
    for source, count in SENT.items():
        if source[-1] not in families:
            continue
        blocked = not source.startswith(("unlisted", "kr_allowed", "after_cn"))
        for _ in range(count):
            got = lab.inbound(source, timeout=0.3)
            assert got == ("timeout" if blocked else "ok"), f"{source}: {got}"


def drops_in(lab, *args):
    """`mailfilter drops` run inside the protected host's namespace, on this tree's code."""
    res = subprocess.run(["ip", "netns", "exec", lab.srv, "env", f"PYTHONPATH={REPO}", "TZ=UTC",
                          sys.executable, "-m", "mailfilter", "drops", "--rir", TESTNET, *args],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    return res.stdout


def kernel_log_visible():
    with open("/proc/sys/net/netfilter/nf_log_all_netns") as fh:
        return fh.read().strip() == "1"


def check_log(tmp_path, name):
    """Only where the host lets a namespace's LOG lines through: dmesg's
    lines, in the RFC 3339 syslog form drops reads, must count the same SYNs."""
    dmesg = subprocess.run(["dmesg", "--time-format", "iso"], capture_output=True, text=True, check=True).stdout
    log = tmp_path / "kern.log"
    with open(log, "w") as fh:
        for line in dmesg.splitlines():
            m = re.match(r"(\S+) (%s: .*)" % re.escape(name), line)
            if m:
                fh.write(f"{m.group(1).replace(',', '.')} testhost kernel: {m.group(2)}\n")
    res = subprocess.run([sys.executable, "-m", "mailfilter", "drops", "--rir", TESTNET, "--name", name,
                          "--json", str(log)], capture_output=True, text=True, env=ENV, timeout=60)
    assert res.returncode == 0, res.stderr
    return {c["country"]: c["drops"] for c in json.loads(res.stdout)["log"]["countries"]}


def test_nft_per_country_counters_equal_the_syns_sent(tmp_path):
    need("nft")
    name = f"kf{os.getpid() % 100000}"
    rules = krfilter(tmp_path, "nft", "--per-country", name=name)
    with Lab() as lab:
        lab.srv_sh("nft", "-f", rules)
        send_syns(lab)
        report = json.loads(drops_in(lab, "--name", name, "--counters", "--json"))
        counters = report["counters"]
        assert counters["read"] == [f"nft -j list table inet {name}"]
        assert counters["per_country"] is True
        per_country = {row["country"]: row["counter_packets"] for row in report["countries"]}
        assert per_country == DROPPED, "compared: nft counters (kernel log not visible from a namespace)"
        assert counters["total"] == sum(DROPPED.values())
        # Both families, each country's own counted rule.
        by_rule = {r["match"]: r["packets"] for r in counters["rules"]}
        assert by_rule == {"@block4_KR": 3, "@block6_KR": 2, "@block4_CN": 3, "@block6_CN": 1}
        text = drops_in(lab, "--name", name, "--counters")
        assert re.search(r"^  KR\s+yes\s+-\s+5$", text, re.M), text
        assert "counter figures are totals" in text
    if kernel_log_visible():
        assert check_log(tmp_path, name) == DROPPED, "compared: the kernel log (nf_log_all_netns=1)"


def test_nft_default_ruleset_counts_a_total(tmp_path):
    """Without --per-country, one counter per family: the total, not the split."""
    name = f"kt{os.getpid() % 100000}"
    rules = krfilter(tmp_path, "nft", name=name)
    with Lab() as lab:
        lab.srv_sh("nft", "-f", rules)
        send_syns(lab)
        report = json.loads(drops_in(lab, "--name", name, "--counters", "--json"))
        assert report["counters"]["per_country"] is False
        assert report["counters"]["total"] == sum(DROPPED.values()), "compared: nft counters"
        assert {r["match"]: r["packets"] for r in report["counters"]["rules"]} == {"@block4": 6, "@block6": 3}


@pytest.mark.parametrize("variant", ["iptables", "iptables-legacy"])
def test_ipset_per_country_counters_equal_the_syns_sent(tmp_path, variant):
    v4, v6 = variant, variant.replace("iptables", "ip6tables")
    need(v4 + "-restore")
    name = f"ki{os.getpid() % 10000}"
    sets = krfilter(tmp_path, "ipset", "--per-country", name=name)
    rules4 = krfilter(tmp_path, "ipset-iptables", "--per-country", name=name)
    rules6 = krfilter(tmp_path, "ipset-ip6tables", "--per-country", name=name)
    with Lab() as lab:
        lab.srv_sh("ipset", "restore", "-file", sets)
        lab.srv_sh(v4 + "-restore", "--noflush", rules4)
        lab.srv_sh(v6 + "-restore", "--noflush", rules6)
        lab.srv_sh(v4, "-I", "INPUT", "-j", name.upper())
        lab.srv_sh(v6, "-I", "INPUT", "-j", name.upper())
        send_syns(lab)
        # What an admin on another box would save and send: the -L output itself.
        saved = tmp_path / "counters.txt"
        saved.write_text(lab.srv_sh(v4, "-L", "-v", "-x", "-n").stdout + lab.srv_sh(v6, "-L", "-v", "-x", "-n").stdout)
        report = json.loads(drops_in(lab, "--name", name, "--counters-file", str(saved), "--json"))
        per_country = {row["country"]: row["counter_packets"] for row in report["countries"]}
        assert per_country == DROPPED, f"compared: {variant} counters (kernel log not visible from a namespace)"
        # The LOG rule (rate 100/second here) logged every one of them.
        assert report["counters"]["logged"] == sum(DROPPED.values())
        if variant == "iptables":
            # --counters asks the tools itself (the default iptables is this variant).
            live = json.loads(drops_in(lab, "--name", name, "--counters", "--json"))
            assert {row["country"]: row["counter_packets"] for row in live["countries"]} == DROPPED


def test_iptables_prefix_rules_are_mapped_to_countries(tmp_path):
    """--format iptables counts per prefix; drops maps each prefix with the RIR data."""
    name = f"kp{os.getpid() % 10000}"
    rules = krfilter(tmp_path, "iptables", "--per-country", name=name)
    with Lab() as lab:
        lab.srv_sh("iptables-restore", "--noflush", rules)
        lab.srv_sh("iptables", "-I", "INPUT", "-j", name.upper())
        send_syns(lab, families="4")
        report = json.loads(drops_in(lab, "--name", name, "--counters", "--json"))
        per_country = {row["country"]: row["counter_packets"] for row in report["countries"]}
        assert per_country == {"KR": 3, "CN": 3}, "compared: iptables per-prefix counters (IPv4 only here)"
