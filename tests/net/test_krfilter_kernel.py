"""Every firewall format, loaded into a real kernel inside a test namespace,
proved with real TCP connections (tests/net/netns_lab.py draws the plan).

A SYN from a blocked prefix is dropped (the connect times out) or rejected
(refused); unlisted and allow-listed sources connect; the protected host can
still connect out to a blocked address, and gets its replies.
"""

import os
import subprocess
import sys

import pytest

from netns_lab import Lab, need

pytestmark = pytest.mark.root

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TESTNET = os.path.join(REPO, "tests", "fixtures", "rir", "delegated-testnet-extended")
ALLOW = ["--allow", "10.99.100.0/24", "--allow", "2001:db8:64:100::/64"]


def generate(tmp_path, fmt, *extra, countries="KR,CN", name=None):
    out = tmp_path / f"{name or fmt}.out"
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    res = subprocess.run([sys.executable, "-m", "mailfilter", "krfilter", "-q", "--countries", countries,
                          *ALLOW, "--format", fmt, "-o", str(out), *extra, TESTNET],
                         capture_output=True, text=True, env=env, timeout=60)
    assert res.returncode == 0, res.stderr
    return out


def expect(lab, family, blocked="timeout", port=25):
    """The whole plan for one address family."""
    s = "4" if family == 4 else "6"
    got = {name: lab.inbound(name + s, port) for name in ("unlisted", "kr", "kr_allowed", "cn")}
    want = {"unlisted": "ok", "kr": blocked, "kr_allowed": "ok", "cn": blocked}
    if family == 4:
        got.update(cn_tail=lab.inbound("cn_tail4", port), after_cn=lab.inbound("after_cn4", port))
        want.update(cn_tail=blocked, after_cn="ok")
    got["outbound_to_kr"] = lab.outbound("kr" + s)
    want["outbound_to_kr"] = "ok"
    assert got == want


def unblocked(lab, family):
    s = "4" if family == 4 else "6"
    assert lab.inbound("kr" + s) == "ok", "the lab itself is broken: blocked before any rule was loaded"


IPTABLES = {
    # Debian 12's default `iptables` is the nf_tables variant; the legacy one
    # is still shipped and some admins keep it. Both must take our files.
    "nft-variant": ("iptables", "ip6tables"),
    "legacy": ("iptables-legacy", "ip6tables-legacy"),
}


@pytest.mark.parametrize("variant", list(IPTABLES))
@pytest.mark.parametrize("family", [4, 6])
def test_iptables_restore(tmp_path, variant, family):
    tool = IPTABLES[variant][family == 6]
    need(tool + "-restore")
    rules = generate(tmp_path, "iptables" if family == 4 else "ip6tables")
    with Lab() as lab:
        unblocked(lab, family)
        lab.srv_sh(tool + "-restore", "--noflush", rules)
        lab.srv_sh(tool, "-I", "INPUT", "-j", "KRFILTER")
        expect(lab, family)
        # Reloading the same file replaces the chain, it does not append to it.
        before = lab.srv_sh(tool, "-S", "KRFILTER").stdout
        lab.srv_sh(tool + "-restore", "--noflush", rules)
        assert lab.srv_sh(tool, "-S", "KRFILTER").stdout == before
        expect(lab, family)


@pytest.mark.parametrize("variant", list(IPTABLES))
def test_ipset_with_rules(tmp_path, variant):
    v4tool, v6tool = IPTABLES[variant]
    need(v4tool + "-restore")
    sets = generate(tmp_path, "ipset")
    rules4 = generate(tmp_path, "ipset-iptables")
    rules6 = generate(tmp_path, "ipset-ip6tables")
    with Lab() as lab:
        lab.srv_sh("ipset", "restore", "-file", sets)
        lab.srv_sh(v4tool + "-restore", "--noflush", rules4)
        lab.srv_sh(v6tool + "-restore", "--noflush", rules6)
        lab.srv_sh(v4tool, "-I", "INPUT", "-j", "KRFILTER")
        lab.srv_sh(v6tool, "-I", "INPUT", "-j", "KRFILTER")
        # The kernel holds exactly the prefixes the file lists.
        for family in "46":
            listed = {line.split()[2] for line in sets.read_text().splitlines()
                      if line.startswith(f"add krfilter{family}-new ")}
            members = lab.srv_sh("ipset", "list", f"krfilter{family}").stdout.split("Members:\n")[1].split()
            assert listed and set(members) == listed
        expect(lab, 4)
        expect(lab, 6)


def test_ipset_reload_swaps_live_set(tmp_path):
    """The daily refresh: rules stay, the set under them is swapped whole."""
    first = generate(tmp_path, "ipset", countries="KR", name="kr-only")
    second = generate(tmp_path, "ipset", countries="KR,CN", name="kr-cn")
    rules = generate(tmp_path, "ipset-iptables")
    with Lab() as lab:
        lab.srv_sh("ipset", "restore", "-file", first)
        lab.srv_sh("iptables-restore", "--noflush", rules)
        lab.srv_sh("iptables", "-I", "INPUT", "-j", "KRFILTER")
        assert (lab.inbound("kr4"), lab.inbound("cn4")) == ("timeout", "ok")
        lab.srv_sh("ipset", "restore", "-file", second)      # while the rule references the set
        assert (lab.inbound("kr4"), lab.inbound("cn4")) == ("timeout", "timeout")
        assert "krfilter4-new" not in lab.srv_sh("ipset", "list", "-n").stdout
        expect(lab, 4)


def test_nft(tmp_path):
    ruleset = generate(tmp_path, "nft")
    with Lab() as lab:
        unblocked(lab, 4)
        lab.srv_sh("nft", "-f", ruleset)
        expect(lab, 4)
        expect(lab, 6)
        # Loading again replaces the table in one transaction.
        lab.srv_sh("nft", "-f", ruleset)
        assert lab.srv_sh("nft", "list", "tables").stdout.count("krfilter") == 1
        expect(lab, 4)


def test_reject_and_ports_nft(tmp_path):
    ruleset = generate(tmp_path, "nft", "--reject", "--ports", "25,587")
    with Lab() as lab:
        lab.srv_sh("nft", "-f", ruleset)
        expect(lab, 4, blocked="refused")
        expect(lab, 6, blocked="refused")
        # A port not listed stays open even to a blocked source.
        assert lab.inbound("kr4", port=2525) == "ok"
        assert lab.inbound("kr6", port=2525) == "ok"


@pytest.mark.parametrize("family", [4, 6])
def test_reject_ports_and_log_iptables(tmp_path, family):
    tool = "iptables" if family == 4 else "ip6tables"
    s = "4" if family == 4 else "6"
    rules = generate(tmp_path, tool, "--reject", "--ports", "25", "--log")
    with Lab() as lab:
        lab.srv_sh(tool + "-restore", "--noflush", rules)
        lab.srv_sh(tool, "-I", "INPUT", "-j", "KRFILTER")
        expect(lab, family, blocked="refused")
        assert lab.inbound("kr" + s, port=2525) == "ok"
        # The rate-limited LOG rule saw the rejected SYNs.
        counters = lab.srv_sh(tool, "-L", "KRFILTER-DROP", "-v", "-n", "-x").stdout
        log_line = next(line for line in counters.splitlines() if "LOG" in line)
        assert int(log_line.split()[0]) >= 2, counters


def test_nft_log(tmp_path):
    ruleset = generate(tmp_path, "nft", "--log")
    with Lab() as lab:
        lab.srv_sh("nft", "-f", ruleset)
        expect(lab, 4)
        assert "log prefix" in lab.srv_sh("nft", "list", "table", "inet", "krfilter").stdout


def test_hostile_file_name_loads_no_rule_of_its_own(tmp_path):
    """Issue 14: a newline in an input file's name put its own lines into the
    generated file (the header comment names the file), and the real loaders
    took them: an ACCEPT rule in INPUT, a table that drops everything, a set.
    Each format gets the payload its own loader would run."""
    payloads = {
        "iptables": "*filter\n-I INPUT -j ACCEPT\nCOMMIT",
        "nft": "table inet pwned { chain c { type filter hook input priority -300; policy drop; }; }",
        "ipset": "create pwned hash:ip",
    }
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = {}
    for fmt, payload in payloads.items():
        hostile = tmp_path / f"delegated-testnet-{fmt}\n{payload}\n#"
        hostile.write_bytes(open(TESTNET, "rb").read())
        out[fmt] = tmp_path / f"{fmt}.out"
        res = subprocess.run([sys.executable, "-m", "mailfilter", "krfilter", "-q", "--countries", "KR,CN",
                              *ALLOW, "--format", fmt, "-o", str(out[fmt]), str(hostile)],
                             capture_output=True, text=True, env=env, timeout=60)
        assert res.returncode == 0, res.stderr
    with Lab() as lab:
        lab.srv_sh("iptables-restore", "--noflush", out["iptables"])
        lab.srv_sh("iptables", "-A", "INPUT", "-j", "KRFILTER")
        assert lab.srv_sh("iptables", "-S", "INPUT").stdout == "-P INPUT ACCEPT\n-A INPUT -j KRFILTER\n"
        expect(lab, 4)
        lab.srv_sh("iptables", "-D", "INPUT", "-j", "KRFILTER")
        lab.srv_sh("nft", "-f", out["nft"])
        assert "pwned" not in lab.srv_sh("nft", "list", "tables").stdout
        expect(lab, 4)
        lab.srv_sh("ipset", "restore", "-file", out["ipset"])
        assert sorted(lab.srv_sh("ipset", "list", "-n").stdout.split()) == ["krfilter4", "krfilter6"]


def test_every_log_rate_krfilter_accepts_loads(tmp_path):
    # --log-rate is checked (a newline in it added a rule of its own); the
    # check must not refuse what iptables and nft take, nor pass what they don't.
    with Lab() as lab:
        for rate in ("1/second", "10000/second", "6/minute", "1/hour", "1/day"):
            lab.srv_sh("iptables-restore", "--noflush", generate(tmp_path, "iptables", "--log", "--log-rate", rate))
            lab.srv_sh("nft", "-f", generate(tmp_path, "nft", "--log", "--log-rate", rate))
            assert f"limit rate {rate}" in lab.srv_sh("nft", "list", "table", "inet", "krfilter").stdout
